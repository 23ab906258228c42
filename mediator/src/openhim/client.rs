//! HTTP client for the OpenHIM core API: registration and heartbeat.
//! Outcomes are decided on status codes only (contract §2.2: 8.x cores answer
//! `User Authenticated Successfully` in bodies that mean nothing); the only
//! bodies read are the token salt (§2.3) and heartbeat config (§5).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use crate::config::{OpenHimAuth, OpenHimConfig};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("{call}: {message}")]
    Transport { call: &'static str, message: String },
    #[error("{call}: HTTP {status}")]
    Status { call: &'static str, status: u16 },
    #[error("token authentication: {0}")]
    Token(String),
}

/// Result of one heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum Heartbeat {
    /// 200 with an empty body, `OK`, or anything that is not a JSON object.
    NoConfig,
    /// 200 with the stored config.
    Config(Map<String, Value>),
    /// 404: the core no longer knows this urn; register again.
    NotRegistered,
}

pub struct OpenHimClient {
    http: reqwest::Client,
    base: String,
    username: String,
    password: String,
    auth: OpenHimAuth,
    /// The scheme in use: fixed for Basic/Token, flipped on 401 for Auto.
    use_token: AtomicBool,
    /// `hex(sha512(salt + password))`, fetched once per salt (§2.3 step 2).
    token_hash: Mutex<Option<String>>,
    /// Where the core's `Date` headers are compared with our clock.
    clock: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for OpenHimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenHimClient")
            .field("base", &self.base)
            .field("username", &self.username)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

pub fn sha512_hex(parts: &[&str]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl OpenHimClient {
    pub fn new(cfg: &OpenHimConfig, url: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            // Opt-in only: the core ships a self-signed API certificate (§1).
            .danger_accept_invalid_certs(cfg.trust_self_signed)
            .timeout(cfg.request_timeout())
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_string(),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            auth: cfg.auth,
            use_token: AtomicBool::new(cfg.auth == OpenHimAuth::Token),
            token_hash: Mutex::new(None),
            clock: None,
        })
    }

    /// Records the offset of the core's `Date` headers (registration, heartbeat)
    /// in these metrics' `ddcc_clock_offset_seconds{source="openhim"}`.
    pub fn with_clock(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.clock = Some(metrics);
        self
    }

    fn observe_date(&self, resp: &reqwest::Response, sent: SystemTime) {
        if let Some(m) = &self.clock {
            m.clock.observe_headers("openhim", resp.headers(), sent);
        }
    }

    /// Whether requests currently use the token scheme.
    pub fn using_token(&self) -> bool {
        self.use_token.load(Ordering::Relaxed)
    }

