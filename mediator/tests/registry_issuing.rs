//! The issuing flow's persistence, in-process with the real app, catalogue and local
//! signer over the embedded store: a resubmitted event returns the certificate already
//! issued (same identifier, same signature, one stored copy); two doses for one HCID end
//! in one Folder holding both; `$getQRCode` serves the stored QR images as bytes; the
//! registry routes refuse bad requests with OperationOutcomes.

mod service;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use ddcc_mediator::registry::Registry;
use ddcc_mediator::server;
use ddcc_mediator::services::Services;
use ddcc_store::{
    BoxFuture, Claim, ClaimToken, PendingRevocation, Revocation, RevocationLookup, SearchQuery,
    Store, StoreError, Stored, TxRequest, TxResult,
};
use serde_json::{json, Value};
use service::{app, config, english_response, start, Handles};
use sha2::{Digest, Sha256};

async fn call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String, Vec<u8>) {
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
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, test::read_body(resp).await.to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn set_answer(response: &mut Value, link_id: &str, answer: Value) {
    let items = response["item"].as_array_mut().expect("items");
    let item = items
        .iter_mut()
        .find(|i| i["linkId"] == link_id)
        .expect("link id present");
    item["answer"] = json!([answer]);
}

const GENERATE: &str = "/fhir/QuestionnaireResponse/$generateHealthCertificate";

fn search_total(v: &Value) -> u64 {
    v["total"].as_u64().unwrap_or(u64::MAX)
}

#[actix_web::test]
async fn resubmission_returns_the_issued_certificate_and_folders_collect_doses() {
    let Some(mut response) = english_response() else {
        return;
    };
    let hcid = format!("test-hcid-{:x}", fastrand::u64(..));
    set_answer(&mut response, "hcid", json!({"valueString": hcid}));
    let app = app(config("registry")).await;

    let (s1, _, b1) = call(&app, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s1, 200, "{}", String::from_utf8_lossy(&b1));
    // The same event again, with a different resource id and meta: same content.
    let mut again = response.clone();
    again["id"] = json!("resubmitted");
    again["meta"] = json!({"versionId": "7"});
    let (s2, _, b2) = call(&app, "POST", GENERATE, Some(&again)).await;
    assert_eq!(s2, 200);
    let (d1, d2) = (json_of(&b1), json_of(&b2));
    assert_eq!(d1["identifier"], d2["identifier"]);
    assert_eq!(d1["signature"], d2["signature"]);
    assert_eq!(
        d1, d2,
        "the resubmission gets the very document first issued"
    );

    let folder_q = format!("/fhir/List?code=folder&identifier={hcid}");
    let (_, _, f) = call(&app, "GET", &folder_q, None).await;
    let folders = json_of(&f);
    assert_eq!(search_total(&folders), 1, "{folders}");
    let first_entries = folders["entry"][0]["resource"]["entry"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert!(first_entries >= 2, "document + QR references: {folders}");
    let master = d1["identifier"]["value"].as_str().expect("identifier");
    let (_, _, r) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference?identifier={master}"),
        None,
    )
    .await;
    assert_eq!(
        search_total(&json_of(&r)),
        1,
        "one document registered, not two"
    );

    // A second dose for the same holder: a new certificate, the same Folder.
    let mut dose2 = response.clone();
    set_answer(&mut dose2, "dose", json!({"valueInteger": 2}));
    set_answer(&mut dose2, "date", json!({"valueDate": "2021-04-26"}));
    let (s3, _, b3) = call(&app, "POST", GENERATE, Some(&dose2)).await;
    assert_eq!(s3, 200, "{}", String::from_utf8_lossy(&b3));
    assert_ne!(json_of(&b3)["identifier"], d1["identifier"]);
    let (_, _, f) = call(&app, "GET", &folder_q, None).await;
    let folders = json_of(&f);
    assert_eq!(search_total(&folders), 1, "one Folder per HCID: {folders}");
    let entries = folders["entry"][0]["resource"]["entry"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(entries, 2 * first_entries, "both doses in the Folder");

    // The second certificate's printable PDF lists every dose in the Folder.
    let pdf = json_of(&b3)["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["resource"]["content"].as_array().into_iter().flatten())
        .find(|c| c["attachment"]["contentType"] == "application/pdf")
        .and_then(|c| c["attachment"]["data"].as_str())
        .map(|d| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(d)
                .expect("base64 PDF")
        })
        .expect("the document carries a PDF");
    let shows = |text: &str| pdf.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(
        shows("2021-04-05") && shows("2021-04-26"),
        "both doses on the printable certificate"
    );

    // The whole-document DocumentReference points at the stored signed bytes (ITI-68).
    let (_, _, r) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference?identifier={master}"),
        None,
    )
    .await;
    let docref = &json_of(&r)["entry"][0]["resource"];
    let url = docref["content"][0]["attachment"]["url"]
        .as_str()
        .expect("attachment url");
    assert!(url.starts_with("Binary/"), "{url}");
    let (s, ct, bytes) = call(&app, "GET", &format!("/fhir/{url}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(ct, "application/fhir+json");
    assert_eq!(
        json_of(&bytes),
        d1,
        "the stored document is what was signed"
    );
}

#[actix_web::test]
async fn get_qr_code_serves_stored_images_as_bytes() {
    let Some(response) = english_response() else {
        return;
    };
    let app = app(config("registry")).await;
    let (s, _, _) = call(&app, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 200);
    let (_, _, r) = call(&app, "GET", "/fhir/DocumentReference?_count=100", None).await;
    let all = json_of(&r);
    let qr_id = all["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .find(|d| {
            d["content"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["attachment"]["contentType"] == "image/png")
            })
        })
        .and_then(|d| d["id"].as_str())
        .expect("a stored QR DocumentReference")
        .to_string();
    let (s, ct, png) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference/{qr_id}/$getQRCode?format=png"),
        None,
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "image/png"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG bytes, not JSON");
    let (s, _, payload) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference/{qr_id}/$getQRCode?format=payload"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(!payload.is_empty());
    let (s, _, _) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference/{qr_id}/$getQRCode?format=gif"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _, _) = call(
        &app,
        "GET",
        "/fhir/DocumentReference/no-such-id/$getQRCode?format=png",
        None,
    )
    .await;
    assert_eq!(s, 404);
}

