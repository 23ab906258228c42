//! `POST /fhir/$verify-certificate` (alias `POST /ddcc/verify`): is a scanned QR
//! genuine and current, and if not, which check failed. The answer is always 200
//! with the verdict inside; only a malformed request is an HTTP error.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use ddcc_verify::{verify_hc1, CheckKind, TrustList, Verification};
use serde_json::{json, Value};

use crate::error::{ApiError, Issue};
use crate::now_unix;
use crate::routes::{fhir_json, json_body};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/fhir/$verify-certificate").route(web::post().to(verify)))
        .service(web::resource("/ddcc/verify").route(web::post().to(verify)));
}

struct Request {
    qr: String,
    validation_time: i64,
    trusted: Vec<(usize, String)>,
}

fn parse_request(body: &Value) -> Result<Request, ApiError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_request(
            "$verify-certificate takes a Parameters resource",
        ));
    }
    let params = body
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut qr = None;
    let mut validation_time = None;
    let mut trusted = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let at = format!("Parameters.parameter[{i}]");
        let string_value = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| p.get(*k).and_then(Value::as_str))
                .map(str::to_string)
        };
        match p.get("name").and_then(Value::as_str) {
            Some("qr") => {
                let value = string_value(&["valueString"])
                    .ok_or_else(|| invalid("required", "qr needs a valueString", &at))?;
                if qr.replace(value).is_some() {
                    return Err(invalid("structure", "qr is given more than once", &at));
                }
            }
            Some("validationTime") => {
                let text = string_value(&["valueDateTime", "valueInstant", "valueString"])
                    .ok_or_else(|| {
                        invalid(
                            "required",
                            "validationTime needs a valueDateTime or valueInstant",
                            &at,
                        )
                    })?;
                let t = ddcc_verify::parse_iso8601(&text).ok_or_else(|| {
                    invalid(
                        "value",
                        format!("validationTime {text:?} is not an ISO-8601 date-time"),
                        &at,
                    )
                })?;
                validation_time = Some(t);
            }
            Some("trustedCertificate") => {
                let text =
                    string_value(&["valueString", "valueBase64Binary"]).ok_or_else(|| {
                        invalid(
                            "required",
                            "trustedCertificate needs a valueString (PEM or base64 DER)",
                            &at,
                        )
                    })?;
                trusted.push((i, text));
            }
            // Unknown parameters (e.g. `rule`, not implemented yet) are ignored, as
            // FHIR operations may be extended.
            _ => {}
        }
    }
    let qr = qr.ok_or_else(|| invalid("required", "parameter qr is missing", "Parameters"))?;
    Ok(Request {
        qr,
        validation_time: validation_time.unwrap_or_else(now_unix),
        trusted,
    })
}

fn invalid(code: &str, message: impl Into<String>, at: &str) -> ApiError {
    ApiError::Invalid {
        status: 422,
        issues: vec![Issue::error(code, message).at(at)],
    }
}

fn trust_list(state: &AppState, trusted: &[(usize, String)]) -> Result<TrustList, ApiError> {
    let mut list = TrustList::new();
    if trusted.is_empty() {
        // Offline default: what this service signs must verify here.
        let signing = state
            .require::<crate::services::SigningSlot>("signer")?
            .get()
            .map_err(|message| ApiError::Unavailable {
                service: "signer".into(),
                message,
            })?;
        list.add_der(&signing.identity.dsc_der).map_err(|e| {
            ApiError::internal(format!("the service's own DSC does not parse: {e}"))
        })?;
        return Ok(list);
    }
    let mut issues = Vec::new();
    for (i, text) in trusted {
        if let Err(e) = list.add_text(text) {
            issues.push(
                Issue::error("invalid", format!("trustedCertificate: {e}"))
                    .at(format!("Parameters.parameter[{i}]")),
            );
        }
    }
    if issues.is_empty() {
        Ok(list)
    } else {
        Err(ApiError::Invalid {
            status: 422,
            issues,
        })
    }
}

/// FHIR IssueType for a failed check.
fn issue_code(check: CheckKind) -> &'static str {
    match check {
        CheckKind::Prefix
        | CheckKind::Base45
        | CheckKind::Decompression
        | CheckKind::Cbor
        | CheckKind::Cose
        | CheckKind::Kid => "structure",
        CheckKind::UnknownSigner | CheckKind::Signature => "security",
        CheckKind::DscValidity
        | CheckKind::KeyUsage
        | CheckKind::NotYetValid
        | CheckKind::Expired => "business-rule",
    }
}

fn outcome(v: &Verification, note: Option<&str>) -> Value {
    let mut issues: Vec<Value> = v
        .issues
        .iter()
        .map(|i| {
            json!({
                "severity": "error",
                "code": issue_code(i.check),
                "details": {"text": i.check.name()},
                "diagnostics": i.message,
            })
        })
        .collect();
    if let Some(note) = note {
        issues
            .push(json!({"severity": "information", "code": "not-supported", "diagnostics": note}));
    }
    // OperationOutcome needs at least one issue.
    if issues.is_empty() {
        issues.push(json!({
            "severity": "information",
            "code": "informational",
            "diagnostics": "all checks passed",
        }));
    }
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

fn response(v: &Verification, note: Option<&str>) -> Value {
    let mut params = vec![json!({"name": "valid", "valueBoolean": v.valid})];
    if let Some(kid) = v.kid {
        params.push(json!({
            "name": "kid",
            "valueString": base64::engine::general_purpose::STANDARD.encode(kid),
        }));
    }
    if let Some(signer) = &v.signer {
        if let Some(country) = &signer.country {
            params.push(json!({"name": "signerCountry", "valueString": country}));
        }
        params.push(json!({"name": "signerSubject", "valueString": signer.subject}));
    }
    if let Some(iss) = &v.cwt.iss {
        params.push(json!({"name": "issuer", "valueString": iss}));
    }
    for (name, t) in [("issuedAt", v.cwt.iat), ("expiresAt", v.cwt.exp)] {
        if let Some(t) = t {
            params.push(json!({"name": name, "valueInstant": ddcc_cert::rfc3339_utc(t)}));
        }
    }
    if let Some(payload) = &v.payload {
        params.push(json!({"name": "payload", "valueString": payload.to_string()}));
    }
    params.push(json!({"name": "issues", "resource": outcome(v, note)}));
    json!({"resourceType": "Parameters", "parameter": params})
}

async fn verify(state: AppState, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let request = parse_request(&json_body(&body)?)?;
    let trust = trust_list(&state, &request.trusted)?;
    let verification = verify_hc1(&request.qr, &trust, request.validation_time);
    let text = request.qr.trim_start();
    let note = if text.starts_with("shc:/") {
        Some("SMART Health Card verification is not implemented yet; only HC1 is")
    } else if text.starts_with('{') {
        Some("ICAO VDS-NC verification is not implemented yet; only HC1 is")
    } else {
        None
    };
    Ok(fhir_json(StatusCode::OK, &response(&verification, note)))
}
