//! The HTTP edge to the gateway, behind a trait so the client logic runs against a
//! scripted edge in unit tests and against real sockets (mTLS) otherwise.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use ddcc_store::BoxFuture;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRequest {
    pub method: Method,
    /// Path and query, e.g. `/trustList/references`.
    pub path: String,
    pub content_type: Option<&'static str>,
    /// Further headers (e.g. `If-Modified-Since`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    /// Nothing reached the gateway (connection refused, TLS handshake failed): any
    /// request, even a POST, may simply be sent again.
    #[error("gateway unreachable: {0}")]
    Connect(String),
    /// The request may have reached the gateway but no answer came back: a POST
    /// must not be repeated blindly.
    #[error("no answer from the gateway: {0}")]
    Lost(String),
}

pub trait HttpEdge: Send + Sync {
    fn send(&self, req: EdgeRequest) -> BoxFuture<'_, Result<EdgeResponse, EdgeError>>;

    /// From now on, record the offset of the gateway's `Date` headers against our
    /// clock in `metrics` (the metrics exist only once the app state is built, after
    /// the client). Edges without real replies ignore it.
    fn attach_clock(&self, _metrics: Arc<crate::metrics::Metrics>) {}
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("HTTP client: {0}")]
    Client(String),
}

fn read(path: &Path) -> Result<Vec<u8>, EdgeConfigError> {
    std::fs::read(path).map_err(|e| EdgeConfigError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// reqwest with rustls. With a client certificate and key the connection is mTLS
/// (the TNP TLS identity); without, plain HTTPS/HTTP for a TLS-terminating proxy.
/// With `ca` the server must chain to it and nothing else; without, the built-in
/// public roots apply (WHO's server certificate is from a public CA).
pub struct ReqwestEdge {
    base: String,
    http: reqwest::Client,
    clock: OnceLock<Arc<crate::metrics::Metrics>>,
}

impl ReqwestEdge {
    pub fn new(
        base_url: &str,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
        ca: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, EdgeConfigError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        if let Some(ca) = ca {
            let pem = read(ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| EdgeConfigError::Client(format!("{}: {e}", ca.display())))?;
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        match (client_cert, client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    EdgeConfigError::Client(format!("TLS client certificate/key: {e}"))
                })?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => {
                return Err(EdgeConfigError::Client(
                    "DDCC_GATEWAY_TLS_CERT and DDCC_GATEWAY_TLS_KEY go together".into(),
                ))
            }
        }
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http: b
                .build()
                .map_err(|e| EdgeConfigError::Client(e.to_string()))?,
            clock: OnceLock::new(),
        })
    }
}

impl HttpEdge for ReqwestEdge {
    fn send(&self, req: EdgeRequest) -> BoxFuture<'_, Result<EdgeResponse, EdgeError>> {
        Box::pin(async move {
            let method = match req.method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Delete => reqwest::Method::DELETE,
            };
            let mut r = self
                .http
                .request(method, format!("{}{}", self.base, req.path));
            if let Some(ct) = req.content_type {
                r = r.header("Content-Type", ct);
                if ct.starts_with("application/cms") {
                    r = r.header("Content-Transfer-Encoding", "base64");
                }
            }
            for (k, v) in &req.headers {
                r = r.header(*k, v.as_str());
            }
            if !req.body.is_empty() || req.method != Method::Get {
                r = r.body(req.body);
            }
            let sent = SystemTime::now();
            let resp = r.send().await.map_err(|e| {
                let connect = e.is_connect();
                let text = e.without_url().to_string();
                if connect {
                    EdgeError::Connect(text)
                } else {
                    EdgeError::Lost(text)
                }
            })?;
            if let Some(m) = self.clock.get() {
                let date = resp
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|v| v.to_str().ok());
                m.clock.observe("gateway", date, sent, SystemTime::now());
            }
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map_err(|e| EdgeError::Lost(e.without_url().to_string()))?;
            Ok(EdgeResponse {
                status,
                body: body.to_vec(),
            })
        })
    }

    fn attach_clock(&self, metrics: Arc<crate::metrics::Metrics>) {
        // Set once: a second attach (tests building several apps) keeps the first.
        let _ = self.clock.set(metrics);
    }
}
