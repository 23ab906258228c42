//! Trusted references (contract §5) through real mTLS, with CMS bodies made by
//! the `openssl cms -sign` command.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn upload_list_read_update_delete() {
    let Some(w) = world().await else {
        return;
    };
    let client = w.client(Some(&w.a.tls));
    let r = reference("XA");
    let up = send(cms_post(
        &client,
        w.url("/trust/reference"),
        "application/cms",
        cms(r.to_string().as_bytes(), &w.a.up).await,
    ))
    .await;
    assert_eq!(up.status, 201, "{}", up.text);
    assert!(up.text.is_empty(), "201 has an empty body");
    assert!(up.headers.get("location").is_none());

    let items = list(&w, &w.a.tls).await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    for (k, v) in r.as_object().unwrap() {
        if k != "version" {
            assert_eq!(&item[k], v, "field {k}");
        }
    }
    assert_eq!(item["version"], 1);
    assert!(item.get("signature").is_none(), "§5.4: no signature");
    assert!(item.get("sourceGateway").is_none());
    let uuid = item["uuid"].as_str().unwrap().to_string();
    assert_eq!(w.gw.references()[0].uuid, uuid);

    let one = send(client.get(w.url(&format!("/trust/reference/{uuid}")))).await;
    assert_eq!(one.status, 200);
    assert_eq!(&one.json(), item);

    // Update: same uuid, new thumbprint and version, content type cms-text.
    let mut changed = r.clone();
    changed["uuid"] = json!(uuid);
    changed["thumbprint"] = json!("ab".repeat(32));
    changed["referenceVersion"] = json!("1.4.0");
    let upd = send(cms_post(
        &client,
        w.url("/trust/reference"),
        "application/cms-text",
        cms(changed.to_string().as_bytes(), &w.a.up).await,
    ))
    .await;
    assert_eq!(upd.status, 201, "{}", upd.text);
    let items = list(&w, &w.a.tls).await;
    assert_eq!(items.len(), 1, "an update does not add a record");
    assert_eq!(items[0]["uuid"], uuid.as_str());
    assert_eq!(items[0]["thumbprint"], "ab".repeat(32));
    assert_eq!(items[0]["referenceVersion"], "1.4.0");

    // B sees A's record; lists are not filtered by caller.
    assert_eq!(list(&w, &w.b.tls).await.len(), 1);

    let del = send(cms_delete(
        &client,
        w.url("/trust/reference"),
        "application/cms",
        cms(json!({ "uuid": uuid }).to_string().as_bytes(), &w.a.up).await,
    ))
    .await;
    assert_eq!(del.status, 204, "{}", del.text);
    assert!(list(&w, &w.a.tls).await.is_empty());
    assert!(w.gw.references().is_empty());

    // Deleting again: 404; reading the deleted uuid: 400 (§5.3 quirk).
    let again = send(cms_delete(
        &client,
        w.url("/trust/reference"),
        "application/cms",
        cms(json!({ "uuid": uuid }).to_string().as_bytes(), &w.a.up).await,
    ))
    .await;
    again.assert_error(404, "0x000");
    let gone = send(client.get(w.url(&format!("/trust/reference/{uuid}")))).await;
    let v = gone.assert_error(400, "0x000");
    assert_eq!(v["problem"], "Requested Entity could not be found");
    let bad = send(client.get(w.url("/trust/reference/NOT-A-UUID"))).await;
    bad.assert_error(400, "0x001");
}

