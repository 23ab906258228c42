//! HTTP access to Vault: one `reqwest` client, the current token and its upkeep,
//! status classification and retries. No transit semantics here beyond the
//! signature wire format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ddcc_cert::signer::SignError;
use reqwest::Method;
use serde_json::{json, Value};

use crate::config::{Auth, ConfigError, Secret, VaultConfig};
use crate::error::VaultError;
use crate::health::Health;

#[derive(Default)]
pub(crate) struct Counters {
    pub http_calls: AtomicU64,
    pub sign_calls: AtomicU64,
    pub signatures: AtomicU64,
    pub largest_batch: AtomicU64,
    pub peak_in_flight: AtomicU64,
    pub logins: AtomicU64,
    pub renewals: AtomicU64,
}

#[derive(Clone)]
struct TokenState {
    token: Secret,
    /// Remaining lifetime at `obtained`; `None` when the token never expires (or
    /// when a given token has not been looked up yet).
    ttl: Option<Duration>,
    /// The TTL granted at login, asked for again on each renewal.
    issued_ttl: Option<Duration>,
    renewable: bool,
    obtained: Instant,
    looked_up: bool,
    generation: u64,
}

impl TokenState {
    fn near_expiry(&self, now: Instant) -> bool {
        match self.ttl {
            None => false,
            Some(ttl) => {
                let margin = (ttl / 10).min(Duration::from_secs(5));
                now + margin >= self.obtained + ttl
            }
        }
    }
}

pub(crate) struct VaultClient {
    http: reqwest::Client,
    base: String,
    pub(crate) cfg: VaultConfig,
    token: RwLock<Option<TokenState>>,
    /// Serialises logins and renewals so a burst of requests that all find the
    /// token stale causes one login, not one each.
    refresh_lock: tokio::sync::Mutex<()>,
    pub(crate) counters: Counters,
}

impl VaultClient {
    pub(crate) fn new(cfg: VaultConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let http = http_client(&cfg)?;
        let base = format!("{}/v1/", cfg.addr.trim_end_matches('/'));
        let token = match &cfg.auth {
            Auth::Token(t) => Some(TokenState {
                token: t.clone(),
                ttl: None,
                issued_ttl: None,
                renewable: false,
                obtained: Instant::now(),
                looked_up: false,
                generation: 0,
            }),
            Auth::AppRole { .. } => None,
        };
        Ok(VaultClient {
            http,
            base,
            cfg,
            token: RwLock::new(token),
            refresh_lock: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
        })
    }

    fn snapshot(&self) -> Option<TokenState> {
        match self.token.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, st: TokenState) {
        match self.token.write() {
            Ok(mut g) => *g = Some(st),
            Err(poisoned) => *poisoned.into_inner() = Some(st),
        }
    }

    pub(crate) fn has_live_token(&self) -> bool {
        self.snapshot()
            .is_some_and(|t| t.ttl.is_none_or(|ttl| Instant::now() < t.obtained + ttl))
    }

