//! Per-request recorder of downstream calls (orchestrations) and transaction
//! properties. Handlers take a [`Recorder`] as an extractor and record into it;
//! the envelope (see `envelope.rs`) reads it when it answers OpenHIM. In
//! standalone mode the same calls are accepted and simply not sent anywhere, so
//! handlers never branch on the deployment mode.

use std::collections::BTreeMap;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use actix_web::{dev::Payload, FromRequest, HttpMessage, HttpRequest};
use serde::Serialize;

/// ISO-8601 UTC with milliseconds, the form the core stores (contract §7.1).
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `status` values of the mediator envelope (contract §7.1). Only these are sent,
/// since the core stores any string unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MediatorStatus {
    Successful,
    Completed,
    #[serde(rename = "Completed with error(s)")]
    CompletedWithErrors,
    Failed,
}

impl MediatorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Successful => "Successful",
            Self::Completed => "Completed",
            Self::CompletedWithErrors => "Completed with error(s)",
            Self::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrchestrationRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A string, as the core's schema has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub querystring: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub method: String,
    /// Always present: without it the core drops the whole response metadata (§7.1).
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrchestrationResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorInfo {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// One downstream call. Build it with [`Orchestration::begin`] right before the
/// call so the request timestamp is the real start time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orchestration {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub request: OrchestrationRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<OrchestrationResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// Bodies kept in orchestrations are cut at this size: the core caps all bodies
/// of a transaction together at 15 MiB (§7.2.5) and large bodies belong in the store.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

fn clip(body: String) -> String {
    if body.len() <= MAX_RECORDED_BODY {
        return body;
    }
    let mut end = MAX_RECORDED_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[truncated by mediator]", &body[..end])
}

impl Orchestration {
    /// Starts recording a call to `url` (absolute `scheme://host:port/path?query`
    /// or just a path, or a logical target such as `vault:transit/sign/key`).
    pub fn begin(name: impl Into<String>, method: &str, url: &str) -> PendingOrchestration {
        let (host, port, path, query) = split_url(url);
        PendingOrchestration {
            inner: Orchestration {
                name: name.into(),
                group: None,
                request: OrchestrationRequest {
                    host,
                    port,
                    path,
                    headers: BTreeMap::new(),
                    querystring: query,
                    body: None,
                    method: method.to_ascii_uppercase(),
                    timestamp: timestamp(SystemTime::now()),
                },
                response: None,
                error: None,
            },
        }
    }

    /// Whether the downstream call counts as failed for the transaction status:
    /// no response, a transport error, or a 5xx.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.response.as_ref().is_none_or(|r| r.status >= 500)
    }
}

fn split_url(url: &str) -> (Option<String>, Option<String>, String, Option<String>) {
    let (rest, query) = match url.split_once('?') {
        Some((a, q)) => (a, Some(q.to_string())),
        None => (url, None),
    };
    let Some((_, after_scheme)) = rest.split_once("://") else {
        return (None, None, rest.to_string(), query);
    };
    let (authority, path) = match after_scheme.find('/') {
        Some(i) => (&after_scheme[..i], after_scheme[i..].to_string()),
        None => (after_scheme, "/".to_string()),
    };
    // Credentials in a URL must never be recorded.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() {
                (h.to_string(), Some(p.to_string()))
            } else {
                (authority.to_string(), None)
            }
        }
        _ => (authority.to_string(), None),
    };
    (Some(host), port, path, query)
}

/// An orchestration whose call is in flight.
#[derive(Debug, Clone)]
pub struct PendingOrchestration {
    inner: Orchestration,
}

impl PendingOrchestration {
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.inner.group = Some(group.into());
        self
    }
    /// Records a request header. Never pass credentials (Authorization, tokens).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.inner
            .request
            .headers
            .insert(name.to_ascii_lowercase(), value.to_string());
        self
    }
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.inner.request.body = Some(clip(body.into()));
        self
    }
    /// The call answered (any status).
    pub fn complete(
        mut self,
        status: u16,
        headers: BTreeMap<String, String>,
        body: Option<String>,
    ) -> Orchestration {
        self.inner.response = Some(OrchestrationResponse {
            status,
            headers,
            body: body.map(clip),
            timestamp: timestamp(SystemTime::now()),
        });
        self.inner
    }
    /// The call did not answer (connection error, timeout).
    pub fn fail(mut self, message: impl Into<String>) -> Orchestration {
        self.inner.error = Some(ErrorInfo {
            message: message.into(),
            stack: None,
        });
        self.inner
    }
}