/// Bad requests are 4xx OperationOutcomes, and valid ones round-trip with versions.
#[actix_web::test]
async fn registry_routes_refuse_bad_requests() {
    let app = app(config("registry")).await;
    let patient = json!({"resourceType": "Patient", "name": [{"family": "X"}]});
    let cases: Vec<(&str, &str, Option<Value>, u16)> = vec![
        ("POST", "/fhir/INVALIDTYPE", Some(patient.clone()), 404),
        (
            "POST",
            "/fhir/Patient",
            Some(json!({"resourceType": "INVALIDTYPE"})),
            404,
        ),
        ("POST", "/fhir/Bundle", Some(patient.clone()), 400),
        (
            "POST",
            "/fhir/Bundle",
            Some(json!({"resourceType": "Bundle"})),
            400,
        ),
        ("GET", "/fhir/Patient/a..b", None, 400),
        ("GET", "/fhir/DocumentReference?unknown=1", None, 400),
        ("GET", "/fhir/Patient/does-not-exist", None, 404),
        ("GET", "/fhir/INVALIDTYPE/x", None, 404),
        ("GET", "/fhir/Patient/x/_history/zero", None, 400),
        (
            "POST",
            "/fhir",
            Some(json!({"resourceType": "Bundle", "type": "searchset"})),
            400,
        ),
        (
            "POST",
            "/fhir",
            Some(json!({"resourceType": "Bundle", "type": "transaction", "entry": []})),
            422,
        ),
        (
            "POST",
            "/fhir",
            Some(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": {"resourceType": "DocumentReference", "content": []},
                 "request": {"method": "POST", "url": "DocumentReference"}}]}),
            ),
            400,
        ),
        (
            "POST",
            "/fhir",
            Some(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "List", "status": "current", "mode": "working",
                  "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
                  "entry": [{"item": {"reference": "urn:uuid:missing"}}]},
                 "request": {"method": "POST", "url": "List"}},
                {"resource": {"resourceType": "DocumentReference", "status": "current", "content": []},
                 "request": {"method": "POST", "url": "DocumentReference"}}]}),
            ),
            400,
        ),
    ];
    for (method, path, body, want) in cases {
        let (s, ct, b) = call(&app, method, path, body.as_ref()).await;
        assert_eq!(s, want, "{method} {path}: {}", String::from_utf8_lossy(&b));
        assert_eq!(ct, "application/fhir+json", "{method} {path}");
        assert_eq!(
            json_of(&b)["resourceType"],
            "OperationOutcome",
            "{method} {path}"
        );
    }
    // The broken-reference transaction changed nothing.
    let (_, _, r) = call(&app, "GET", "/fhir/List?code=submissionset", None).await;
    assert_eq!(search_total(&json_of(&r)), 0);

    let (s, _, b) = call(&app, "POST", "/fhir/Patient", Some(&patient)).await;
    assert_eq!(s, 201);
    let created = json_of(&b);
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["meta"]["versionId"], "1");
    let (s, _, b) = call(&app, "GET", &format!("/fhir/Patient/{id}/_history/1"), None).await;
    assert_eq!(s, 200);
    assert_eq!(json_of(&b)["name"], patient["name"]);
    let (s, _, b) = call(&app, "GET", "/fhir/metadata", None).await;
    assert_eq!(s, 200);
    let cs = json_of(&b);
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    let types: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["type"].as_str())
        .collect();
    for t in [
        "DocumentReference",
        "List",
        "Binary",
        "StructureMap",
        "QuestionnaireResponse",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
}

