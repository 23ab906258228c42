//! Other TLS clients than reqwest/rustls-1.3 (an OpenSSL client, TLS 1.2), many
//! concurrent uploads, and the standalone binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

/// `openssl s_client` with `cert` as client certificate; returns the raw HTTP
/// answer to a GET of `path`.
async fn s_client(w: &World, cert: Option<&gateway_double::Credentials>, path: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, w.gw.server_ca_pem()).unwrap();
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-servername",
        "localhost",
    ])
    .arg("-connect")
    .arg(w.gw.addr().to_string())
    .arg("-CAfile")
    .arg(&ca);
    if let Some(c) = cert {
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("c.key"));
        std::fs::write(&cp, c.cert_pem()).unwrap();
        std::fs::write(&kp, c.key_pem()).unwrap();
        cmd.arg("-cert").arg(cp).arg("-key").arg(kp);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(req.as_bytes()).await.unwrap();
    // Keep stdin open until the server closes: s_client quits on stdin EOF.
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("s_client finished")
        .unwrap();
    drop(stdin);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn an_openssl_client_gets_the_same_answers() {
    let Some(w) = world().await else {
        return;
    };
    let ok = s_client(&w, Some(&w.a.tls), "/trustList/references").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let unknown = s_client(&w, Some(&w.c.tls), "/trustList/references").await;
    assert!(unknown.starts_with("HTTP/1.1 401"), "{unknown}");
    assert!(unknown.contains("\"code\":\"0x402\""), "{unknown}");
    let none = s_client(&w, None, "/trustList/references").await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(none.contains("\"code\":\"0x400\""), "{none}");
}

#[tokio::test]
async fn tls12_clients_are_authenticated_too() {
    let Some(w) = world().await else {
        return;
    };
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .add_root_certificate(
            reqwest::Certificate::from_pem(w.gw.server_ca_pem().as_bytes()).unwrap(),
        )
        .identity(reqwest::Identity::from_pem(w.a.tls.identity_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let a = send(client.get(w.url("/trustList/references"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn concurrent_uploads_are_all_stored_once() {
    let Some(w) = world().await else {
        return;
    };
    let mut bodies = Vec::new();
    for keys in [&w.a, &w.b] {
        for _ in 0..8 {
            let r = reference(&keys.country);
            bodies.push((keys, cms(r.to_string().as_bytes(), &keys.up).await));
        }
    }
    let clients = [w.client(Some(&w.a.tls)), w.client(Some(&w.b.tls))];
    let futures = bodies.into_iter().map(|(keys, body)| {
        let client = if keys.country == "XA" {
            &clients[0]
        } else {
            &clients[1]
        };
        send(cms_post(
            client,
            w.url("/trust/reference"),
            "application/cms",
            body,
        ))
    });
    let answers = futures_join(futures.collect()).await;
    assert!(answers.iter().all(|a| a.status == 201));
    let refs = w.gw.references();
    assert_eq!(refs.len(), 16);
    let mut uuids: Vec<&str> = refs.iter().map(|r| r.uuid.as_str()).collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 16);
    assert_eq!(refs.iter().filter(|r| r.country == "XA").count(), 8);
}

/// Polls every future on this task (no extra crate for `join_all`).
async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

#[test]
fn the_binary_writes_participant_keys_and_serves() {
    if !gateway_double::openssl_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-double"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("https://localhost:"), "{line}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = |alpha3: &str| {
        let tls = dir.path().join(format!("certificates/{alpha3}/DCC"));
        let identity = [
            std::fs::read(tls.join("TLS.pem")).unwrap(),
            std::fs::read(tls.join("TLS.key")).unwrap(),
        ]
        .concat();
        let ca = std::fs::read(dir.path().join("server-ca.pem")).unwrap();
        rt.block_on(async {
            reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .identity(reqwest::Identity::from_pem(&identity).unwrap())
                .build()
                .unwrap()
                .get(format!("{url}/trustList/UPLOAD"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let results = (status("XXA"), status("XXB"), status("XXC"));
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(results, (200, 200, 401));
    for f in [
        "trust-anchor.pem",
        "certificates/XXA/DCC/UP.key",
        "certificates/XXC/DCC/SCA.pem",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
}
