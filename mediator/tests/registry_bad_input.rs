//! Bad requests to the registry (unknown resource types, broken references in a
//! transaction, search parameters we do not support, ids with path characters, bad
//! `$docref` parameters): the cases in `tests/data/registry-bad-input/cases.json`, each
//! answered with its 4xx status and an OperationOutcome with its issue code. Every
//! difference is printed before the one assertion; then the store must hold nothing but
//! the audit trail.

mod service;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use ddcc_store::SearchQuery;
use serde_json::Value;
use service::{config, root, start};

#[actix_web::test]
async fn bad_registry_requests_are_refused_and_change_nothing() {
    let path = root().join("tests/data/registry-bad-input/cases.json");
    let data: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("cases file")).expect("cases are JSON");
    let cases = data["cases"].as_array().expect("cases");
    let (app, handles) = start(config("registry-bad-input")).await;
    let mut differences = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let method = case["method"].as_str().unwrap_or("GET");
        let uri = case["path"].as_str().unwrap_or("/");
        let mut req = match method {
            "POST" => TestRequest::post(),
            _ => TestRequest::get(),
        }
        .uri(uri);
        if let Some(body) = case.get("body") {
            req = req
                .insert_header((CONTENT_TYPE, "application/fhir+json"))
                .set_payload(body.to_string());
        }
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status().as_u16();
        let body: Value =
            serde_json::from_slice(&test::read_body(resp).await).unwrap_or(Value::Null);
        let want_status = case["status"].as_u64().unwrap_or(0);
        let want_code = case["code"].as_str().unwrap_or("");
        let code = body["issue"][0]["code"].as_str().unwrap_or("");
        if u64::from(status) != want_status
            || body["resourceType"] != "OperationOutcome"
            || code != want_code
        {
            differences.push(format!(
                "{name}: {method} {uri}: got {status} {code:?} ({}), want {want_status} {want_code:?}",
                body["issue"][0]["diagnostics"].as_str().unwrap_or("")
            ));
        }
    }
    for d in &differences {
        println!("{d}");
    }
    assert!(
        differences.is_empty(),
        "{} of {} cases differ",
        differences.len(),
        cases.len()
    );
    let store = &handles.registry.store;
    for t in [
        "Bundle",
        "Binary",
        "DocumentReference",
        "List",
        "Patient",
        "Composition",
    ] {
        let found = store.search(t, &SearchQuery::new()).await.expect("search");
        assert!(found.is_empty(), "a refused request stored a {t}");
    }
}
