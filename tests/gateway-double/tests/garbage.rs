//! Malformed input on every endpoint: always a 4xx (or a documented 5xx quirk),
//! never a dropped connection, and nothing stored.

mod common;

use common::*;

#[tokio::test]
async fn garbage_bodies_get_client_errors_on_every_endpoint() {
    let Some(w) = world_with(gateway_double::Config {
        revocation_hidden_endpoints: true,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let c = w.client(Some(&w.a.tls));
    // Revocation endpoints get past their role check with this one.
    let tls = gateway_double::pki::generate(gateway_double::pki::Profile::Tls, "XA").unwrap();
    let mut o = gateway_double::Onboarding::new(
        "XA",
        gateway_double::PartyType::Authentication,
        &tls.cert_der(),
    );
    o.roles = [
        "REVOCATION_LIST_READER",
        "REVOCATION_UPLOADER",
        "REVOCATION_DELETER",
    ]
    .map(String::from)
    .to_vec();
    w.gw.onboard_with(o).await.unwrap();
    let with_roles = w.client(Some(&tls));
    let mut rng = fastrand::Rng::with_seed(6);
    let random =
        |rng: &mut fastrand::Rng, n: usize| (0..n).map(|_| rng.u8(..)).collect::<Vec<u8>>();
    let valid_cms = cms(b"{\"uuid\": 5, \"country\": \"XA\"}", &w.a.up).await;
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"=".to_vec(),
        b"AAAA".to_vec(),
        b"{}".to_vec(),
        b"null".to_vec(),
        b"{\"cms\": 1, \"properties\": {}}".to_vec(),
        b"{\"cms\": \"AAAA\", \"properties\": {}}".to_vec(),
        valid_cms.as_bytes().to_vec(),
        valid_cms.as_bytes()[..valid_cms.len() / 2].to_vec(),
        gateway_double::model::b64(&random(&mut rng, 300)).into_bytes(),
    ];
    for _ in 0..5 {
        let n = rng.usize(1..2000);
        bodies.push(random(&mut rng, n));
    }
    let endpoints = [
        ("POST", "/trust/reference", "application/cms"),
        ("DELETE", "/trust/reference", "application/cms-text"),
        ("POST", "/signerCertificate", "application/cms"),
        ("DELETE", "/signerCertificate", "application/cms"),
        ("POST", "/signerCertificate/delete", "application/cms"),
        ("POST", "/trustedCertificate", "application/json"),
        ("DELETE", "/trustedCertificate", "application/cms"),
        ("POST", "/revocation-list", "application/cms"),
        ("POST", "/revocation-list/delete", "application/cms"),
    ];
    for (method, path, ct) in endpoints {
        for body in &bodies {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let client = if path.starts_with("/revocation") {
                &with_roles
            } else {
                &c
            };
            let a = send(
                client
                    .request(m, w.url(path))
                    .header("Content-Type", ct)
                    .body(body.clone()),
            )
            .await;
            assert!(
                (400..500).contains(&a.status),
                "{method} {path} with {} bytes: {} {}",
                body.len(),
                a.status,
                a.text
            );
        }
    }
    for path in [
        "/trust/reference/%00",
        "/trust/reference/..%2F..",
        "/trustList/%E2%82%AC",
        "/trustList/CSCA/%20%20",
        "/revocation-list/x",
    ] {
        let a = send(with_roles.get(w.url(path))).await;
        assert!(
            (400..500).contains(&a.status),
            "{path}: {} {}",
            a.status,
            a.text
        );
    }
    for q in [
        "group=%FF",
        "country=&domain=,,,",
        "withFederation=maybe",
        "%zz=1",
    ] {
        let a = send(c.get(w.url(&format!("/trustList/certificate?{q}")))).await;
        assert_eq!(a.status, 200, "{q}");
        let a = send(c.get(w.url(&format!("/trustList/references?{q}")))).await;
        assert_eq!(a.status, 200, "{q}");
    }
    assert!(w.gw.references().is_empty());
    assert!(w.gw.signer_certificates().is_empty());
    assert!(w.gw.revocation_batches().is_empty());
}
