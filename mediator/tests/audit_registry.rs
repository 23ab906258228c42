//! BALP AuditEvents, in-process with the real app over the embedded store: issuing,
//! ITI-68 and ITI-67 reads, a failed read and a revocation each leave an event with
//! the right subtype and outcome, searchable at `GET /fhir/AuditEvent`; no event holds
//! the holder's name, birth date, identifier or HCID; a rolled-back ITI-65 leaves no
//! success event (its failure is recorded instead) and none of its resources.

mod service;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use serde_json::{json, Value};
use service::{app, config, shared};

const CLIENT: &str = "test-emr";
const OPENHIM_TX: &str = "5f0c0ffee0000000000000aa";

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
    .uri(path)
    .insert_header(("x-openhim-clientid", CLIENT))
    .insert_header(("x-openhim-transactionid", OPENHIM_TX))
    .peer_addr("10.1.2.3:45678".parse().expect("socket address"));
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

fn set_answer(response: &mut Value, link_id: &str, answer: Value) {
    let items = response["item"].as_array_mut().expect("items");
    let item = items
        .iter_mut()
        .find(|i| i["linkId"] == link_id)
        .expect("link id present");
    item["answer"] = json!([answer]);
}

fn events(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}

fn has_subtype(event: &Value, code: &str) -> bool {
    event["subtype"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["code"] == code)
}

fn entities(event: &Value) -> Vec<String> {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["what"]["reference"].as_str().map(str::to_string))
        .collect()
}