/// `$revokeHealthCertificate`: one transaction retires the DocumentReferences, deletes
/// the document, empties it from the Folder and records the EU DCC revocation hashes.
#[actix_web::test]
async fn revoke_retires_the_certificate_and_records_the_revocation() {
    let Some(mut response) = english_response() else {
        return;
    };
    let hcid = format!("revoke-hcid-{:x}", fastrand::u64(..));
    set_answer(&mut response, "hcid", json!({"valueString": hcid}));
    let (app, Handles { registry, .. }) = start(config("registry")).await;
    let (s, _, b) = call(&app, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let doc = json_of(&b);
    let master = doc["identifier"]["value"].as_str().expect("identifier");
    let (_, _, r) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference?identifier={master}"),
        None,
    )
    .await;
    let docref = json_of(&r)["entry"][0]["resource"].clone();
    let docref_id = docref["id"].as_str().expect("docref id").to_string();
    let uvci = docref["identifier"][0]["value"]
        .as_str()
        .expect("UVCI identifier")
        .to_string();
    let binary = docref["content"][0]["attachment"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let related: Vec<String> = docref["context"]["related"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["reference"].as_str().map(str::to_string))
        .collect();
    assert!(
        !related.is_empty(),
        "QR DocumentReferences are linked: {docref}"
    );

    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "id", "valueString": master}]});
    let (s, _, b) = call(
        &app,
        "POST",
        "/fhir/Bundle/$revokeHealthCertificate",
        Some(&params),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        json_of(&b)["parameter"][0],
        json!({"name": "return", "valueBoolean": true})
    );

    for r in std::iter::once(format!("DocumentReference/{docref_id}")).chain(related) {
        let (s, _, b) = call(&app, "GET", &format!("/fhir/{r}"), None).await;
        assert_eq!(s, 200);
        assert_eq!(json_of(&b)["status"], "entered-in-error", "{r}");
    }
    let (s, _, _) = call(&app, "GET", &format!("/fhir/{binary}"), None).await;
    assert_eq!(s, 410, "the document is deleted from the repository");
    let (_, _, f) = call(
        &app,
        "GET",
        &format!("/fhir/List?code=folder&identifier={hcid}"),
        None,
    )
    .await;
    let folder = &json_of(&f)["entry"][0]["resource"];
    assert_eq!(
        folder["entry"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "the Folder drops the revoked certificate: {folder}"
    );

    let pending = registry
        .store
        .pending_revocations(100)
        .await
        .expect("revocations");
    let hex = |b: &[u8]| hex::encode(Sha256::digest(b));
    let rec = pending
        .iter()
        .map(|p| &p.revocation)
        .find(|r| r.uvci_hash == hex(uvci.as_bytes()))
        .expect("the UVCI hash is recorded");
    assert_eq!(rec.document_id, format!("DocumentReference/{docref_id}"));
    assert_eq!(rec.signature_hash.len(), 64);
    assert!(!rec.kid.is_empty());

    // Again: nothing left to revoke. By path, unknown: 404.
    let (s, _, b) = call(
        &app,
        "POST",
        &format!("/fhir/Bundle/{docref_id}/$revokeHealthCertificate"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(json_of(&b)["parameter"][0]["valueBoolean"], false);
    let (s, _, _) = call(
        &app,
        "POST",
        "/fhir/Bundle/unknown-id/$revokeHealthCertificate",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let bad = json!({"resourceType": "Parameters", "parameter": []});
    let (s, _, _) = call(
        &app,
        "POST",
        "/fhir/Bundle/$revokeHealthCertificate",
        Some(&bad),
    )
    .await;
    assert_eq!(s, 400);
}

/// The store as configured, except that every transaction fails as a full disk would.
struct FailingTransactions(std::sync::Arc<dyn Store>);

impl Store for FailingTransactions {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    fn create(&self, resource: Value) -> BoxFuture<'_, ddcc_store::Result<Stored>> {
        self.0.create(resource)
    }
    fn read<'a>(&'a self, t: &'a str, id: &'a str) -> BoxFuture<'a, ddcc_store::Result<Stored>> {
        self.0.read(t, id)
    }
    fn vread<'a>(
        &'a self,
        t: &'a str,
        id: &'a str,
        v: i64,
    ) -> BoxFuture<'a, ddcc_store::Result<Stored>> {
        self.0.vread(t, id, v)
    }
    fn update<'a>(
        &'a self,
        t: &'a str,
        id: &'a str,
        resource: Value,
        if_match: Option<i64>,
    ) -> BoxFuture<'a, ddcc_store::Result<Stored>> {
        self.0.update(t, id, resource, if_match)
    }
    fn delete<'a>(&'a self, t: &'a str, id: &'a str) -> BoxFuture<'a, ddcc_store::Result<i64>> {
        self.0.delete(t, id)
    }
    fn history<'a>(
        &'a self,
        t: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, ddcc_store::Result<Vec<Stored>>> {
        self.0.history(t, id)
    }
    fn search<'a>(
        &'a self,
        t: &'a str,
        q: &'a SearchQuery,
    ) -> BoxFuture<'a, ddcc_store::Result<Vec<Stored>>> {
        self.0.search(t, q)
    }
    fn transaction(&self, _: TxRequest) -> BoxFuture<'_, ddcc_store::Result<Vec<TxResult>>> {
        Box::pin(async { Err(StoreError::Backend("disk I/O error".into())) })
    }
    fn claim_key<'a>(&'a self, key: &'a str, ttl: i64) -> BoxFuture<'a, ddcc_store::Result<Claim>> {
        self.0.claim_key(key, ttl)
    }
    fn release_key<'a>(&'a self, c: &'a ClaimToken) -> BoxFuture<'a, ddcc_store::Result<()>> {
        self.0.release_key(c)
    }
    fn pending_revocations(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, ddcc_store::Result<Vec<PendingRevocation>>> {
        self.0.pending_revocations(limit)
    }
    fn mark_published<'a>(
        &'a self,
        seqs: &'a [i64],
        at: &'a str,
    ) -> BoxFuture<'a, ddcc_store::Result<u64>> {
        self.0.mark_published(seqs, at)
    }
    fn reencrypt(&self, limit: usize) -> BoxFuture<'_, ddcc_store::Result<usize>> {
        self.0.reencrypt(limit)
    }
    fn find_revocation<'a>(
        &'a self,
        lookup: &'a RevocationLookup,
    ) -> BoxFuture<'a, ddcc_store::Result<Option<Revocation>>> {
        self.0.find_revocation(lookup)
    }
}