#[tokio::test]
async fn list_filters_swap_country_and_domain() {
    let Some(w) = world().await else {
        return;
    };
    for (keys, domain, kind, sig) in [
        (&w.a, "DCC", "DCC", "CMS"),
        (&w.a, "SHC", "FHIR", "NONE"),
        (&w.b, "ICAO", "FHIR", "JWS"),
    ] {
        let mut r = reference(&keys.country);
        r["domain"] = json!(domain);
        r["type"] = json!(kind);
        r["signatureType"] = json!(sig);
        let a = send(cms_post(
            &w.client(Some(&keys.tls)),
            w.url("/trust/reference"),
            "application/cms",
            cms(r.to_string().as_bytes(), &keys.up).await,
        ))
        .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let client = w.client(Some(&w.a.tls));
    let count = |q: &'static str| {
        let client = client.clone();
        let url = w.url(&format!("/trustList/references?{q}"));
        async move {
            let a = send(client.get(url)).await;
            assert_eq!(a.status, 200, "{q}: {}", a.text);
            a.json().as_array().unwrap().len()
        }
    };
    // §5.4 quirk: `country` is matched against the domain and vice versa.
    assert_eq!(count("country=XA").await, 0);
    assert_eq!(count("domain=XA").await, 2);
    assert_eq!(count("country=SHC").await, 1);
    assert_eq!(count("country=SHC,ICAO").await, 2);
    assert_eq!(count("country=SHC&country=DCC").await, 2);
    assert_eq!(count("domain=XA&country=SHC").await, 1);
    assert_eq!(count("referenceType=FHIR").await, 2);
    // Values that are not enum constants are dropped; all invalid = no filter.
    assert_eq!(count("referenceType=FHIR,BOGUS").await, 2);
    assert_eq!(count("referenceType=BOGUS").await, 3);
    assert_eq!(count("signatureType=JWS").await, 1);
    assert_eq!(count("signatureType=nope").await, 3);
    assert_eq!(count("withFederation=false").await, 3);
}

