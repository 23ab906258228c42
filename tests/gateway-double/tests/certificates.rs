//! DSC upload and delete (`/signerCertificate`, `/trustedCertificate`, contract
//! §6) and the trust lists that show them (§8, §9), scenario by scenario after
//! `features/dsc.feature`, `trusted_certificate.feature` and the legacy
//! `certificates.md`.

mod common;

use base64::Engine;
use common::*;
use gateway_double::pki;
use serde_json::{json, Value};

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

async fn upload_dsc(
    w: &World,
    tls: &gateway_double::Credentials,
    up: &gateway_double::Credentials,
    der: &[u8],
) -> Answer {
    send(cms_post(
        &w.client(Some(tls)),
        w.url("/signerCertificate"),
        "application/cms",
        cms(der, up).await,
    ))
    .await
}

async fn del(
    w: &World,
    tls: &gateway_double::Credentials,
    path: &str,
    up: &gateway_double::Credentials,
    der: &[u8],
) -> Answer {
    let client = w.client(Some(tls));
    let body = cms(der, up).await;
    if path.ends_with("/delete") {
        send(cms_post(&client, w.url(path), "application/cms", body)).await
    } else {
        send(cms_delete(&client, w.url(path), "application/cms", body)).await
    }
}

async fn get(w: &World, path: &str) -> Value {
    let a = send(w.client(Some(&w.b.tls)).get(w.url(path))).await;
    assert_eq!(a.status, 200, "{path}: {}", a.text);
    a.json()
}

fn has_cert(list: &Value, der: &[u8]) -> bool {
    let b = gateway_double::model::b64(der);
    list.as_array().unwrap().iter().any(|i| {
        i.get("certificate").and_then(Value::as_str) == Some(b.as_str())
            || i.get("rawData").and_then(Value::as_str) == Some(b.as_str())
    })
}

#[tokio::test]
async fn signer_certificate_upload_lists_and_deletes() {
    let Some(w) = world().await else {
        return;
    };
    let dsc = pki::dsc(&w.a.sca, "XA", "XA DSC 1").unwrap();
    let der = dsc.cert_der();
    let a = upload_dsc(&w, &w.a.tls, &w.a.up, &der).await;
    assert_eq!(a.status, 201, "{}", a.text);

    // /trustList/certificate, seen by B (§8: lists are not filtered by caller).
    let list = get(&w, "/trustList/certificate?group=DSC").await;
    let item = list.as_array().unwrap()[0].clone();
    assert_eq!(item["group"], "DSC");
    assert_eq!(item["country"], "XA");
    assert_eq!(item["domain"], "DCC");
    assert_eq!(item["kid"], gateway_double::model::kid(&der));
    assert_eq!(item["certificate"], gateway_double::model::b64(&der));
    assert!(item["properties"].is_null());
    assert!(item.get("thumbprint").is_none() && item.get("timestamp").is_none());
    // Its signature is the upload CMS re-packed as detached, by A's UP (§6.1, §8).
    let sig = b64d(item["signature"].as_str().unwrap());
    gateway_double::openssl::verify_detached_by(&sig, &der, &w.a.up.cert_pem())
        .await
        .expect("detached signature by the UP certificate");
    let s = gateway_double::openssl::inspect(&sig).await.unwrap();
    assert!(!s.content_attached);

    // Legacy /trustList: rawData, certificateType, thumbprint, sorted by kid.
    let legacy = get(&w, "/trustList").await;
    assert!(has_cert(&legacy, &der));
    let kids: Vec<&str> = legacy
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kid"].as_str().unwrap())
        .collect();
    let mut sorted = kids.clone();
    sorted.sort();
    assert_eq!(kids, sorted);
    let dsc_item = legacy
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["certificateType"] == "DSC")
        .unwrap();
    assert_eq!(
        dsc_item["thumbprint"],
        gateway_double::model::sha256_hex(&der)
    );
    assert_eq!(
        legacy.as_array().unwrap().len(),
        7,
        "2×(TLS, UP, CSCA) + 1 DSC"
    );
    let by_country = get(&w, "/trustList/dsc/xa").await;
    assert_eq!(by_country.as_array().unwrap().len(), 1);
    assert!(get(&w, "/trustList/DSC/XB")
        .await
        .as_array()
        .unwrap()
        .is_empty());

    // Twice: 409 (§6.1 step 6).
    let v = upload_dsc(&w, &w.a.tls, &w.a.up, &der)
        .await
        .assert_error(409, "0x002");
    assert_eq!(v["problem"], "You cant upload an existing certificate.");

    // B cannot delete it (country of the DSC ≠ caller).
    del(&w, &w.b.tls, "/signerCertificate", &w.b.up, &der)
        .await
        .assert_error(400, "0x007");
    assert_eq!(w.gw.signer_certificates().len(), 1);
    let ok = del(&w, &w.a.tls, "/signerCertificate", &w.a.up, &der).await;
    assert_eq!(ok.status, 204, "{}", ok.text);
    assert!(!has_cert(&get(&w, "/trustList").await, &der));
    del(&w, &w.a.tls, "/signerCertificate", &w.a.up, &der)
        .await
        .assert_error(404, "0x005");

    // The alternate delete endpoint.
    assert_eq!(upload_dsc(&w, &w.a.tls, &w.a.up, &der).await.status, 201);
    let ok = del(&w, &w.a.tls, "/signerCertificate/delete", &w.a.up, &der).await;
    assert_eq!(ok.status, 204, "{}", ok.text);
    assert!(w.gw.signer_certificates().is_empty());
}

