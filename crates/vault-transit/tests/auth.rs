//! Authentication against a real OpenBao: AppRole with a least-privilege policy,
//! short-lived tokens that must be renewed or replaced mid-run.

use openbao_harness as support;

use std::time::{Duration, Instant};

use ddcc_cert::signer::{SignError, Signer};
use reqwest::Method;
use serde_json::{json, Value};
use vault_transit::{Auth, Secret, VaultConfig, VaultTransitSigner};

const POLICY: &str = r#"
path "transit/sign/dsc/*" { capabilities = ["update"] }
path "transit/sign/dsc" { capabilities = ["update"] }
path "transit/keys/dsc" { capabilities = ["read"] }
"#;

async fn prepared() -> Option<support::Bao> {
    let bao = support::start().await?;
    bao.enable("transit", "transit").await;
    bao.transit_key("dsc").await;
    bao.transit_key("other").await;
    bao.api(
        Method::POST,
        "sys/policies/acl/ddcc-signer",
        Some(json!({ "policy": POLICY })),
    )
    .await;
    Some(bao)
}

/// Creates an AppRole role and returns (role_id, secret_id).
async fn approle(bao: &support::Bao, role: &str, ttl: &str, max_ttl: &str) -> (String, String) {
    approle_typed(bao, role, ttl, max_ttl, "service").await
}

async fn approle_typed(
    bao: &support::Bao,
    role: &str,
    ttl: &str,
    max_ttl: &str,
    token_type: &str,
) -> (String, String) {
    let (status, _) = bao
        .try_api(
            Method::POST,
            "sys/auth/approle",
            Some(json!({ "type": "approle" })),
        )
        .await;
    assert!(
        status == 204 || status == 200 || status == 400,
        "enable approle: {status}"
    );
    bao.api(
        Method::POST,
        &format!("auth/approle/role/{role}"),
        Some(json!({
            "token_policies": ["ddcc-signer"],
            "token_ttl": ttl,
            "token_max_ttl": max_ttl,
            "secret_id_num_uses": 0,
            "token_type": token_type,
        })),
    )
    .await;
    let r = bao
        .api(
            Method::GET,
            &format!("auth/approle/role/{role}/role-id"),
            None,
        )
        .await;
    let s = bao
        .api(
            Method::POST,
            &format!("auth/approle/role/{role}/secret-id"),
            None,
        )
        .await;
    let get = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    (
        get(&r, "/data/role_id").expect("role_id"),
        get(&s, "/data/secret_id").expect("secret_id"),
    )
}

fn approle_config(
    bao: &support::Bao,
    key: &str,
    role_id: String,
    secret_id: String,
) -> VaultConfig {
    VaultConfig::new(
        bao.addr.clone(),
        Auth::AppRole {
            role_id,
            secret_id: Secret::new(secret_id),
            mount: "approle".into(),
        },
        key,
    )
}

