//! Readiness checks: each module that depends on something (Vault, the store, a
//! FHIR server) registers a [`ReadinessCheck`] in the [`crate::state::AppStateBuilder`];
//! `GET /ready` runs them all and answers 503 when a required one fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// One dependency. `check` returns a short state text (`Ok("reachable")`) or
/// the reason it is not usable (`Err("connection refused")`). Never include secrets.
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &str;
    /// Required dependencies make `/ready` answer 503 when they fail.
    fn required(&self) -> bool {
        true
    }
    fn check(&self) -> CheckFuture<'_>;
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub required: bool,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    pub ready: bool,
    pub checks: Vec<CheckResult>,
}

/// How long a single check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Default)]
pub struct ReadinessRegistry {
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl ReadinessRegistry {
    pub fn register(&mut self, check: Arc<dyn ReadinessCheck>) {
        self.checks.push(check);
    }

    pub fn names(&self) -> Vec<String> {
        self.checks.iter().map(|c| c.name().to_string()).collect()
    }

    /// Runs every check concurrently (each bounded by [`CHECK_TIMEOUT`]), so
    /// `/ready` takes as long as the slowest check, not their sum.
    pub async fn run(&self) -> ReadinessReport {
        let mut set = tokio::task::JoinSet::new();
        for (i, c) in self.checks.iter().enumerate() {
            let c = c.clone();
            set.spawn(async move {
                let outcome = tokio::time::timeout(CHECK_TIMEOUT, c.check()).await;
                let (ok, detail) = match outcome {
                    Ok(Ok(d)) => (true, d),
                    Ok(Err(e)) => (false, e),
                    Err(_) => (
                        false,
                        format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
                    ),
                };
                (
                    i,
                    CheckResult {
                        name: c.name().to_string(),
                        required: c.required(),
                        ok,
                        detail,
                    },
                )
            });
        }
        let mut results: Vec<Option<CheckResult>> = vec![None; self.checks.len()];
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, r)) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(r);
                    }
                }
                Err(e) => tracing::error!(error = %e, "readiness check panicked"),
            }
        }
        // A check whose task panicked counts as failed and required.
        let checks: Vec<CheckResult> = results
            .into_iter()
            .zip(&self.checks)
            .map(|(r, c)| {
                r.unwrap_or_else(|| CheckResult {
                    name: c.name().to_string(),
                    required: true,
                    ok: false,
                    detail: "check failed unexpectedly".into(),
                })
            })
            .collect();
        let ready = checks.iter().all(|c| c.ok || !c.required);
        ReadinessReport { ready, checks }
    }
}

/// The data directory must exist (it is created at start-up) and be writable.
pub struct DataDirCheck(pub std::path::PathBuf);

impl ReadinessCheck for DataDirCheck {
    fn name(&self) -> &str {
        "data_dir"
    }
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let probe = self.0.join(".ready-probe");
            std::fs::write(&probe, b"ok")
                .and_then(|_| std::fs::remove_file(&probe))
                .map(|_| "writable".to_string())
                .map_err(|e| format!("{} not writable: {e}", self.0.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, bool, Result<String, String>);
    impl ReadinessCheck for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn required(&self) -> bool {
            self.1
        }
        fn check(&self) -> CheckFuture<'_> {
            let r = self.2.clone();
            Box::pin(async move { r })
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn optional_failures_do_not_block_readiness() {
        let mut reg = ReadinessRegistry::default();
        reg.register(Arc::new(Fixed("a", true, Ok("up".into()))));
        reg.register(Arc::new(Fixed("b", false, Err("down".into()))));
        let r = reg.run().await;
        assert!(r.ready);
        assert_eq!(r.checks.len(), 2);
        reg.register(Arc::new(Fixed("c", true, Err("down".into()))));
        let r = reg.run().await;
        assert!(!r.ready);
        assert_eq!(r.checks[2].detail, "down");
    }
}
