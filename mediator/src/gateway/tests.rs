//! The client logic against a scripted HTTP edge (no sockets): retry rules, the
//! re-read before re-posting, failure classification. The same logic runs against
//! the gateway double over real mTLS in `mediator/tests/gateway_client.rs`.

use std::sync::{Arc, Mutex};

use ddcc_store::SqliteStore;

use super::*;

type Script = Box<dyn Fn(&EdgeRequest) -> Result<EdgeResponse, EdgeError> + Send + Sync>;

/// Answers by the script; records every request.
struct Scripted {
    script: Mutex<Script>,
    seen: Mutex<Vec<EdgeRequest>>,
}

impl Scripted {
    fn new(
        f: impl Fn(&EdgeRequest) -> Result<EdgeResponse, EdgeError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(Box::new(f)),
            seen: Mutex::new(Vec::new()),
        })
    }
    fn set(
        &self,
        f: impl Fn(&EdgeRequest) -> Result<EdgeResponse, EdgeError> + Send + Sync + 'static,
    ) {
        *self.script.lock().unwrap() = Box::new(f);
    }
    fn seen(&self) -> Vec<(Method, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.method, r.path.clone()))
            .collect()
    }
}

impl HttpEdge for Scripted {
    fn send(&self, req: EdgeRequest) -> ddcc_store::BoxFuture<'_, Result<EdgeResponse, EdgeError>> {
        let r = (self.script.lock().unwrap())(&req);
        self.seen.lock().unwrap().push(req);
        Box::pin(std::future::ready(r))
    }
}

fn ok(status: u16, body: &str) -> Result<EdgeResponse, EdgeError> {
    Ok(EdgeResponse {
        status,
        body: body.as_bytes().to_vec(),
    })
}

struct Fixture {
    gateway: Gateway,
    edge: Arc<Scripted>,
    store: Arc<dyn Store>,
    _dir: std::path::PathBuf,
}

fn fixture(edge: Arc<Scripted>) -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "ddcc-gw-unit-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
    // Any P-256 key with a certificate serves as the UP identity here.
    let id = ddcc_cert::local::LocalSigner::load_or_create(&dir.join("keys"), "XA").unwrap();
    let gateway = Gateway::new(
        edge.clone(),
        store.clone(),
        Some(UploadIdentity {
            cert_der: id.dsc_der.clone(),
            signer: id.signer.clone(),
        }),
        None,
        "XA",
        Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
    )
    .unwrap()
    .with_revocations(true);
    Fixture {
        gateway,
        edge,
        store,
        _dir: dir,
    }
}

fn publisher() -> Publisher {
    Publisher {
        country: "XA".into(),
        domain: "DDCC".into(),
        ssl_public_key: "MIIB".into(),
    }
}

fn artefact(id: &str, body: &str) -> ServedArtefact {
    ServedArtefact {
        resource_type: "ValueSet".into(),
        url: format!("https://moh.example/fhir/ValueSet/{id}"),
        name: id.into(),
        version: "1.0.0".into(),
        bytes: body.as_bytes().to_vec(),
    }
}

async fn wait_due(g: &Gateway) -> DeliverySummary {
    // Backoff here is milliseconds: let the retry become due.
    tokio::time::sleep(Duration::from_millis(20)).await;
    g.deliver_due().await.unwrap()
}

