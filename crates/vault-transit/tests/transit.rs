//! Signing against a real OpenBao dev server.

use openbao_harness as support;

use std::sync::Arc;
use std::time::Duration;

use ddcc_cert::signer::{SignError, Signer};
use vault_transit::VaultTransitSigner;

async fn bao_with_key(key: &str) -> Option<support::Bao> {
    let bao = support::start().await?;
    bao.enable("transit", "transit").await;
    bao.transit_key(key).await;
    Some(bao)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_the_transit_public_key() {
    let Some(bao) = bao_with_key("dsc").await else {
        return;
    };
    let signer = VaultTransitSigner::new(bao.root_config("dsc")).expect("signer");
    let point = bao.public_point("dsc", 1).await;
    let long = vec![0xa5u8; 100_000];
    for msg in [&b""[..], b"Sig_structure bytes", &long] {
        let sig = signer.sign(msg).await.expect("sign");
        assert_eq!(sig.len(), 64);
        assert!(
            support::verifies(&point, msg, &sig),
            "signature over {} bytes",
            msg.len()
        );
        assert!(!support::verifies(&point, b"another message", &sig));
    }
    let h = signer.health().await;
    assert!(h.is_ready(), "{h:?}");
    assert_eq!(h.version.as_deref().map(|v| v.is_empty()), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_refused_and_a_pinned_missing_version_too() {
    let Some(bao) = bao_with_key("dsc").await else {
        return;
    };
    let signer = VaultTransitSigner::new(bao.root_config("absent")).expect("signer");
    match signer.sign(b"x").await {
        Err(SignError::Refused(m)) => assert!(m.contains("not found"), "{m}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    let mut cfg = bao.root_config("dsc");
    cfg.key_version = Some(7);
    let signer = VaultTransitSigner::new(cfg).expect("signer");
    assert!(matches!(
        signer.sign(b"x").await,
        Err(SignError::Refused(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signs_are_coalesced_into_few_batch_calls() {
    let Some(bao) = bao_with_key("dsc").await else {
        return;
    };
    let signer = Arc::new(VaultTransitSigner::new(bao.root_config("dsc")).expect("signer"));
    let point = bao.public_point("dsc", 1).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let s = signer.clone();
        tasks.spawn(async move {
            let msg = format!("certificate {i}").into_bytes();
            let sig = s.sign(&msg).await;
            (msg, sig)
        });
    }
    let mut n = 0;
    while let Some(done) = tasks.join_next().await {
        let (msg, sig) = done.expect("task");
        let sig = sig.expect("sign");
        assert!(support::verifies(&point, &msg, &sig));
        n += 1;
    }
    assert_eq!(n, 200);
    let stats = signer.stats();
    eprintln!("200 concurrent signatures: {stats:?}");
    assert_eq!(stats.signatures, 200);
    assert!(
        stats.sign_calls <= 40,
        "expected batching, got {} transit calls for 200 signatures",
        stats.sign_calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_exceed_batch_max_and_full_batches_overlap() {
    let Some(bao) = bao_with_key("dsc").await else {
        return;
    };
    let mut cfg = bao.root_config("dsc");
    cfg.batch_max = 16;
    cfg.max_in_flight = 3;
    let signer = Arc::new(VaultTransitSigner::new(cfg).expect("signer"));
    let point = Arc::new(bao.public_point("dsc", 1).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let (s, p) = (signer.clone(), point.clone());
        tasks.spawn(async move {
            let msg = i.to_le_bytes();
            let sig = s.sign(&msg).await.expect("sign");
            support::verifies(&p, &msg, &sig)
        });
    }
    let verified = tasks.join_all().await;
    assert_eq!(verified.len(), 1000);
    assert!(verified.iter().all(|v| *v), "every signature verifies");
    let stats = signer.stats();
    eprintln!("1000 concurrent signatures, batch_max 16: {stats:?}");
    assert_eq!(stats.signatures, 1000);
    assert!(
        stats.largest_batch <= 16 && stats.largest_batch >= 8,
        "{stats:?}"
    );
    assert!(stats.sign_calls >= 1000 / 16, "{stats:?}");
    assert!((2..=3).contains(&stats.peak_in_flight), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_vault_is_unavailable_and_recovers_after_unseal() {
    let Some(bao) = bao_with_key("dsc").await else {
        return;
    };
    let signer = VaultTransitSigner::new(bao.root_config("dsc")).expect("signer");
    let point = bao.public_point("dsc", 1).await;
    assert!(signer.sign(b"before").await.is_ok());

    bao.seal().await;
    match signer.sign(b"sealed").await {
        Err(SignError::Unavailable(m)) => assert!(m.contains("sealed"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Every waiting caller of a failed batch gets its own answer; none hangs.
    let signer = Arc::new(signer);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40u32 {
        let s = signer.clone();
        tasks.spawn(async move { s.sign(&i.to_be_bytes()).await });
    }
    let answers = tokio::time::timeout(Duration::from_secs(10), tasks.join_all())
        .await
        .expect("all callers answered");
    assert!(answers
        .iter()
        .all(|a| matches!(a, Err(SignError::Unavailable(_)))));
    let h = signer.health().await;
    assert!(h.reachable && h.sealed && !h.is_ready(), "{h:?}");

    bao.unseal().await;
    // Transit loads its keys shortly after unseal.
    let mut last = None;
    for _ in 0..50 {
        match signer.sign(b"after").await {
            Ok(sig) => {
                assert!(support::verifies(&point, b"after", &sig));
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last.is_none(), "no recovery after unseal: {last:?}");
    assert!(signer.health().await.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_vault_is_unavailable_and_a_fresh_server_is_used_without_restart() {
    let Some(mut bao) = bao_with_key("dsc").await else {
        return;
    };
    let mut cfg = bao.root_config("dsc");
    cfg.request_timeout = Duration::from_secs(2);
    let signer = VaultTransitSigner::new(cfg).expect("signer");
    assert!(signer.sign(b"before").await.is_ok());

    bao.kill();
    let started = std::time::Instant::now();
    assert!(matches!(
        signer.sign(b"down").await,
        Err(SignError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up too slowly"
    );
    let h = signer.health().await;
    assert!(!h.reachable && !h.is_ready() && h.error.is_some(), "{h:?}");

    bao.restart_fresh().await;
    bao.enable("transit", "transit").await;
    bao.transit_key("dsc").await;
    let point = bao.public_point("dsc", 1).await;
    let sig = signer.sign(b"after").await.expect("sign after restart");
    assert!(support::verifies(&point, b"after", &sig));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_configured_ca_works_and_an_untrusted_server_is_unavailable() {
    let Some(bao) = support::start_tls().await else {
        return;
    };
    bao.enable("transit", "transit").await;
    bao.transit_key("dsc").await;
    let point = bao.public_point("dsc", 1).await;
    let cfg = bao.root_config("dsc");
    assert!(cfg.addr.starts_with("https://"));
    let signer = VaultTransitSigner::new(cfg.clone()).expect("signer");
    let sig = signer.sign(b"over TLS").await.expect("sign over TLS");
    assert!(support::verifies(&point, b"over TLS", &sig));

    // Without the dev CA the platform trust store rejects the server.
    let untrusted = VaultTransitSigner::new(vault_transit::VaultConfig {
        ca_bundle_pem: None,
        ..cfg
    })
    .expect("signer");
    match untrusted.sign(b"x").await {
        Err(SignError::Unavailable(m)) => assert!(m.to_lowercase().contains("certificate"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