#[actix_web::test]
async fn every_registry_interaction_is_audited_without_personal_data() {
    let Some(shared) = shared() else {
        return;
    };
    let p = shared.join(
        "conformance/ddcc-ig/examples/QuestionnaireResponse-DDCCVSQuestionnaireResponseExample.json",
    );
    let mut response: Value =
        serde_json::from_slice(&std::fs::read(p).expect("example")).expect("json");
    let hcid = format!("audit-hcid-{:x}", fastrand::u64(..));
    let name = "Aulus Zephyrinus";
    let birth = "1987-06-05";
    let person_id = format!("pid-{:x}", fastrand::u64(..));
    set_answer(&mut response, "hcid", json!({"valueString": hcid}));
    set_answer(&mut response, "name", json!({"valueString": name}));
    set_answer(&mut response, "birthDate", json!({"valueDate": birth}));
    set_answer(
        &mut response,
        "identifier",
        json!({"valueString": person_id}),
    );
    let app = app(config("audit")).await;

    // Issue and register.
    let (s, b) = call(
        &app,
        "POST",
        "/fhir/QuestionnaireResponse/$generateHealthCertificate",
        Some(&response),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let master = json_of(&b)["identifier"]["value"]
        .as_str()
        .expect("identifier")
        .to_string();

    // ITI-67 by identifier, then by patient.
    let (s, b) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference?identifier={master}&status=current"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let docref = json_of(&b)["entry"][0]["resource"].clone();
    let binary = docref["content"][0]["attachment"]["url"]
        .as_str()
        .expect("attachment url")
        .to_string();
    // The document is stored as its Bundle; `Binary/{id}` is its byte view.
    let document = binary.replacen("Binary/", "Bundle/", 1);
    let patient = docref["subject"]["reference"]
        .as_str()
        .expect("subject")
        .to_string();
    let (s, _) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference?patient={patient}"),
        None,
    )
    .await;
    assert_eq!(s, 200);

    // ITI-68 of the stored document, and a read that fails.
    let (s, _) = call(&app, "GET", &format!("/fhir/{binary}"), None).await;
    assert_eq!(s, 200);
    let (s, _) = call(&app, "GET", "/fhir/Binary/no-such-binary", None).await;
    assert_eq!(s, 404);

    // Revoke.
    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "id", "valueString": master}]});
    let (s, b) = call(
        &app,
        "POST",
        "/fhir/Bundle/$revokeHealthCertificate",
        Some(&params),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));

    // The issuing event committed with the registration and names what it stored.
    let (s, b) = call(
        &app,
        "GET",
        "/fhir/AuditEvent?subtype=generateHealthCertificate",
        None,
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let issued = events(&json_of(&b));
    assert_eq!(issued.len(), 1, "{issued:?}");
    let e = &issued[0];
    assert!(has_subtype(e, "operation") && has_subtype(e, "generateHealthCertificate"));
    assert_eq!(e["outcome"], "0");
    assert_eq!(e["action"], "C");
    assert_eq!(e["type"]["code"], "rest");
    assert_eq!(e["agent"][0]["who"]["display"], CLIENT);
    assert_eq!(e["agent"][0]["requestor"], true);
    assert_eq!(e["agent"][0]["network"]["address"], "10.1.2.3");
    let touched = entities(e);
    assert!(touched.contains(&document), "{touched:?}");
    assert!(
        touched.iter().all(|r| !r.starts_with("urn:")),
        "transaction fullUrls resolved: {touched:?}"
    );
    assert!(
        e["entity"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| { x["what"]["identifier"]["value"] == OPENHIM_TX }),
        "the OpenHIM transaction id is recorded: {e}"
    );

    // Reads: the Binary (success) and the missing one (minor failure).
    let (_, b) = call(&app, "GET", "/fhir/AuditEvent?subtype=read&outcome=0", None).await;
    let reads = events(&json_of(&b));
    assert!(
        reads.iter().any(|e| entities(e).contains(&binary)),
        "{reads:?}"
    );
    let (_, b) = call(&app, "GET", "/fhir/AuditEvent?subtype=read&outcome=4", None).await;
    let failed = events(&json_of(&b));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(has_subtype(&failed[0], "read") && failed[0]["outcome"] == "4");
    assert_eq!(
        entities(&failed[0]),
        vec!["Binary/no-such-binary".to_string()]
    );

    // Searches: both ITI-67 queries, values of identifying parameters redacted.
    let (_, b) = call(&app, "GET", "/fhir/AuditEvent?subtype=search-type", None).await;
    let searches = events(&json_of(&b));
    let queries: Vec<&str> = searches
        .iter()
        .flat_map(|e| e["entity"].as_array().into_iter().flatten())
        .filter_map(|x| x["description"].as_str())
        .collect();
    assert!(
        queries.contains(&"identifier=***&status=current"),
        "{queries:?}"
    );
    assert!(queries.contains(&"patient=***"), "{queries:?}");

    // The revocation, with what it retired.
    let (_, b) = call(
        &app,
        "GET",
        "/fhir/AuditEvent?subtype=revokeHealthCertificate",
        None,
    )
    .await;
    let revoked = events(&json_of(&b));
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["outcome"], "0");
    assert_eq!(revoked[0]["action"], "D");
    let touched = entities(&revoked[0]);
    assert!(
        touched.contains(&format!(
            "DocumentReference/{}",
            docref["id"].as_str().unwrap_or("")
        )),
        "{touched:?}"
    );
    assert!(touched.contains(&document), "{touched:?}");

    // Date search finds them all; no event holds personal data.
    let (s, b) = call(
        &app,
        "GET",
        "/fhir/AuditEvent?date=ge2020-01-01&_count=1000",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let all = events(&json_of(&b));
    assert!(all.len() >= 8, "{} events", all.len());
    let text = String::from_utf8_lossy(&b).to_string();
    for secret in [name, "Zephyrinus", birth, hcid.as_str(), person_id.as_str()] {
        assert!(!text.contains(secret), "an AuditEvent carries `{secret}`");
    }
    let (_, b) = call(&app, "GET", "/fhir/AuditEvent?date=ge2999-01-01", None).await;
    assert_eq!(events(&json_of(&b)).len(), 0);
}

