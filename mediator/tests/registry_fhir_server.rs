//! `FHIR_SERVER`: instance A (in-process, the real app) keeps the registry's resources
//! on instance B, the built binary in store mode (`DDCC_MODE=store`, its own SQLite).
//! Through A: the generate flow (two doses, one Folder, a resubmission answered with
//! the certificate already issued), the document's byte view, `$docref`, paging, an
//! ITI-65 submission, revocation — and the data is checked in B over its own HTTP API,
//! while A's local store holds only the audit trail and the idempotency keys. With B
//! down, A answers 503 and nothing is half-written: after B is back the same event
//! issues exactly once. Two issuing instances sharing B keep one Folder per holder.
//! Server faults (5xx, timeouts) come from `FhirServerDouble`, a test double of an
//! external FHIR server.

mod service;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::test::{self, TestRequest};
use ddcc_mediator::config::Mode;
use ddcc_store::{SearchQuery, Store};
use serde_json::{json, Value};
use service::{app, config, english_response, root};

const GENERATE: &str = "/fhir/QuestionnaireResponse/$generateHealthCertificate";

/// B, killed however the test ends.
struct StoreInstance {
    child: Child,
    port: u16,
}

impl Drop for StoreInstance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The binary in store mode on `port` over `data`.
fn start_store(data: &Path, port: u16) -> StoreInstance {
    start_store_with(data, port, &[])
}

fn start_store_with(data: &Path, port: u16, env: &[(&str, &str)]) -> StoreInstance {
    std::fs::create_dir_all(data).expect("data dir");
    let child = Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .arg("serve")
        .current_dir(data)
        .env_clear()
        .env("DDCC_MODE", "store")
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("DDCC_DATA_DIR", data)
        .env("DDCC_PROFILES_DIR", root().join("fhir-profiles"))
        // The admin listener (default: port + 1) on any free port: tests run in parallel.
        .env("DDCC_ADMIN_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let addr = format!("127.0.0.1:{port}");
    let up = (0..500).any(|_| {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(40));
        false
    });
    assert!(up, "store instance never listened on {addr}");
    StoreInstance { child, port }
}

fn temp(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ddcc-{tag}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ))
}