    /// An authenticated call with retries; a 403 under AppRole triggers one fresh
    /// login and one more try, because the token may have expired between the
    /// background renewals (e.g. the process was suspended).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let mut relogged = false;
        loop {
            let (token, generation) = self.current_token().await?;
            match self
                .send_retrying(&method, path, body, Some(token.expose()))
                .await
            {
                Err(VaultError::PermissionDenied(_))
                    if !relogged && matches!(self.cfg.auth, Auth::AppRole { .. }) =>
                {
                    relogged = true;
                    self.refresh(Some(generation), true).await?;
                }
                other => return other,
            }
        }
    }

    async fn current_token(&self) -> Result<(Secret, u64), VaultError> {
        if let Some(st) = self.snapshot() {
            if !st.near_expiry(Instant::now()) {
                return Ok((st.token, st.generation));
            }
            return match self.refresh(Some(st.generation), false).await {
                // A token in its last tenth may still serve this request; whether
                // Vault is really gone, the request itself will tell.
                Err(e) if Instant::now() < st.obtained + st.ttl.unwrap_or_default() => {
                    tracing::debug!(error = %e, "token refresh failed; using the current token");
                    Ok((st.token, st.generation))
                }
                other => other,
            };
        }
        self.refresh(None, true).await
    }

    /// Renews or replaces the token. `seen` is the generation the caller found
    /// stale: if another task already replaced it, that result is used.
    async fn refresh(&self, seen: Option<u64>, force: bool) -> Result<(Secret, u64), VaultError> {
        let _guard = self.refresh_lock.lock().await;
        let cur = self.snapshot();
        if let Some(c) = &cur {
            let replaced = seen.is_some_and(|g| g != c.generation);
            if replaced && !c.near_expiry(Instant::now()) {
                return Ok((c.token.clone(), c.generation));
            }
        }
        let next_gen = cur.as_ref().map_or(1, |c| c.generation + 1);
        match &self.cfg.auth {
            Auth::AppRole { .. } => {
                if let (false, Some(c)) = (force, &cur) {
                    if c.renewable {
                        match self.renew(c, next_gen).await {
                            // Past the max TTL Vault grants ever shorter leases: log
                            // in again rather than renew into a token about to die.
                            Ok(st) if c.issued_ttl.is_none_or(|i| st.ttl >= Some(i / 2)) => {
                                let out = (st.token.clone(), st.generation);
                                self.store(st);
                                return Ok(out);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::info!(error = %e, "vault token renewal failed; logging in again")
                            }
                        }
                    }
                }
                let st = self.login(next_gen).await?;
                let out = (st.token.clone(), st.generation);
                self.store(st);
                Ok(out)
            }
            Auth::Token(_) => {
                let Some(c) = cur else {
                    return Err(VaultError::Protocol("token state missing".into()));
                };
                if c.renewable && c.ttl.is_some() {
                    match self.renew(&c, next_gen).await {
                        Ok(st) => {
                            let out = (st.token.clone(), st.generation);
                            self.store(st);
                            return Ok(out);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "vault token renewal failed; the given token will expire")
                        }
                    }
                }
                Ok((c.token, c.generation))
            }
        }
    }

    async fn login(&self, generation: u64) -> Result<TokenState, VaultError> {
        let Auth::AppRole {
            role_id,
            secret_id,
            mount,
        } = &self.cfg.auth
        else {
            return Err(VaultError::Protocol(
                "login without AppRole credentials".into(),
            ));
        };
        let body = json!({ "role_id": role_id, "secret_id": secret_id.expose() });
        let path = format!("auth/{}/login", mount.trim_matches('/'));
        let v = self
            .send_retrying(&Method::POST, &path, Some(&body), None)
            .await?;
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        let st = token_from_auth(&v, generation, None)?;
        tracing::info!(ttl_s = ?st.ttl.map(|d| d.as_secs()), renewable = st.renewable, "vault AppRole login");
        Ok(st)
    }

    async fn renew(&self, c: &TokenState, generation: u64) -> Result<TokenState, VaultError> {
        let body = match c.issued_ttl.or(c.ttl) {
            Some(t) => json!({ "increment": format!("{}s", t.as_secs().max(1)) }),
            None => json!({}),
        };
        let v = self
            .send_retrying(
                &Method::POST,
                "auth/token/renew-self",
                Some(&body),
                Some(c.token.expose()),
            )
            .await?;
        self.counters.renewals.fetch_add(1, Ordering::Relaxed);
        let mut st = token_from_auth(&v, generation, Some(&c.token))?;
        st.issued_ttl = c.issued_ttl.or(c.ttl);
        Ok(st)
    }

    async fn lookup_self(&self, c: &TokenState) -> Result<TokenState, VaultError> {
        let v = self
            .send_retrying(
                &Method::GET,
                "auth/token/lookup-self",
                None,
                Some(c.token.expose()),
            )
            .await?;
        let data = v
            .get("data")
            .ok_or_else(|| VaultError::Protocol("lookup-self without data".into()))?;
        let ttl = data.get("ttl").and_then(Value::as_u64).unwrap_or(0);
        let creation_ttl = data
            .get("creation_ttl")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(TokenState {
            token: c.token.clone(),
            ttl: (ttl > 0).then(|| Duration::from_secs(ttl)),
            issued_ttl: (creation_ttl > 0).then(|| Duration::from_secs(creation_ttl)),
            renewable: data
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            obtained: Instant::now(),
            looked_up: true,
            generation: c.generation,
        })
    }

    /// One round of background token upkeep; returns when to come back.
    pub(crate) async fn maintain(&self) -> Duration {
        const RETRY: Duration = Duration::from_secs(1);
        let Some(c) = self.snapshot() else {
            return match self.refresh(None, true).await {
                Ok(_) => self.next_check(),
                Err(e) => {
                    tracing::warn!(error = %e, "vault login failed; will retry");
                    RETRY
                }
            };
        };
        if !c.looked_up && matches!(self.cfg.auth, Auth::Token(_)) {
            match self.lookup_self(&c).await {
                Ok(st) => {
                    if st.ttl.is_some() && !st.renewable {
                        tracing::warn!(ttl_s = ?st.ttl.map(|d| d.as_secs()), "vault token is not renewable: signing stops when it expires");
                    }
                    let _guard = self.refresh_lock.lock().await;
                    if self
                        .snapshot()
                        .is_some_and(|s| s.generation == c.generation)
                    {
                        self.store(st);
                    }
                }
                Err(VaultError::PermissionDenied(e)) => {
                    tracing::error!(error = %e, "vault token rejected by lookup-self");
                    return Duration::from_secs(30);
                }
                Err(_) => return RETRY,
            }
            return self.next_check();
        }
        let due = self.next_check();
        if !due.is_zero() {
            return due;
        }
        match self.refresh(Some(c.generation), false).await {
            Ok(_) => self.next_check().max(Duration::from_millis(50)),
            Err(e) => {
                tracing::warn!(error = %e, "vault token refresh failed; will retry");
                RETRY
            }
        }
    }

    /// Time until the token should be refreshed (two thirds into its life), zero
    /// when overdue, long when there is nothing we could do.
    fn next_check(&self) -> Duration {
        const IDLE: Duration = Duration::from_secs(300);
        let Some(c) = self.snapshot() else {
            return Duration::ZERO;
        };
        let Some(ttl) = c.ttl else { return IDLE };
        let can_refresh = c.renewable || matches!(self.cfg.auth, Auth::AppRole { .. });
        if !can_refresh {
            return IDLE;
        }
        (c.obtained + ttl * 2 / 3).saturating_duration_since(Instant::now())
    }

    pub(crate) async fn send_retrying(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Value, VaultError> {
        let start = Instant::now();
        let mut backoff = self.cfg.initial_backoff;
        let mut attempt = 0u32;
        loop {
            match self.send_once(method, path, body, token).await {
                Err(e)
                    if e.is_retryable()
                        && attempt < self.cfg.max_retries
                        && start.elapsed() + backoff < self.cfg.request_timeout =>
                {
                    tracing::debug!(error = %e, attempt, "vault call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(4);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Value, VaultError> {
        self.counters.http_calls.fetch_add(1, Ordering::Relaxed);
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.header("X-Vault-Token", t);
        }
        if let Some(ns) = &self.cfg.namespace {
            rb = rb.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| transport_error(&e))?;
        classify(status, &bytes)
    }

    pub(crate) async fn health(&self) -> Health {
        let url = format!(
            "{}sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200&drsecondarycode=200",
            self.base
        );
        self.counters.http_calls.fetch_add(1, Ordering::Relaxed);
        let mut rb = self.http.get(url);
        if let Some(ns) = &self.cfg.namespace {
            rb = rb.header("X-Vault-Namespace", ns);
        }
        let authenticated = self.has_live_token();
        let res = match rb.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Ok(b) => classify(status, &b),
                    Err(e) => Err(transport_error(&e)),
                }
            }
            Err(e) => Err(transport_error(&e)),
        };
        match res {
            Ok(v) => Health {
                reachable: true,
                initialized: v
                    .get("initialized")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                sealed: v.get("sealed").and_then(Value::as_bool).unwrap_or(true),
                standby: v.get("standby").and_then(Value::as_bool).unwrap_or(false),
                version: v.get("version").and_then(Value::as_str).map(str::to_owned),
                authenticated,
                error: None,
            },
            Err(e) => Health {
                reachable: !matches!(e, VaultError::Unreachable(_)),
                initialized: false,
                sealed: false,
                standby: false,
                version: None,
                authenticated,
                error: Some(e.to_string()),
            },
        }
    }

    /// Signs SHA-256 digests in one transit call. The outer error concerns the
    /// whole call; each item may still fail on its own (Vault reports per-item
    /// errors inside a 200 answer).
    pub(crate) async fn sign_digests(
        &self,
        digests: &[[u8; 32]],
    ) -> Result<Vec<Result<Vec<u8>, SignError>>, VaultError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let items: Vec<Value> = digests
            .iter()
            .map(|d| json!({ "input": b64.encode(d) }))
            .collect();
        let mut body = json!({
            "prehashed": true,
            "marshaling_algorithm": "jws",
            "batch_input": items,
        });
        if let Some(v) = self.cfg.key_version {
            body["key_version"] = json!(v);
        }
        let path = format!(
            "{}/sign/{}/sha2-256",
            self.cfg.mount(),
            self.cfg.key_name.trim_matches('/')
        );
        self.counters.sign_calls.fetch_add(1, Ordering::Relaxed);
        self.counters
            .largest_batch
            .fetch_max(digests.len() as u64, Ordering::Relaxed);
        let v = self.call(Method::POST, &path, Some(&body)).await?;
        let results = v
            .pointer("/data/batch_results")
            .and_then(Value::as_array)
            .ok_or_else(|| VaultError::Protocol("sign answer without data.batch_results".into()))?;
        if results.len() != digests.len() {
            return Err(VaultError::Protocol(format!(
                "asked for {} signatures, got {}",
                digests.len(),
                results.len()
            )));
        }
        self.counters
            .signatures
            .fetch_add(digests.len() as u64, Ordering::Relaxed);
        Ok(results.iter().map(item_result).collect())
    }
}

