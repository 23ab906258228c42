//! The TNP UP key in Vault transit (a real OpenBao): `keys init` makes the transit key
//! and a certificate for it, the gateway onboards that certificate as our UPLOAD
//! entry, and the client's uploads are signed in Vault (the mediator never holds the
//! key) and accepted by the double's `openssl cms -verify`.

use std::collections::HashMap;

use ddcc_mediator::gateway::{Gateway, GatewaySettings};
use ddcc_store::{SqliteStore, Store};
use gateway_double::{Config, GatewayDouble, ParticipantKeys, PartyType};
use openbao_harness as bao_support;
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use trust_network::reference::{Publisher, ServedArtefact};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_key_in_vault_transit() {
    let Some(bao) = bao_support::start().await else {
        return;
    };
    bao.enable("transit", "transit").await;
    bao.enable("pki", "pki").await;
    bao.api(
        Method::POST,
        "sys/mounts/pki/tune",
        Some(json!({"max_lease_ttl": "87600h"})),
    )
    .await;
    bao.api(
        Method::POST,
        "pki/root/generate/internal",
        Some(json!({"common_name": "XA test CA", "country": "XA", "key_type": "ec", "key_bits": 256, "ttl": "87600h"})),
    )
    .await;
    let vault_env: Vec<(&str, String)> = vec![
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_TOKEN", bao_support::ROOT_TOKEN.to_string()),
        ("VAULT_TRANSIT_KEY", "tnp-up".to_string()),
        ("DDCC_ISSUER_COUNTRY", "XA".to_string()),
    ];
    let cli = |args: &'static [&'static str]| {
        let env = vault_env.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
                .args(args)
                .env_clear()
                .envs(env)
                .output()
                .unwrap()
        })
    };
    let init = cli(&["keys", "init", "--days", "365"]).await.unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let show = cli(&["keys", "show"]).await.unwrap();
    let stdout = String::from_utf8(show.stdout).unwrap();
    let pem = &stdout[stdout.find("-----BEGIN CERTIFICATE-----").unwrap()..];
    let up_der = ddcc_cert::x509::pem_decode("CERTIFICATE", pem).unwrap();

    let gw = GatewayDouble::start(Config::default()).await.unwrap();
    let keys = ParticipantKeys::generate("XA").unwrap();
    gw.onboard("XA", PartyType::Authentication, &keys.tls.cert_der())
        .await
        .unwrap();
    gw.onboard("XA", PartyType::Upload, &up_der).await.unwrap();

    let dir = std::env::temp_dir().join(format!(
        "ddcc-gw-vault-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let mut env: HashMap<&str, String> = vault_env.iter().cloned().collect();
    env.insert("DDCC_GATEWAY_URL", gw.base_url());
    env.insert(
        "DDCC_GATEWAY_TLS_CERT",
        file("tls.pem", &keys.tls.cert_pem()),
    );
    env.insert("DDCC_GATEWAY_TLS_KEY", file("tls.key", &keys.tls.key_pem()));
    env.insert("DDCC_GATEWAY_CA", file("ca.pem", gw.server_ca_pem()));
    env.insert("DDCC_GATEWAY_UPLOAD_CERT", file("up.pem", pem));
    env.insert("DDCC_GATEWAY_UPLOAD_VAULT_KEY", "tnp-up".into());
    let settings = GatewaySettings::from_env(|k| env.get(k).cloned())
        .unwrap()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("data")).unwrap());
    let g = Gateway::from_settings(&settings, store, "XA").unwrap();
    let artefact = ServedArtefact {
        resource_type: "ValueSet".into(),
        url: "https://moh.example/fhir/ValueSet/vaccines".into(),
        name: "vaccines".into(),
        version: "1.0.0".into(),
        bytes: b"{}".to_vec(),
    };
    let publisher = Publisher {
        country: "XA".into(),
        domain: "DDCC".into(),
        ssl_public_key: "MIIBtest".into(),
    };
    g.publish(&[artefact], &publisher, "https://moh.example/fhir/")
        .await
        .unwrap();
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.delivered, 1, "{d:?}");
    assert_eq!(gw.references().len(), 1);
}