async fn call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Vec<u8>) {
    let mut req = match method {
        "POST" => TestRequest::post(),
        _ => TestRequest::get(),
    }
    .uri(path);
    if let Some(b) = body {
        req = req
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .set_payload(b.to_string());
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    (status, test::read_body(resp).await.to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// A GET on B's own API.
async fn b_get(b: &StoreInstance, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/fhir/{path}", b.port))
        .header(ACCEPT.as_str(), "application/fhir+json")
        .send()
        .await
        .expect("B answers");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .collect()
}

fn set_answer(response: &mut Value, link_id: &str, answer: Value) {
    let items = response["item"].as_array_mut().expect("items");
    let item = items
        .iter_mut()
        .find(|i| i["linkId"] == link_id)
        .expect("link id present");
    item["answer"] = json!([answer]);
}

fn a_config(b: &StoreInstance, tag: &str) -> ddcc_mediator::Config {
    let mut cfg = config(tag);
    cfg.registry.fhir_server = Some(format!("http://127.0.0.1:{}/fhir", b.port));
    // Quick to give up when B is down, so the outage case does not wait long.
    cfg.registry.fhir_server_retries = 1;
    cfg.registry.fhir_server_timeout_ms = 5_000;
    cfg
}

#[actix_web::test]
async fn registry_on_a_store_mode_instance_behaves_as_the_embedded_one() {
    let Some(mut response) = english_response() else {
        return;
    };
    let b = start_store(&temp("fhir-b"), free_port());
    let cfg = a_config(&b, "fhir-a");
    assert_eq!(cfg.registry.mode, Mode::Full);
    let a_dir = cfg.data_dir.clone();
    let a = app(cfg).await;

    // B serves only the store: no issuing routes, nothing issuing-related in metadata.
    let (s, _) = b_get(&b, "QuestionnaireResponse/$generateHealthCertificate").await;
    assert!(
        s == 404 || s == 405,
        "store mode serves no issuing, got {s}"
    );
    let (s, cs) = b_get(&b, "metadata").await;
    assert_eq!(s, 200);
    let types: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["type"].as_str())
        .collect();
    assert!(types.contains(&"DocumentReference") && !types.contains(&"QuestionnaireResponse"));

    // Two doses for one holder through A.
    let hcid = format!("fhir-server-hcid-{:x}", fastrand::u64(..));
    set_answer(&mut response, "hcid", json!({"valueString": hcid}));
    let (s, d1) = call(&a, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&d1));
    let d1 = json_of(&d1);
    let (s, again) = call(&a, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 200);
    assert_eq!(
        json_of(&again),
        d1,
        "a resubmission gets the issued certificate"
    );
    let mut second = response.clone();
    set_answer(&mut second, "date", json!({"valueDate": "2021-04-26"}));
    set_answer(&mut second, "dose", json!({"valueInteger": 2}));
    let (s, d2) = call(&a, "POST", GENERATE, Some(&second)).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&d2));

    // In B: one Folder for the HCID holding both certificates, each document a Bundle.
    let (s, folders) = b_get(&b, &format!("List?code=folder&identifier={hcid}")).await;
    assert_eq!(s, 200);
    let folders = resources(&folders);
    assert_eq!(folders.len(), 1, "one Folder per HCID");
    let folder_items: Vec<String> = folders[0]["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["item"]["reference"].as_str().map(str::to_string))
        .collect();
    let master = d1["identifier"]["value"]
        .as_str()
        .expect("document identifier");
    let (_, docrefs) = b_get(&b, &format!("DocumentReference?identifier={master}")).await;
    let docref = resources(&docrefs)
        .into_iter()
        .next()
        .cloned()
        .expect("the document's DocumentReference is in B");
    let docref_id = docref["id"].as_str().expect("id").to_string();
    assert!(folder_items.contains(&format!("DocumentReference/{docref_id}")));
    assert_eq!(
        folder_items.len() % 2,
        0,
        "both doses' entries: {folder_items:?}"
    );
    let url = docref["content"][0]["attachment"]["url"]
        .as_str()
        .expect("attachment url")
        .to_string();
    let doc_id = url
        .strip_prefix("Binary/")
        .expect("Binary/{id}")
        .to_string();
    let (s, stored) = b_get(&b, &format!("Bundle/{doc_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(stored["type"], "document");
    assert_eq!(stored["meta"]["versionId"], "1");

    // Through A: ITI-68 gives the signed document exactly; the Bundle is readable.
    let (s, bytes) = call(&a, "GET", &format!("/fhir/{url}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        json_of(&bytes),
        d1,
        "the stored document is what was signed"
    );
    let (s, _) = call(&a, "GET", &format!("/fhir/Bundle/{doc_id}"), None).await;
    assert_eq!(s, 200);

    // $docref and paging through A.
    let patient = docref["subject"]["reference"]
        .as_str()
        .expect("subject")
        .to_string();
    let (s, found) = call(
        &a,
        "GET",
        &format!("/fhir/DocumentReference/$docref?patient={patient}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&found));
    let found = json_of(&found);
    assert!(resources(&found)
        .iter()
        .any(|r| r["id"].as_str() == Some(docref_id.as_str())));
    let (s, page) = call(&a, "GET", "/fhir/DocumentReference?_count=1", None).await;
    assert_eq!(s, 200);
    let page = json_of(&page);
    assert_eq!(resources(&page).len(), 1);
    let next = page["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .expect("a next link");
    let path = &next[next.find("/fhir/").expect("fhir path")..];
    let (s, page2) = call(&a, "GET", path, None).await;
    assert_eq!(s, 200);
    let page2 = json_of(&page2);
    assert_eq!(resources(&page2).len(), 1);
    assert_ne!(resources(&page)[0]["id"], resources(&page2)[0]["id"]);

    // Unsupported search parameters are refused by A before B is asked.
    let (s, oo) = call(&a, "GET", "/fhir/DocumentReference?author=x", None).await;
    assert_eq!(s, 400);
    assert_eq!(json_of(&oo)["resourceType"], "OperationOutcome");

    // An ITI-65 submission through A lands in B.
    let submission = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6e0b7a39-1c4b-4d53-9e4b-2f6f0cf1c001",
         "resource": {"resourceType": "Binary", "contentType": "text/plain", "data": "aGk="},
         "request": {"method": "POST", "url": "Binary"}},
        {"fullUrl": "urn:uuid:6e0b7a39-1c4b-4d53-9e4b-2f6f0cf1c002",
         "resource": {"resourceType": "DocumentReference", "status": "current",
            "content": [{"attachment": {"contentType": "text/plain",
                "url": "urn:uuid:6e0b7a39-1c4b-4d53-9e4b-2f6f0cf1c001"}}]},
         "request": {"method": "POST", "url": "DocumentReference"}},
        {"fullUrl": "urn:uuid:6e0b7a39-1c4b-4d53-9e4b-2f6f0cf1c003",
         "resource": {"resourceType": "List", "status": "current", "mode": "working",
            "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
            "entry": [{"item": {"reference": "urn:uuid:6e0b7a39-1c4b-4d53-9e4b-2f6f0cf1c002"}}]},
         "request": {"method": "POST", "url": "List"}}]});
    let (s, tr) = call(&a, "POST", "/fhir", Some(&submission)).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&tr));
    let tr = json_of(&tr);
    let locations: Vec<&str> = tr["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["response"]["location"].as_str())
        .collect();
    assert_eq!(locations.len(), 3);
    let (s, dr) = b_get(&b, locations[1]).await;
    assert_eq!(s, 200);
    assert_eq!(
        dr["content"][0]["attachment"]["url"].as_str(),
        Some(locations[0])
    );

    // Revocation through A: in B the DocumentReference is entered-in-error, the
    // document is deleted and the Folder no longer lists it.
    let (s, r) = call(
        &a,
        "POST",
        &format!("/fhir/Bundle/{docref_id}/$revokeHealthCertificate"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&r));
    assert_eq!(json_of(&r)["parameter"][0]["valueBoolean"], true);
    let (_, dr) = b_get(&b, &format!("DocumentReference/{docref_id}")).await;
    assert_eq!(dr["status"], "entered-in-error");
    let (s, _) = b_get(&b, &format!("Bundle/{doc_id}")).await;
    assert_eq!(s, 410);
    let (s, _) = call(&a, "GET", &format!("/fhir/{url}"), None).await;
    assert_eq!(s, 410);
    let (_, folders) = b_get(&b, &format!("List?code=folder&identifier={hcid}")).await;
    assert!(!resources(&folders)[0]["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["item"]["reference"] == format!("DocumentReference/{docref_id}")));

    // A's own store: the audit trail and the revocation, none of the registry's data.
    drop(a);
    let local = ddcc_store::SqliteStore::open(&a_dir).expect("A's local store");
    let audit = local
        .search("AuditEvent", &SearchQuery::new().with("_count", "1000"))
        .await
        .expect("audit search");
    assert!(audit.len() >= 8, "A audits what it did: {}", audit.len());
    for t in ["DocumentReference", "List", "Bundle", "Binary"] {
        let here = local.search(t, &SearchQuery::new()).await.expect("search");
        assert!(here.is_empty(), "A's local store holds no {t}");
    }
    assert_eq!(
        local
            .pending_revocations(10)
            .await
            .expect("revocations")
            .len(),
        1,
        "the revocation is recorded for the trust network in A"
    );
}

#[actix_web::test]
async fn store_instance_down_is_a_503_and_nothing_is_half_written() {
    let Some(mut response) = english_response() else {
        return;
    };
    let b_dir = temp("fhir-b-down");
    let port = free_port();
    let b = start_store(&b_dir, port);
    let a = app(a_config(&b, "fhir-a-down")).await;
    let hcid = format!("fhir-down-hcid-{:x}", fastrand::u64(..));
    set_answer(&mut response, "hcid", json!({"valueString": hcid}));
    drop(b);

    let (s, _) = call(&a, "GET", "/ready", None).await;
    assert_eq!(s, 503, "readiness reports the FHIR server down");
    let (s, oo) = call(&a, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 503, "{}", String::from_utf8_lossy(&oo));
    assert_eq!(json_of(&oo)["resourceType"], "OperationOutcome");
    let (s, _) = call(&a, "GET", "/fhir/DocumentReference", None).await;
    assert_eq!(s, 503);
    let (s, _) = call(&a, "GET", "/fhir/Binary/anything", None).await;
    assert_eq!(s, 503);

    // B back on the same data: nothing of the failed request is there, and the same
    // event now issues once (its key was released, not left answered or claimed).
    let b = start_store(&b_dir, port);
    let (_, before) = b_get(&b, "DocumentReference").await;
    assert_eq!(before["total"], 0, "nothing half-written: {before}");
    let (s, d) = call(&a, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&d));
    let (s, again) = call(&a, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 200);
    assert_eq!(json_of(&again), json_of(&d));
    let (_, folders) = b_get(&b, &format!("List?code=folder&identifier={hcid}")).await;
    assert_eq!(resources(&folders).len(), 1);
    let master = json_of(&d)["identifier"]["value"]
        .as_str()
        .expect("identifier")
        .to_string();
    let (_, docs) = b_get(&b, &format!("DocumentReference?identifier={master}")).await;
    assert_eq!(resources(&docs).len(), 1, "issued exactly once");
}

/// Two issuing instances sharing one FHIR server, issuing for the same holder at once
/// once the Folder exists: the Folder is written under `If-Match`, and the loser of a
/// race rebuilds it, so every dose ends in the one Folder.
#[actix_web::test]
async fn two_instances_on_one_fhir_server_keep_one_folder() {
    let Some(mut response) = english_response() else {
        return;
    };
    let b = start_store(&temp("fhir-b-two"), free_port());
    let a1 = app(a_config(&b, "fhir-a1")).await;
    let a2 = app(a_config(&b, "fhir-a2")).await;
    for first_alone in [true, false] {
        let hcid = format!("fhir-two-hcid-{:x}", fastrand::u64(..));
        set_answer(&mut response, "hcid", json!({"valueString": hcid}));
        concurrent_doses(&b, &a1, &a2, &response, &hcid, first_alone).await;
    }
}

/// Doses 2–5 issued at once through both instances; with `first_alone`, dose 1 first
/// (the Folder exists), else with them (the Folder is created in the race).
async fn concurrent_doses(
    b: &StoreInstance,
    a1: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    a2: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    response: &Value,
    hcid: &str,
    first_alone: bool,
) {
    let mut masters = Vec::new();
    if first_alone {
        let (s, d1) = call(a1, "POST", GENERATE, Some(response)).await;
        assert_eq!(s, 200);
        masters.push(
            json_of(&d1)["identifier"]["value"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let dose = |n: i64, date: &str| {
        let mut r = response.clone();
        set_answer(&mut r, "dose", json!({"valueInteger": n}));
        set_answer(&mut r, "date", json!({"valueDate": date}));
        r
    };
    let (d2, d3, d4, d5) = (
        dose(2, "2021-04-26"),
        dose(3, "2021-10-26"),
        dose(4, "2022-04-26"),
        dose(5, "2022-10-26"),
    );
    let (r2, r3, r4, r5) = tokio::join!(
        call(a1, "POST", GENERATE, Some(&d2)),
        call(a2, "POST", GENERATE, Some(&d3)),
        call(a1, "POST", GENERATE, Some(&d4)),
        call(a2, "POST", GENERATE, Some(&d5)),
    );
    for (s, body) in [r2, r3, r4, r5] {
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
        masters.push(
            json_of(&body)["identifier"]["value"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let (_, folders) = b_get(b, &format!("List?code=folder&identifier={hcid}")).await;
    let folders = resources(&folders);
    assert_eq!(folders.len(), 1, "one Folder per HCID");
    let items: Vec<&str> = folders[0]["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["item"]["reference"].as_str())
        .collect();
    for m in &masters {
        let (_, found) = b_get(b, &format!("DocumentReference?identifier={m}")).await;
        let id = resources(&found)
            .first()
            .and_then(|r| r["id"].as_str())
            .expect("registered")
            .to_string();
        assert!(
            items.contains(&format!("DocumentReference/{id}").as_str()),
            "dose {m} missing from the Folder (first dose alone: {first_alone}): {items:?}"
        );
    }
}

/// A test double of an external FHIR server that answers every request with `status`
/// for its first `failures` requests, then with an empty searchset; counts requests.
struct FhirServerDouble {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl FhirServerDouble {
    fn start(status: u16, failures: usize, delay: Duration) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = actix_web::HttpServer::new(move || {
            let counter = counter.clone();
            actix_web::App::new().default_service(actix_web::web::to(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    let status = if n < failures {
                        actix_web::http::StatusCode::from_u16(status).expect("status")
                    } else {
                        actix_web::http::StatusCode::OK
                    };
                    let body = if n < failures {
                        json!({"resourceType": "OperationOutcome",
                               "issue": [{"severity": "error", "code": "exception", "diagnostics": "double failure"}]})
                    } else {
                        json!({"resourceType": "Bundle", "type": "searchset", "entry": []})
                    };
                    actix_web::HttpResponse::build(status)
                        .content_type("application/fhir+json")
                        .body(body.to_string())
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FhirServerDouble { port, hits, handle }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn double_config(
    d: &FhirServerDouble,
    tag: &str,
    retries: u32,
    timeout_ms: u64,
) -> ddcc_mediator::Config {
    let mut cfg = config(tag);
    cfg.registry.fhir_server = Some(format!("http://127.0.0.1:{}/fhir", d.port));
    cfg.registry.fhir_server_retries = retries;
    cfg.registry.fhir_server_timeout_ms = timeout_ms;
    cfg
}

/// Server errors: a 5xx is a 502, a 503 stays a 503, a timeout is a 503; reads are
/// retried, so a server that fails once then answers serves the request.
#[actix_web::test]
async fn fhir_server_faults_are_502_or_503_and_reads_are_retried() {
    for (status, want) in [(500u16, 502u16), (502, 502), (503, 503)] {
        let d = FhirServerDouble::start(status, usize::MAX, Duration::ZERO);
        let a = app(double_config(&d, "fhir-double-5xx", 2, 5_000)).await;
        let (s, oo) = call(&a, "GET", "/fhir/DocumentReference?status=current", None).await;
        assert_eq!(
            s,
            want,
            "server answered {status}: {}",
            String::from_utf8_lossy(&oo)
        );
        assert_eq!(json_of(&oo)["resourceType"], "OperationOutcome");
        assert_eq!(d.hits(), 3, "a read is tried 1 + 2 times");
        let (s, _) = call(&a, "GET", "/fhir/Binary/x", None).await;
        assert_eq!(s, want);
        d.handle.stop(false).await;
    }

    let d = FhirServerDouble::start(503, 1, Duration::ZERO);
    let a = app(double_config(&d, "fhir-double-retry", 2, 5_000)).await;
    let (s, b) = call(&a, "GET", "/fhir/List?code=folder", None).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(d.hits(), 2, "one failure, one retry");
    d.handle.stop(false).await;

    let d = FhirServerDouble::start(200, 0, Duration::from_secs(3));
    let a = app(double_config(&d, "fhir-double-slow", 0, 300)).await;
    let (s, oo) = call(&a, "GET", "/fhir/List?code=folder", None).await;
    assert_eq!(s, 503, "{}", String::from_utf8_lossy(&oo));
    d.handle.stop(false).await;

    // A transaction is not retried after the server saw it: a 500 is answered once.
    let d = FhirServerDouble::start(500, usize::MAX, Duration::ZERO);
    let a = app(double_config(&d, "fhir-double-tx", 2, 5_000)).await;
    let (s, _) = call(
        &a,
        "POST",
        "/fhir/Binary",
        Some(&json!({"resourceType": "Binary", "contentType": "text/plain", "data": "aGk="})),
    )
    .await;
    assert_eq!(s, 502);
    assert_eq!(d.hits(), 1, "a create is sent once");
    d.handle.stop(false).await;
}

/// A FHIR server whose pages are smaller than asked (B answers at most 2 per page, as
/// HAPI caps its own): A follows B's `next` links to fill its pages, and its own paging
/// still visits every match once.
#[actix_web::test]
async fn pages_are_filled_across_a_servers_smaller_pages() {
    let b = start_store_with(
        &temp("fhir-b-small-pages"),
        free_port(),
        &[("DDCC_SEARCH_MAX_COUNT", "2")],
    );
    let a = app(a_config(&b, "fhir-a-small-pages")).await;
    let tag = format!("small-pages-{:x}", fastrand::u64(..));
    let mut created = std::collections::BTreeSet::new();
    for n in 0..7 {
        let list = json!({"resourceType": "List", "status": "current", "mode": "working",
            "identifier": [{"system": "urn:test", "value": tag}], "title": format!("l{n}")});
        let (s, body) = call(&a, "POST", "/fhir/List", Some(&list)).await;
        assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
        created.insert(json_of(&body)["id"].as_str().expect("id").to_string());
    }
    let (_, direct) = b_get(&b, &format!("List?identifier=urn:test|{tag}&_count=5")).await;
    assert_eq!(resources(&direct).len(), 2, "B's pages hold 2");
    let mut seen = Vec::new();
    let mut url = format!("/fhir/List?identifier=urn:test|{tag}&_count=5");
    for page_no in 0.. {
        assert!(page_no < 10, "paging does not end");
        let (s, page) = call(&a, "GET", &url, None).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&page));
        let page = json_of(&page);
        let got: Vec<String> = resources(&page)
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            got.len(),
            if page_no == 0 { 5 } else { 2 },
            "page {page_no}"
        );
        seen.extend(got);
        let next = page["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str())
            .map(str::to_string);
        match next {
            Some(n) => url = n[n.find("/fhir/").expect("fhir path")..].to_string(),
            None => {
                assert_eq!(page["total"], 7);
                break;
            }
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(
        seen.into_iter().collect::<std::collections::BTreeSet<_>>(),
        created
    );
}

/// The `Store` trait over a store instance, called directly: versions and conflicts as
/// the embedded store has them, AuditEvents and idempotency keys local, a completed
/// key answered with the server's results.
#[actix_web::test]
async fn store_trait_over_a_store_instance() {
    use ddcc_mediator::fhir_server::FhirServerStore;
    use ddcc_store::{Claim, KeyCompletion, StoreError, TxEntry, TxOp, TxRequest};
    let b = start_store(&temp("fhir-b-trait"), free_port());
    let local_dir = temp("fhir-trait-local");
    let local: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(ddcc_store::SqliteStore::open(&local_dir).expect("local store"));
    let store = FhirServerStore::new(
        &format!("http://127.0.0.1:{}/fhir/", b.port),
        local.clone(),
        Duration::from_secs(5),
        1,
    )
    .expect("client");
    assert_eq!(store.backend(), "fhir-server");

    let binary = json!({"resourceType": "Binary", "contentType": "text/plain", "data": "aGk="});
    let v1 = store.create(binary.clone()).await.expect("create");
    assert_eq!((v1.resource_type.as_str(), v1.version_id), ("Binary", 1));
    assert_eq!(
        store.read("Binary", &v1.id).await.expect("read").resource["data"],
        "aGk="
    );
    let mut changed = v1.resource.clone();
    changed["data"] = json!("aG8=");
    let v2 = store
        .update("Binary", &v1.id, changed.clone(), Some(1))
        .await
        .expect("update");
    assert_eq!(v2.version_id, 2);
    let stale = store.update("Binary", &v1.id, changed, Some(1)).await;
    assert!(
        matches!(stale, Err(StoreError::VersionConflict { .. })),
        "{stale:?}"
    );
    assert_eq!(
        store
            .vread("Binary", &v1.id, 1)
            .await
            .expect("vread")
            .resource["data"],
        "aGk="
    );
    store.delete("Binary", &v1.id).await.expect("delete");
    assert!(matches!(
        store.read("Binary", &v1.id).await,
        Err(StoreError::Gone { .. })
    ));
    assert!(matches!(
        store.read("Binary", "never-there").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .search("Binary", &SearchQuery::new().with("nope", "x"))
            .await,
        Err(StoreError::UnsupportedSearchParam(_))
    ));

    // An AuditEvent is kept locally.
    let event = json!({"resourceType": "AuditEvent", "type": {"code": "rest"},
        "recorded": "2024-01-01T00:00:00Z", "agent": [{"requestor": true}],
        "source": {"observer": {"display": "test"}}});
    let e = store.create(event).await.expect("audit");
    assert!(local.read("AuditEvent", &e.id).await.is_ok());
    let (s, _) = b_get(&b, &format!("AuditEvent/{}", e.id)).await;
    assert_eq!(s, 404, "not on the FHIR server");

    // A key completed with a transaction answers a replay with the server's results.
    let Claim::Claimed(token) = store.claim_key("trait-key", 60_000).await.expect("claim") else {
        panic!("a fresh key is claimed");
    };
    let results = store
        .transaction(TxRequest {
            entries: vec![TxEntry {
                full_url: Some("urn:uuid:7b1d3c4e-0000-4000-8000-000000000001".into()),
                op: TxOp::Create { resource: binary },
            }],
            complete_key: Some(KeyCompletion {
                claim: token,
                value: json!({"stored": "urn:uuid:7b1d3c4e-0000-4000-8000-000000000001"}),
            }),
            revocations: Vec::new(),
        })
        .await
        .expect("transaction");
    assert_eq!(results.len(), 1);
    let Claim::Existing(done) = store.claim_key("trait-key", 60_000).await.expect("replay") else {
        panic!("a completed key answers the replay");
    };
    assert_eq!(done.results, results);
    assert_eq!(
        done.value["stored"],
        format!("Binary/{}", results[0].id),
        "fullUrls in the answer name what the server stored"
    );
}
