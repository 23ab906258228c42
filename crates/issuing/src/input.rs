//! The shapes an EMR may post: a QuestionnaireResponse alone, `Parameters` with a
//! `response`, or a Submit Health Event `batch` Bundle of such requests.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("the body is not a FHIR resource (no resourceType)")]
    NoResourceType,
    #[error("expected a QuestionnaireResponse or Parameters, got {0}")]
    WrongResourceType(String),
    #[error("Parameters has no 'response' parameter holding a QuestionnaireResponse")]
    MissingResponse,
    #[error("Parameters has more than one 'response' parameter")]
    SeveralResponses,
    #[error("a Submit Health Event request must be a Bundle of type 'batch', got {0}")]
    NotABatch(String),
    #[error("a Submit Health Event batch needs at least one entry")]
    EmptyBatch,
    #[error("entry {index}: {message}")]
    Entry { index: usize, message: String },
}

impl InputError {
    /// The FHIRPath location of the fault, for OperationOutcome.issue.expression.
    pub fn location(&self) -> Option<String> {
        match self {
            InputError::MissingResponse | InputError::SeveralResponses => {
                Some("Parameters.parameter".into())
            }
            InputError::NotABatch(_) => Some("Bundle.type".into()),
            InputError::EmptyBatch => Some("Bundle.entry".into()),
            InputError::Entry { index, .. } => Some(format!("Bundle.entry[{index}]")),
            _ => None,
        }
    }
}

fn resource_type(v: &Value) -> Result<&str, InputError> {
    v.get("resourceType")
        .and_then(Value::as_str)
        .ok_or(InputError::NoResourceType)
}

/// The QuestionnaireResponse of a `$generateHealthCertificate` body.
pub fn questionnaire_response(body: &Value) -> Result<&Value, InputError> {
    match resource_type(body)? {
        "QuestionnaireResponse" => Ok(body),
        "Parameters" => {
            let mut found = body
                .get("parameter")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|p| p.get("name").and_then(Value::as_str) == Some("response"));
            let first = found.next().ok_or(InputError::MissingResponse)?;
            if found.next().is_some() {
                return Err(InputError::SeveralResponses);
            }
            let resource = first.get("resource").ok_or(InputError::MissingResponse)?;
            match resource_type(resource) {
                Ok("QuestionnaireResponse") => Ok(resource),
                Ok(other) => Err(InputError::WrongResourceType(other.to_string())),
                Err(_) => Err(InputError::MissingResponse),
            }
        }
        other => Err(InputError::WrongResourceType(other.to_string())),
    }
}

/// The operation every Submit Health Event entry must request.
const GENERATE: &str = "QuestionnaireResponse/$generateHealthCertificate";

/// The entries of a Submit Health Event batch, in order. The outer `Err` rejects the
/// whole request (not a batch, no entries); an inner `Err` rejects one entry only, so
/// one bad entry never sinks the others.
pub fn batch_entries(body: &Value) -> Result<Vec<Result<&Value, InputError>>, InputError> {
    let rt = resource_type(body)?;
    if rt != "Bundle" {
        return Err(InputError::WrongResourceType(rt.to_string()));
    }
    let ty = body.get("type").and_then(Value::as_str).unwrap_or("(none)");
    if ty != "batch" {
        return Err(InputError::NotABatch(ty.to_string()));
    }
    let entries = body
        .get("entry")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    let entries = entries.ok_or(InputError::EmptyBatch)?;
    Ok(entries
        .iter()
        .enumerate()
        .map(|(index, e)| entry(index, e))
        .collect())
}

fn entry(index: usize, e: &Value) -> Result<&Value, InputError> {
    let err = |message: String| InputError::Entry { index, message };
    let request = e
        .get("request")
        .ok_or_else(|| err("has no request".into()))?;
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    if method != "POST" {
        return Err(err(format!("request.method must be POST, got '{method}'")));
    }
    let url = request.get("url").and_then(Value::as_str).unwrap_or("");
    if !url.trim_end_matches('/').ends_with(GENERATE) {
        return Err(err(format!("request.url must be {GENERATE}, got '{url}'")));
    }
    let resource = e
        .get("resource")
        .ok_or_else(|| err("has no resource".into()))?;
    questionnaire_response(resource).map_err(|inner| err(inner.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qr() -> Value {
        json!({"resourceType": "QuestionnaireResponse", "status": "completed"})
    }

    #[test]
    fn accepts_bare_and_wrapped_responses() {
        let q = qr();
        assert_eq!(questionnaire_response(&q).unwrap(), &q);
        let p = json!({"resourceType": "Parameters", "parameter": [{"name": "response", "resource": q}]});
        assert_eq!(questionnaire_response(&p).unwrap(), &qr());
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert_eq!(
            questionnaire_response(&json!({})),
            Err(InputError::NoResourceType)
        );
        assert_eq!(
            questionnaire_response(&json!({"resourceType": "Patient"})),
            Err(InputError::WrongResourceType("Patient".into()))
        );
        assert_eq!(
            questionnaire_response(&json!({"resourceType": "Parameters"})),
            Err(InputError::MissingResponse)
        );
        let two = json!({"resourceType": "Parameters", "parameter": [
            {"name": "response", "resource": qr()}, {"name": "response", "resource": qr()}]});
        assert_eq!(
            questionnaire_response(&two),
            Err(InputError::SeveralResponses)
        );
        let wrong = json!({"resourceType": "Parameters", "parameter": [{"name": "response", "resource": {"resourceType": "Patient"}}]});
        assert_eq!(
            questionnaire_response(&wrong),
            Err(InputError::WrongResourceType("Patient".into()))
        );
    }

    #[test]
    fn batch_entries_fail_one_by_one() {
        let good = json!({"request": {"method": "POST", "url": GENERATE}, "resource": {"resourceType": "Parameters", "parameter": [{"name": "response", "resource": qr()}]}});
        let bad_method = json!({"request": {"method": "PUT", "url": GENERATE}, "resource": qr()});
        let no_resource = json!({"request": {"method": "POST", "url": GENERATE}});
        let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [good, bad_method, no_resource]});
        let r = batch_entries(&b).unwrap();
        assert!(r[0].is_ok());
        assert!(matches!(&r[1], Err(InputError::Entry { index: 1, .. })));
        assert!(matches!(&r[2], Err(InputError::Entry { index: 2, .. })));
    }

    #[test]
    fn batch_itself_must_be_a_non_empty_batch() {
        assert_eq!(
            batch_entries(&json!({"resourceType": "Bundle", "type": "batch"})),
            Err(InputError::EmptyBatch)
        );
        assert_eq!(
            batch_entries(&json!({"resourceType": "Bundle", "type": "transaction", "entry": [{}]})),
            Err(InputError::NotABatch("transaction".into()))
        );
        assert_eq!(
            batch_entries(&json!({"resourceType": "Bundle", "entry": [{}]})),
            Err(InputError::NotABatch("(none)".into()))
        );
    }
}
