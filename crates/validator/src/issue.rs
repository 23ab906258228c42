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

/// Every `message_id` the validator emits, with what it means. Stable: callers and
/// tests match on these.
pub const MESSAGE_IDS: &[(&str, &str)] = &[
    ("ARRAY_EMPTY", "a JSON array with no items"),
    (
        "ARRAY_EXPECTED",
        "a repeating element given as a single value",
    ),
    (
        "ARRAY_NOT_ALLOWED",
        "a single-valued element given as an array",
    ),
    (
        "BINDING_EXTENSIBLE",
        "code not in an extensible value set (warning)",
    ),
    ("BINDING_REQUIRED", "code not in a required value set"),
    ("CARDINALITY_MAX", "more values than the element's max"),
    ("CARDINALITY_MIN", "fewer values than the element's min"),
    (
        "DEPTH_EXCEEDED",
        "content nested deeper than MAX_DEPTH, not validated",
    ),
    (
        "ELEMENT_EMPTY",
        "an element with neither value nor children (ele-1)",
    ),
    (
        "EXTENSION_VALUE_OR_CHILDREN",
        "an extension with both or neither value[x] and extensions (ext-1)",
    ),
    ("FIXED_MISMATCH", "value differs from fixed[x]"),
    (
        "INVARIANT_FAILED",
        "a constraint's FHIRPath expression evaluated to false",
    ),
    (
        "INVARIANT_NOT_EVALUATED",
        "a constraint the FHIRPath engine could not evaluate (information)",
    ),
    (
        "NULL_NOT_ALLOWED",
        "a JSON null outside primitive-array alignment",
    ),
    ("PATTERN_MISMATCH", "value does not contain pattern[x]"),
    ("PRIMITIVE_EMPTY", "an empty string primitive"),
    (
        "PRIMITIVE_FORMAT",
        "a primitive not in its type's lexical form",
    ),
    (
        "PROFILE_TYPE_MISMATCH",
        "profile is for another resource type",
    ),
    (
        "PROFILE_UNKNOWN",
        "profile not loaded (error when requested, warning in meta.profile)",
    ),
    (
        "QUESTIONNAIRE_ANSWER_NOT_ALLOWED",
        "an answer to a group or display item",
    ),
    (
        "QUESTIONNAIRE_ANSWER_NOT_IN_OPTIONS",
        "an answer outside the item's answerOptions",
    ),
    (
        "QUESTIONNAIRE_ANSWER_NOT_IN_VALUESET",
        "an answer outside the item's answerValueSet (warning)",
    ),
    (
        "QUESTIONNAIRE_ANSWER_TYPE",
        "answer value[x] type does not fit the item type",
    ),
    (
        "QUESTIONNAIRE_ITEM_UNKNOWN",
        "a linkId the Questionnaire does not have there",
    ),
    (
        "QUESTIONNAIRE_REPEATS",
        "several answers to a non-repeating item",
    ),
    (
        "QUESTIONNAIRE_REQUIRED_MISSING",
        "a required item (or its answer) is missing",
    ),
    (
        "QUESTIONNAIRE_UNKNOWN",
        "the Questionnaire is not loaded (information)",
    ),
    (
        "REFERENCE_NOT_IN_BUNDLE",
        "an absolute reference in a document/message not in it (warning)",
    ),
    (
        "REFERENCE_TARGET_TYPE",
        "a reference resolving to a resource type the element does not allow",
    ),
    (
        "REFERENCE_UNRESOLVED",
        "a reference that must resolve inside the Bundle does not",
    ),
    ("RESOURCE_TYPE_MISSING", "a resource without resourceType"),
    (
        "RESOURCE_TYPE_UNKNOWN",
        "a resourceType that is neither R4 nor a loaded logical model",
    ),
    (
        "SLICE_CARDINALITY_MAX",
        "more items in a slice than its max",
    ),
    (
        "SLICE_CARDINALITY_MIN",
        "fewer items in a slice than its min",
    ),
    (
        "SLICE_UNMATCHED",
        "an item matching no slice of a closed slicing",
    ),
    (
        "TYPE_CHOICE_INVALID",
        "a choice element with a type suffix not allowed there",
    ),
    (
        "TYPE_CHOICE_MULTIPLE",
        "a choice element given with several types",
    ),
    (
        "TYPE_WRONG_JSON",
        "wrong JSON kind (string/number/boolean/object) for the type",
    ),
    (
        "TYPE_WRONG_RESOURCE",
        "a contained/entry resource of a type the element does not allow",
    ),
    ("UNKNOWN_ELEMENT", "a property the definition does not have"),
    (
        "VALUESET_UNKNOWN",
        "binding to a value set that is not loaded (warning)",
    ),
];

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
