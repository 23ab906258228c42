//! Crash safety through the HTTP service: 1 000 ITI-65 Provide Document Bundles are
//! POSTed to the built `ddcc-mediator` by 8 concurrent clients; the process is killed
//! with SIGKILL twice mid-load and restarted on the same store. A careful client then
//! resubmits only what it cannot find by identifier. At the end every document is
//! stored exactly once and whole: each acknowledged `location` answers, the
//! DocumentReference, its Binary (same bytes), Patient and SubmissionSet agree, and no
//! part of a cut-off transaction was left behind (it would show as a second Patient or
//! SubmissionSet after the resubmission). Embedded SQLite and PostgreSQL.

mod spawned;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use spawned::{get_json, resources, Backend, Service};
use tokio::sync::mpsc;

const DOCUMENTS: usize = 1000;
const CLIENTS: usize = 8;
const DOC_SYSTEM: &str = "urn:ietf:rfc:3986";
const PATIENT_SYSTEM: &str = "http://example.org/kill9";

/// Deterministic per (run, i), so the checker knows what each document must look like.
fn urn(run: &str, what: &str, i: usize) -> String {
    // A syntactically valid UUID: 8-4-4-4-12 hex digits from the run, kind and index.
    let kind = match what {
        "ss" => 1,
        "dr" => 2,
        "bin" => 3,
        "pat" => 4,
        "ssid" => 5,
        _ => 6,
    };
    format!("urn:uuid:{run}-{kind:04x}-4000-8000-{i:012x}")
}

fn document_bytes(run: &str, i: usize) -> Vec<u8> {
    json!({"resourceType": "Bundle", "type": "document", "id": format!("{run}-{i}")})
        .to_string()
        .into_bytes()
}

/// A self-contained ITI-65 Provide Document Bundle: SubmissionSet, DocumentReference,
/// Binary and Patient, linked by `urn:uuid` fullUrls.
fn iti65(run: &str, i: usize) -> Value {
    let u = |w: &str| urn(run, w, i);
    let data = base64::engine::general_purpose::STANDARD.encode(document_bytes(run, i));
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": u("ss"), "request": {"method": "POST", "url": "List"}, "resource": {
                "resourceType": "List",
                "identifier": [{"system": DOC_SYSTEM, "value": u("ssid")}],
                "status": "current", "mode": "working",
                "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
                "subject": {"reference": u("pat")},
                "entry": [{"item": {"reference": u("dr")}}]}},
            {"fullUrl": u("dr"), "request": {"method": "POST", "url": "DocumentReference"}, "resource": {
                "resourceType": "DocumentReference",
                "masterIdentifier": {"system": DOC_SYSTEM, "value": u("doc")},
                "status": "current",
                "type": {"coding": [{"system": "http://loinc.org", "code": "82593-5"}]},
                "subject": {"reference": u("pat")},
                "date": "2021-03-01T10:00:00Z",
                "content": [{"attachment": {"contentType": "application/fhir+json", "url": u("bin")}}]}},
            {"fullUrl": u("bin"), "request": {"method": "POST", "url": "Binary"}, "resource": {
                "resourceType": "Binary", "contentType": "application/fhir+json", "data": data}},
            {"fullUrl": u("pat"), "request": {"method": "POST", "url": "Patient"}, "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": PATIENT_SYSTEM, "value": format!("{run}-{i}")}]}}
        ]
    })
}

/// What a 2xx answer acknowledged: the four locations, in request order.
type Ack = Vec<String>;