fn item_result(r: &Value) -> Result<Vec<u8>, SignError> {
    if let Some(err) = r
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        return Err(SignError::Refused(format!("transit: {err}")));
    }
    let sig = r
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(|| SignError::Invalid("batch item without signature".into()))?;
    parse_jws_signature(sig)
}

/// `vault:v<N>:<base64url r||s>` → 64 raw bytes.
pub(crate) fn parse_jws_signature(sig: &str) -> Result<Vec<u8>, SignError> {
    let rest = sig
        .strip_prefix("vault:v")
        .ok_or_else(|| SignError::Invalid("signature without vault:v prefix".into()))?;
    let (version, encoded) = rest
        .split_once(':')
        .ok_or_else(|| SignError::Invalid("signature without key version".into()))?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignError::Invalid(
            "signature with a malformed key version".into(),
        ));
    }
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    let raw = URL_SAFE_NO_PAD
        .decode(encoded)
        .or_else(|_| URL_SAFE.decode(encoded))
        .map_err(|e| SignError::Invalid(format!("signature is not base64url: {e}")))?;
    if raw.len() != 64 {
        return Err(SignError::Invalid(format!(
            "expected a 64-byte r||s signature, got {} bytes (is marshaling_algorithm=jws honoured?)",
            raw.len()
        )));
    }
    Ok(raw)
}

