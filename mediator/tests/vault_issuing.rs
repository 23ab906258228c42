//! Issuing through a real OpenBao (Vault API): `ddcc-mediator keys init` creates the
//! transit key and a DSC signed by Vault PKI; the service then issues with the key
//! in Vault (the mediator never sees it) and every signature verifies with the DSC.
//! Sealing Vault makes issuing answer 503 and readiness go red; unsealing recovers
//! without a restart.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use ddcc_cert::{bundle_sig, hc1};
use ddcc_mediator::config::Config;
use ddcc_mediator::server;
use ddcc_mediator::services::Services;
use openbao_harness as bao_support;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn english_response() -> Option<Value> {
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let p = shared.join("conformance/ddcc-ig/examples/QuestionnaireResponse-DDCCVSQuestionnaireResponseExample.json");
    if !p.is_file() {
        println!("SKIP: {} is absent", p.display());
        return None;
    }
    Some(serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_init_then_issue_through_vault_transit() {
    let Some(qr) = english_response() else { return };
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
        Some(json!({"common_name": "XA test SCA", "country": "XA", "key_type": "ec", "key_bits": 256, "ttl": "87600h"})),
    )
    .await;

    let env: HashMap<&str, String> = HashMap::from([
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_TOKEN", bao_support::ROOT_TOKEN.to_string()),
        ("VAULT_TRANSIT_KEY", "ddcc-dsc".to_string()),
        ("DDCC_ISSUER_COUNTRY", "XA".to_string()),
    ]);

    // The CLI, as an operator runs it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .args(["keys", "init", "--days", "365"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("ddcc-mediator keys init runs");
    assert!(
        out.status.success(),
        "keys init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let kid = printed
        .lines()
        .find_map(|l| l.strip_prefix("kid: "))
        .expect("kid printed")
        .to_string();
    let show = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .args(["keys", "show"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains(&format!("kid: {kid}")));

    // The service, signing through Vault.
    let cfg = Config {
        standalone: Some(true),
        data_dir: std::env::temp_dir().join(format!("ddcc-vault-issuing-{}", std::process::id())),
        ddcc: ddcc_mediator::config::DdccConfig {
            issuer_country: "XA".into(),
            profiles_dir: root().join("fhir-profiles"),
            ..Default::default()
        },
        ..Default::default()
    };
    let services = Services::build_with_env(&cfg, |k| env.get(k).cloned())
        .await
        .expect("services");
    let identity = services.signing.get().expect("connected to Vault").identity;
    assert_eq!(
        identity.kid_b64(),
        kid,
        "the service signs under the DSC keys init made"
    );
    let state = server::build_state(cfg, |b| services.install(b)).unwrap();
    let app = test::init_service(server::build_app(state, |_| {})).await;

    let post = |body: &Value| {
        TestRequest::post()
            .uri("/fhir/QuestionnaireResponse/$generateHealthCertificate")
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .set_payload(body.to_string())
            .to_request()
    };
    let resp = test::call_service(&app, post(&qr)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    bundle_sig::verify(&doc, &identity.public_key).expect("Bundle.signature verifies with the DSC");
    let mut hc1s = 0;
    for e in doc["entry"].as_array().unwrap() {
        for c in e["resource"]["content"].as_array().into_iter().flatten() {
            if c["format"]["code"] == "serialized" && c["attachment"]["contentType"] == "text/plain"
            {
                use base64::Engine;
                let text = String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(c["attachment"]["data"].as_str().unwrap())
                        .unwrap(),
                )
                .unwrap();
                if text.starts_with("HC1:") {
                    hc1::verify(&text, &identity.public_key).expect("HC1 verifies with the DSC");
                    hc1s += 1;
                }
            }
        }
    }
    assert_eq!(hc1s, 2, "who and dcc");

    // The same event again is answered from the registry, without signing.
    let resp = test::call_service(&app, post(&qr)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let again: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert_eq!(
        again["signature"], doc["signature"],
        "one certificate per event"
    );

    // A new event while Vault is sealed: 503 with an OperationOutcome, readiness red;
    // unsealed: works again, without a restart.
    let mut second_dose = qr.clone();
    second_dose["identifier"] =
        json!({"system": "urn:ddcc-mediator:test", "value": "second-event"});
    bao.seal().await;
    let resp = test::call_service(&app, post(&second_dose)).await;
    assert_eq!(resp.status().as_u16(), 503);
    let outcome: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let ready = test::call_service(&app, TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(ready.status().as_u16(), 503);
    bao.unseal().await;
    let resp = test::call_service(&app, post(&second_dose)).await;
    assert_eq!(resp.status().as_u16(), 200, "recovers without a restart");
}
