//! Outages: the double goes away (connections refused) and comes back on the
//! same URL with its state, as outbox tests need.

mod common;

use common::*;

#[tokio::test]
async fn stop_refuses_connections_and_restart_keeps_state() {
    let Some(mut w) = world().await else {
        return;
    };
    let url = w.url("/trust/reference");
    let client = w.client(Some(&w.a.tls));
    let first = send(cms_post(
        &client,
        url.clone(),
        "application/cms",
        cms(reference("XA").to_string().as_bytes(), &w.a.up).await,
    ))
    .await;
    assert_eq!(first.status, 201);

    let base = w.gw.base_url();
    w.gw.set_down(true).await.unwrap();
    assert!(!w.gw.is_running());
    let body = cms(reference("XA").to_string().as_bytes(), &w.a.up).await;
    // A fresh client: no pooled connection to reuse.
    let err = w
        .client(Some(&w.a.tls))
        .post(&url)
        .header("Content-Type", "application/cms")
        .body(body.clone())
        .send()
        .await
        .expect_err("gateway is down");
    assert!(err.is_connect(), "{err}");
    // The client that had a kept-alive connection is cut off too.
    assert!(client
        .get(w.url("/trustList/references"))
        .send()
        .await
        .is_err());

    w.gw.set_down(false).await.unwrap();
    assert_eq!(w.gw.base_url(), base, "same URL after the outage");
    let again = send(cms_post(&client, url.clone(), "application/cms", body)).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(list(&w, &w.a.tls).await.len(), 2, "state survived");
    // The trust anchor and server certificate survive a restart as well.
    let ta = w.gw.trust_anchor_pem().to_string();
    w.gw.restart().await.unwrap();
    assert_eq!(w.gw.trust_anchor_pem(), ta);
    assert_eq!(list(&w, &w.a.tls).await.len(), 2);
}

#[tokio::test]
async fn fail_status_answers_every_request() {
    let Some(w) = world().await else {
        return;
    };
    let client = w.client(Some(&w.a.tls));
    w.gw.set_fail_status(Some(503));
    let a = send(client.get(w.url("/trustList/references"))).await;
    a.assert_error(503, "0x008");
    let b = send(cms_post(
        &client,
        w.url("/trust/reference"),
        "application/cms",
        cms(reference("XA").to_string().as_bytes(), &w.a.up).await,
    ))
    .await;
    assert_eq!(b.status, 503);
    assert!(w.gw.references().is_empty(), "nothing stored while failing");
    w.gw.set_fail_status(None);
    assert_eq!(
        send(client.get(w.url("/trustList/references")))
            .await
            .status,
        200
    );
    let statuses: Vec<u16> = w.gw.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
}

#[tokio::test]
async fn fixed_port_config_is_honoured() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let Some(w) = world_with(gateway_double::Config {
        port,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    assert_eq!(w.gw.base_url(), format!("https://localhost:{port}"));
    assert_eq!(list(&w, &w.b.tls).await.len(), 0);
}

#[tokio::test]
async fn wait_until_sees_a_delivery_made_in_the_background() {
    let Some(w) = world().await else {
        return;
    };
    let client = w.client(Some(&w.a.tls));
    let body = cms(reference("XA").to_string().as_bytes(), &w.a.up).await;
    let url = w.url("/trust/reference");
    let short = std::time::Duration::from_millis(100);
    assert!(!w.gw.wait_until(short, |s| !s.references.is_empty()).await);
    let sender = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        cms_post(&client, url, "application/cms", body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let seen =
        w.gw.wait_until(std::time::Duration::from_secs(10), |s| {
            s.references.len() == 1
        })
        .await;
    assert!(seen);
    assert_eq!(sender.await.unwrap().unwrap(), 201);
}
