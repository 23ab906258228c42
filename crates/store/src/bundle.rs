//! FHIR transaction Bundle ⇄ store transaction, for `POST /fhir` (ITI-65): pure
//! functions, so the HTTP layer only parses JSON and maps errors.

use serde_json::{json, Value};

use crate::{StoreError, Stored, TxEntry, TxOp, TxRequest, TxResult};

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidResource(msg.into())
}

/// `W/"3"`, `"3"` or `3` → 3.
pub fn parse_etag(etag: &str) -> Option<i64> {
    let t = etag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"').parse().ok()
}

/// Splits `Type/id` (optionally absolute or with a query, which is refused).
fn type_and_id(url: &str) -> Result<(String, String), StoreError> {
    if url.contains('?') {
        return Err(invalid(format!(
            "conditional request URLs are not supported: {}",
            url.chars().take(80).collect::<String>()
        )));
    }
    // Transaction request URLs are relative `Type/id`; anything after the first `/` is
    // the id, so `Patient/../x` is a bad id, not some other type.
    match url.split_once('/') {
        Some((t, id)) => {
            crate::ids::check_type(t)?;
            crate::ids::check_id(id)?;
            Ok((t.to_owned(), id.to_owned()))
        }
        None => Err(invalid(format!(
            "request.url must be Type/id: {}",
            url.chars().take(80).collect::<String>()
        ))),
    }
}

/// Converts a `transaction` Bundle into a [`TxRequest`]: POST → create, PUT → update
/// (with `ifMatch`), DELETE → delete. Batches, GETs and conditional operations are
/// refused with [`StoreError::InvalidResource`] (HTTP 400) rather than half-supported.
pub fn tx_request_from_bundle(bundle: &Value) -> Result<TxRequest, StoreError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(invalid("expected a Bundle"));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("transaction") => {}
        Some(other) => {
            return Err(invalid(format!(
                "Bundle.type must be transaction, not {other}"
            )))
        }
        None => return Err(invalid("Bundle.type is required")),
    }
    let entries = match bundle.get("entry") {
        None => return Ok(TxRequest::default()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("Bundle.entry must be an array")),
    };
    let mut out = Vec::with_capacity(entries.len());
    for (n, e) in entries.iter().enumerate() {
        let full_url = e.get("fullUrl").and_then(Value::as_str).map(str::to_owned);
        let req = e
            .get("request")
            .ok_or_else(|| invalid(format!("entry {n}: request is required")))?;
        let method = req
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("entry {n}: request.method is required")))?;
        let url = req
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("entry {n}: request.url is required")))?;
        for conditional in ["ifNoneExist", "ifNoneMatch", "ifModifiedSince"] {
            if req.get(conditional).is_some() {
                return Err(invalid(format!(
                    "entry {n}: request.{conditional} is not supported"
                )));
            }
        }
        let resource = e.get("resource").cloned();
        let op = match method {
            "POST" => {
                let resource =
                    resource.ok_or_else(|| invalid(format!("entry {n}: POST needs a resource")))?;
                let rt = resource
                    .get("resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if url.trim_end_matches('/') != rt {
                    return Err(invalid(format!(
                        "entry {n}: request.url `{}` does not match resourceType `{rt}`",
                        url.chars().take(80).collect::<String>()
                    )));
                }
                TxOp::Create { resource }
            }
            "PUT" => {
                let resource =
                    resource.ok_or_else(|| invalid(format!("entry {n}: PUT needs a resource")))?;
                let (resource_type, id) = type_and_id(url)?;
                let if_match = match req.get("ifMatch").and_then(Value::as_str) {
                    Some(tag) => Some(
                        parse_etag(tag)
                            .ok_or_else(|| invalid(format!("entry {n}: bad ifMatch")))?,
                    ),
                    None => None,
                };
                TxOp::Update {
                    resource_type,
                    id,
                    resource,
                    if_match,
                }
            }
            "DELETE" => {
                let (resource_type, id) = type_and_id(url)?;
                TxOp::Delete { resource_type, id }
            }
            other => {
                return Err(invalid(format!(
                    "entry {n}: method {other} is not supported in a transaction"
                )))
            }
        };
        out.push(TxEntry { full_url, op });
    }
    Ok(TxRequest::new(out))
}

fn status_line(status: u16) -> &'static str {
    match status {
        200 => "200 OK",
        201 => "201 Created",
        204 => "204 No Content",
        _ => "200 OK",
    }
}

/// The `transaction-response` Bundle: one entry per request entry, in order.
pub fn transaction_response(results: &[TxResult]) -> Value {
    let entries: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({"response": {
                "status": status_line(r.status),
                "location": r.location,
                "etag": r.etag,
                "lastModified": r.last_updated,
            }})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
}

/// A `searchset` Bundle for search results; `base` is the server's FHIR base URL
/// (e.g. `http://host/fhir`), used for each entry's `fullUrl`.
pub fn searchset(base: &str, results: &[Stored]) -> Value {
    let base = base.trim_end_matches('/');
    let entries: Vec<Value> = results
        .iter()
        .map(|s| {
            json!({
                "fullUrl": format!("{base}/{}/{}", s.resource_type, s.id),
                "resource": s.resource,
                "search": {"mode": "match"},
            })
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "searchset", "total": results.len(), "entry": entries})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_methods() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "List", "id": "f"}, "request": {"method": "PUT", "url": "List/f", "ifMatch": "W/\"2\""}},
            {"request": {"method": "DELETE", "url": "Binary/b"}}]});
        let r = tx_request_from_bundle(&b).unwrap();
        assert!(matches!(&r.entries[0].op, TxOp::Create { .. }));
        assert!(
            matches!(&r.entries[1].op, TxOp::Update { if_match: Some(2), id, .. } if id == "f")
        );
        assert!(
            matches!(&r.entries[2].op, TxOp::Delete { resource_type, .. } if resource_type == "Binary")
        );
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let cases = [
            json!({"resourceType": "Bundle", "entry": []}),
            json!({"resourceType": "Bundle", "type": "batch", "entry": []}),
            json!({"resourceType": "Patient"}),
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "GET", "url": "Patient/1"}}]}),
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Binary"}}]}),
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x"}}]}),
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE", "url": "Patient/../x"}}]}),
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE", "url": "Patient?identifier=x"}}]}),
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}}]}),
        ];
        for c in cases {
            let e = tx_request_from_bundle(&c).unwrap_err();
            assert_eq!(e.http_status(), 400, "{c}: {e}");
        }
    }

    #[test]
    fn response_shape() {
        let r = TxResult {
            resource_type: "Patient".into(),
            id: "1".into(),
            version_id: 1,
            location: "Patient/1/_history/1".into(),
            status: 201,
            etag: "W/\"1\"".into(),
            last_updated: "2024-01-01T00:00:00.000Z".into(),
        };
        let b = transaction_response(&[r]);
        assert_eq!(b["entry"][0]["response"]["status"], "201 Created");
        assert_eq!(
            b["entry"][0]["response"]["location"],
            "Patient/1/_history/1"
        );
        assert_eq!(parse_etag("W/\"12\""), Some(12));
        assert_eq!(parse_etag("x"), None);
        let s = Stored {
            resource_type: "Binary".into(),
            id: "b".into(),
            version_id: 1,
            last_updated: "2024-01-01T00:00:00.000Z".into(),
            resource: json!({"resourceType": "Binary", "id": "b"}),
        };
        let ss = searchset("http://h/fhir/", &[s]);
        assert_eq!(ss["entry"][0]["fullUrl"], "http://h/fhir/Binary/b");
        assert_eq!(ss["total"], 1);
    }
}