#[derive(Debug, Default)]
struct Inner {
    orchestrations: Vec<Orchestration>,
    properties: BTreeMap<String, String>,
    status: Option<MediatorStatus>,
    error: Option<ErrorInfo>,
}

/// Cheap to clone; all clones share one request's record.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Inner>>);

/// What the envelope reads once the handler is done.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub orchestrations: Vec<Orchestration>,
    pub properties: BTreeMap<String, String>,
    pub status: Option<MediatorStatus>,
    pub error: Option<ErrorInfo>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another holder panicked mid-push; the data is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Adds one downstream call.
    pub fn orchestration(&self, o: Orchestration) {
        self.lock().orchestrations.push(o);
    }
    /// Sets a transaction property (shown in the OpenHIM console).
    pub fn property(&self, key: impl Into<String>, value: impl Into<String>) {
        self.lock().properties.insert(key.into(), value.into());
    }
    /// Overrides the computed transaction status.
    pub fn set_status(&self, status: MediatorStatus) {
        self.lock().status = Some(status);
    }
    /// Marks the transaction as failed in a way worth an automatic retry (§7.1 `error`).
    pub fn set_error(&self, message: impl Into<String>) {
        self.lock().error = Some(ErrorInfo {
            message: message.into(),
            stack: None,
        });
    }
    pub fn snapshot(&self) -> Recorded {
        let g = self.lock();
        Recorded {
            orchestrations: g.orchestrations.clone(),
            properties: g.properties.clone(),
            status: g.status,
            error: g.error.clone(),
        }
    }
    /// The request's recorder; the pipeline inserts one into every request.
    pub fn of(req: &HttpRequest) -> Recorder {
        if let Some(r) = req.extensions().get::<Recorder>() {
            return r.clone();
        }
        let r = Recorder::default();
        req.extensions_mut().insert(r.clone());
        r
    }
}

impl FromRequest for Recorder {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Recorder::of(req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_splits_urls_without_credentials() {
        let o = Orchestration::begin(
            "FHIR",
            "post",
            "http://u:p@fhir:8080/fhir/Bundle?_format=json",
        )
        .complete(201, BTreeMap::new(), Some("{}".into()));
        assert_eq!(o.request.host.as_deref(), Some("fhir"));
        assert_eq!(o.request.port.as_deref(), Some("8080"));
        assert_eq!(o.request.path, "/fhir/Bundle");
        assert_eq!(o.request.querystring.as_deref(), Some("_format=json"));
        assert_eq!(o.request.method, "POST");
        assert!(!o.failed());
        let v = serde_json::to_value(&o).expect("serialises");
        assert!(v["request"]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert!(v["response"]["timestamp"].is_string());
        assert!(!v.to_string().contains("u:p"));
    }

    #[test]
    fn logical_targets_and_failures() {
        let o = Orchestration::begin("Vault sign", "POST", "transit/sign/ddcc").fail("refused");
        assert_eq!(o.request.host, None);
        assert_eq!(o.request.path, "transit/sign/ddcc");
        assert!(o.failed());
        let o = Orchestration::begin("x", "GET", "http://h/a").complete(503, BTreeMap::new(), None);
        assert!(o.failed());
        assert_eq!(o.request.port, None);
    }

    #[test]
    fn long_bodies_are_clipped_on_char_boundaries() {
        let body = "é".repeat(MAX_RECORDED_BODY);
        let o = Orchestration::begin("x", "POST", "/p").body(body);
        let b = o.inner.request.body.expect("body");
        assert!(b.ends_with("[truncated by mediator]"));
        assert!(b.len() < MAX_RECORDED_BODY + 40);
    }

    #[test]
    fn status_names_match_the_contract() {
        assert_eq!(
            serde_json::to_value(MediatorStatus::CompletedWithErrors).expect("json"),
            "Completed with error(s)"
        );
        assert_eq!(MediatorStatus::Failed.as_str(), "Failed");
    }
}
