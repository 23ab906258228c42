//! What the running service issues, checked by independent implementations that
//! share no code with it (tests/verify/*.py): every `HC1:` (who, dcc) with pycose
//! given only the DSC certificate; the SMART Health Card with jwcrypto and the JWKS
//! the service serves; the ICAO VDS-NC and the Bundle.signature with an RFC 8785
//! library and `cryptography`; every QR PNG decoded back to its payload by zxing-cpp;
//! the EU DCC payload against the EU DCC 1.3.0 JSON schema.

mod service;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use base64::Engine;
use serde_json::Value;
use service::{app, config, root, shared};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The verifiers' Python, or `None` (skip) when not installed and not required.
fn python() -> Option<PathBuf> {
    let py = root().join("tests/.venv/bin/python");
    let ready = py.is_file()
        && Command::new(&py)
            .args([
                "-c",
                "import pycose, jwcrypto, rfc8785, zxingcpp, jsonschema",
            ])
            .status()
            .is_ok_and(|s| s.success());
    match (ready, std::env::var_os("DDCC_REQUIRE_ORACLES").is_some()) {
        (true, _) => Some(py),
        (false, true) => {
            panic!("the Python verifiers are required: run tests/tools/setup-python.sh")
        }
        (false, false) => {
            println!("SKIP: Python verifiers not installed (tests/tools/setup-python.sh)");
            None
        }
    }
}

fn run(py: &Path, script: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(py)
        .arg(root().join("tests/verify").join(script))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[actix_web::test]
async fn everything_the_service_issues_verifies_independently() {
    let Some(shared) = shared() else { return };
    let examples = shared.join("conformance/ddcc-ig/examples");
    let Some(py) = python() else { return };
    let cfg = config("independent");
    let work = cfg.data_dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let app = app(cfg).await;

    let body = |path: &str| TestRequest::get().uri(path).to_request();
    let dsc = test::read_body(test::call_service(&app, body("/ddcc/dsc")).await).await;
    let jwks =
        test::read_body(test::call_service(&app, body("/.well-known/jwks.json")).await).await;
    let dsc_path = work.join("dsc.pem");
    let jwks_path = work.join("jwks.json");
    std::fs::write(&dsc_path, &dsc).unwrap();
    std::fs::write(&jwks_path, &jwks).unwrap();
    let dsc_arg = dsc_path.to_str().unwrap();
    let schema = root().join("tests/data/eu-dcc-schema/DCC.combined-schema.json");

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut names: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("QuestionnaireResponse-")
        })
        .collect();
    names.sort();
    for (n, path) in names.iter().enumerate() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let req = TestRequest::post()
            .uri("/fhir/QuestionnaireResponse/$generateHealthCertificate")
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .set_payload(std::fs::read(path).unwrap())
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status().as_u16(), 200, "{name}");
        let doc: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
        let doc_path = work.join(format!("{n}-bundle.json"));
        std::fs::write(&doc_path, serde_json::to_vec(&doc).unwrap()).unwrap();
        let mut check = |what: String, r: Result<String, String>| {
            checked += 1;
            if let Err(e) = r {
                failures.push(format!("{name} {what}: {e}"));
            }
        };
        check(
            "Bundle.signature".into(),
            run(
                &py,
                "verify_bundle_sig.py",
                &["--cert", dsc_arg, doc_path.to_str().unwrap()],
            ),
        );

        for e in doc["entry"].as_array().unwrap() {
            let r = &e["resource"];
            if r["resourceType"] != "DocumentReference" {
                continue;
            }
            let kind = r["type"]["coding"][0]["code"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let data = |format: &str, ct: &str| {
                r["content"].as_array().into_iter().flatten().find_map(|c| {
                    (c["format"]["code"] == format && c["attachment"]["contentType"] == ct)
                        .then(|| {
                            base64::engine::general_purpose::STANDARD
                                .decode(c["attachment"]["data"].as_str()?)
                                .ok()
                        })
                        .flatten()
                })
            };
            let payload = data(
                "serialized",
                if kind == "icao" {
                    "application/json"
                } else {
                    "text/plain"
                },
            )
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap_or_default();
            let payload_path = work.join(format!("{n}-{kind}.txt"));
            std::fs::write(&payload_path, &payload).unwrap();
            let p = payload_path.to_str().unwrap().to_string();
            match kind.as_str() {
                "who" | "dcc" => {
                    let verified = run(&py, "verify_hc1.py", &["--cert", dsc_arg, &p]);
                    if kind == "dcc" {
                        if let Ok(out) = &verified {
                            let claims: Value = serde_json::from_str(out).unwrap();
                            let dcc_path = work.join(format!("{n}-dcc.json"));
                            std::fs::write(&dcc_path, claims["payload"].to_string()).unwrap();
                            check(
                                "EU DCC schema".into(),
                                run(
                                    &py,
                                    "validate_dcc.py",
                                    &[
                                        "--schema",
                                        schema.to_str().unwrap(),
                                        dcc_path.to_str().unwrap(),
                                    ],
                                ),
                            );
                        }
                    }
                    check(format!("{kind} HC1"), verified);
                }
                "shc" => check(
                    "SMART Health Card".into(),
                    run(
                        &py,
                        "verify_shc.py",
                        &["--jwks", jwks_path.to_str().unwrap(), &p],
                    ),
                ),
                "icao" => check(
                    "ICAO VDS-NC".into(),
                    run(&py, "verify_icao.py", &["--cert", dsc_arg, &p]),
                ),
                other => check(format!("QR kind {other}"), Err("unexpected".into())),
            }
            // The PNG decodes back to exactly the payload.
            let Some(png) = data("image", "image/png") else {
                check(format!("{kind} PNG"), Err("no PNG content".into()));
                continue;
            };
            let png_path = work.join(format!("{n}-{kind}.png"));
            std::fs::write(&png_path, png).unwrap();
            let decoded = run(&py, "decode_qr.py", &[png_path.to_str().unwrap()]).and_then(|out| {
                let v: Value = serde_json::from_str(out.trim()).map_err(|e| e.to_string())?;
                if v["texts"][0] == payload.as_str() {
                    Ok(String::new())
                } else {
                    Err(format!("decoded {} is not the payload", v["texts"][0]))
                }
            });
            check(format!("{kind} PNG"), decoded);
        }
    }
    for f in &failures {
        println!("FAILED {f}");
    }
    println!(
        "{} of {checked} independent checks passed",
        checked - failures.len()
    );
    assert!(
        checked >= 6 * 10,
        "six documents, ten checks each at least; got {checked}"
    );
    assert!(failures.is_empty());
}
