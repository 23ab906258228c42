//! Client identity (contract §3) and onboarding rows (§2): real TLS handshakes
//! with rcgen certificates through reqwest, authorisation at HTTP level.

mod common;

use common::*;
use gateway_double::{Onboarding, PartyType};

#[tokio::test]
async fn handshake_completes_for_any_certificate_and_http_decides() {
    let Some(w) = world().await else {
        return;
    };
    let path = "/trustList/certificate";
    // Onboarded TLS certificate.
    let ok = send(w.client(Some(&w.a.tls)).get(w.url(path))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // Not onboarded (country C): the handshake completes, HTTP says 401 0x402.
    let v = send(w.client(Some(&w.c.tls)).get(w.url(path)))
        .await
        .assert_error(401, "0x402");
    assert_eq!(
        v["problem"],
        "Client is not authorized to access the service"
    );
    assert_eq!(v["sendValue"], w.c.tls.thumbprint());
    // No certificate at all and no headers: 401 0x400.
    let v = send(w.client(None).get(w.url(path)))
        .await
        .assert_error(401, "0x400");
    assert_eq!(v["problem"], "No authentication information available");
    // A's UP certificate used as TLS certificate: onboarded, but not as
    // AUTHENTICATION.
    send(w.client(Some(&w.a.up)).get(w.url(path)))
        .await
        .assert_error(401, "0x402");
    // Actuator health needs no authentication (§1).
    let h = send(w.client(None).get(w.url("/actuator/health"))).await;
    assert_eq!(h.status, 200);
    // The request log records the authenticated country.
    let seen = w.gw.requests_to("GET", path);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].country.as_deref(), Some("XA"));
    assert!(seen[1..].iter().all(|r| r.country.is_none()));
}