#[tokio::test]
async fn a_lost_post_answer_is_followed_by_a_re_read_not_a_duplicate() {
    let posted: Arc<Mutex<Vec<TrustedReference>>> = Arc::default();
    let p2 = posted.clone();
    let edge = Scripted::new(move |req| match (req.method, req.path.as_str()) {
        (Method::Get, "/trustList/references") => ok(200, "[]"),
        // The POST reaches the gateway, the answer is lost.
        (Method::Post, "/trust/reference") => Err(EdgeError::Lost("connection reset".into())),
        _ => ok(500, "{}"),
    });
    let f = fixture(edge.clone());
    let a = artefact("a", "{1}");
    let summary = f
        .gateway
        .publish(
            std::slice::from_ref(&a),
            &publisher(),
            "https://moh.example/fhir/",
        )
        .await
        .unwrap();
    assert_eq!(summary.create, 1);
    let first = f.gateway.deliver_due().await.unwrap();
    assert_eq!(first.retrying.len(), 1, "{first:?}");

    // The gateway did store it: the re-read finds it and nothing is posted again.
    let stored = trust_network::reference::reference_for(&a, &publisher()).unwrap();
    let listed = serde_json::to_string(&vec![TrustedReference {
        uuid: Some("0b9a7f1e-0000-4000-8000-000000000001".into()),
        ..stored
    }])
    .unwrap();
    f.edge
        .set(move |req| match (req.method, req.path.as_str()) {
            (Method::Get, "/trustList/references") => ok(200, &listed),
            (Method::Post, _) => {
                p2.lock().unwrap().push(TrustedReference {
                    uuid: None,
                    ..trust_network::reference::reference_for(&artefact("x", "{}"), &publisher())
                        .unwrap()
                });
                ok(201, "")
            }
            _ => ok(500, "{}"),
        });
    let second = wait_due(&f.gateway).await;
    assert_eq!(second.delivered, 1, "{second:?}");
    assert!(
        posted.lock().unwrap().is_empty(),
        "re-posted after a lost answer"
    );
    let posts = f
        .edge
        .seen()
        .into_iter()
        .filter(|(m, _)| *m == Method::Post)
        .count();
    assert_eq!(posts, 1, "exactly the one POST whose answer was lost");
}

#[tokio::test]
async fn refusals_fail_for_good_and_outages_retry() {
    let edge = Scripted::new(|req| match (req.method, req.path.as_str()) {
        (Method::Get, "/trustList/references") => ok(200, "[]"),
        (Method::Post, "/trust/reference") => ok(
            403,
            r#"{"code":"0x000","problem":"Invalid Upload Certificate","sendValue":"CN=x","details":""}"#,
        ),
        _ => ok(500, "{}"),
    });
    let f = fixture(edge.clone());
    f.gateway
        .publish(
            &[artefact("a", "{1}")],
            &publisher(),
            "https://moh.example/fhir/",
        )
        .await
        .unwrap();
    let s = f.gateway.deliver_due().await.unwrap();
    assert_eq!(s.failed.len(), 1);
    assert!(
        s.failed[0].contains("403") && s.failed[0].contains("Invalid Upload Certificate"),
        "{s:?}"
    );
    let status = f.gateway.status().await.unwrap();
    assert_eq!(status["outbox"]["failed"], 1);
    assert!(status["outbox"]["rows"][0]["lastError"]
        .as_str()
        .unwrap_or_default()
        .contains("Invalid Upload Certificate"));

    // Unreachable: the GET is tried again, then the row waits for the backoff.
    f.edge
        .set(|_| Err(EdgeError::Connect("connection refused".into())));
    f.gateway
        .publish(
            &[artefact("b", "{2}")],
            &publisher(),
            "https://moh.example/fhir/",
        )
        .await
        .expect_err("publish needs the current list");
    // A queued DSC survives the outage as pending.
    f.gateway
        .queue_dsc(&[0x30, 0x03, 0x02, 0x01, 0x01])
        .await
        .unwrap();
    let s = f.gateway.deliver_due().await.unwrap();
    assert_eq!(
        (s.delivered, s.failed.len(), s.retrying.len()),
        (0, 0, 1),
        "{s:?}"
    );
    let pending = f
        .store
        .gateway()
        .unwrap()
        .outbox_list(Some(ddcc_store::gateway::PENDING), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
}

#[tokio::test]
async fn revocations_404_stay_queued_and_201_marks_them_published() {
    let edge = Scripted::new(|req| match (req.method, req.path.as_str()) {
        (Method::Post, "/revocation-list") => ok(404, ""),
        _ => ok(500, "{}"),
    });
    let f = fixture(edge.clone());
    let rev = ddcc_store::Revocation::new(
        "XA",
        "URN:UVCI:01:XA:1",
        &[9u8; 64],
        ddcc_store::SignatureAlg::Ecdsa,
        "kid1",
        "2024-01-01T00:00:00.000Z",
        "Bundle/1",
    );
    f.store.record_revocation(rev.clone()).await.unwrap();
    assert_eq!(f.gateway.queue_revocations().await.unwrap(), 1);
    assert_eq!(
        f.gateway.queue_revocations().await.unwrap(),
        0,
        "queued once"
    );
    let s = f.gateway.deliver_due().await.unwrap();
    assert_eq!(s.retrying.len(), 1);
    assert!(s.retrying[0].contains("not supported"), "{s:?}");
    assert_eq!(f.store.pending_revocations(10).await.unwrap().len(), 1);

    let body: Arc<Mutex<Vec<u8>>> = Arc::default();
    let b2 = body.clone();
    f.edge.set(move |req| {
        *b2.lock().unwrap() = req.body.clone();
        ok(201, "")
    });
    let s = wait_due(&f.gateway).await;
    assert_eq!(s.delivered, 1, "{s:?}");
    assert!(f.store.pending_revocations(10).await.unwrap().is_empty());
    // The payload inside the CMS: the first 16 bytes of the signature hash, base64.
    let sent = String::from_utf8(body.lock().unwrap().clone()).unwrap();
    assert!(!sent.contains('\n'), "single-line base64");
    let want = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(ddcc_store::Revocation::truncated(&rev.signature_hash)).unwrap());
    let der = base64::engine::general_purpose::STANDARD
        .decode(sent)
        .unwrap();
    let der_text = String::from_utf8_lossy(&der);
    assert!(der_text.contains(&want), "batch carries the truncated hash");
    assert!(der_text.contains("\"hashType\":\"SIGNATURE\""));
}

