//! The one error type of the HTTP layer and its mapping to FHIR `OperationOutcome`
//! plus HTTP status. Every handler returns `Result<_, ApiError>`; extractor and
//! routing failures are turned into the same shape by [`json_config`],
//! [`payload_config`] and the request pipeline, so a client never sees a bare
//! actix error page.

use actix_web::http::{header, StatusCode};
use actix_web::{error::JsonPayloadError, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};

/// FHIR media type used for every OperationOutcome we send.
pub const FHIR_JSON: &str = "application/fhir+json";

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

/// One `OperationOutcome.issue`. `code` is from the FHIR IssueType value set
/// (`invalid`, `structure`, `required`, `value`, `not-found`, `not-supported`,
/// `too-long`, `security`, `exception`, `transient`, `processing`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
    /// FHIRPath expressions locating the problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

impl Issue {
    pub fn error(code: &str, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code: code.into(),
            diagnostics: Some(diagnostics.into()),
            expression: Vec::new(),
        }
    }
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }
}

/// Builds the OperationOutcome resource for a list of issues.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, missing parameter, …).
    #[error("{0}")]
    BadRequest(String),
    /// 401: authentication required or failed.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 (or the given status) with the caller's issues, e.g. FHIR validation results.
    #[error("{} issue(s)", issues.len())]
    Invalid { status: u16, issues: Vec<Issue> },
    /// 502: a downstream service answered badly.
    #[error("{service}: {message}")]
    Upstream { service: String, message: String },
    /// 503: a dependency is unavailable; retrying later may work.
    #[error("{service} unavailable: {message}")]
    Unavailable { service: String, message: String },
    /// 504.
    #[error("{service} timed out")]
    Timeout { service: String },
    /// 500: a bug or an unexpected state. The message is logged; the client gets a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    fn issues(&self) -> Vec<Issue> {
        let (code, text) = match self {
            Self::BadRequest(m) => ("invalid", m.clone()),
            Self::Unauthorized(m) => ("login", m.clone()),
            Self::Forbidden(m) => ("forbidden", m.clone()),
            Self::NotFound(m) => ("not-found", m.clone()),
            Self::MethodNotAllowed { .. } => ("not-supported", self.to_string()),
            Self::Conflict(m) => ("conflict", m.clone()),
            Self::PayloadTooLarge { .. } => ("too-long", self.to_string()),
            Self::UnsupportedMediaType(m) => ("not-supported", m.clone()),
            Self::Invalid { issues, .. } => return issues.clone(),
            Self::Upstream { .. } => ("exception", self.to_string()),
            Self::Unavailable { .. } | Self::Timeout { .. } => ("transient", self.to_string()),
            // Internal details stay in the log, not in the response.
            Self::Internal(_) => ("exception", "internal server error".to_string()),
        };
        vec![Issue::error(code, text)]
    }

    /// The OperationOutcome body for this error.
    pub fn outcome(&self) -> Value {
        operation_outcome(&self.issues())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // Only error statuses: a caller passing 200 must not turn an error into success.
            Self::Invalid { status, .. } => StatusCode::from_u16(*status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, status = status.as_u16(), "request failed");
        } else {
            tracing::info!(error = %self, status = status.as_u16(), "request rejected");
        }
        let mut builder = HttpResponse::build(status);
        builder.insert_header((header::CONTENT_TYPE, FHIR_JSON));
        if let Self::Unauthorized(_) = self {
            // RFC 6750: tells the client which scheme to use.
            builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        builder.body(self.outcome().to_string())
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            // Our fault (the IdP is ours to reach), not the caller's: retry later.
            crate::auth::AuthError::IdpUnavailable(m) => ApiError::Unavailable {
                service: "identity provider".into(),
                message: m,
            },
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// Maps actix's JSON extractor failures onto [`ApiError`].
pub fn from_json_error(err: &JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "expected Content-Type application/fhir+json or application/json".into(),
        ),
        JsonPayloadError::Deserialize(e) => {
            ApiError::BadRequest(format!("request body is not valid JSON: {e}"))
        }
        JsonPayloadError::Serialize(e) => ApiError::Internal(e.to_string()),
        JsonPayloadError::Payload(e) => payload_error(e, limit),
        _ => ApiError::BadRequest(err.to_string()),
    }
}

fn payload_error(err: &actix_web::error::PayloadError, limit: usize) -> ApiError {
    use actix_web::error::PayloadError;
    match err {
        PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
        other => ApiError::BadRequest(format!("cannot read request body: {other}")),
    }
}

/// JSON extractor configuration for every route: accepts `application/json`,
/// `application/fhir+json` and any other `+json` type; errors become OperationOutcomes.
pub fn json_config(limit: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .content_type(|mime| {
            mime.subtype() == "json" || mime.suffix().map(|s| s.as_str()) == Some("json")
        })
        .error_handler(move |err, _req| from_json_error(&err, limit).into())
}

/// Limit for `Bytes`/`String` extractors, same mapping.
pub fn payload_config(limit: usize) -> actix_web::web::PayloadConfig {
    actix_web::web::PayloadConfig::new(limit)
}

/// Trust network gateway faults: the gateway unreachable or failing → 503; a refusal
/// or a malformed answer from it → 502; our own missing configuration → 503 (the
/// operation cannot run here until an operator sets it).
impl From<crate::gateway::GatewayError> for ApiError {
    fn from(e: crate::gateway::GatewayError) -> Self {
        use crate::gateway::GatewayError as G;
        let service = "trust network gateway".to_string();
        match e {
            G::Store(s) => ApiError::Internal(format!("gateway bookkeeping: {s}")),
            e if e.is_transient() => ApiError::Unavailable {
                service,
                message: e.to_string(),
            },
            e @ (G::Status { .. } | G::Protocol { .. }) => ApiError::Upstream {
                service,
                message: e.to_string(),
            },
            e => ApiError::Unavailable {
                service,
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_an_outcome_with_its_status() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::bad_request("x"), 400, "invalid"),
            (ApiError::not_found("x"), 404, "not-found"),
            (
                ApiError::MethodNotAllowed {
                    method: "PUT".into(),
                    path: "/health".into(),
                },
                405,
                "not-supported",
            ),
            (ApiError::PayloadTooLarge { limit: 10 }, 413, "too-long"),
            (
                ApiError::UnsupportedMediaType("x".into()),
                415,
                "not-supported",
            ),
            (
                ApiError::Unavailable {
                    service: "vault".into(),
                    message: "down".into(),
                },
                503,
                "transient",
            ),
            (ApiError::internal("secret detail"), 500, "exception"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status_code().as_u16(), status, "{err:?}");
            let oo = err.outcome();
            assert_eq!(oo["resourceType"], "OperationOutcome");
            assert_eq!(oo["issue"][0]["code"], code, "{err:?}");
            assert_eq!(oo["issue"][0]["severity"], "error");
        }
        assert!(!ApiError::internal("secret detail")
            .outcome()
            .to_string()
            .contains("secret"));
    }

    #[test]
    fn invalid_carries_caller_issues_and_status() {
        let err = ApiError::Invalid {
            status: 400,
            issues: vec![Issue::error("required", "name missing").at("Patient.name")],
        };
        assert_eq!(err.status_code().as_u16(), 400);
        assert_eq!(err.outcome()["issue"][0]["expression"][0], "Patient.name");
        for status in [200, 302, 99, 1000] {
            let err = ApiError::Invalid {
                status,
                issues: vec![],
            };
            assert_eq!(err.status_code().as_u16(), 422, "{status}");
        }
    }
}
