//! The trust network bookkeeping (migration 10) on both back ends: the outbox's
//! enqueue/lease/retry/finish cycle across two independent handles, and the verified
//! trust list.

mod common;

use common::Pair;
use ddcc_store::gateway::{DONE, FAILED, PENDING};
use ddcc_store::TrustEntry;
use serde_json::json;

both_backends!(outbox_cycle, trust_list_and_state);

async fn outbox_cycle(p: Pair) {
    let a = p.a.gateway().expect("back end keeps gateway state");
    let b = p.b.gateway().expect("back end keeps gateway state");
    let now = 1_000_000;

    let first = a
        .outbox_enqueue("reference", "ref:u1", &json!({"v": 1}), now)
        .await
        .unwrap();
    // Same key while pending: the payload is replaced, no second row.
    let again = b
        .outbox_enqueue("reference", "ref:u1", &json!({"v": 2}), now + 1)
        .await
        .unwrap();
    assert_eq!(first, again);
    let other = a
        .outbox_enqueue("dsc", "dsc:x", &json!({"der": "AA"}), now + 2)
        .await
        .unwrap();
    assert_ne!(other, first);

    // Not due yet for a clock before the rows.
    assert!(a.outbox_lease(now - 1, 1000, 10).await.unwrap().is_empty());

    let leased = a.outbox_lease(now + 10, 60_000, 10).await.unwrap();
    assert_eq!(
        leased.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![first, other]
    );
    assert_eq!(leased[0].payload, json!({"v": 2}));
    // Leased rows are invisible to the other handle until the lease ends.
    assert!(b
        .outbox_lease(now + 20, 60_000, 10)
        .await
        .unwrap()
        .is_empty());

    b.outbox_retry(first, now + 5_000, "gateway unreachable", now + 30)
        .await
        .unwrap();
    a.outbox_finish(
        other,
        FAILED,
        Some("403 Invalid Upload Certificate"),
        now + 30,
    )
    .await
    .unwrap();

    let due = b.outbox_lease(now + 5_000, 60_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, first);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].last_error.as_deref(), Some("gateway unreachable"));

    // A lease that ran out (a crashed worker) makes the row due again.
    let retaken = a.outbox_lease(now + 70_000, 60_000, 10).await.unwrap();
    assert_eq!(
        retaken.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![first]
    );
    a.outbox_finish(first, DONE, None, now + 70_001)
        .await
        .unwrap();
    assert!(a
        .outbox_lease(i64::MAX / 2, 1, 10)
        .await
        .unwrap()
        .is_empty());

    // After delivery the same key starts a new row.
    let fresh = a
        .outbox_enqueue("reference", "ref:u1", &json!({"v": 3}), now + 80_000)
        .await
        .unwrap();
    assert!(fresh != first && fresh != other);

    let all = b.outbox_list(None, 10).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|i| (i.id, i.state.as_str()))
            .collect::<Vec<_>>(),
        vec![(fresh, PENDING), (other, FAILED), (first, DONE)]
    );
    let failed = b.outbox_list(Some(FAILED), 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some("403 Invalid Upload Certificate")
    );
    // Pruning drops delivered rows only.
    assert_eq!(a.outbox_prune(now + 70_002).await.unwrap(), 1);
    let left: Vec<i64> = b
        .outbox_list(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(left, vec![fresh, other]);
    assert!(a.outbox_finish(fresh, "bogus", None, now).await.is_err());
}

fn entry(group: &str, country: &str, der: &[u8]) -> TrustEntry {
    TrustEntry {
        group: group.into(),
        country: country.into(),
        domain: "DCC".into(),
        thumbprint: format!("{:02x}{}", der[0], group),
        kid: "kid".into(),
        der: der.to_vec(),
    }
}

async fn trust_list_and_state(p: Pair) {
    let a = p.a.gateway().unwrap();
    let b = p.b.gateway().unwrap();
    assert!(a.trusted_dscs().await.unwrap().is_empty());
    a.trust_list_replace(vec![
        entry("CSCA", "XA", &[1, 1]),
        entry("DSC", "XA", &[2, 2]),
        entry("DSC", "XB", &[3, 3]),
        // Listed twice (two domains): stored once.
        entry("DSC", "XB", &[3, 3]),
    ])
    .await
    .unwrap();
    let mut dscs = b.trusted_dscs().await.unwrap();
    dscs.sort();
    assert_eq!(dscs, vec![vec![2, 2], vec![3, 3]]);

    // A delta of DSCs leaves the other groups alone.
    b.trust_list_replace_groups(&["DSC"], vec![entry("DSC", "XA", &[4, 4])])
        .await
        .unwrap();
    assert_eq!(a.trusted_dscs().await.unwrap(), vec![vec![4, 4]]);
    assert_eq!(a.trust_list(Some("CSCA")).await.unwrap().len(), 1);
    assert_eq!(a.trust_list(None).await.unwrap().len(), 2);

    // A full replace drops what is no longer listed.
    a.trust_list_replace(vec![entry("UPLOAD", "XA", &[5])])
        .await
        .unwrap();
    assert!(b.trusted_dscs().await.unwrap().is_empty());

    let h = |batch: &str, hash: &str| ddcc_store::RevokedHash {
        batch_id: batch.into(),
        country: "XA".into(),
        kid: "kid".into(),
        hash_type: "SIGNATURE".into(),
        hash: hash.into(),
    };
    a.revoked_replace(
        &["b1".into(), "b2".into()],
        vec![h("b1", "AA"), h("b1", "AB"), h("b2", "BA")],
    )
    .await
    .unwrap();
    // b1 re-synced with one hash, b2 deleted.
    b.revoked_replace(&["b1".into(), "b2".into()], vec![h("b1", "AC")])
        .await
        .unwrap();
    assert_eq!(a.revoked_hashes().await.unwrap(), vec![h("b1", "AC")]);

    assert_eq!(a.gateway_state("last_sync").await.unwrap(), None);
    a.set_gateway_state("last_sync", "1").await.unwrap();
    b.set_gateway_state("last_sync", "2").await.unwrap();
    assert_eq!(
        a.gateway_state("last_sync").await.unwrap().as_deref(),
        Some("2")
    );
}

both_backends!(concurrent_enqueue_keeps_one_pending_row);

async fn concurrent_enqueue_keeps_one_pending_row(p: Pair) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        tasks.push(tokio::spawn(async move {
            s.gateway()
                .unwrap()
                .outbox_enqueue("reference", "ref:same", &json!({ "i": i }), 1)
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one row for one key: {ids:?}");
    let rows =
        p.a.gateway()
            .unwrap()
            .outbox_list(Some(PENDING), 100)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
}
