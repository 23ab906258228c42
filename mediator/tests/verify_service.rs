//! `POST /fhir/$verify-certificate` in-process: what the service issues verifies
//! against its own DSC; one flipped byte of signature, payload or kid fails with
//! that check named; malformed requests are 4xx OperationOutcomes.

mod service;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use base64::Engine as _;
use ddcc_cert::hc1::{self, CwtClaims, HcertPayload};
use ddcc_cert::SigningIdentity;
use serde_json::{json, Value};
use service::{config, shared, start, Handles};

/// A foreign DSC: the EU test-data certificate of `common/CBO1` (Apache-2.0).
const FOREIGN_DSC: &str = "MIIBWDCB/6ADAgECAgQoOO4mMAoGCCqGSM49BAMCMBAxDjAMBgNVBAMMBUVDLU1lMB4XDTIxMDUwMzE4MDAwMFoXDTIxMDYwMjE4MDAwMFowEDEOMAwGA1UEAwwFRUMtTWUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASmmHPDcFBhynWMVX7tRPSc9a3FjQAgp0Utr2frSj9CccB1cvyIxhrox6SS6Myimy/wo2UQC6kOhjY99X2bvk/8o0cwRTAOBgNVHQ8BAf8EBAMCBaAwMwYDVR0lBCwwKgYMKwYBBAEAjjePZQEBBgwrBgEEAQCON49lAQIGDCsGAQQBAI43j2UBAzAKBggqhkjOPQQDAgNIADBFAiEA4UzWpCFaQesRaO3F1CmZg8PH+Y4L7WThECwIjEP/CqwCIFropZnITB9zP/zsNUDKkisQtD4D7WiRyyzO97kXWXO1";

