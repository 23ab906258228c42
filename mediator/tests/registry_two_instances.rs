//! Two `ddcc-mediator` processes on one PostgreSQL database issue concurrently for the
//! same holder (HCID): six doses sent at once, alternating between the instances, then
//! each resubmitted at once to the other instance. Afterwards there is exactly one
//! Folder for the HCID, holding every dose's documents once, each document registered
//! once, and a resubmission got back the certificate first issued. Embedded defaults
//! (local development signer, no Vault, no OpenHIM); needs `DDCC_TEST_DATABASE_URL`.

mod spawned;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use spawned::{get_json, resources, Backend, Service};

const DOSES: i64 = 6;
const GENERATE: &str = "/fhir/QuestionnaireResponse/$generateHealthCertificate";

/// The IG's English example QuestionnaireResponse (narrative dropped), kept in the
/// repository so this test needs no `../shared`.
fn english_response() -> Value {
    serde_json::from_str(include_str!(
        "data/QuestionnaireResponse-DDCCVS-English.json"
    ))
    .expect("fixture is JSON")
}

fn set_answer(response: &mut Value, link_id: &str, answer: Value) {
    let item = response["item"]
        .as_array_mut()
        .and_then(|items| items.iter_mut().find(|i| i["linkId"] == link_id))
        .unwrap_or_else(|| panic!("fixture has no item {link_id}"));
    item["answer"] = json!([answer]);
}

fn dose(hcid: &str, n: i64) -> Value {
    let mut r = english_response();
    set_answer(&mut r, "hcid", json!({"valueString": hcid}));
    set_answer(&mut r, "dose", json!({"valueInteger": n}));
    set_answer(&mut r, "total_doses", json!({"valueInteger": DOSES}));
    set_answer(
        &mut r,
        "date",
        json!({"valueDate": format!("2021-04-{:02}", n)}),
    );
    r
}

async fn generate(http: &reqwest::Client, base: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(format!("{base}{GENERATE}"))
        .header("Content-Type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .expect("generate answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Sends every (instance, body) at once; returns the answers in order.
async fn all_at_once(http: &reqwest::Client, calls: Vec<(String, Value)>) -> Vec<Value> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|(base, body)| {
            let http = http.clone();
            tokio::spawn(async move { generate(&http, &base, &body).await })
        })
        .collect();
    let mut out = Vec::new();
    for (n, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.expect("request task");
        assert_eq!(status, 200, "call {n}: {body}");
        out.push(body);
    }
    out
}

fn folder_items(folder: &Value) -> Vec<String> {
    folder["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["item"]["reference"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_keep_one_folder_per_hcid() {
    let Some(url) = spawned::fresh_pg_db().await else {
        return;
    };
    let work = spawned::temp_dir("two-instances");
    let backend = Backend::Postgres(url);
    // One after the other, so the first creates the development key both then share.
    let a = Service::start(&backend, &work).await;
    let b = Service::start(&backend, &work).await;
    let bases = [a.base(), b.base()];
    let http = reqwest::Client::new();
    let hcid = format!("two-instances-{:x}", fastrand::u64(..));

    let first = all_at_once(
        &http,
        (1..=DOSES)
            .map(|n| (bases[n as usize % 2].clone(), dose(&hcid, n)))
            .collect(),
    )
    .await;
    // Each event again, on the other instance, all at once: answered from the record.
    let again = all_at_once(
        &http,
        (1..=DOSES)
            .map(|n| (bases[(n as usize + 1) % 2].clone(), dose(&hcid, n)))
            .collect(),
    )
    .await;
    let mut masters = BTreeSet::new();
    for (n, (d1, d2)) in first.iter().zip(&again).enumerate() {
        assert_eq!(
            d1,
            d2,
            "dose {}: the resubmission gets the first document",
            n + 1
        );
        masters.insert(
            d1["identifier"]["value"]
                .as_str()
                .expect("identifier")
                .to_owned(),
        );
    }
    assert_eq!(masters.len(), DOSES as usize, "one certificate per dose");

    for base in &bases {
        let (status, found) = get_json(
            &http,
            &format!("{base}/fhir/List?code=folder&identifier={hcid}"),
        )
        .await;
        assert_eq!(status, 200, "{found}");
        let folders = resources(&found);
        assert_eq!(
            folders.len(),
            1,
            "one Folder for the HCID, seen from {base}: {found}"
        );
        let items = folder_items(&folders[0]);
        let unique: BTreeSet<&String> = items.iter().collect();
        assert_eq!(
            unique.len(),
            items.len(),
            "no document twice in the Folder: {items:?}"
        );
        // Every certificate adds the same set (document + one per QR kind).
        assert_eq!(
            items.len() % DOSES as usize,
            0,
            "whole certificates only: {items:?}"
        );
        for item in &items {
            let (status, body) = get_json(&http, &format!("{base}/fhir/{item}")).await;
            assert_eq!(status, 200, "Folder item {item} resolves: {body}");
        }
        for master in &masters {
            let (_, docs) = get_json(
                &http,
                &format!("{base}/fhir/DocumentReference?identifier={master}"),
            )
            .await;
            let docs = resources(&docs);
            assert_eq!(docs.len(), 1, "document {master} registered once");
            let reference = format!("DocumentReference/{}", docs[0]["id"].as_str().unwrap_or(""));
            assert!(
                items.contains(&reference),
                "{reference} (document {master}) is in the Folder: {items:?}"
            );
        }
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&work);
}
