//! Acceptance: everything we issue is checked by independent Python verifiers
//! (pycose/cbor2/base45/zlib, jwcrypto, rfc8785 + cryptography, zxing-cpp,
//! jsonschema) that share no code with the product.
//!
//! Needs `tests/.venv` (run `tests/tools/setup-python.sh`). Without it the test
//! skips, unless `DDCC_REQUIRE_ORACLES` is set, in which case it fails.

mod common;

use common::{block_on, fixture, identity, workspace_root};
use ddcc_cert::hc1::{self, CwtClaims, HcertPayload};
use ddcc_cert::{bundle_sig, eudcc, icao, pdf, qr, shc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    let py = workspace_root().join("tests/.venv/bin/python");
    if py.exists() {
        return Some(py);
    }
    assert!(
        std::env::var_os("DDCC_REQUIRE_ORACLES").is_none(),
        "DDCC_REQUIRE_ORACLES is set but tests/.venv is missing: run tests/tools/setup-python.sh"
    );
    eprintln!(
        "skip: tests/.venv missing; run tests/tools/setup-python.sh for the independent verifiers"
    );
    None
}

/// Run a verifier script; returns stdout, panicking with its stderr on failure.
fn run(py: &Path, script: &str, args: &[&Path]) -> String {
    let path = workspace_root().join("tests/verify").join(script);
    let out = Command::new(py)
        .arg(&path)
        .args(args)
        .output()
        .expect("spawn python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

#[test]
fn python_verifiers_accept_everything_we_issue() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let id = identity(&out.join("keys"));
    let cert = write(out, "dsc.pem", id.dsc_pem());
    let claims = CwtClaims {
        iss: "US".into(),
        iat: 1_617_580_800,
        exp: 1_649_116_800,
    };

    // --- HC1 who + dcc for every core data set ---------------------------------
    let mut hc1_files = Vec::new();
    let mut expected_payloads = Vec::new();
    let mut dcc_files = Vec::new();
    let mut png_expect: Vec<(PathBuf, String)> = Vec::new();
    for (i, (name, cds)) in common::core_data_sets().into_iter().enumerate() {
        let who = block_on(hc1::issue(&HcertPayload::Who(cds.clone()), &claims, &id)).unwrap();
        hc1_files.push(write(out, &format!("who-{i}.hc1"), &who));
        expected_payloads.push(cds.clone());
        if i < 2 {
            png_expect.push((
                write(
                    out,
                    &format!("who-{i}.png"),
                    qr::png(&who, qr::QrMode::Alphanumeric).unwrap(),
                ),
                who,
            ));
        }
        let Ok(payload) = eudcc::from_core_data_set(
            &cds,
            &eudcc::DccOptions {
                uvci_checksum: true,
                ..Default::default()
            },
        ) else {
            assert!(name.contains("Chinese"), "{name}: no EU DCC payload");
            continue;
        };
        let dcc = block_on(hc1::issue(
            &HcertPayload::Dcc(payload.clone()),
            &claims,
            &id,
        ))
        .unwrap();
        hc1_files.push(write(out, &format!("dcc-{i}.hc1"), &dcc));
        expected_payloads.push(payload.clone());
        dcc_files.push(write(
            out,
            &format!("dcc-{i}.json"),
            serde_json::to_vec_pretty(&payload).unwrap(),
        ));
        if i < 2 {
            png_expect.push((
                write(
                    out,
                    &format!("dcc-{i}.png"),
                    qr::png(&dcc, qr::QrMode::Alphanumeric).unwrap(),
                ),
                dcc,
            ));
        }
    }
    let mut args: Vec<&Path> = vec![Path::new("--cert"), &cert];
    args.extend(hc1_files.iter().map(PathBuf::as_path));
    let decoded: Value = serde_json::from_str(&run(&py, "verify_hc1.py", &args)).unwrap();
    let decoded = match decoded {
        Value::Array(a) => a,
        one => vec![one],
    };
    assert_eq!(decoded.len(), expected_payloads.len());
    let mut diffs = Vec::new();
    for ((d, want), file) in decoded.iter().zip(&expected_payloads).zip(&hc1_files) {
        if &d["payload"] != want {
            diffs.push(format!("{}: pycose payload differs", file.display()));
        }
        if d["iss"] != "US" || d["iat"] != claims.iat || d["exp"] != claims.exp {
            diffs.push(format!("{}: claims differ: {d}", file.display()));
        }
    }
    println!(
        "{} HC1 verified by pycose, {} differences",
        decoded.len(),
        diffs.len()
    );
    assert!(diffs.is_empty(), "{diffs:#?}");

    // --- EU DCC payloads against the EU DCC 1.3.0 JSON schema ------------------
    let schema = workspace_root().join("tests/data/eu-dcc-schema/DCC.combined-schema.json");
    let mut args: Vec<&Path> = vec![Path::new("--schema"), &schema];
    args.extend(dcc_files.iter().map(PathBuf::as_path));
    println!(
        "EU DCC schema: {}",
        run(&py, "validate_dcc.py", &args).trim()
    );

    // --- SMART Health Card --------------------------------------------------------
    let bundle = fixture("shc-bundle.json");
    let card = block_on(shc::issue(
        &bundle,
        "https://ddcc.example.org",
        claims.iat,
        &id,
    ))
    .unwrap();
    let jwks = write(
        out,
        "jwks.json",
        serde_json::to_vec(&shc::jwks(&[&id]).unwrap()).unwrap(),
    );
    let shc_file = write(out, "card.shc", &card.qr_numeric);
    let vc: Value = serde_json::from_str(&run(
        &py,
        "verify_shc.py",
        &[Path::new("--jwks"), &jwks, &shc_file],
    ))
    .unwrap();
    assert_eq!(
        vc,
        shc::credential(&bundle, "https://ddcc.example.org", claims.iat).unwrap()
    );
    png_expect.push((
        write(
            out,
            "shc.png",
            qr::png(&card.qr_numeric, qr::QrMode::ShcNumeric).unwrap(),
        ),
        card.qr_numeric.clone(),
    ));

    // --- Bundle.signature -------------------------------------------------------
    let mut doc = fixture("document-bundle-en.json");
    doc["signature"] = block_on(bundle_sig::sign(
        &doc,
        &id,
        "Organization/DDCC-Organization-English",
        claims.iat,
    ))
    .unwrap();
    let doc_file = write(out, "bundle.json", serde_json::to_vec_pretty(&doc).unwrap());
    assert_eq!(
        run(
            &py,
            "verify_bundle_sig.py",
            &[Path::new("--cert"), &cert, &doc_file]
        )
        .trim(),
        "OK"
    );

    // --- ICAO VDS-NC ----------------------------------------------------------------
    let vds = block_on(icao::issue(&fixture("core-data-set-en.json"), &id)).unwrap();
    let vds_text = serde_json::to_string(&vds).unwrap();
    let vds_file = write(out, "vds.json", &vds_text);
    assert_eq!(
        run(
            &py,
            "verify_icao.py",
            &[Path::new("--cert"), &cert, &vds_file]
        )
        .trim(),
        "OK"
    );
    png_expect.push((
        write(
            out,
            "icao.png",
            qr::png(&vds_text, qr::QrMode::Byte).unwrap(),
        ),
        vds_text,
    ));

    // --- QR PNGs decode back to the exact payload at level Q ----------------------
    let args: Vec<&Path> = png_expect.iter().map(|(p, _)| p.as_path()).collect();
    let lines = run(&py, "decode_qr.py", &args);
    let mut diffs = Vec::new();
    for (line, (path, want)) in lines.lines().zip(&png_expect) {
        let r: Value = serde_json::from_str(line).unwrap();
        if r["texts"][0] != Value::String(want.clone()) {
            diffs.push(format!("{}: decoded text differs", path.display()));
        }
        if r["ec_levels"][0] != "Q" {
            diffs.push(format!(
                "{}: EC level {}",
                path.display(),
                r["ec_levels"][0]
            ));
        }
    }
    println!(
        "{} QR PNGs decoded by zxing-cpp, {} differences",
        png_expect.len(),
        diffs.len()
    );
    assert!(diffs.is_empty(), "{diffs:#?}");

    // --- PDF: rendered by poppler, its QR codes decode -----------------------------
    let who_text = &png_expect[0].1;
    let cds = fixture("core-data-set-en.json");
    let doc = pdf::PdfCertificate::from_core_data_sets(
        &[cds],
        vec![pdf::PdfQr {
            label: "WHO DDCC".into(),
            matrix: qr::matrix(who_text, qr::QrMode::Alphanumeric).unwrap(),
        }],
    )
    .unwrap();
    let pdf_file = write(out, "cert.pdf", pdf::render(&doc).unwrap());
    match Command::new("pdftoppm")
        .args(["-r", "150", "-png", "-singlefile"])
        .arg(&pdf_file)
        .arg(out.join("page"))
        .status()
    {
        Ok(s) if s.success() => {
            let page = out.join("page.png");
            let r: Value = serde_json::from_str(run(&py, "decode_qr.py", &[&page]).trim()).unwrap();
            assert_eq!(
                r["texts"][0],
                Value::String(who_text.clone()),
                "QR on the rendered PDF page"
            );
        }
        _ => {
            assert!(
                std::env::var_os("DDCC_REQUIRE_ORACLES").is_none(),
                "pdftoppm (poppler-utils) is required"
            );
            eprintln!("skip: pdftoppm not installed");
        }
    }
}

/// The verifiers are real checks: each rejects a wrong key or altered content.
#[test]
fn python_verifiers_reject_wrong_keys_and_tampering() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let id = identity(&out.join("a"));
    let other = identity(&out.join("b"));
    let other_cert = write(out, "other.pem", other.dsc_pem());
    let cert = write(out, "dsc.pem", id.dsc_pem());
    let claims = CwtClaims {
        iss: "US".into(),
        iat: 1_617_580_800,
        exp: 1_649_116_800,
    };
    let cds = fixture("core-data-set-en.json");
    let fails = |script: &str, args: &[&Path]| {
        let path = workspace_root().join("tests/verify").join(script);
        let st = Command::new(&py)
            .arg(&path)
            .args(args)
            .output()
            .expect("spawn python");
        !st.status.success()
    };

    let who = block_on(hc1::issue(&HcertPayload::Who(cds.clone()), &claims, &id)).unwrap();
    let hc1_file = write(out, "who.hc1", &who);
    assert!(fails(
        "verify_hc1.py",
        &[Path::new("--cert"), &other_cert, &hc1_file]
    ));

    let mut doc = fixture("document-bundle-en.json");
    doc["signature"] = block_on(bundle_sig::sign(&doc, &id, "Organization/x", claims.iat)).unwrap();
    doc["entry"][1]["resource"]["birthDate"] = Value::String("1999-01-01".into());
    let doc_file = write(out, "bundle.json", serde_json::to_vec(&doc).unwrap());
    assert!(fails(
        "verify_bundle_sig.py",
        &[Path::new("--cert"), &cert, &doc_file]
    ));

    let card = block_on(shc::issue(
        &fixture("shc-bundle.json"),
        "https://x.example",
        claims.iat,
        &id,
    ))
    .unwrap();
    let other_jwks = write(
        out,
        "jwks.json",
        serde_json::to_vec(&shc::jwks(&[&other]).unwrap()).unwrap(),
    );
    let shc_file = write(out, "card.shc", &card.qr_numeric);
    assert!(fails(
        "verify_shc.py",
        &[Path::new("--jwks"), &other_jwks, &shc_file]
    ));

    let mut vds = block_on(icao::issue(&cds, &id)).unwrap();
    vds["data"]["msg"]["pid"]["dob"] = Value::String("1999-01-01".into());
    let vds_file = write(out, "vds.json", serde_json::to_vec(&vds).unwrap());
    assert!(fails(
        "verify_icao.py",
        &[Path::new("--cert"), &cert, &vds_file]
    ));

    let mut bad = eudcc::from_core_data_set(&cds, &eudcc::DccOptions::default()).unwrap();
    bad["v"][0]["dn"] = Value::from(0);
    let bad_file = write(out, "bad-dcc.json", serde_json::to_vec(&bad).unwrap());
    let schema = workspace_root().join("tests/data/eu-dcc-schema/DCC.combined-schema.json");
    assert!(fails(
        "validate_dcc.py",
        &[Path::new("--schema"), &schema, &bad_file]
    ));
}

