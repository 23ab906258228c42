//! The only place that builds `application/json+openhim` responses (contract §7).
//! The request pipeline calls [`wrap`] on every routed response when the service
//! runs behind OpenHIM; handlers only return their FHIR response and record
//! orchestrations/properties into the request's [`Recorder`](super::Recorder).

use std::collections::BTreeMap;
use std::time::SystemTime;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use super::orchestration::{timestamp, MediatorStatus, Recorded};

/// The content type the core recognises, by a case-sensitive substring test (§7),
/// hence lower case.
pub const OPENHIM_CONTENT_TYPE: &str = "application/json+openhim";

/// Transaction status from the client-facing status and the downstream calls
/// (§7.2.3): 5xx → Failed; any failed downstream call → Completed with error(s);
/// 4xx → Completed; otherwise Successful. An explicit status set by the handler wins.
pub fn compute_status(http_status: u16, recorded: &Recorded) -> MediatorStatus {
    if let Some(s) = recorded.status {
        return s;
    }
    if http_status >= 500 {
        MediatorStatus::Failed
    } else if recorded.orchestrations.iter().any(|o| o.failed()) {
        MediatorStatus::CompletedWithErrors
    } else if http_status >= 400 {
        MediatorStatus::Completed
    } else {
        MediatorStatus::Successful
    }
}

/// Response headers the core ignores or that must not be replayed (§7.1).
fn keep_header(name: &str) -> bool {
    !matches!(
        name,
        "content-length" | "content-encoding" | "transfer-encoding" | "connection"
    )
}

/// Builds the envelope JSON. `body` is the handler's response body; it goes into
/// `response.body` as a string (§7.1: an object there is stored as `[object Object]`).
/// Returns `None` for a body that is not UTF-8 (e.g. a PNG QR code): the core can
/// only relay a string, so such responses pass through unwrapped (§7.4) and the
/// client still receives the real bytes.
pub fn build(
    urn: &str,
    status: StatusCode,
    headers: &header::HeaderMap,
    body: &[u8],
    recorded: &Recorded,
    now: SystemTime,
) -> Option<Value> {
    let body_string = std::str::from_utf8(body).ok()?.to_string();
    let mut out_headers = Map::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        if !keep_header(&name) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            out_headers.insert(name, Value::String(v.to_string()));
        }
    }
    let mediator_status = compute_status(status.as_u16(), recorded);
    let mut env = json!({
        "x-mediator-urn": urn,
        "status": mediator_status.as_str(),
        "response": {
            "status": status.as_u16(),
            "headers": Value::Object(out_headers),
            "body": body_string,
            "timestamp": timestamp(now),
        },
        "orchestrations": recorded.orchestrations,
        "properties": recorded.properties,
    });
    // `error` makes the core flag the transaction for auto-retry (§7.1): only when
    // the handler asked for it or the request failed on our side.
    let error = recorded.error.clone().map(|e| json!(e)).or_else(|| {
        status.is_server_error().then(
            || json!({ "message": first_diagnostics(body).unwrap_or_else(|| status.to_string()) }),
        )
    });
    if let (Some(e), Some(obj)) = (error, env.as_object_mut()) {
        obj.insert("error".into(), e);
    }
    Some(env)
}

fn first_diagnostics(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("issue")?
        .get(0)?
        .get("diagnostics")?
        .as_str()
        .map(str::to_string)
}

/// The HTTP response that carries an envelope: always 200, the real status is inside.
pub fn response(envelope: &Value, transaction_id: Option<&str>) -> HttpResponse {
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CONTENT_TYPE, OPENHIM_CONTENT_TYPE));
    if let Some(tx) = transaction_id {
        b.insert_header(("x-openhim-transactionid", tx));
    }
    b.body(envelope.to_string())
}

/// Convenience for tests and tools: a map of properties.
pub fn properties(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openhim::orchestration::Orchestration;

    fn headers(ct: &str) -> header::HeaderMap {
        let mut h = header::HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_str(ct).expect("valid"),
        );
        h.insert(
            header::CONTENT_LENGTH,
            header::HeaderValue::from_static("2"),
        );
        h
    }

    #[test]
    fn status_mapping_follows_section_7() {
        let ok = Orchestration::begin("a", "GET", "/a").complete(200, BTreeMap::new(), None);
        let bad = Orchestration::begin("b", "GET", "/b").fail("refused");
        let r = |os: Vec<Orchestration>| Recorded {
            orchestrations: os,
            ..Default::default()
        };
        assert_eq!(
            compute_status(200, &r(vec![ok.clone()])),
            MediatorStatus::Successful
        );
        assert_eq!(compute_status(201, &r(vec![])), MediatorStatus::Successful);
        assert_eq!(compute_status(404, &r(vec![])), MediatorStatus::Completed);
        assert_eq!(
            compute_status(200, &r(vec![ok, bad.clone()])),
            MediatorStatus::CompletedWithErrors
        );
        assert_eq!(
            compute_status(422, &r(vec![bad.clone()])),
            MediatorStatus::CompletedWithErrors
        );
        assert_eq!(compute_status(502, &r(vec![bad])), MediatorStatus::Failed);
        let forced = Recorded {
            status: Some(MediatorStatus::Completed),
            ..Default::default()
        };
        assert_eq!(compute_status(200, &forced), MediatorStatus::Completed);
    }

    #[test]
    fn envelope_has_string_body_and_all_required_fields() {
        let rec = Recorded {
            orchestrations: vec![
                Orchestration::begin("FHIR", "POST", "http://fhir:8080/fhir").complete(
                    201,
                    BTreeMap::new(),
                    Some("{}".into()),
                ),
            ],
            properties: properties(&[("documentType", "Bundle")]),
            ..Default::default()
        };
        let env = build(
            "urn:mediator:x",
            StatusCode::CREATED,
            &headers("application/fhir+json"),
            b"{}",
            &rec,
            SystemTime::now(),
        )
        .expect("utf-8 body");
        assert_eq!(env["x-mediator-urn"], "urn:mediator:x");
        assert_eq!(env["status"], "Successful");
        assert_eq!(env["response"]["status"], 201);
        assert_eq!(env["response"]["body"], "{}");
        assert_eq!(
            env["response"]["headers"]["content-type"],
            "application/fhir+json"
        );
        assert!(env["response"]["headers"].get("content-length").is_none());
        assert!(env["response"]["timestamp"].is_string());
        assert_eq!(env["orchestrations"][0]["name"], "FHIR");
        assert!(env["orchestrations"][0]["request"]["timestamp"].is_string());
        assert_eq!(env["properties"]["documentType"], "Bundle");
        assert!(env.get("error").is_none());
    }

    #[test]
    fn server_errors_carry_error_and_binary_bodies_pass_through() {
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"diagnostics":"vault down"}]}"#;
        let env = build(
            "u",
            StatusCode::SERVICE_UNAVAILABLE,
            &headers("application/fhir+json"),
            oo,
            &Recorded::default(),
            SystemTime::now(),
        )
        .expect("utf-8 body");
        assert_eq!(env["status"], "Failed");
        assert_eq!(env["error"]["message"], "vault down");
        let env = build(
            "u",
            StatusCode::OK,
            &headers("image/png"),
            &[0x89, 0x50, 0xff, 0x00],
            &Recorded::default(),
            SystemTime::now(),
        );
        assert!(env.is_none());
    }
}