fn token_from_auth(
    v: &Value,
    generation: u64,
    same_token: Option<&Secret>,
) -> Result<TokenState, VaultError> {
    let auth = v
        .get("auth")
        .filter(|a| !a.is_null())
        .ok_or_else(|| VaultError::Protocol("auth answer without auth block".into()))?;
    let token = match auth.get("client_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Secret::new(t),
        _ => same_token
            .cloned()
            .ok_or_else(|| VaultError::Protocol("auth answer without client_token".into()))?,
    };
    let lease = auth
        .get("lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let ttl = (lease > 0).then(|| Duration::from_secs(lease));
    Ok(TokenState {
        token,
        ttl,
        issued_ttl: ttl,
        renewable: auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        obtained: Instant::now(),
        looked_up: true,
        generation,
    })
}

fn classify(status: u16, bytes: &[u8]) -> Result<Value, VaultError> {
    let parsed: Option<Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(bytes).ok()
    };
    if (200..300).contains(&status) {
        return match (bytes.is_empty(), parsed) {
            (true, _) => Ok(Value::Null),
            (false, Some(v)) => Ok(v),
            (false, None) => Err(VaultError::Protocol(format!(
                "HTTP {status} with a body that is not JSON"
            ))),
        };
    }
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .map(|errs| {
            errs.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            // Bodies are echoed only when short and textual: a proxy's HTML page
            // is noise in an error message.
            let text = String::from_utf8_lossy(bytes);
            if text.len() <= 200 {
                text.trim().to_owned()
            } else {
                format!("{}…", text.chars().take(200).collect::<String>())
            }
        });
    Err(match status {
        403 => VaultError::PermissionDenied(message),
        429 | 500..=599 => VaultError::Unavailable { status, message },
        _ => VaultError::Rejected { status, message },
    })
}