/// ITI-65: a committed transaction holds its event; one the store refuses leaves neither
/// its resources nor a success event, only a failure event.
#[actix_web::test]
async fn a_rolled_back_registration_leaves_no_success_event() {
    let app = app(config("audit")).await;
    let bundle = |subject: &str| {
        json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
                 "resource": {"resourceType": "List", "status": "current", "mode": "working",
                    "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
                    "entry": [{"item": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"}}]},
                 "request": {"method": "POST", "url": "List"}},
                {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
                 "resource": {"resourceType": "DocumentReference", "status": "current",
                    "subject": {"reference": subject},
                    "content": [{"attachment": {"contentType": "application/fhir+json", "url": "urn:uuid:00000000-0000-4000-8000-000000000003"}}]},
                 "request": {"method": "POST", "url": "DocumentReference"}},
                {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
                 "resource": {"resourceType": "Binary", "contentType": "application/fhir+json", "data": "e30="},
                 "request": {"method": "POST", "url": "Binary"}},
            ],
        })
    };
    // A reference to an entry that is not in the transaction: the store refuses the
    // whole transaction, the audit entry with it.
    let (s, b) = call(
        &app,
        "POST",
        "/fhir",
        Some(&bundle("urn:uuid:00000000-0000-4000-8000-0000000000ff")),
    )
    .await;
    assert!(
        (400..500).contains(&s),
        "{s} {}",
        String::from_utf8_lossy(&b)
    );
    let (_, b) = call(&app, "GET", "/fhir/AuditEvent?subtype=transaction", None).await;
    let tx_events = events(&json_of(&b));
    assert_eq!(tx_events.len(), 1, "only the failure: {tx_events:?}");
    assert_eq!(tx_events[0]["outcome"], "4");
    assert!(entities(&tx_events[0]).is_empty());
    let (_, b) = call(&app, "GET", "/fhir/List?code=submissionset", None).await;
    assert_eq!(json_of(&b)["total"], 0, "nothing of it stored");

    let (s, b) = call(
        &app,
        "POST",
        "/fhir",
        Some(&bundle("urn:uuid:00000000-0000-4000-8000-000000000001")),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let response = json_of(&b);
    assert_eq!(
        response["entry"].as_array().map(Vec::len),
        Some(3),
        "the audit entry is not part of the response"
    );
    let (_, b) = call(
        &app,
        "GET",
        "/fhir/AuditEvent?subtype=transaction&outcome=0",
        None,
    )
    .await;
    let ok = events(&json_of(&b));
    assert_eq!(ok.len(), 1, "{ok:?}");
    let mut touched = entities(&ok[0]);
    touched.sort();
    let mut locations: Vec<String> = response["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["response"]["location"].as_str().map(str::to_string))
        .collect();
    locations.sort();
    assert_eq!(touched, locations);

    // A plain create commits with its event too.
    let (s, _) = call(
        &app,
        "POST",
        "/fhir/Binary",
        Some(&json!({"resourceType": "Binary", "contentType": "text/plain", "data": "aGk="})),
    )
    .await;
    assert_eq!(s, 201);
    let (_, b) = call(
        &app,
        "GET",
        "/fhir/AuditEvent?subtype=create&outcome=0",
        None,
    )
    .await;
    let created = events(&json_of(&b));
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(entities(&created[0])[0].starts_with("Binary/"));
}

/// Submit Health Event through `POST /fhir`: one event per entry, committed with each
/// registration, and the refused entry recorded as a minor failure.
#[actix_web::test]
async fn submit_health_event_audits_each_entry() {
    let Some(shared) = shared() else {
        return;
    };
    let p = shared.join("conformance/ddcc-ig/examples/Bundle-DDCCTXSHEbundleexample1.json");
    let good: Value = serde_json::from_slice(&std::fs::read(p).expect("example")).expect("json");
    let mut mixed = good.clone();
    let first = mixed["entry"][0].clone();
    mixed["entry"] = json!([first, {
        "request": {"method": "POST", "url": "QuestionnaireResponse/$generateHealthCertificate"},
        "resource": {"resourceType": "Parameters"},
    }]);
    let app = app(config("audit")).await;
    let (s, b) = call(&app, "POST", "/fhir", Some(&mixed)).await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let (_, b) = call(
        &app,
        "GET",
        "/fhir/AuditEvent?subtype=submitHealthEvent",
        None,
    )
    .await;
    let mut outcomes: Vec<String> = events(&json_of(&b))
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, vec!["0", "4"]);
    let (_, b) = call(&app, "GET", "/fhir/AuditEvent?subtype=transaction", None).await;
    assert_eq!(events(&json_of(&b)).len(), 0, "a batch is not an ITI-65");
}