/// Posts `todo` with `CLIENTS` concurrent clients until done or, with `kill_after`, until
/// that many acknowledgements have arrived, when the service is SIGKILLed. Returns the
/// acknowledgements and every index that was sent (answered or not).
async fn load(
    service: &mut Service,
    run: &str,
    todo: Vec<usize>,
    kill_after: Option<usize>,
) -> (BTreeMap<usize, Ack>, Vec<usize>) {
    let queue = Arc::new(Mutex::new(VecDeque::from(todo)));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Ack)>();
    let http = reqwest::Client::new();
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let (queue, sent, tx, http) = (queue.clone(), sent.clone(), tx.clone(), http.clone());
        let (url, run) = (format!("{}/fhir", service.base()), run.to_owned());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(i) = queue.lock().expect("queue").pop_front() else {
                    return;
                };
                sent.lock().expect("sent").push(i);
                let answer = http
                    .post(&url)
                    .header("Content-Type", "application/fhir+json")
                    .body(iti65(&run, i).to_string())
                    .send()
                    .await;
                // The service is gone: stop, as a client whose server died would.
                let Ok(r) = answer else { return };
                let status = r.status().as_u16();
                let Ok(body) = r.json::<Value>().await else {
                    return;
                };
                assert_eq!(status, 200, "document {i}: {body}");
                let locations: Ack = body["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["response"]["location"].as_str().unwrap_or("").to_owned())
                    .collect();
                if tx.send((i, locations)).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut acks = BTreeMap::new();
    let mut killed = false;
    while let Some((i, locations)) = rx.recv().await {
        acks.insert(i, locations);
        if !killed && kill_after.is_some_and(|k| acks.len() >= k) {
            service.kill9();
            killed = true;
        }
    }
    for w in workers {
        w.await.expect("client task");
    }
    if kill_after.is_some() {
        assert!(
            killed,
            "the load ended before the kill ({} acks)",
            acks.len()
        );
    }
    let sent = sent.lock().expect("sent").clone();
    (acks, sent)
}

/// Searches `type?name=value` and returns the matches.
async fn search(
    http: &reqwest::Client,
    base: &str,
    t: &str,
    name: &str,
    value: &str,
) -> Vec<Value> {
    let url = format!(
        "{base}/fhir/{t}?{name}={}",
        value.replace('|', "%7C").replace(':', "%3A")
    );
    let (status, body) = get_json(http, &url).await;
    assert_eq!(status, 200, "{url}: {body}");
    resources(&body)
}

fn reference(v: &Value) -> String {
    v["reference"].as_str().unwrap_or_default().to_owned()
}

/// Everything stored for document `i`, checked whole; returns the problems found.
async fn check_document(
    http: &reqwest::Client,
    base: &str,
    run: &str,
    i: usize,
    ack: Option<&Ack>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let ident = format!("{DOC_SYSTEM}|{}", urn(run, "doc", i));
    let docs = search(http, base, "DocumentReference", "identifier", &ident).await;
    let sets = search(
        http,
        base,
        "List",
        "identifier",
        &format!("{DOC_SYSTEM}|{}", urn(run, "ssid", i)),
    )
    .await;
    let patients = search(
        http,
        base,
        "Patient",
        "identifier",
        &format!("{PATIENT_SYSTEM}|{run}-{i}"),
    )
    .await;
    if docs.len() != 1 || sets.len() != 1 || patients.len() != 1 {
        problems.push(format!(
            "document {i}: {} DocumentReferences, {} SubmissionSets, {} Patients (want 1 each)",
            docs.len(),
            sets.len(),
            patients.len()
        ));
        return problems;
    }
    let (doc, set, patient) = (&docs[0], &sets[0], &patients[0]);
    let doc_ref = format!("DocumentReference/{}", doc["id"].as_str().unwrap_or(""));
    let patient_ref = format!("Patient/{}", patient["id"].as_str().unwrap_or(""));
    let binary_ref = doc["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if reference(&doc["subject"]) != patient_ref || reference(&set["subject"]) != patient_ref {
        problems.push(format!("document {i}: subject is not {patient_ref}"));
    }
    if reference(&set["entry"][0]["item"]) != doc_ref {
        problems.push(format!(
            "document {i}: the SubmissionSet does not list {doc_ref}"
        ));
    }
    if let Some(ack) = ack {
        let stored = vec![
            format!("List/{}", set["id"].as_str().unwrap_or("")),
            doc_ref.clone(),
            binary_ref.clone(),
            patient_ref.clone(),
        ];
        if ack != &stored {
            problems.push(format!(
                "document {i}: acknowledged {ack:?}, stored {stored:?}"
            ));
        }
        for location in ack {
            let (status, body) = get_json(http, &format!("{base}/fhir/{location}")).await;
            if status != 200 {
                problems.push(format!("document {i}: GET {location} → {status} {body}"));
            }
        }
    }
    // ITI-68: the Binary's bytes are the document that was sent.
    let bytes = match http.get(format!("{base}/fhir/{binary_ref}")).send().await {
        Ok(r) if r.status() == 200 => r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        Ok(r) => {
            problems.push(format!("document {i}: GET {binary_ref} → {}", r.status()));
            return problems;
        }
        Err(e) => panic!("GET {binary_ref}: {e}"),
    };
    if bytes != document_bytes(run, i) {
        problems.push(format!("document {i}: {binary_ref} holds other bytes"));
    }
    problems
}

