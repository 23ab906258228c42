//! Validation issues and their OperationOutcome form.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// FHIR `issue-type` codes used by the validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueCode {
    Structure,
    Required,
    Value,
    CodeInvalid,
    Invariant,
    Invalid,
    NotFound,
    NotSupported,
    TooCostly,
    Informational,
    Processing,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::Invariant => "invariant",
            IssueCode::Invalid => "invalid",
            IssueCode::NotFound => "not-found",
            IssueCode::NotSupported => "not-supported",
            IssueCode::TooCostly => "too-costly",
            IssueCode::Informational => "informational",
            IssueCode::Processing => "processing",
        }
    }
}

/// One finding. `message_id` is stable across releases (tests and callers match
/// on it); `message` is for humans and may change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    pub message_id: &'static str,
    pub message: String,
    /// FHIRPath-style location, e.g. `Bundle.entry[2].resource.status`.
    pub location: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} [{}] at {}: {}",
            self.severity.as_str(),
            self.code.as_str(),
            self.message_id,
            self.location,
            self.message
        )
    }
}

/// True when any issue is an error or fatal.
pub fn has_errors(issues: &[Issue]) -> bool {
    issues
        .iter()
        .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
}

/// The system used for `OperationOutcome.issue.details.coding` carrying the message id.
pub const MESSAGE_ID_SYSTEM: &str = "urn:ddcc-mediator:validator:message-id";

/// Matchbox-style OperationOutcome: always at least one issue, so an empty result
/// reads as "validated, nothing found" rather than "nothing happened".
pub fn to_operation_outcome(issues: &[Issue]) -> Value {
    let mut out: Vec<Value> = issues
        .iter()
        .map(|i| {
            json!({
                "severity": i.severity.as_str(),
                "code": i.code.as_str(),
                "details": {
                    "coding": [{"system": MESSAGE_ID_SYSTEM, "code": i.message_id}],
                    "text": i.message,
                },
                "diagnostics": i.message,
                "expression": [i.location],
                "location": [i.location],
            })
        })
        .collect();
    if out.is_empty() {
        out.push(json!({
            "severity": "information",
            "code": "informational",
            "diagnostics": "No issues detected during validation",
        }));
    }
    json!({"resourceType": "OperationOutcome", "issue": out})
}