/// Signs continuously for `run` and returns every failure seen.
async fn sign_for(
    signer: &VaultTransitSigner,
    point: &[u8],
    run: Duration,
) -> (usize, Vec<String>) {
    let end = Instant::now() + run;
    let mut failures = Vec::new();
    let mut n = 0;
    while Instant::now() < end {
        let msg = format!("message {n}").into_bytes();
        match signer.sign(&msg).await {
            Ok(sig) if support::verifies(point, &msg, &sig) => {}
            Ok(_) => failures.push(format!("#{n}: signature does not verify")),
            Err(e) => failures.push(format!("#{n}: {e}")),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    (n, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_with_a_least_privilege_policy_signs_only_its_key() {
    let Some(bao) = prepared().await else { return };
    let (role_id, secret_id) = approle(&bao, "mediator", "1h", "4h").await;
    let point = bao.public_point("dsc", 1).await;

    let signer = VaultTransitSigner::new(approle_config(
        &bao,
        "dsc",
        role_id.clone(),
        secret_id.clone(),
    ))
    .expect("signer");
    let sig = signer.sign(b"allowed").await.expect("sign with dsc");
    assert!(support::verifies(&point, b"allowed", &sig));
    assert!(signer.stats().logins >= 1);
    assert!(signer.health().await.is_ready());

    let other = VaultTransitSigner::new(approle_config(&bao, "other", role_id.clone(), secret_id))
        .expect("signer");
    match other.sign(b"not allowed").await {
        Err(SignError::Refused(m)) => assert!(m.contains("permission denied"), "{m}"),
        r => panic!("expected Refused, got {r:?}"),
    }

    let wrong = VaultTransitSigner::new(approle_config(
        &bao,
        "dsc",
        role_id,
        "not-the-secret".into(),
    ))
    .expect("signer");
    assert!(matches!(wrong.sign(b"x").await, Err(SignError::Refused(_))));
    let h = wrong.health().await;
    assert!(h.reachable && !h.authenticated && !h.is_ready(), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_replaced_by_a_new_login_on_the_failing_request() {
    let Some(bao) = prepared().await else { return };
    let (role_id, secret_id) = approle(&bao, "mediator", "1h", "4h").await;
    let point = bao.public_point("dsc", 1).await;
    let signer =
        VaultTransitSigner::new(approle_config(&bao, "dsc", role_id, secret_id)).expect("signer");
    signer.sign(b"first").await.expect("first sign");
    let logins = signer.stats().logins;
    bao.api(
        Method::POST,
        "sys/leases/revoke-prefix/auth/approle/login",
        None,
    )
    .await;
    let sig = signer
        .sign(b"after revocation")
        .await
        .expect("sign after revocation");
    assert!(support::verifies(&point, b"after revocation", &sig));
    // At least the failing request's own re-login; the background renewer may also
    // notice the revoked token and log in once more at the same time.
    let after = signer.stats().logins;
    assert!(
        (logins + 1..=logins + 2).contains(&after),
        "logins {logins} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_renewable_batch_tokens_are_replaced_before_they_expire() {
    let Some(bao) = prepared().await else { return };
    let (role_id, secret_id) = approle_typed(&bao, "batch", "3s", "3s", "batch").await;
    let point = bao.public_point("dsc", 1).await;
    let signer =
        VaultTransitSigner::new(approle_config(&bao, "dsc", role_id, secret_id)).expect("signer");
    let (n, failures) = sign_for(&signer, &point, Duration::from_secs(7)).await;
    let stats = signer.stats();
    eprintln!("batch tokens: {n} signatures over 7 s, {stats:?}");
    assert!(
        failures.is_empty(),
        "{} of {n} failed: {failures:?}",
        failures.len()
    );
    assert_eq!(stats.renewals, 0, "batch tokens cannot be renewed");
    assert!(stats.logins >= 3, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_ttl_token_is_renewed_without_a_failed_request() {
    let Some(bao) = prepared().await else { return };
    let created = bao
        .api(
            Method::POST,
            "auth/token/create",
            Some(json!({
                "policies": ["ddcc-signer"],
                "ttl": "3s",
                "explicit_max_ttl": "120s",
                "renewable": true,
            })),
        )
        .await;
    let token = created
        .pointer("/auth/client_token")
        .and_then(Value::as_str)
        .expect("token")
        .to_owned();
    let point = bao.public_point("dsc", 1).await;
    let signer = VaultTransitSigner::new(VaultConfig::new(
        bao.addr.clone(),
        Auth::Token(Secret::new(token)),
        "dsc",
    ))
    .expect("signer");
    let (n, failures) = sign_for(&signer, &point, Duration::from_secs(8)).await;
    let stats = signer.stats();
    eprintln!("token: {n} signatures over 8 s, {stats:?}");
    assert!(
        failures.is_empty(),
        "{} of {n} failed: {failures:?}",
        failures.len()
    );
    assert!(
        stats.renewals >= 2,
        "the 3 s token must have been renewed: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approle_token_past_its_max_ttl_is_replaced_by_a_new_login() {
    let Some(bao) = prepared().await else { return };
    let (role_id, secret_id) = approle(&bao, "short", "2s", "4s").await;
    let point = bao.public_point("dsc", 1).await;
    let signer =
        VaultTransitSigner::new(approle_config(&bao, "dsc", role_id, secret_id)).expect("signer");
    let (n, failures) = sign_for(&signer, &point, Duration::from_secs(10)).await;
    let stats = signer.stats();
    eprintln!("approle: {n} signatures over 10 s, {stats:?}");
    assert!(
        failures.is_empty(),
        "{} of {n} failed: {failures:?}",
        failures.len()
    );
    assert!(
        stats.logins >= 3,
        "max TTL 4 s over 10 s needs new logins: {stats:?}"
    );
}