#[tokio::test]
async fn signer_certificate_refusals() {
    let Some(w) = world().await else {
        return;
    };
    let dsc_a = pki::dsc(&w.a.sca, "XA", "XA DSC").unwrap().cert_der();
    // B uploads A's DSC signed with B's UP: country of origin (§6.1 step 4).
    upload_dsc(&w, &w.b.tls, &w.b.up, &dsc_a)
        .await
        .assert_error(400, "0x004");
    // B's TLS with A's UP: UP not onboarded for B (step 3).
    let v = upload_dsc(&w, &w.b.tls, &w.a.up, &dsc_a)
        .await
        .assert_error(400, "0x004");
    assert!(v["sendValue"].as_str().unwrap().contains("NationXA_TNP_UP"));
    // A DSC issued by a CSCA that is not onboarded (legacy "wrong CSCA").
    let rogue = pki::generate(pki::Profile::Sca, "XA").unwrap();
    let wrong = pki::dsc(&rogue, "XA", "XA DSC wrong CSCA")
        .unwrap()
        .cert_der();
    upload_dsc(&w, &w.a.tls, &w.a.up, &wrong)
        .await
        .assert_error(400, "0x004");
    // Payload not a certificate.
    let v = send(cms_post(
        &w.client(Some(&w.a.tls)),
        w.url("/signerCertificate"),
        "application/cms",
        cms(b"{}", &w.a.up).await,
    ))
    .await
    .assert_error(400, "0x402");
    assert_eq!(
        v["problem"],
        "CMS Message payload needs to be a DER encoded X509 certificate"
    );
    // Certificate endpoints take only application/cms (§4).
    let a = send(cms_post(
        &w.client(Some(&w.a.tls)),
        w.url("/signerCertificate"),
        "application/cms-text",
        cms(&dsc_a, &w.a.up).await,
    ))
    .await;
    assert_eq!(a.status, 415);
    // A broken signature: 0x009 on certificate endpoints.
    let mut der = gateway_double::openssl::sign(
        &dsc_a,
        &w.a.up.cert_pem(),
        &w.a.up.key_pem(),
        &Default::default(),
    )
    .await
    .unwrap();
    let pos = der
        .windows(dsc_a.len())
        .position(|x| x == dsc_a.as_slice())
        .unwrap();
    let last = pos + dsc_a.len() - 5;
    der[last] ^= 0x01;
    let v = send(cms_post(
        &w.client(Some(&w.a.tls)),
        w.url("/signerCertificate"),
        "application/cms",
        gateway_double::model::b64(&der),
    ))
    .await;
    // Flipping a byte of the DSC's own signature keeps it DER; the CMS digest fails.
    let v = v.assert_error(400, "0x009");
    assert_eq!(v["problem"], "Invalid CMS Signature");
    assert!(w.gw.signer_certificates().is_empty(), "nothing stored");
}