#[tokio::test]
async fn upload_checks_in_contract_order() {
    let Some(w) = world().await else {
        return;
    };
    let client = w.client(Some(&w.a.tls));
    let post = |ct: &'static str, body: String| {
        send(cms_post(&client, w.url("/trust/reference"), ct, body))
    };
    let r = reference("XA");
    let ok_body = cms(r.to_string().as_bytes(), &w.a.up).await;

    // Media type outside cms/cms-text: Spring's own 415, not the gateway body.
    let a = post("application/json", ok_body.clone()).await;
    assert_eq!(a.status, 415);
    assert_eq!(a.json()["status"], 415);

    // §4: the body must be single-line base64.
    let with_newline = format!("{ok_body}\n");
    let v = post("application/cms", with_newline)
        .await
        .assert_error(400, "0x402");
    assert_eq!(v["problem"], "Invalid Base64 CMS Message");
    let wrapped: String = ok_body
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let v = post("application/cms", wrapped)
        .await
        .assert_error(400, "0x402");
    assert_eq!(v["problem"], "Invalid Base64 CMS Message");
    let v = post("application/cms", gateway_double::model::b64(b"not a cms"))
        .await
        .assert_error(400, "0x402");
    assert_eq!(v["problem"], "Could not parse CMS Message");

    // Detached content, two certificates, no certificate, two signers.
    let opts = |f: fn(&mut gateway_double::openssl::SignOptions)| {
        let mut o = gateway_double::openssl::SignOptions::default();
        f(&mut o);
        o
    };
    let detached = cms_with(
        r.to_string().as_bytes(),
        &w.a.up,
        &opts(|o| o.detached = true),
    )
    .await;
    let v = post("application/cms", detached)
        .await
        .assert_error(400, "0x402");
    assert_eq!(
        v["problem"],
        "CMS Message needs to have binary data as body."
    );
    let two = gateway_double::openssl::SignOptions {
        extra_certs_pem: vec![w.a.tls.cert_pem()],
        ..Default::default()
    };
    let v = post(
        "application/cms",
        cms_with(r.to_string().as_bytes(), &w.a.up, &two).await,
    )
    .await
    .assert_error(400, "0x402");
    assert_eq!(
        v["problem"],
        "CMS Message needs to contain exactly one X509 certificate"
    );
    let none = cms_with(
        r.to_string().as_bytes(),
        &w.a.up,
        &opts(|o| o.no_certs = true),
    )
    .await;
    let v = post("application/cms", none)
        .await
        .assert_error(400, "0x402");
    assert_eq!(
        v["problem"],
        "CMS Message needs to contain exactly one X509 certificate"
    );
    let one_signer = gateway_double::openssl::sign(
        r.to_string().as_bytes(),
        &w.a.up.cert_pem(),
        &w.a.up.key_pem(),
        &Default::default(),
    )
    .await
    .unwrap();
    let two_signers =
        gateway_double::openssl::add_signer(&one_signer, &w.b.up.cert_pem(), &w.b.up.key_pem())
            .await
            .unwrap();
    let v = post("application/cms", gateway_double::model::b64(&two_signers))
        .await
        .assert_error(400, "0x402");
    assert_eq!(
        v["problem"],
        "CMS Message needs to have exactly 1 signer information."
    );

    // A tampered payload: the signature no longer verifies.
    let mut der = one_signer.clone();
    let needle = b"TestReference";
    let at = der
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("payload inside the CMS");
    der[at] = b'X';
    let v = post("application/cms", gateway_double::model::b64(&der))
        .await
        .assert_error(400, "0x260");
    assert_eq!(v["problem"], "CMS signature is invalid");

    // B's UP certificate over A's TLS: 403 Invalid Upload Certificate.
    let v = post(
        "application/cms",
        cms(r.to_string().as_bytes(), &w.b.up).await,
    )
    .await
    .assert_error(403, "0x000");
    assert_eq!(v["problem"], "Invalid Upload Certificate");
    assert!(v["sendValue"].as_str().unwrap().contains("NationXB_TNP_UP"));
    // The TLS certificate is not an upload certificate either.
    post(
        "application/cms",
        cms(r.to_string().as_bytes(), &w.a.tls).await,
    )
    .await
    .assert_error(403, "0x000");

    // Payload not JSON; trailing tokens.
    let v = post("application/cms", cms(b"not json", &w.a.up).await)
        .await
        .assert_error(400, "0x000");
    assert_eq!(v["problem"], "JSON Could not be parsed");
    let trailing = format!("{} {{}}", r);
    post("application/cms", cms(trailing.as_bytes(), &w.a.up).await)
        .await
        .assert_error(400, "0x000");
    let mut bad_enum = r.clone();
    bad_enum["type"] = json!("HTML");
    post(
        "application/cms",
        cms(bad_enum.to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(400, "0x000");

    // Country: other → 403; missing → 500 (NullPointerException quirk).
    let mut other = r.clone();
    other["country"] = json!("XB");
    let v = post(
        "application/cms",
        cms(other.to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(403, "0x000");
    assert_eq!(v["problem"], "Invalid Country sent");
    let mut missing = r.clone();
    missing.as_object_mut().unwrap().remove("country");
    post(
        "application/cms",
        cms(missing.to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(500, "0x008");

    // Bean validation: every violation listed in details.
    let mut invalid = r.clone();
    invalid["url"] = json!("https://x/".repeat(11));
    invalid.as_object_mut().unwrap().remove("name");
    invalid["thumbprint"] = json!("a".repeat(65));
    let v = post(
        "application/cms",
        cms(invalid.to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(400, "0x000");
    assert_eq!(v["problem"], "Uploaded data has invalid values.");
    let details = v["details"].as_str().unwrap();
    for field in ["url:", "name:", "thumbprint:"] {
        assert!(details.contains(field), "{field} in {details}");
    }
    let mut upper = r.clone();
    upper["uuid"] = json!("ABCDEF00-0000-4000-8000-000000000000");
    post(
        "application/cms",
        cms(upper.to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(400, "0x000");

    // Unknown uuid: 404; a client cannot choose the uuid of a new record.
    let mut unknown = r.clone();
    unknown["uuid"] = json!(gateway_double::model::random_uuid());
    let v = post(
        "application/cms",
        cms(unknown.to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(404, "0x000");
    assert_eq!(v["problem"], "Trusted Reference does not exists.");

    // Domain: not validated, but longer than the column → database error → 500.
    let mut odd = r.clone();
    odd["domain"] = json!("DoesntExist");
    assert_eq!(
        post(
            "application/cms",
            cms(odd.to_string().as_bytes(), &w.a.up).await
        )
        .await
        .status,
        201
    );
    let mut long = r.clone();
    long["domain"] = json!("D".repeat(33));
    post(
        "application/cms",
        cms(long.to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(500, "0x008");
    // Absent domain → DDCC; unknown properties ignored.
    let mut plain = reference("XA");
    plain.as_object_mut().unwrap().remove("domain");
    plain["extra"] = json!({"ignored": true});
    assert_eq!(
        post(
            "application/cms",
            cms(plain.to_string().as_bytes(), &w.a.up).await
        )
        .await
        .status,
        201
    );

    let stored: Vec<Value> = list(&w, &w.a.tls).await;
    assert_eq!(stored.len(), 2, "only the two valid uploads are stored");
    assert!(stored.iter().any(|s| s["domain"] == "DDCC"));
    assert!(stored.iter().any(|s| s["domain"] == "DoesntExist"));
}

#[tokio::test]
async fn other_countries_cannot_delete_or_overwrite() {
    let Some(w) = world().await else {
        return;
    };
    let r = reference("XA");
    let a = send(cms_post(
        &w.client(Some(&w.a.tls)),
        w.url("/trust/reference"),
        "application/cms",
        cms(r.to_string().as_bytes(), &w.a.up).await,
    ))
    .await;
    assert_eq!(a.status, 201);
    let uuid = w.gw.references()[0].uuid.clone();
    let b = w.client(Some(&w.b.tls));
    let v = send(cms_delete(
        &b,
        w.url("/trust/reference"),
        "application/cms",
        cms(json!({ "uuid": uuid }).to_string().as_bytes(), &w.b.up).await,
    ))
    .await
    .assert_error(403, "0x000");
    assert_eq!(
        v["problem"],
        "It is not allowed to delete trusted references of other countries."
    );
    // B with A's UP certificate: the UP check fails first.
    send(cms_delete(
        &b,
        w.url("/trust/reference"),
        "application/cms",
        cms(json!({ "uuid": uuid }).to_string().as_bytes(), &w.a.up).await,
    ))
    .await
    .assert_error(403, "0x000");
    // §5.1 quirk refused by the double: B overwriting A's record by uuid.
    let mut takeover = reference("XB");
    takeover["uuid"] = json!(uuid);
    send(cms_post(
        &b,
        w.url("/trust/reference"),
        "application/cms",
        cms(takeover.to_string().as_bytes(), &w.b.up).await,
    ))
    .await
    .assert_error(403, "0x000");
    assert_eq!(w.gw.references()[0].country, "XA");
    assert_eq!(
        w.gw.references()[0].thumbprint,
        r["thumbprint"].as_str().unwrap()
    );
    // No POST alias for deleting references (§5.2).
    let alias = send(cms_post(
        &b,
        w.url("/trust/reference/delete"),
        "application/cms",
        String::new(),
    ))
    .await;
    assert_eq!(alias.status, 405);
}

#[tokio::test]
async fn expired_upload_certificate_fails_the_signature() {
    let Some(w) = world().await else {
        return;
    };
    let now = time::OffsetDateTime::now_utc();
    let expired = gateway_double::pki::generate_with_validity(
        gateway_double::pki::Profile::Upload,
        "XA",
        now - time::Duration::days(400),
        now - time::Duration::days(35),
    )
    .unwrap();
    w.gw.onboard("XA", gateway_double::PartyType::Upload, &expired.cert_der())
        .await
        .unwrap();
    let client = w.client(Some(&w.a.tls));
    let r = reference("XA");
    // §4: signing-time outside the UP validity surfaces as an invalid signature.
    let v = send(cms_post(
        &client,
        w.url("/trust/reference"),
        "application/cms",
        cms(r.to_string().as_bytes(), &expired).await,
    ))
    .await
    .assert_error(400, "0x260");
    assert_eq!(v["problem"], "CMS signature is invalid");
    // Without signed attributes there is no signing-time: the gateway has no
    // explicit expiry check, so the upload passes.
    let o = gateway_double::openssl::SignOptions {
        no_attributes: true,
        ..Default::default()
    };
    let a = send(cms_post(
        &client,
        w.url("/trust/reference"),
        "application/cms",
        cms_with(r.to_string().as_bytes(), &expired, &o).await,
    ))
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
}
