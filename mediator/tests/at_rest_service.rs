//! Encryption at rest through the running service: after issuing a certificate, the data
//! directory holds no patient name, birth date or HCID in clear text, while the registry
//! still finds the holder's Folder by HCID; with Vault-wrapped data keys nothing on disk
//! can unwrap the data, and a restarted service reads what it wrote.

mod service;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use ddcc_mediator::services::Services;
use openbao_harness as bao_support;
use serde_json::{json, Value};

const GENERATE: &str = "/fhir/QuestionnaireResponse/$generateHealthCertificate";
/// What the IG's English example says about its holder.
const SECRETS: [&str; 6] = [
    "Aulus Agerius",
    "Agerius",
    "AGERIUS",
    "2003-03-03",
    "bMlJkAt0V92RYhhG3fNt",
    "1234567890",
];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Each secret found in clear text in any file of `dir`, with the file.
fn clear_text_in(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(!files.is_empty(), "{} holds files", dir.display());
    let mut hits = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        for s in SECRETS {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                hits.push(format!("{s} in {}", f.display()));
            }
        }
    }
    hits
}

#[actix_web::test]
async fn issued_certificates_leave_no_clear_personal_data_on_disk() {
    let Some(qr) = service::english_response() else {
        return;
    };
    let cfg = service::config("at-rest");
    let data_dir = cfg.data_dir.clone();
    let app = service::app(cfg).await;
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri(GENERATE)
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .set_payload(qr.to_string())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let issued: Value = test::read_body_json(resp).await;
    assert!(
        issued.to_string().contains("bMlJkAt0V92RYhhG3fNt"),
        "the certificate itself carries the HCID"
    );

    // ITI-66 by HCID still finds the Folder (its index value is blind).
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/fhir/List?identifier=bMlJkAt0V92RYhhG3fNt&code=folder")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let folders: Value = test::read_body_json(resp).await;
    let n = folders["entry"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 1, "one Folder for the HCID: {folders}");

    let hits = clear_text_in(&data_dir);
    assert!(hits.is_empty(), "clear personal data on disk: {hits:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join(ddcc_store::crypto::KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_wrapped_data_keys_survive_restart_and_stay_off_disk() {
    let Some(bao) = bao_support::start().await else {
        return;
    };
    bao.enable("transit", "transit").await;
    let env: HashMap<&str, String> = HashMap::from([
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_TOKEN", bao_support::ROOT_TOKEN.to_string()),
        // No DSC in this Vault: signing stays unavailable, the store does not need it.
        ("VAULT_TRANSIT_KEY", "ddcc-dsc".to_string()),
        ("DDCC_DATA_KEY_VAULT_KEY", "ddcc-data".to_string()),
    ]);
    let cfg = service::config("at-rest-vault");
    let data_dir = cfg.data_dir.clone();
    let services = Services::build_with_env(&cfg, |k| env.get(k).cloned())
        .await
        .expect("services with Vault data keys");
    let stored = services
        .registry
        .store
        .create(json!({"resourceType": "Patient", "name": [{"text": "Aulus Agerius"}], "birthDate": "2003-03-03"}))
        .await
        .expect("store a patient");
    drop(services);

    assert!(
        !data_dir.join(ddcc_store::crypto::KEY_FILE).exists(),
        "no raw key file in Vault mode"
    );
    let wrapped =
        std::fs::read_to_string(data_dir.join(ddcc_mediator::data_keys::WRAPPED_KEY_FILE))
            .expect("wrapped keys kept");
    assert!(wrapped.contains("vault:v1:"), "{wrapped}");
    let hits = clear_text_in(&data_dir);
    assert!(hits.is_empty(), "clear personal data on disk: {hits:?}");

    // A restart unwraps the same keys through Vault and reads what was written.
    let services = Services::build_with_env(&cfg, |k| env.get(k).cloned())
        .await
        .expect("restart");
    let read = services
        .registry
        .store
        .read("Patient", &stored.id)
        .await
        .expect("read after restart");
    assert_eq!(read.resource["name"][0]["text"], "Aulus Agerius");
    drop(services);

    // Without Vault the wrapped keys are useless: start-up fails clearly, it never
    // starts with fresh keys over data it cannot read.
    let mut bao = bao;
    bao.kill();
    let err = match Services::build_with_env(&cfg, |k| env.get(k).cloned()).await {
        Ok(_) => panic!("started without being able to unwrap the data keys"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("Vault data key"), "{err}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn rotate_and_retire_data_keys_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!(
        "ddcc-at-rest-cli-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
            .args(args)
            .env_clear()
            .env("DDCC_DATA_DIR", &dir)
            .output()
            .expect("run ddcc-mediator")
    };
    let out = run(&["keys", "rotate-data-key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "current data key: k2"
    );
    // The current key cannot be retired; the old one can, after the re-sealing pass.
    assert!(!run(&["keys", "retire-data-key", "k2"]).status.success());
    let out = run(&["keys", "retire-data-key", "k1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = std::fs::read_to_string(dir.join(ddcc_store::crypto::KEY_FILE)).expect("keys");
    assert!(
        keys.contains("\"k2\"") && !keys.contains("\"k1\""),
        "{keys}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