async fn upload_trusted(w: &World, body: Value) -> Answer {
    send(
        w.client(Some(&w.a.tls))
            .post(w.url("/trustedCertificate"))
            .header("Content-Type", "application/json")
            .body(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn trusted_certificate_groups_domains_and_kids() {
    let Some(w) = world().await else {
        return;
    };
    let dsc = pki::dsc(&w.a.sca, "XA", "XA DSC").unwrap().cert_der();
    let cms_text = cms(&dsc, &w.a.up).await;
    let a = upload_trusted(
        &w,
        json!({"cms": cms_text, "kid": "ABCDEFGH", "group": "DSC", "domain": "DCC", "properties": {}}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(has_cert(&get(&w, "/trustList").await, &dsc));
    let list = get(&w, "/trustList/certificate?group=DSC").await;
    assert_eq!(list[0]["kid"], "ABCDEFGH");
    assert_eq!(list[0]["properties"], json!({}));
    // Stored signature = the whole attached CMS as uploaded (§6.2).
    assert_eq!(list[0]["signature"], cms_text.as_str());
    // Same kid again (another certificate): 400; same certificate: 409.
    let other = pki::dsc(&w.a.sca, "XA", "XA DSC 2").unwrap().cert_der();
    upload_trusted(
        &w,
        json!({"cms": cms(&other, &w.a.up).await, "kid": "ABCDEFGH", "properties": {}}),
    )
    .await
    .assert_error(400, "0x004");
    upload_trusted(&w, json!({"cms": cms_text, "properties": {}}))
        .await
        .assert_error(409, "0x002");

    // IPS-PILGRIMAGE: only in the TNG list, not the legacy DCC list.
    let pilgrim = pki::dsc(&w.a.sca, "XA", "XA DSC IPS").unwrap().cert_der();
    let a = upload_trusted(
        &w,
        json!({"cms": cms(&pilgrim, &w.a.up).await, "domain": "IPS-PILGRIMAGE", "properties": {"purpose": "x"}}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(!has_cert(&get(&w, "/trustList").await, &pilgrim));
    assert!(has_cert(
        &get(&w, "/trustList/certificate?group=DSC").await,
        &pilgrim
    ));
    assert!(has_cert(
        &get(&w, "/trustList/certificate?domain=IPS-PILGRIMAGE").await,
        &pilgrim
    ));
    assert!(!has_cert(
        &get(&w, "/trustList/certificate?domain=DCC").await,
        &pilgrim
    ));

    // No kid: the standard kid (§9); no domain: DCC.
    let plain = pki::dsc(&w.a.sca, "XA", "XA DSC plain").unwrap().cert_der();
    assert_eq!(
        upload_trusted(
            &w,
            json!({"cms": cms(&plain, &w.a.up).await, "properties": {}})
        )
        .await
        .status,
        201
    );
    let l = get(&w, "/trustList/certificate?group=DSC&domain=DCC").await;
    let item = l
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["certificate"] == gateway_double::model::b64(&plain))
        .unwrap()
        .clone();
    assert_eq!(item["kid"], gateway_double::model::kid(&plain));
    assert_eq!(item["domain"], "DCC");

    // Refusals.
    let fresh = || pki::dsc(&w.a.sca, "XA", "XA DSC x").unwrap().cert_der();
    let c = cms(&fresh(), &w.a.up).await;
    upload_trusted(
        &w,
        json!({"cms": c, "group": "AUTHENTICATION", "properties": {}}),
    )
    .await
    .assert_error(400, "n/a");
    upload_trusted(&w, json!({"cms": c, "domain": "NOPE", "properties": {}}))
        .await
        .assert_error(400, "n/a");
    upload_trusted(&w, json!({"cms": c, "properties": {"colour": "red"}}))
        .await
        .assert_error(400, "n/a");
    // Quirk: properties missing → 500.
    upload_trusted(&w, json!({"cms": c}))
        .await
        .assert_error(500, "0x008");
    // B's DSC via A: country of origin.
    let dsc_b = pki::dsc(&w.b.sca, "XB", "XB DSC").unwrap().cert_der();
    upload_trusted(
        &w,
        json!({"cms": cms(&dsc_b, &w.a.up).await, "properties": {}}),
    )
    .await
    .assert_error(400, "0x004");
    let a = send(
        w.client(Some(&w.a.tls))
            .post(w.url("/trustedCertificate"))
            .header("Content-Type", "application/cms")
            .body(c.clone()),
    )
    .await;
    assert_eq!(a.status, 415);
    // SIGN is stored as DSC (hence also in /trustList: the @wip scenario).
    let a = upload_trusted(&w, json!({"cms": c, "group": "SIGN", "properties": {}})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(w.gw.signer_certificates().last().unwrap().group, "DSC");

    // DESC is checked against the country's DECA.
    let desc = pki::dsc(&w.a.sca, "XA", "XA DESC").unwrap().cert_der();
    upload_trusted(
        &w,
        json!({"cms": cms(&desc, &w.a.up).await, "group": "DESC", "properties": {}}),
    )
    .await
    .assert_error(400, "0x004");
    w.gw.onboard("XA", gateway_double::PartyType::Deca, &w.a.sca.cert_der())
        .await
        .unwrap();
    let a = upload_trusted(
        &w,
        json!({"cms": cms(&desc, &w.a.up).await, "group": "DESC", "properties": {}}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        get(&w, "/trustList/certificate?group=DESC")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Deleting through /trustedCertificate (DELETE and POST …/delete).
    let del = send(cms_delete(
        &w.client(Some(&w.a.tls)),
        w.url("/trustedCertificate"),
        "application/cms",
        cms(&desc, &w.a.up).await,
    ))
    .await;
    assert_eq!(del.status, 204, "{}", del.text);
    let del = send(cms_post(
        &w.client(Some(&w.a.tls)),
        w.url("/trustedCertificate/delete"),
        "application/cms",
        cms(&plain, &w.a.up).await,
    ))
    .await;
    assert_eq!(del.status, 204, "{}", del.text);
}

#[tokio::test]
async fn trust_list_types_countries_and_groups() {
    let Some(w) = world().await else {
        return;
    };
    for (t, n) in [
        ("UPLOAD", 2),
        ("upload", 2),
        ("CSCA", 2),
        ("AUTHENTICATION", 2),
        ("DSC", 0),
        ("TRUSTANCHOR", 0),
    ] {
        let l = get(&w, &format!("/trustList/{t}")).await;
        let items = l.as_array().unwrap();
        assert_eq!(items.len(), n, "{t}");
        assert!(items
            .iter()
            .all(|i| i["certificateType"] == t.to_uppercase()));
    }
    let l = get(&w, "/trustList/CSCA/xb").await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert_eq!(l[0]["country"], "XB");
    assert_eq!(
        l[0]["rawData"],
        gateway_double::model::b64(&w.b.sca.cert_der())
    );
    let c = w.client(Some(&w.a.tls));
    send(c.get(w.url("/trustList/FOO")))
        .await
        .assert_error(400, "0x001");
    send(c.get(w.url("/trustList/CSCA/XXB")))
        .await
        .assert_error(400, "0x001");
    // Quirk: DESC as a trusted-party type → 500.
    send(c.get(w.url("/trustList/DESC")))
        .await
        .assert_error(500, "0x008");

    // No filter: everything incl. TLS/UP/CSCA; filters are additive.
    assert_eq!(
        get(&w, "/trustList/certificate")
            .await
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        get(&w, "/trustList/certificate?group=UPLOAD,CSCA&country=XA")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        get(
            &w,
            "/trustList/certificate?group=UPLOAD&group=AUTHENTICATION"
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        4
    );
    // Each CSCA/UPLOAD entry carries the TA's detached signature over its DER.
    for item in get(&w, "/trustList/certificate?group=CSCA,UPLOAD")
        .await
        .as_array()
        .unwrap()
    {
        let der = b64d(item["certificate"].as_str().unwrap());
        let sig = b64d(item["signature"].as_str().unwrap());
        gateway_double::openssl::verify_detached_by(&sig, &der, w.gw.trust_anchor_pem())
            .await
            .expect("TA signature");
        assert_eq!(item["kid"], gateway_double::model::kid(&der));
    }
    let countries = get(&w, "/countrylist").await;
    assert_eq!(countries, json!(["XA", "XB"]));
}

#[tokio::test]
async fn trusted_issuers_are_signed_by_the_trust_anchor() {
    let Some(w) = world().await else {
        return;
    };
    w.gw.add_trusted_issuer(
        "XA",
        "Issuer A",
        "https://issuer.xa.example",
        "HTTP",
        "DCC",
        "MIIB",
        &"0".repeat(64),
    )
    .await
    .unwrap();
    w.gw.add_trusted_issuer(
        "XB",
        "Issuer B",
        "did:web:xb.example",
        "DID",
        "IPS-PILGRIMAGE",
        "",
        &"1".repeat(64),
    )
    .await
    .unwrap();
    let l = get(&w, "/trustList/issuers").await;
    assert_eq!(l.as_array().unwrap().len(), 2);
    let a = &l[0];
    for k in [
        "url",
        "type",
        "country",
        "thumbprint",
        "sslPublicKey",
        "keyStorageType",
        "signature",
        "timestamp",
        "name",
        "domain",
        "uuid",
    ] {
        assert!(a.get(k).is_some(), "{k}");
    }
    let sig = b64d(a["signature"].as_str().unwrap());
    gateway_double::openssl::verify_detached_by(
        &sig,
        b"XA;Issuer A;https://issuer.xa.example;HTTP",
        w.gw.trust_anchor_pem(),
    )
    .await
    .expect("TA signature over country;name;url;type");
    // No country/domain swap here (§5.4 note).
    assert_eq!(
        get(&w, "/trustList/issuers?country=XB")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&w, "/trustList/issuers?domain=DCC").await[0]["country"],
        "XA"
    );
    // Not onboarded → error (legacy issuer.md).
    send(w.client(Some(&w.c.tls)).get(w.url("/trustList/issuers")))
        .await
        .assert_error(401, "0x402");
}