async fn kill9_during_load(backend: Backend) {
    let run = format!("{:08x}", fastrand::u32(..));
    let work = spawned::temp_dir("kill9");
    let http = reqwest::Client::new();
    let mut acks: BTreeMap<usize, Ack> = BTreeMap::new();
    // Sent without an answer (may or may not be stored), and never sent.
    let mut unanswered: Vec<usize> = Vec::new();
    let mut unsent: Vec<usize> = (0..DOCUMENTS).collect();
    let mut cut_off_but_stored = 0;
    let mut unanswered_at_kills = 0;
    // Two kills, then a run to completion.
    for kill_after in [Some(300), Some(300), None] {
        let mut service = Service::start(&backend, &work).await;
        let base = service.base();
        // A careful client looks up what was never answered by its identifier and
        // resubmits only what is absent.
        let mut todo = Vec::new();
        unanswered_at_kills += unanswered.len();
        for &i in &unanswered {
            let ident = format!("{DOC_SYSTEM}|{}", urn(&run, "doc", i));
            if search(&http, &base, "DocumentReference", "identifier", &ident)
                .await
                .is_empty()
            {
                todo.push(i);
            } else {
                cut_off_but_stored += 1;
            }
        }
        todo.append(&mut unsent);
        let (new_acks, sent) = load(&mut service, &run, todo.clone(), kill_after).await;
        acks.extend(new_acks);
        unanswered = sent
            .iter()
            .copied()
            .filter(|i| !acks.contains_key(i))
            .collect();
        unsent = todo.into_iter().filter(|i| !sent.contains(i)).collect();
    }
    assert!(
        unanswered.is_empty() && unsent.is_empty(),
        "left after the last run: unanswered {unanswered:?}, unsent {unsent:?}"
    );
    // One more restart, then every document is checked through the service.
    let service = Service::start(&backend, &work).await;
    let base = service.base();
    let mut problems = Vec::new();
    for chunk in (0..DOCUMENTS).collect::<Vec<_>>().chunks(CLIENTS) {
        let checks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let (http, base, run, ack) = (
                    http.clone(),
                    base.clone(),
                    run.clone(),
                    acks.get(&i).cloned(),
                );
                tokio::spawn(
                    async move { check_document(&http, &base, &run, i, ack.as_ref()).await },
                )
            })
            .collect();
        for c in checks {
            problems.extend(c.await.expect("check task"));
        }
    }
    println!(
        "{backend:?}: {} acknowledged; {unanswered_at_kills} in flight at the kills, of which {cut_off_but_stored} committed",
        acks.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(acks.len(), DOCUMENTS - cut_off_but_stored);
    // With eight clients always sending, the kills cut requests off mid-flight.
    assert!(
        unanswered_at_kills > 0,
        "no request was in flight at the kills"
    );
    drop(service);
    // Left in place when the test fails, for a look at the logs and the store.
    let _ = std::fs::remove_dir_all(&work);
    if let Backend::Sqlite(dir) = &backend {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_iti65_load_sqlite() {
    let dir = spawned::temp_dir("kill9-sqlite-store");
    kill9_during_load(Backend::Sqlite(dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_iti65_load_postgres() {
    let Some(url) = spawned::fresh_pg_db().await else {
        return;
    };
    kill9_during_load(Backend::Postgres(url)).await;
}