/// A store failure while registering is a 503 that leaves nothing behind and releases
/// the event's key (a retry is issued at once); an event held by another request is a 409.
#[actix_web::test]
async fn store_failure_is_503_and_a_held_event_is_409() {
    let Some(response) = english_response() else {
        return;
    };
    let cfg = config("registry");
    let services = Services::build_with_env(&cfg, |_| None)
        .await
        .expect("services");
    let real = services.registry.store.clone();
    let failing = std::sync::Arc::new(Registry {
        store: std::sync::Arc::new(FailingTransactions(real.clone())),
    });
    let state =
        server::build_state(cfg, |b| services.install(b).with_service(failing)).expect("state");
    let app = test::init_service(server::build_app(state, |_| {})).await;

    let (s, ct, b) = call(&app, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 503, "{}", String::from_utf8_lossy(&b));
    assert_eq!(ct, "application/fhir+json");
    assert_eq!(json_of(&b)["issue"][0]["code"], "transient");
    let all = real
        .search("DocumentReference", &SearchQuery::new())
        .await
        .expect("search");
    assert!(all.is_empty(), "nothing half-written");
    let key = ddcc_mediator::registry::idempotency_key(&response);
    let claim = real.claim_key(&key, 60_000).await.expect("claim");
    assert!(
        matches!(claim, Claim::Claimed(_)),
        "the failed attempt released its key: {claim:?}"
    );
    // That claim is now held: the same event meanwhile is a 409.
    let (s, _, b) = call(&app, "POST", GENERATE, Some(&response)).await;
    assert_eq!(s, 409, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b)["resourceType"], "OperationOutcome");
}
