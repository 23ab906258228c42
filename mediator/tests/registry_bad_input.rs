//! Bad requests to the registry (unknown resource types, broken references in a
//! transaction, search parameters we do not support, ids with path characters, bad
//! `$docref` parameters): the cases in `tests/data/registry-bad-input/cases.json`, each
//! answered with its 4xx status and an OperationOutcome with its issue code. Every
//! difference is printed before the one assertion; then the store must hold nothing but
//! the audit trail. The same cases run against an instance whose registry is on a
//! second instance in store mode (`FHIR_SERVER`), which must hold nothing either.

mod service;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use ddcc_store::SearchQuery;
use serde_json::Value;
use service::{config, root, start};

const STORED_TYPES: &[&str] = &[
    "Bundle",
    "Binary",
    "DocumentReference",
    "List",
    "Patient",
    "Composition",
];

fn cases() -> Vec<Value> {
    let path = root().join("tests/data/registry-bad-input/cases.json");
    let data: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("cases file")).expect("cases are JSON");
    data["cases"].as_array().expect("cases").clone()
}

/// Runs every case; returns the differences.
async fn run_cases(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    cases: &[Value],
) -> Vec<String> {
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
        let resp = test::call_service(app, req.to_request()).await;
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
    differences
}

#[actix_web::test]
async fn bad_registry_requests_are_refused_and_change_nothing() {
    let cases = cases();
    let (app, handles) = start(config("registry-bad-input")).await;
    let differences = run_cases(&app, &cases).await;
    assert!(
        differences.is_empty(),
        "{} of {} cases differ",
        differences.len(),
        cases.len()
    );
    let store = &handles.registry.store;
    for t in STORED_TYPES {
        let found = store.search(t, &SearchQuery::new()).await.expect("search");
        assert!(found.is_empty(), "a refused request stored a {t}");
    }
}

/// The store-mode instance, killed however the test ends.
struct StoreInstance(Child);

impl Drop for StoreInstance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn the_same_through_a_fhir_server() {
    let cases = cases();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let data = std::env::temp_dir().join(format!(
        "ddcc-bad-input-b-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&data).expect("data dir");
    let _b = StoreInstance(
        Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
            .arg("serve")
            .current_dir(&data)
            .env_clear()
            .env("DDCC_MODE", "store")
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("DDCC_DATA_DIR", &data)
            .env("DDCC_PROFILES_DIR", root().join("fhir-profiles"))
            // The admin listener (default: port + 1) on any free port: tests run in parallel.
            .env("DDCC_ADMIN_ADDR", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts"),
    );
    let addr = format!("127.0.0.1:{port}");
    let up = (0..500).any(|_| {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(40));
        false
    });
    assert!(up, "store instance never listened on {addr}");
    let mut cfg = config("registry-bad-input-a");
    cfg.registry.fhir_server = Some(format!("http://{addr}/fhir"));
    let (app, _) = start(cfg).await;
    let differences = run_cases(&app, &cases).await;
    assert!(
        differences.is_empty(),
        "{} of {} cases differ through the FHIR server",
        differences.len(),
        cases.len()
    );
    let http = reqwest::Client::new();
    for t in STORED_TYPES {
        let found: Value = http
            .get(format!("http://{addr}/fhir/{t}"))
            .send()
            .await
            .expect("B answers")
            .json()
            .await
            .expect("searchset");
        assert_eq!(found["total"], 0, "a refused request stored a {t} in B");
    }
}