async fn post(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    path: &str,
    body: &str,
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

fn request(qr: &str, extra: &[Value]) -> String {
    let mut params = vec![json!({"name": "qr", "valueString": qr})];
    params.extend(extra.iter().cloned());
    json!({"resourceType": "Parameters", "parameter": params}).to_string()
}

fn param<'a>(answer: &'a Value, name: &str) -> Option<&'a Value> {
    answer["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

fn valid(answer: &Value) -> bool {
    param(answer, "valid").and_then(|p| p["valueBoolean"].as_bool()) == Some(true)
}

/// The check names of the error issues, from `details.text`.
fn failed_checks(answer: &Value) -> Vec<String> {
    param(answer, "issues")
        .and_then(|p| p["resource"]["issue"].as_array())
        .into_iter()
        .flatten()
        .filter(|i| i["severity"] == "error")
        .filter_map(|i| i["details"]["text"].as_str().map(str::to_string))
        .collect()
}

async fn issue_dcc(identity: &SigningIdentity, iat: i64, exp: i64) -> String {
    let dcc = json!({
        "ver": "1.3.0",
        "nam": {"fn": "Test", "fnt": "TEST", "gn": "Eve", "gnt": "EVE"},
        "dob": "1990-01-01",
        "v": [{"tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528", "ma": "ORG-100030215",
               "dn": 1, "sd": 2, "dt": "2021-06-01", "co": "XX", "is": "Test issuer",
               "ci": "URN:UVCI:01:XX:TEST"}]
    });
    let claims = CwtClaims {
        iss: "XX".into(),
        iat,
        exp,
    };
    hc1::issue(&HcertPayload::Dcc(dcc), &claims, identity)
        .await
        .expect("issue")
}

/// The three tamperings of the acceptance criteria, each with the check it must fail.
fn tampered(hc1_text: &str) -> Vec<(&'static str, String, &'static str)> {
    use coset::{CborSerializable, TaggedCborSerializable};
    let cose = hc1::unpack(hc1_text).expect("unpack");
    let parse = || {
        coset::CoseSign1::from_tagged_slice(&cose)
            .or_else(|_| coset::CoseSign1::from_slice(&cose))
            .expect("COSE")
    };
    let mut out = Vec::new();

    let mut s = parse();
    s.signature[10] ^= 0x01;
    out.push((
        "signature byte",
        hc1::pack(&s.to_tagged_vec().expect("cose")),
        "signature",
    ));

    let mut s = parse();
    if let Some(p) = s.payload.as_mut() {
        // Inside the last text string (the UVCI): the CBOR stays well-formed.
        let last = p.len() - 1;
        p[last] ^= 0x01;
    }
    out.push((
        "payload byte",
        hc1::pack(&s.to_tagged_vec().expect("cose")),
        "signature",
    ));

    let mut s = parse();
    let mut kid = s.protected.header.key_id.clone();
    if let Some(b) = kid.first_mut() {
        *b ^= 0x01;
    }
    s.protected.header.key_id = kid;
    s.protected.original_data = None;
    out.push((
        "kid byte",
        hc1::pack(&s.to_tagged_vec().expect("cose")),
        "unknown-signer",
    ));
    out
}

#[actix_web::test]
async fn own_certificates_verify_and_tampering_names_the_check() {
    let (app, Handles { identity, .. }) = start(config("verify")).await;
    let now = 1_800_000_000;
    let text = issue_dcc(&identity, now - 60, now + 86_400).await;
    let at = json!({"name": "validationTime", "valueDateTime": ddcc_cert::rfc3339_utc(now)});

    for path in ["/fhir/$verify-certificate", "/ddcc/verify"] {
        let (status, answer) = post(&app, path, &request(&text, std::slice::from_ref(&at))).await;
        assert_eq!(status, 200, "{answer}");
        assert!(valid(&answer), "{answer}");
        assert_eq!(
            param(&answer, "kid").and_then(|p| p["valueString"].as_str()),
            Some(identity.kid_b64().as_str())
        );
        let payload: Value = serde_json::from_str(
            param(&answer, "payload")
                .and_then(|p| p["valueString"].as_str())
                .expect("payload"),
        )
        .expect("payload JSON");
        assert_eq!(payload["v"][0]["ci"], "URN:UVCI:01:XX:TEST");
        assert!(failed_checks(&answer).is_empty());
    }

    for (what, bad, check) in tampered(&text) {
        let (status, answer) = post(
            &app,
            "/fhir/$verify-certificate",
            &request(&bad, std::slice::from_ref(&at)),
        )
        .await;
        assert_eq!(status, 200, "{what}: {answer}");
        assert!(!valid(&answer), "{what} still verifies");
        assert!(
            failed_checks(&answer).iter().any(|c| c == check),
            "{what}: expected {check}, got {:?}",
            failed_checks(&answer)
        );
    }

    // Clock outside iat..exp.
    let late =
        json!({"name": "validationTime", "valueInstant": ddcc_cert::rfc3339_utc(now + 2 * 86_400)});
    let (_, answer) = post(&app, "/ddcc/verify", &request(&text, &[late])).await;
    assert_eq!(failed_checks(&answer), ["expired"]);
    // Before iat but inside the DSC's validity (a clock before the DSC would also
    // fail dsc-validity).
    let before_iat = ddcc_cert::rfc3339_utc(now - 3600).replace('Z', "+00:00");
    let early = json!({"name": "validationTime", "valueDateTime": before_iat});
    let (_, answer) = post(&app, "/ddcc/verify", &request(&text, &[early])).await;
    assert_eq!(failed_checks(&answer), ["not-yet-valid"]);
}

#[actix_web::test]
async fn trusted_certificates_replace_the_default_trust() {
    let (app, Handles { identity, .. }) = start(config("verify")).await;
    let now = 1_800_000_000;
    let text = issue_dcc(&identity, now - 60, now + 60).await;
    let at = json!({"name": "validationTime", "valueDateTime": ddcc_cert::rfc3339_utc(now)});
    let der_b64 = base64::engine::general_purpose::STANDARD.encode(&identity.dsc_der);
    for cert in [identity.dsc_pem(), der_b64] {
        let trusted = json!({"name": "trustedCertificate", "valueString": cert});
        let (status, answer) = post(
            &app,
            "/fhir/$verify-certificate",
            &request(&text, &[at.clone(), trusted]),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(valid(&answer), "{answer}");
    }
    let foreign = json!({"name": "trustedCertificate", "valueString": FOREIGN_DSC});
    let (_, answer) = post(
        &app,
        "/fhir/$verify-certificate",
        &request(&text, &[at, foreign]),
    )
    .await;
    assert_eq!(failed_checks(&answer), ["unknown-signer"]);
}

/// A SMART Health Card verifies against a `trustedJwks` (the issuer's
/// `/.well-known/jwks.json`), a requested rule the engine does not know is a warning
/// and an `error` part (never a pass), and a JWKS that is not JSON is a 422.
#[actix_web::test]
async fn shc_against_a_trusted_jwks_and_the_rules_hook() {
    let (app, Handles { identity, .. }) = start(config("verify")).await;
    let now = ddcc_mediator::now_unix();
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "name": [{"text": "Eve Test"}], "birthDate": "1990-01-01"}},
        {"fullUrl": "urn:uuid:i", "resource": {"resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XM0GQ8"}]},
            "patient": {"reference": "urn:uuid:p"}, "occurrenceDateTime": "2021-06-01"}}
    ]});
    let card = ddcc_cert::shc::issue(&bundle, "https://issuer.example.org", now - 60, &identity)
        .await
        .expect("shc");
    let jwks = ddcc_cert::shc::jwks(&[&identity])
        .expect("jwks")
        .to_string();
    let rule = json!({"name": "rule", "valueCanonical": "http://example.org/Library/DDCCPass"});
    let (status, answer) = post(
        &app,
        "/fhir/$verify-certificate",
        &request(
            &card.qr_numeric,
            &[json!({"name": "trustedJwks", "valueString": jwks}), rule],
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(valid(&answer), "{answer}");
    assert_eq!(
        param(&answer, "format").map(|p| &p["valueCode"]),
        Some(&json!("shc"))
    );
    let cds = &param(&answer, "coreDataSet").expect("coreDataSet")["resource"];
    assert_eq!(cds["entry"][0]["resource"]["name"], "Eve Test");
    let notes: Vec<&str> = param(&answer, "issues").expect("issues")["resource"]["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["severity"] == "warning")
        .filter_map(|i| i["diagnostics"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no rule with canonical http://example.org/Library/DDCCPass")),
        "{answer}"
    );
    let verdicts = rule_verdicts(&answer);
    assert_eq!(verdicts.len(), 1, "{answer}");
    assert_eq!(verdicts[0].1, None, "an unknown rule never passes");

    // A foreign JWKS does not vouch for our card.
    let foreign = json!({"keys": [{"kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    let (_, answer) = post(
        &app,
        "/fhir/$verify-certificate",
        &request(
            &card.qr_numeric,
            &[json!({"name": "trustedJwks", "valueString": foreign.to_string()})],
        ),
    )
    .await;
    assert_eq!(failed_checks(&answer), ["unknown-signer"]);

    let (status, answer) = post(
        &app,
        "/fhir/$verify-certificate",
        &request(
            &card.qr_numeric,
            &[json!({"name": "trustedJwks", "valueString": "{"})],
        ),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
}

#[actix_web::test]
async fn malformed_requests_and_inputs_never_500() {
    let (app, _) = start(config("verify")).await;
    for (body, status) in [
        ("not json", 400),
        ("[]", 400),
        (r#"{"resourceType": "Patient"}"#, 400),
        (r#"{"resourceType": "Parameters"}"#, 422),
        (
            r#"{"resourceType": "Parameters", "parameter": [{"name": "qr", "valueInteger": 1}]}"#,
            422,
        ),
        (
            &request(
                "HC1:",
                &[json!({"name": "validationTime", "valueDateTime": "yesterday"})],
            ),
            422,
        ),
        (
            &request(
                "HC1:",
                &[json!({"name": "trustedCertificate", "valueString": "not a certificate"})],
            ),
            422,
        ),
        (
            &request(
                "HC1:",
                &[json!({"name": "trustedCertificate", "valueString": "AAAA"})],
            ),
            422,
        ),
    ] {
        let (got, answer) = post(&app, "/fhir/$verify-certificate", body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["resourceType"], "OperationOutcome", "{body}");
    }
    // Garbage of every layer is a verdict, not an HTTP error.
    for (qr, check) in [
        ("", "prefix"),
        ("shc:/5676290952432060346029243740446031222959532654603460292540772804336028702864716745222809286133314564376531415906402203064504590856435503414245413640370636654171372412363803043756220467374075323239254334433260573601064529315312707424283950386922127667105845", "jws"),
        ("shc:/567", "numeric"),
        ("shc:/99", "numeric"),
        ("shc:/1/2/5676", "numeric"),
        ("shc:/56762909", "jws"),
        ("{", "json"),
        ("{}", "structure"),
        (r#"{"data": {"hdr": {"t": "icao.vacc", "v": 1, "is": "UTO"}, "msg": {}}, "sig": {"alg": "ES256", "cer": "AAAA", "sigvl": "AAAA"}}"#, "certificate"),
        ("XYZ:abc", "prefix"),
        ("HC1:::::", "base45"),
        ("HC1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDE", "decompression"),
    ] {
        let (status, answer) = post(&app, "/ddcc/verify", &request(qr, &[])).await;
        assert_eq!(status, 200, "{qr}: {answer}");
        assert!(!valid(&answer));
        assert!(
            failed_checks(&answer).iter().any(|c| c == check),
            "{qr}: expected {check}, got {answer}"
        );
    }
}

fn serialized(r: &Value) -> Option<String> {
    let data = r["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["format"]["code"] == "serialized")
        .and_then(|c| c["attachment"]["data"].as_str())?;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?,
    )
    .ok()
}

/// The QR payloads of an issued document, by kind (`who`, `dcc`, `shc`, `icao`).
fn qr_payloads(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in doc["entry"].as_array().into_iter().flatten() {
        let r = &e["resource"];
        if r["resourceType"] != "DocumentReference" {
            continue;
        }
        let kind = r["type"]["coding"][0]["code"]
            .as_str()
            .or_else(|| r["category"][0]["coding"][0]["code"].as_str())
            .unwrap_or("?")
            .to_string();
        if let Some(text) = serialized(r) {
            out.push((kind, text));
        }
    }
    out.sort();
    out
}

/// The fields a verifier compares, from one core data set (a `vaccination` object
/// or the first of a list). Codes are compared as `system|code`.
fn key_fields(cds: &Value) -> Vec<(&'static str, Option<String>)> {
    let v = match &cds["vaccination"] {
        Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let text = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    vec![
        ("name", text(&cds["name"])),
        ("birthDate", text(&cds["birthDate"])),
        (
            "vaccine",
            v["vaccine"]["code"]
                .as_str()
                .map(|c| format!("{}|{c}", v["vaccine"]["system"].as_str().unwrap_or(""))),
        ),
        ("dose", text(&v["dose"])),
        (
            "date",
            text(&v["date"]).map(|d| d.chars().take(10).collect()),
        ),
    ]
}

/// Everything `$generateHealthCertificate` puts in a document's QR codes (`who`,
/// `dcc`, `shc`, `icao`) verifies with the default trust, maps back to the core data
/// set it was issued from, and fails with the right check when tampered; revoking
/// the certificate makes its EU DCC fail `revocation`.
#[actix_web::test]
async fn issued_documents_verify() {
    let Some(shared) = shared() else { return };
    let example = shared.join(
        "conformance/ddcc-ig/examples/QuestionnaireResponse-DDCCVSQuestionnaireResponseExample.json",
    );
    let qr: Value =
        serde_json::from_slice(&std::fs::read(example).expect("example")).expect("json");
    let (app, _) = start(config("verify")).await;
    let (status, doc) = post(
        &app,
        "/fhir/QuestionnaireResponse/$generateHealthCertificate",
        &qr.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    let payloads = qr_payloads(&doc);
    let kinds: Vec<&str> = payloads.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["dcc", "icao", "shc", "who"]);

    // The WHO payload is the core data set the certificate was issued from.
    let who_text = &payloads.iter().find(|(k, _)| k == "who").expect("who").1;
    let (_, answer) = post(&app, "/fhir/$verify-certificate", &request(who_text, &[])).await;
    let issued_cds: Value = serde_json::from_str(
        param(&answer, "payload")
            .and_then(|p| p["valueString"].as_str())
            .expect("payload"),
    )
    .expect("json");
    let want = key_fields(&issued_cds);

    // What an encoding cannot carry, or carries in another code system, with why.
    let dcc_payload: Value = {
        let text = &payloads.iter().find(|(k, _)| k == "dcc").expect("dcc").1;
        let (_, answer) = post(&app, "/fhir/$verify-certificate", &request(text, &[])).await;
        serde_json::from_str(
            param(&answer, "payload")
                .and_then(|p| p["valueString"].as_str())
                .expect("payload"),
        )
        .expect("json")
    };
    let known: Vec<(&str, &str, Option<String>, &str)> = vec![
        (
            "dcc",
            "vaccine",
            dcc_payload["v"][0]["vp"].as_str().map(|vp| {
                format!("https://ec.europa.eu/health/documents/community-register/html/|{vp}")
            }),
            "the EU DCC carries the vaccine type as the SNOMED `vp` value set, which the IG map copies",
        ),
        (
            "shc",
            "dose",
            None,
            "a SMART Health Card Immunization has no protocolApplied (SHC data minimisation)",
        ),
    ];

    let mut diffs = Vec::new();
    let mut compared = 0;
    for (kind, text) in &payloads {
        // Issued just now: the default clock (now) is inside iat..exp.
        let (status, answer) = post(&app, "/fhir/$verify-certificate", &request(text, &[])).await;
        assert_eq!(status, 200, "{kind}: {answer}");
        assert!(valid(&answer), "{kind}: {answer}");
        let Some(bundle) = param(&answer, "coreDataSet").map(|p| p["resource"].clone()) else {
            diffs.push(format!("{kind}: no coreDataSet in {answer}"));
            continue;
        };
        let first = bundle["entry"][0]["resource"].clone();
        for ((field, issued), (_, mapped)) in want.iter().zip(key_fields(&first)) {
            compared += 1;
            let expected = known
                .iter()
                .find(|(k, f, _, _)| k == kind && f == field)
                .map(|(_, _, v, _)| v.clone())
                .unwrap_or_else(|| issued.clone());
            if mapped != expected {
                diffs.push(format!(
                    "{kind} {field}: issued {issued:?}, expected {expected:?}, mapped {mapped:?}"
                ));
            }
        }
        for (what, bad, check) in tamper_any(kind, text) {
            let (_, answer) = post(&app, "/fhir/$verify-certificate", &request(&bad, &[])).await;
            if valid(&answer) || !failed_checks(&answer).iter().any(|c| c == check) {
                diffs.push(format!(
                    "{kind} {what}: expected {check}, got {:?}",
                    failed_checks(&answer)
                ));
            }
        }
    }
    println!(
        "{} key fields compared over {} encodings ({} known differences: {}); {} differences",
        compared,
        payloads.len(),
        known.len(),
        known
            .iter()
            .map(|k| format!("{} {}: {}", k.0, k.1, k.3))
            .collect::<Vec<_>>()
            .join("; "),
        diffs.len()
    );
    assert!(diffs.is_empty(), "{diffs:#?}");

    // Revoke: the EU DCC now fails `revocation` (the registry recorded its hashes).
    let master = doc["identifier"]["value"].as_str().expect("identifier");
    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "id", "valueString": master}]});
    let (status, answer) = post(
        &app,
        "/fhir/Bundle/$revokeHealthCertificate",
        &params.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let dcc_text = &payloads.iter().find(|(k, _)| k == "dcc").expect("dcc").1;
    let (_, answer) = post(&app, "/fhir/$verify-certificate", &request(dcc_text, &[])).await;
    assert!(!valid(&answer), "{answer}");
    assert_eq!(failed_checks(&answer), ["revocation"]);
    // The signer is still named: genuine, but revoked.
    assert!(param(&answer, "signerSubject").is_some());
}

/// One flipped byte of signature, payload or kid for any of the four encodings,
/// with the check it must fail.
fn tamper_any(kind: &str, text: &str) -> Vec<(&'static str, String, &'static str)> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    match kind {
        "who" | "dcc" => tampered(text),
        "shc" => {
            let jws = ddcc_cert::shc::numeric_decode(text).expect("numeric");
            let parts: Vec<String> = jws.split('.').map(str::to_string).collect();
            let flip_part = |i: usize| {
                let mut p = parts.clone();
                let mut bytes = B64.decode(&p[i]).expect("b64");
                let at = bytes.len() / 2;
                bytes[at] ^= 0x01;
                p[i] = B64.encode(bytes);
                ddcc_cert::shc::numeric_encode(&p.join(".")).expect("numeric")
            };
            let mut header: Value =
                serde_json::from_slice(&B64.decode(&parts[0]).expect("b64")).expect("header");
            let mut kid = header["kid"].as_str().expect("kid").as_bytes().to_vec();
            kid[0] ^= 0x01;
            header["kid"] = Value::String(String::from_utf8(kid).expect("ascii"));
            let mut p = parts.clone();
            p[0] = B64.encode(header.to_string());
            vec![
                ("signature byte", flip_part(2), "signature"),
                ("payload byte", flip_part(1), "signature"),
                (
                    "kid byte",
                    ddcc_cert::shc::numeric_encode(&p.join(".")).expect("numeric"),
                    "unknown-signer",
                ),
            ]
        }
        "icao" => {
            let seal: Value = serde_json::from_str(text).expect("json");
            let flip_sig = |field: &str| {
                let mut s = seal.clone();
                let mut bytes = B64
                    .decode(s["sig"][field].as_str().expect("b64"))
                    .expect("b64");
                let at = bytes.len() - 1;
                bytes[at] ^= 0x01;
                s["sig"][field] = Value::String(B64.encode(bytes));
                s.to_string()
            };
            let mut data = seal.clone();
            let name = data["data"]["msg"]["pid"]["n"]
                .as_str()
                .expect("name")
                .to_string();
            let mut bytes = name.into_bytes();
            bytes[0] ^= 0x01;
            data["data"]["msg"]["pid"]["n"] =
                Value::String(String::from_utf8(bytes).expect("utf8"));
            vec![
                ("signature byte", flip_sig("sigvl"), "signature"),
                ("payload byte", data.to_string(), "signature"),
                // The signer certificate stands in for the kid in a VDS-NC.
                ("certificate byte", flip_sig("cer"), "unknown-signer"),
            ]
        }
        other => panic!("unexpected QR kind {other}"),
    }
}

/// The IG's English example (stored with the tests, so this runs without ../shared).
fn english_example() -> Value {
    let p = service::root().join("mediator/tests/data/QuestionnaireResponse-DDCCVS-English.json");
    serde_json::from_slice(&std::fs::read(p).expect("example")).expect("json")
}

fn rule_verdicts(answer: &Value) -> Vec<(String, Option<bool>, String)> {
    answer["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "ruleResult")
        .map(|p| {
            let part = |n: &str| {
                p["part"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|x| x["name"] == n)
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            (
                part("rule")["valueCanonical"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                part("passed")["valueBoolean"].as_bool(),
                format!(
                    "{}{}",
                    part("message")["valueString"],
                    part("error")["valueString"]
                ),
            )
        })
        .collect()
}

/// The CQL rules of `cql/`, bound by the PlanDefinitions, run on what a verified
/// certificate says: the IG example records dose 1 of 2, so "any dose" passes and
/// "full series" does not; an unknown rule is an error, not a pass.
#[actix_web::test]
async fn rules_from_cql_run_on_the_verified_certificate() {
    let (app, _) = start(config("verify-rules")).await;
    let (status, doc) = post(
        &app,
        "/fhir/QuestionnaireResponse/$generateHealthCertificate",
        &english_example().to_string(),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    let payloads = qr_payloads(&doc);
    let who = &payloads.iter().find(|(k, _)| k == "who").expect("who").1;
    let rules = [
        "http://ddcc-mediator.org/fhir/PlanDefinition/venue-any-dose",
        "http://ddcc-mediator.org/fhir/PlanDefinition/travel-full-series",
        "http://example.org/PlanDefinition/unknown",
    ];
    let extra: Vec<Value> = rules
        .iter()
        .map(|r| json!({"name": "rule", "valueCanonical": r}))
        .collect();
    let (status, answer) = post(&app, "/fhir/$verify-certificate", &request(who, &extra)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(valid(&answer), "{answer}");
    let verdicts = rule_verdicts(&answer);
    assert_eq!(verdicts.len(), 3, "{answer}");
    assert_eq!(verdicts[0].1, Some(true), "venue: {:?}", verdicts[0]);
    assert!(verdicts[0].2.contains("AnyDosePass"), "{:?}", verdicts[0]);
    assert_eq!(verdicts[1].1, Some(false), "travel: {:?}", verdicts[1]);
    assert!(verdicts[1].2.contains("DDCCPass"), "{:?}", verdicts[1]);
    assert_eq!(verdicts[2].1, None, "unknown rule: {:?}", verdicts[2]);
    assert!(
        !verdicts[2].2.is_empty(),
        "the unknown rule names its error"
    );
}

/// Without `trustedCertificate`, the DSCs and revocation hashes the trust-network sync
/// verified and stored are trusted beside our own DSC: a foreign issuer's certificate
/// fails before its DSC is synced and passes after.
#[actix_web::test]
async fn synced_trust_list_verifies_foreign_certificates() {
    let (app, handles) = start(config("verify-synced")).await;
    let foreign_dir = std::env::temp_dir().join(format!(
        "ddcc-foreign-issuer-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let foreign =
        ddcc_cert::local::LocalSigner::load_or_create(&foreign_dir, "XB").expect("foreign issuer");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let text = issue_dcc(&foreign, now - 60, now + 86_400).await;

    let (_, before) = post(&app, "/fhir/$verify-certificate", &request(&text, &[])).await;
    assert!(!valid(&before), "unknown issuer must not verify: {before}");

    let gw = handles.registry.store.gateway().expect("gateway store");
    let der = foreign.dsc_der.clone();
    use sha2::Digest as _;
    gw.trust_list_replace(vec![ddcc_store::gateway::TrustEntry {
        group: "DSC".into(),
        country: "XB".into(),
        domain: "DCC".into(),
        thumbprint: hex::encode(sha2::Sha256::digest(&der)),
        kid: foreign.kid_b64(),
        der,
    }])
    .await
    .expect("store the synced list");
    let (_, after) = post(&app, "/fhir/$verify-certificate", &request(&text, &[])).await;
    assert!(valid(&after), "synced DSC trusted: {after}");
    // Our own certificates still verify beside the synced list.
    let own = issue_dcc(&handles.identity, now - 60, now + 86_400).await;
    let (_, own_answer) = post(&app, "/fhir/$verify-certificate", &request(&own, &[])).await;
    assert!(valid(&own_answer), "{own_answer}");
    let _ = std::fs::remove_dir_all(&foreign_dir);
}