#[tokio::test]
async fn thumbprint_country_and_type_must_all_match() {
    let Some(w) = world().await else {
        return;
    };
    // The same certificate onboarded for another country does not count: the
    // lookup key includes the certificate's own C (§3).
    w.gw.onboard("XB", PartyType::Authentication, &w.c.tls.cert_der())
        .await
        .unwrap();
    send(w.client(Some(&w.c.tls)).get(w.url("/trustList/references")))
        .await
        .assert_error(401, "0x402");
    // Onboarded for its country: accepted.
    w.gw.onboard("XC", PartyType::Authentication, &w.c.tls.cert_der())
        .await
        .unwrap();
    let a = send(w.client(Some(&w.c.tls)).get(w.url("/trustList/references"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // Offboarded: refused again.
    assert_eq!(w.gw.offboard(&w.c.tls.thumbprint()), 2);
    send(w.client(Some(&w.c.tls)).get(w.url("/trustList/references")))
        .await
        .assert_error(401, "0x402");
}

#[tokio::test]
async fn certificate_without_country_is_400() {
    let Some(w) = world().await else {
        return;
    };
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "no country");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = p.self_signed(&key).unwrap();
    let creds = gateway_double::Credentials { cert, key };
    send(w.client(Some(&creds)).get(w.url("/trustList/references")))
        .await
        .assert_error(400, "0x401");
}

#[tokio::test]
async fn rows_without_a_valid_trust_anchor_signature_are_absent() {
    let Some(w) = world().await else {
        return;
    };
    // A detached CMS over the right DER but by another key (A's UP).
    let forged = gateway_double::openssl::sign(
        &w.a.tls.cert_der(),
        &w.a.up.cert_pem(),
        &w.a.up.key_pem(),
        &gateway_double::openssl::SignOptions {
            detached: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        w.gw.set_onboarding_signature(&w.a.tls.thumbprint(), &gateway_double::model::b64(&forged)),
        1
    );
    send(w.client(Some(&w.a.tls)).get(w.url("/trustList/references")))
        .await
        .assert_error(401, "0x402");
    // B still works, and A's TLS entry is gone from the lists too.
    let list = send(
        w.client(Some(&w.b.tls))
            .get(w.url("/trustList/certificate?group=AUTHENTICATION")),
    )
    .await;
    assert_eq!(list.status, 200);
    let items = list.json();
    let countries: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["country"].as_str().unwrap())
        .collect();
    assert_eq!(countries, vec!["XB"]);
}

#[tokio::test]
async fn onboarding_signature_is_a_detached_cms_by_the_trust_anchor() {
    let Some(w) = world().await else {
        return;
    };
    let row =
        w.gw.trusted_parties()
            .into_iter()
            .find(|p| p.kind == PartyType::Upload && p.country == "XA")
            .unwrap();
    // Checked with the openssl command alone, as a participant would (§8).
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&row.signature)
        .unwrap();
    gateway_double::openssl::verify_detached_by(&sig, &w.a.up.cert_der(), w.gw.trust_anchor_pem())
        .await
        .expect("TA signature verifies");
    assert!(
        gateway_double::openssl::verify_detached_by(
            &sig,
            &w.a.tls.cert_der(),
            w.gw.trust_anchor_pem()
        )
        .await
        .is_err(),
        "bound to the DER it was made for"
    );
    assert!(
        gateway_double::openssl::verify_detached_by(&sig, &w.a.up.cert_der(), &w.a.up.cert_pem())
            .await
            .is_err(),
        "only the TA is accepted as signer"
    );
}

#[tokio::test]
async fn federated_authentication_rows_are_refused() {
    let Some(w) = world().await else {
        return;
    };
    let mut o = Onboarding::new("XC", PartyType::Authentication, &w.c.tls.cert_der());
    o.source_gateway = Some(gateway_double::model::random_uuid());
    w.gw.onboard_with(o).await.unwrap();
    send(w.client(Some(&w.c.tls)).get(w.url("/trustList/references")))
        .await
        .assert_error(401, "0x402");
}

#[tokio::test]
async fn proxy_headers_identify_the_client_when_no_certificate_is_presented() {
    let Some(w) = world().await else {
        return;
    };
    let thumb = w.a.tls.thumbprint();
    let dn = "CN=NationXA_TNP_TLS,C=XA";
    let client = w.client(None);
    let url = w.url("/trustList/references");
    // Hex hash + DN.
    let a = send(
        client
            .get(&url)
            .header("X-SSL-Client-SHA256", &thumb)
            .header("X-SSL-Client-DN", dn),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // Base64 hash, URL-encoded, and URL-encoded DN.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&thumb).unwrap());
    let enc = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let a = send(
        client
            .get(&url)
            .header("X-SSL-Client-SHA256", enc)
            .header("X-SSL-Client-DN", "CN%3DNationXA_TNP_TLS%2CC%3DXA"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The escaped PEM of nginx's $ssl_client_escaped_cert.
    let pem = w.a.tls.cert_pem();
    let escaped: String =
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    let a = send(client.get(&url).header("X-SSL-Client-Cert", escaped)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // DN without C: 400 0x401.
    send(
        client
            .get(&url)
            .header("X-SSL-Client-SHA256", &thumb)
            .header("X-SSL-Client-DN", "CN=NationXA_TNP_TLS"),
    )
    .await
    .assert_error(400, "0x401");
    // legacy security.md: C presents its own certificate with A's headers; the
    // TLS certificate wins over headers (§3), so C is refused.
    send(
        w.client(Some(&w.c.tls))
            .get(&url)
            .header("X-SSL-Client-SHA256", &thumb)
            .header("X-SSL-Client-DN", dn),
    )
    .await
    .assert_error(401, "0x402");
}

#[tokio::test]
async fn headers_are_ignored_when_the_deployment_does_not_trust_them() {
    let Some(w) = world_with(gateway_double::Config {
        trust_proxy_headers: false,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    send(
        w.client(None)
            .get(w.url("/trustList/references"))
            .header("X-SSL-Client-SHA256", w.a.tls.thumbprint())
            .header("X-SSL-Client-DN", "C=XA"),
    )
    .await
    .assert_error(401, "0x400");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_springs_answers() {
    let Some(w) = world().await else {
        return;
    };
    let c = w.client(Some(&w.a.tls));
    // Case-sensitive paths; the plural upload path of the Java client does not exist (§5.1, §8).
    for p in [
        "/trustlist/certificate",
        "/trust/references",
        "/api/trustList",
    ] {
        let a = send(c.post(w.url(p))).await;
        assert_eq!(a.status, 404, "{p}");
        assert_eq!(a.json()["status"], 404);
    }
    let a = send(c.put(w.url("/trust/reference"))).await;
    assert_eq!(a.status, 405);
}