/// Differential test of our RFC 8785 implementation against Python's `rfc8785`
/// on awkward numbers, escapes and non-BMP keys, and on a real DDCC Bundle.
#[test]
fn jcs_matches_python_rfc8785() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let tricky = r#"{
      "numbers": [0, -0.0, 1, -1, 1.5, 0.1, 1e21, 1e20, 1.2345678901234568e20, 1e-7, 0.000001,
                  5e-324, 1.7976931348623157e308, 9007199254740991, -9007199254740991, 3.14159,
                  1424953923781206.25, 333333333.33333329, 2.5e-5, 100, 1E2],
      "strings": ["\u0000\u001f\u007f", "\"\\/", "\b\f\n\r\t", "€ 😀 \u2028 \ufb33", "ä"],
      "\ud83d\ude00": 1, "\u20ac": 2, "\r": 3, "1": 4, "\u0080": 5, "\u00f6": 6, "\ufb33": 7,
      "nested": {"b": [true, false, null, {}, []], "a": {"z": 1, "y": {"x": "deep"}}}
    }"#;
    let mut inputs = vec![(
        write(tmp.path(), "tricky.json", tricky),
        serde_json::from_str::<Value>(tricky).unwrap(),
    )];
    let doc = fixture("document-bundle-en.json");
    inputs.push((
        write(tmp.path(), "bundle.json", serde_json::to_vec(&doc).unwrap()),
        doc,
    ));
    for (path, value) in inputs {
        let theirs = run(&py, "jcs_canonical.py", &[&path]);
        let ours = ddcc_cert::jcs::canonicalize(&value).unwrap();
        assert_eq!(ours, theirs, "{}", path.display());
    }
}