fn transport_error(e: &reqwest::Error) -> VaultError {
    // reqwest's Display is terse ("error sending request"); the cause chain says
    // whether it was a refused connection, a timeout or a TLS failure.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_timeout() {
        msg.push_str(" (timeout)");
    }
    VaultError::Unreachable(msg)
}

fn http_client(cfg: &VaultConfig) -> Result<reqwest::Client, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let invalid = |reason: String| ConfigError::Invalid {
        name: "VAULT_CACERT",
        reason,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?;
    let tls = match &cfg.ca_bundle_pem {
        Some(pem) => {
            use rustls_pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| invalid(format!("bad PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("bad CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(invalid("no certificate in the CA bundle".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| invalid(format!("platform trust store: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout)
        .pool_max_idle_per_host(cfg.max_in_flight.max(4) * 2)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ConfigError::Invalid {
            name: "VAULT_ADDR",
            reason: format!("cannot build the HTTP client: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jws_signatures_and_rejects_wrong_shapes() {
        let raw = [7u8; 64];
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            parse_jws_signature(&format!("vault:v12:{enc}")).expect("valid"),
            raw.to_vec()
        );
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 70]);
        for bad in [
            format!("vault:v1:{short}"),
            format!("v1:{enc}"),
            format!("vault:vx:{enc}"),
            "vault:v1:***".to_string(),
            "vault:v1".to_string(),
        ] {
            assert!(
                matches!(parse_jws_signature(&bad), Err(SignError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn classifies_statuses() {
        assert!(matches!(
            classify(503, br#"{"errors":["Vault is sealed"]}"#),
            Err(VaultError::Unavailable { status: 503, ref message }) if message == "Vault is sealed"
        ));
        assert!(matches!(
            classify(403, br#"{"errors":["permission denied"]}"#),
            Err(VaultError::PermissionDenied(_))
        ));
        assert!(matches!(
            classify(400, br#"{"errors":["signing key not found"]}"#),
            Err(VaultError::Rejected { status: 400, .. })
        ));
        assert!(matches!(classify(204, b""), Ok(Value::Null)));
        assert!(matches!(
            classify(200, b"<html>"),
            Err(VaultError::Protocol(_))
        ));
    }

    #[test]
    fn per_item_errors_are_refusals() {
        let v = json!({"key_version": 0, "error": "unable to decode input as base64"});
        assert!(matches!(item_result(&v), Err(SignError::Refused(_))));
    }
}
