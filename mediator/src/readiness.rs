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

    pub async fn run(&self) -> ReadinessReport {
        let futures = self.checks.iter().map(|c| async move {
            let outcome = tokio::time::timeout(CHECK_TIMEOUT, c.check()).await;
            let (ok, detail) = match outcome {
                Ok(Ok(d)) => (true, d),
                Ok(Err(e)) => (false, e),
                Err(_) => (
                    false,
                    format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
                ),
            };
            CheckResult {
                name: c.name().to_string(),
                required: c.required(),
                ok,
                detail,
            }
        });
        let mut checks = Vec::with_capacity(self.checks.len());
        for f in futures {
            checks.push(f.await);
        }
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