    fn cached_hash(&self) -> Option<String> {
        self.token_hash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_hash(&self, v: Option<String>) {
        *self.token_hash.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    async fn password_hash(&self) -> Result<String, ClientError> {
        if let Some(h) = self.cached_hash() {
            return Ok(h);
        }
        let url = format!("{}/authenticate/{}", self.base, self.username);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                call: "authenticate",
                message: e.without_url().to_string(),
            })?;
        if resp.status() != StatusCode::OK {
            return Err(ClientError::Status {
                call: "authenticate",
                status: resp.status().as_u16(),
            });
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Token(format!("salt reply is not JSON: {e}")))?;
        let salt = body
            .get("salt")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Token("salt reply has no salt".into()))?;
        let hash = sha512_hex(&[salt, &self.password]);
        self.set_hash(Some(hash.clone()));
        Ok(hash)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        call: &'static str,
    ) -> Result<RequestBuilder, ClientError> {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        if !self.using_token() {
            return Ok(rb.basic_auth(&self.username, Some(&self.password)));
        }
        let hash = self.password_hash().await.map_err(|e| {
            if self.auth == OpenHimAuth::Auto {
                // No token passport (or no token endpoint): back to basic.
                self.use_token.store(false, Ordering::Relaxed);
            }
            match e {
                ClientError::Status { status, .. } => ClientError::Status { call, status },
                other => other,
            }
        })?;
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let salt = random_hex(16);
        let token = sha512_hex(&[&hash, &salt, &ts]);
        Ok(rb
            .header("auth-username", &self.username)
            .header("auth-ts", ts)
            .header("auth-salt", salt)
            .header("auth-token", token))
    }

    fn on_status(&self, status: StatusCode) {
        if status != StatusCode::UNAUTHORIZED {
            return;
        }
        // A 401 with token auth may mean the password (and so its salt) changed.
        if self.using_token() {
            self.set_hash(None);
        }
        if self.auth == OpenHimAuth::Auto {
            let token = !self.using_token();
            self.use_token.store(token, Ordering::Relaxed);
            tracing::warn!(
                scheme = if token { "token" } else { "basic" },
                "OpenHIM API answered 401; switching authentication scheme for the next attempt"
            );
        }
    }

    /// `POST /mediators` (§3). 201 (or any 2xx) is success.
    pub async fn register(&self, doc: &Value) -> Result<(), ClientError> {
        let sent = SystemTime::now();
        let resp = self
            .request(Method::POST, "/mediators", "register")
            .await?
            .json(doc)
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                call: "register",
                message: e.without_url().to_string(),
            })?;
        self.observe_date(&resp, sent);
        let status = resp.status();
        self.on_status(status);
        if status.is_success() {
            Ok(())
        } else {
            Err(ClientError::Status {
                call: "register",
                status: status.as_u16(),
            })
        }
    }

    /// `POST /mediators/<urn>/heartbeat` (§5).
    pub async fn heartbeat(
        &self,
        urn: &str,
        uptime_secs: f64,
        want_config: bool,
    ) -> Result<Heartbeat, ClientError> {
        let mut body = serde_json::json!({ "uptime": uptime_secs });
        if want_config {
            body["config"] = Value::Bool(true);
        }
        let sent = SystemTime::now();
        let resp = self
            .request(
                Method::POST,
                &format!("/mediators/{urn}/heartbeat"),
                "heartbeat",
            )
            .await?
            .json(&body)
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                call: "heartbeat",
                message: e.without_url().to_string(),
            })?;
        self.observe_date(&resp, sent);
        let status = resp.status();
        self.on_status(status);
        if status == StatusCode::NOT_FOUND {
            return Ok(Heartbeat::NotRegistered);
        }
        if status != StatusCode::OK {
            return Err(ClientError::Status {
                call: "heartbeat",
                status: status.as_u16(),
            });
        }
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            call: "heartbeat",
            message: e.without_url().to_string(),
        })?;
        Ok(parse_heartbeat_body(&bytes))
    }
}

/// Empty or `OK` means no config (§5); a JSON object is the config. Anything
/// else is not config either, and is ignored rather than trusted.
pub fn parse_heartbeat_body(bytes: &[u8]) -> Heartbeat {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim();
    if t.is_empty() || t == "OK" {
        return Heartbeat::NoConfig;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(map)) => Heartbeat::Config(map),
        _ => {
            tracing::debug!("heartbeat reply is neither empty, OK nor a JSON object; ignored");
            Heartbeat::NoConfig
        }
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_bodies() {
        assert_eq!(parse_heartbeat_body(b""), Heartbeat::NoConfig);
        assert_eq!(parse_heartbeat_body(b"OK"), Heartbeat::NoConfig);
        assert_eq!(
            parse_heartbeat_body(b"User Authenticated Successfully"),
            Heartbeat::NoConfig
        );
        assert_eq!(parse_heartbeat_body(b"[1]"), Heartbeat::NoConfig);
        match parse_heartbeat_body(br#"{"a":1}"#) {
            Heartbeat::Config(m) => assert_eq!(m["a"], 1),
            other => panic!("expected config, got {other:?}"),
        }
    }

    #[test]
    fn token_is_sha512_of_hash_salt_ts() {
        // §2.3: passwordHash = sha512(salt + password); token = sha512(hash + salt + ts).
        let hash = sha512_hex(&["salt", "pw"]);
        assert_eq!(hash, sha512_hex(&["saltpw"]));
        assert_eq!(hash.len(), 128);
        assert_ne!(sha512_hex(&[&hash, "s", "t"]), hash);
    }
}
