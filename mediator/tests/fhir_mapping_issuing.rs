//! The FHIR mapping and issuing routes, in-process with the real app, the real
//! catalogue (`fhir-profiles/`) and the local development signer: Matchbox-style
//! `$transform` and StructureMap upload; `$generateHealthCertificate` and Submit
//! Health Event, with every signature checked.

mod service;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use ddcc_cert::{bundle_sig, hc1, icao, shc, SigningIdentity};
use serde_json::{json, Value};
use service::{config, english_response, root, shared, start, Handles};

fn read(p: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

async fn post_json(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let req = TestRequest::post()
        .uri(path)
        .insert_header((CONTENT_TYPE, "application/fhir+json"))
        .set_payload(body.to_string())
        .to_request();
    let resp = test::call_service(app, req).await;
    let status = resp.status().as_u16();
    let bytes = test::read_body(resp).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Every QR payload in the document (who and dcc HC1, SMART Health Card, ICAO
/// VDS-NC) decodes and verifies with the DSC's key, and the Bundle signature
/// verifies over the JCS form of the Bundle.
fn check_signed_document(doc: &Value, identity: &SigningIdentity) -> Vec<String> {
    let mut problems = Vec::new();
    if doc["resourceType"] != "Bundle" || doc["type"] != "document" {
        problems.push("not a document Bundle".into());
    }
    if let Err(e) = bundle_sig::verify(doc, &identity.public_key) {
        problems.push(format!("Bundle.signature: {e}"));
    }
    let mut verified = Vec::new();
    for e in doc["entry"].as_array().into_iter().flatten() {
        let r = &e["resource"];
        if r["resourceType"] != "DocumentReference" {
            continue;
        }
        let serialized = r["content"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["format"]["code"] == "serialized")
            .and_then(|c| c["attachment"]["data"].as_str());
        let Some(data) = serialized else {
            problems.push("a QR DocumentReference without serialized content".into());
            continue;
        };
        use base64::Engine;
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
        .unwrap();
        let kind = r["type"]["coding"][0]["code"]
            .as_str()
            .or_else(|| r["category"][0]["coding"][0]["code"].as_str())
            .unwrap_or("?")
            .to_string();
        let result = match kind.as_str() {
            "who" | "dcc" => hc1::verify(&text, &identity.public_key).map(|_| ()),
            "shc" => shc::verify(&text, &identity.public_key).map(|_| ()),
            "icao" => serde_json::from_str(&text)
                .map_err(|e| ddcc_cert::CertError::InvalidInput(e.to_string()))
                .and_then(|v: Value| icao::verify(&v)),
            other => Err(ddcc_cert::CertError::InvalidInput(format!(
                "unknown QR kind {other}"
            ))),
        };
        match result {
            Ok(()) => verified.push(kind),
            Err(e) => problems.push(format!("{kind} does not verify: {e}")),
        }
    }
    verified.sort();
    if verified != ["dcc", "icao", "shc", "who"] {
        problems.push(format!(
            "expected who, dcc, shc and icao verified, got {verified:?}"
        ));
    }
    problems
}

#[actix_web::test]
async fn generate_for_both_editions_signs_everything() {
    let Some(qr) = english_response() else { return };
    let (app, Handles { identity, .. }) = start(config("issuing")).await;
    for (label, questionnaire) in [
        (
            "1.0.0",
            "http://smart.who.int/ddcc/DDCCVSCoreDataSetQuestionnaire",
        ),
        (
            "0.2.1",
            "http://worldhealthorganization.github.io/ddcc/DDCCVSCoreDataSetQuestionnaire",
        ),
    ] {
        let mut qr = qr.clone();
        qr["questionnaire"] = questionnaire.into();
        let params = json!({"resourceType": "Parameters", "parameter": [{"name": "response", "resource": qr}]});
        for (path, body) in [
            (
                "/fhir/QuestionnaireResponse/$generateHealthCertificate",
                &qr,
            ),
            ("/ddcc/generateHealthCertificate", &params),
        ] {
            let (status, doc) = post_json(&app, path, body).await;
            assert_eq!(status, 200, "{label} {path}: {doc}");
            let problems = check_signed_document(&doc, &identity);
            assert!(problems.is_empty(), "{label} {path}: {problems:?}");
        }
    }
}

#[actix_web::test]
async fn nonconforming_responses_get_422_naming_each_link_id() {
    let Some(mut qr) = english_response() else {
        return;
    };
    let (app, _) = start(config("issuing")).await;
    let items = qr["item"].as_array_mut().unwrap();
    items.retain(|i| i["linkId"] != "lot" && i["linkId"] != "pha");
    for i in items.iter_mut() {
        if i["linkId"] == "date" {
            i["answer"] = json!([{"valueDate": "2021-02-30"}]);
        }
    }
    let (status, outcome) = post_json(
        &app,
        "/fhir/QuestionnaireResponse/$generateHealthCertificate",
        &qr,
    )
    .await;
    assert_eq!(status, 422, "{outcome}");
    let text = outcome.to_string();
    for link in ["'lot'", "'pha'", "'date'"] {
        assert!(text.contains(link), "{link} not named in {text}");
    }
}

#[actix_web::test]
async fn refusals_are_operation_outcomes() {
    let Some(qr) = english_response() else { return };
    let (app, _) = start(config("issuing")).await;
    let mut unknown = qr.clone();
    unknown["questionnaire"] = "http://example.org/Questionnaire/other".into();
    for (what, body, want) in [
        (
            "Parameters without response",
            json!({"resourceType": "Parameters"}),
            422,
        ),
        ("a Patient", json!({"resourceType": "Patient"}), 422),
        ("no resourceType", json!({"a": 1}), 400),
        ("unknown Questionnaire", unknown, 422),
    ] {
        let (status, outcome) = post_json(
            &app,
            "/fhir/QuestionnaireResponse/$generateHealthCertificate",
            &body,
        )
        .await;
        assert_eq!(status, want, "{what}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{what}");
    }
}

#[actix_web::test]
async fn submit_health_event_answers_each_entry_in_order() {
    let Some(s) = shared() else { return };
    let (app, Handles { identity, .. }) = start(config("issuing")).await;
    let good = read(&s.join("conformance/ddcc-ig/examples/Bundle-DDCCTXSHEbundleexample1.json"));
    let mut mixed = good.clone();
    let first = mixed["entry"][0].clone();
    let mut broken = first.clone();
    broken["request"]["method"] = "PUT".into();
    mixed["entry"] = json!([first, broken, {"request": {"method": "POST", "url": "QuestionnaireResponse/$generateHealthCertificate"}, "resource": {"resourceType": "Parameters"}}]);

    let (status, resp) = post_json(&app, "/fhir/submitHealthEvent", &mixed).await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["type"], "batch-response");
    assert!(resp["identifier"]["value"].is_string());
    let statuses: Vec<&str> = resp["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 3);
    assert!(statuses[0].starts_with("201"), "{statuses:?}");
    assert!(
        statuses[1].starts_with("422") && statuses[2].starts_with("422"),
        "{statuses:?}"
    );
    assert!(check_signed_document(&resp["entry"][0]["resource"], &identity).is_empty());
    assert_eq!(
        resp["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );

    let (status, resp) = post_json(
        &app,
        "/ddcc/submitHealthEvent",
        &json!({"resourceType": "Bundle", "type": "batch"}),
    )
    .await;
    assert_eq!(status, 422, "{resp}");
}

#[actix_web::test]
async fn transform_like_matchbox() {
    let Some(qr) = english_response() else { return };
    let (app, _) = start(config("issuing")).await;
    let url = "/fhir/StructureMap/$transform?source=http://ddcc-mediator.org/fhir/StructureMap/QRespToDDCCCoreDataSetVS";
    let (status, cds) = post_json(&app, url, &qr).await;
    assert_eq!(status, 200, "{cds}");
    assert_eq!(cds["resourceType"], "DDCCCoreDataSet");
    assert_eq!(cds["vaccination"]["lot"], "ER8732");

    let (status, o) = post_json(&app, "/fhir/StructureMap/$transform", &qr).await;
    assert_eq!(status, 400, "{o}");
    let (status, o) = post_json(
        &app,
        "/fhir/StructureMap/$transform?source=http://example.org/nope",
        &qr,
    )
    .await;
    assert_eq!(status, 422, "{o}");
    assert!(o.to_string().contains("http://example.org/nope"));
}

#[actix_web::test]
async fn upload_fml_then_use_it() {
    let cfg = config("issuing");
    let (app, _) = start(cfg.clone()).await;
    let fml = r#"map "http://example.org/StructureMap/PatientName" = "PatientName"
uses "http://hl7.org/fhir/StructureDefinition/Patient" alias Patient as source
uses "http://hl7.org/fhir/StructureDefinition/Patient" alias Patient as target
group Copy(source src : Patient, target tgt : Patient) {
  src.birthDate as b -> tgt.birthDate = b "birthDate";
}
"#;
    let req = TestRequest::post()
        .uri("/fhir/StructureMap")
        .insert_header((CONTENT_TYPE, "text/fhir-mapping"))
        .set_payload(fml)
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 201);
    let sm: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert_eq!(sm["resourceType"], "StructureMap");

    let req = TestRequest::get()
        .uri("/fhir/StructureMap?url=http://example.org/StructureMap/PatientName")
        .to_request();
    let found: Value =
        serde_json::from_slice(&test::read_body(test::call_service(&app, req).await).await)
            .unwrap();
    assert_eq!(found["total"], 1);

    let (status, out) = post_json(
        &app,
        "/fhir/StructureMap/$transform?source=http://example.org/StructureMap/PatientName",
        &json!({"resourceType": "Patient", "birthDate": "2000-01-02"}),
    )
    .await;
    assert_eq!(
        (status, out["birthDate"].as_str()),
        (200, Some("2000-01-02")),
        "{out}"
    );

    // The upload survives a restart.
    let (app2, _) = start(cfg).await;
    let (status, _) = post_json(
        &app2,
        "/fhir/StructureMap/$transform?source=http://example.org/StructureMap/PatientName",
        &json!({"resourceType": "Patient", "birthDate": "2000-01-02"}),
    )
    .await;
    assert_eq!(status, 200);

    let req = TestRequest::post()
        .uri("/fhir/StructureMap")
        .insert_header((CONTENT_TYPE, "text/fhir-mapping"))
        .set_payload("map \"http://x\" = \"X\"\ngroup G(source s, target t) {\n  s -> t.a = ;\n}\n")
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 400);
    let o: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert!(
        o.to_string().contains("line ") && o.to_string().contains("column "),
        "{o}"
    );

    let ours =
        std::fs::read_to_string(root().join("fhir-profiles/maps/QRespToDDCCCoreDataSetVS.fml"))
            .unwrap();
    let req = TestRequest::post()
        .uri("/fhir/StructureMap")
        .insert_header((CONTENT_TYPE, "text/fhir-mapping"))
        .set_payload(ours)
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status().as_u16(), 409);
}

#[actix_web::test]
async fn dsc_is_served_for_verifiers() {
    let (app, Handles { identity, .. }) = start(config("issuing")).await;
    let req = TestRequest::get().uri("/ddcc/dsc").to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("x-ddcc-kid").unwrap().to_str().unwrap(),
        identity.kid_b64()
    );
    let pem = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    assert_eq!(pem, identity.dsc_pem());
}
