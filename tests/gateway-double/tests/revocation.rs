//! Revocation lists (contract §7): only the batch list is on by default; upload,
//! delete and single download answer 404 unless the hidden endpoints are on.

mod common;

use common::*;
use gateway_double::{Config, Onboarding, PartyType};
use serde_json::json;

fn batch(country: &str) -> serde_json::Value {
    use base64::Engine;
    json!({
        "country": country,
        "expires": "2030-01-01T00:00:00Z",
        "kid": "2Rk3X8HntrI=",
        "hashType": "SIGNATURE",
        "entries": [{"hash": base64::engine::general_purpose::STANDARD.encode([7u8; 16])}],
    })
}

/// A second XA TLS certificate onboarded with the revocation roles.
async fn with_roles(w: &World, roles: &[&str]) -> gateway_double::Credentials {
    let tls = gateway_double::pki::generate(gateway_double::pki::Profile::Tls, "XA").unwrap();
    let mut o = Onboarding::new("XA", PartyType::Authentication, &tls.cert_der());
    o.roles = roles.iter().map(|r| r.to_string()).collect();
    w.gw.onboard_with(o).await.unwrap();
    tls
}

#[tokio::test]
async fn default_gateway_hides_upload_and_delete() {
    let Some(w) = world().await else {
        return;
    };
    let all = with_roles(
        &w,
        &[
            "REVOCATION_LIST_READER",
            "REVOCATION_UPLOADER",
            "REVOCATION_DELETER",
        ],
    )
    .await;
    let c = w.client(Some(&all));
    let body = cms(batch("XA").to_string().as_bytes(), &w.a.up).await;
    for (method, path) in [
        ("POST", "/revocation-list"),
        ("DELETE", "/revocation-list"),
        ("POST", "/revocation-list/delete"),
        (
            "GET",
            "/revocation-list/0b3b2ae6-ef2e-4a5e-9d4b-3f0e1f7a9c11",
        ),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let a = send(
            c.request(m, w.url(path))
                .header("Content-Type", "application/cms")
                .body(body.clone()),
        )
        .await;
        assert_eq!(a.status, 404, "{method} {path}: {}", a.text);
    }
    // The list is on: needs the reader role, a valid If-Modified-Since.
    send(
        w.client(Some(&w.a.tls))
            .get(w.url("/revocation-list"))
            .header("If-Modified-Since", "2021-01-01T00:00:00Z"),
    )
    .await
    .assert_error(403, "0x403");
    let none = send(
        c.get(w.url("/revocation-list"))
            .header("If-Modified-Since", "2021-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(none.status, 204);
    send(c.get(w.url("/revocation-list")))
        .await
        .assert_error(400, "0x000");
    send(
        c.get(w.url("/revocation-list"))
            .header("If-Modified-Since", "2999-01-01T00:00:00Z"),
    )
    .await
    .assert_error(400, "0x000");
}

#[tokio::test]
async fn hidden_endpoints_when_enabled() {
    let Some(w) = world_with(Config {
        revocation_hidden_endpoints: true,
        ..Config::default()
    })
    .await
    else {
        return;
    };
    let reader = with_roles(&w, &["REVOCATION_LIST_READER"]).await;
    let all = with_roles(
        &w,
        &[
            "REVOCATION_LIST_READER",
            "REVOCATION_UPLOADER",
            "REVOCATION_DELETER",
        ],
    )
    .await;
    let up = |tls: &gateway_double::Credentials, body: String| {
        send(cms_post(
            &w.client(Some(tls)),
            w.url("/revocation-list"),
            "application/cms-text",
            body,
        ))
    };
    // Role first.
    up(
        &reader,
        cms(batch("XA").to_string().as_bytes(), &w.a.up).await,
    )
    .await
    .assert_error(403, "0x403");
    // Other country's batch, invalid values, wrong UP.
    up(&all, cms(batch("XB").to_string().as_bytes(), &w.a.up).await)
        .await
        .assert_error(403, "0x000");
    let mut bad = batch("XA");
    bad["hashType"] = json!("MD5");
    bad["entries"] = json!([]);
    let v = up(&all, cms(bad.to_string().as_bytes(), &w.a.up).await)
        .await
        .assert_error(400, "0x000");
    assert!(v["details"].as_str().unwrap().contains("hashType"));
    up(&all, cms(batch("XA").to_string().as_bytes(), &w.b.up).await)
        .await
        .assert_error(403, "0x000");

    let body = cms(batch("XA").to_string().as_bytes(), &w.a.up).await;
    let ok = up(&all, body.clone()).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let id = ok.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(w.gw.revocation_batches()[0].batch_id, id);

    let c = w.client(Some(&reader));
    let l = send(
        c.get(w.url("/revocation-list"))
            .header("If-Modified-Since", "2021-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(l.status, 200, "{}", l.text);
    let v = l.json();
    assert_eq!(v["more"], false);
    assert_eq!(v["batches"][0]["batchId"], id.as_str());
    assert_eq!(v["batches"][0]["country"], "XA");
    assert_eq!(v["batches"][0]["deleted"], false);
    let one = send(c.get(w.url(&format!("/revocation-list/{id}")))).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.text, body, "the stored CMS text");
    assert_eq!(one.headers["etag"].to_str().unwrap(), id);

    let del = |body: String| {
        send(cms_post(
            &w.client(Some(&all)),
            w.url("/revocation-list/delete"),
            "application/cms",
            body,
        ))
    };
    let unknown = json!({"batchId": gateway_double::model::random_uuid()}).to_string();
    del(cms(unknown.as_bytes(), &w.a.up).await)
        .await
        .assert_error(404, "0x000");
    let del_body = cms(json!({ "batchId": id }).to_string().as_bytes(), &w.a.up).await;
    assert_eq!(del(del_body.clone()).await.status, 204);
    del(del_body).await.assert_error(410, "0x000");
    send(c.get(w.url(&format!("/revocation-list/{id}"))))
        .await
        .assert_error(410, "0x000");
    let l = send(
        c.get(w.url("/revocation-list"))
            .header("If-Modified-Since", "2021-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(l.json()["batches"][0]["deleted"], true);
}