#[test]
fn backoff_grows_and_is_capped() {
    let b = Backoff {
        base: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };
    let d0 = b.delay(0);
    assert!(d0 >= Duration::from_secs(5) && d0 <= Duration::from_secs(6));
    let d2 = b.delay(2);
    assert!(d2 >= Duration::from_secs(20) && d2 <= Duration::from_secs(24));
    let big = b.delay(1000);
    assert!(big >= Duration::from_secs(60) && big <= Duration::from_secs(72));
}

#[test]
fn error_bodies_are_summarised() {
    assert_eq!(
        problem(br#"{"code":"0x402","problem":"Client is not authorized","sendValue":"","details":"unknown"}"#),
        "0x402 Client is not authorized: unknown"
    );
    assert_eq!(problem(b"plain text"), "plain text");
}

#[test]
fn settings_from_env() {
    let env = |k: &str| match k {
        "DDCC_GATEWAY_URL" => Some("https://tng-uat.example".to_string()),
        "DDCC_GATEWAY_RETRY_BASE" => Some("2s".to_string()),
        "DDCC_GATEWAY_REVOCATIONS" => Some("true".to_string()),
        _ => None,
    };
    let s = GatewaySettings::from_env(env).unwrap().unwrap();
    assert_eq!(s.backoff.base, Duration::from_secs(2));
    assert!(s.revocations);
    assert!(GatewaySettings::from_env(|_| None).unwrap().is_none());
    assert!(
        GatewaySettings::from_env(|k| (k == "DDCC_GATEWAY_URL").then(|| "ftp://x".into())).is_err()
    );
}

#[tokio::test]
async fn revocations_are_batched_by_kid_at_most_1000_and_never_lost_behind_refused_ones() {
    let edge = Scripted::new(|_| ok(404, ""));
    let f = fixture(edge);
    let rev = |i: usize, kid: &str| {
        ddcc_store::Revocation::new(
            "XA",
            &format!("URN:UVCI:01:XA:{i}"),
            &[(i % 251) as u8; 64],
            ddcc_store::SignatureAlg::Other,
            kid,
            "2024-01-01T00:00:00.000Z",
            &format!("Bundle/{i}"),
        )
    };
    let mut revocations: Vec<_> = (0..1001).map(|i| rev(i, "kidA")).collect();
    revocations.push(rev(5000, "kidB"));
    f.store
        .transaction(ddcc_store::TxRequest {
            revocations,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(f.gateway.queue_revocations().await.unwrap(), 1002);
    let gw = f.store.gateway().unwrap();
    let rows = gw.outbox_list(None, 100).await.unwrap();
    let mut sizes: Vec<usize> = rows
        .iter()
        .map(|r| r.payload["batch"]["entries"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        vec![1, 1, 1000],
        "kidA split in 1000 + 1, kidB alone"
    );

    // All refused (404) and still unpublished: a new revocation is queued anyway.
    f.gateway.deliver_due().await.unwrap();
    f.store.record_revocation(rev(6000, "kidA")).await.unwrap();
    assert_eq!(f.gateway.queue_revocations().await.unwrap(), 1);
}
