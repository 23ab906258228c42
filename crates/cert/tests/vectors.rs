//! Data-driven checks against `../shared` (skipped with a message when absent):
//! real EU DCC test certificates, the IG ConceptMap, the EU schema's name examples.

mod common;

use base64::Engine;
use common::{read_json, shared_dir};
use ddcc_cert::{eudcc, hc1, icao9303, kid_for_dsc, x509};
use serde_json::Value;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

/// kid = SHA-256(DSC DER)[..8] for every DSC of the EU test data, and our HC1
/// decoder verifies every ES256 certificate the test data says is valid.
#[test]
fn eu_test_vectors_kid_and_signature() {
    let Some(shared) = shared_dir() else {
        eprintln!("skip: ../shared absent (EU DCC test vectors)");
        return;
    };
    let root = shared.join("testvectors/dcc");
    let index = read_json(&root.join("INDEX.json"));
    let files = index["files"].as_array().expect("INDEX.files");
    let mut diffs = Vec::new();
    let (mut kids, mut verified) = (0, 0);
    for f in files {
        let file = f["file"].as_str().unwrap_or("?");
        let (Some(pem_rel), Some(want_kid)) = (f["dsc_pem"].as_str(), f["dsc_kid_b64"].as_str())
        else {
            continue;
        };
        let Ok(pem) = std::fs::read_to_string(root.join(pem_rel)) else {
            diffs.push(format!("{file}: missing {pem_rel}"));
            continue;
        };
        let der = match x509::pem_decode("CERTIFICATE", &pem) {
            Ok(d) => d,
            Err(e) => {
                diffs.push(format!("{file}: PEM: {e}"));
                continue;
            }
        };
        kids += 1;
        if kid_for_dsc(&der).to_vec() != b64(want_kid) {
            diffs.push(format!("{file}: kid differs from {want_kid}"));
        }
        let verify_expected = f["expected"]["VERIFY"] == Value::Bool(true)
            && f["independent_check"]["signature"] == Value::Bool(true)
            && f["alg"] == "ES256";
        if !verify_expected {
            continue;
        }
        let raw = read_json(&root.join(file));
        let Some(prefix) = raw["PREFIX"].as_str() else {
            continue;
        };
        let key = match x509::p256_public_key(&der) {
            Ok(k) => k,
            Err(e) => {
                diffs.push(format!("{file}: DSC key: {e}"));
                continue;
            }
        };
        match hc1::verify(prefix, &key) {
            Ok(d) => {
                verified += 1;
                if let Some(k) = f["kid_protected_b64"].as_str() {
                    if d.kid != b64(k) {
                        diffs.push(format!("{file}: protected kid differs"));
                    }
                }
                if d.iat != f["iat"].as_i64() || d.exp != f["exp"].as_i64() {
                    diffs.push(format!("{file}: iat/exp differ"));
                }
            }
            Err(e) => diffs.push(format!("{file}: does not verify: {e}")),
        }
    }
    println!(
        "{kids} DSC kids checked, {verified} EU HC1s verified, {} differences",
        diffs.len()
    );
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert!(kids > 50 && verified > 50);
}

/// Our embedded vaccine fallback equals the IG ConceptMap's `equivalent` targets,
/// and every brand we map is one the ConceptMap allows for the brand's vaccine type
/// when the ConceptMap lists that type.
#[test]
fn vaccine_fallback_matches_ig_concept_map() {
    let Some(shared) = shared_dir() else {
        eprintln!("skip: ../shared absent (IG ConceptMaps)");
        return;
    };
    let cm =
        read_json(&shared.join(
            "conformance/ddcc-ig/terminology/ConceptMap-who-ddcc-map-icd11-eudcc-vaccines.json",
        ));
    let mut equivalent = Vec::new();
    for g in cm["group"].as_array().into_iter().flatten() {
        for e in g["element"].as_array().into_iter().flatten() {
            let targets: Vec<&Value> = e["target"].as_array().into_iter().flatten().collect();
            let eq: Vec<&str> = targets
                .iter()
                .filter(|t| t["equivalence"] == "equivalent" || t["relationship"] == "equivalent")
                .filter_map(|t| t["code"].as_str())
                .collect();
            if let ([only], Some(code)) = (eq.as_slice(), e["code"].as_str()) {
                equivalent.push((code.to_string(), only.to_string()));
            }
        }
    }
    let mut ours: Vec<(String, String)> = eudcc::VACCINE_TO_MP_EQUIVALENT
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    equivalent.sort();
    ours.sort();
    assert_eq!(ours, equivalent);
}

/// ICAO 9303 transliteration reproduces the standardised names of the EU schema's
/// example payloads (Latin and Arabic cases).
#[test]
fn eu_schema_examples_transliterate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/eu-dcc-schema/examples");
    let mut diffs = Vec::new();
    let mut checked = 0;
    for kind in ["vaccination", "test", "recovery"] {
        let Ok(rd) = std::fs::read_dir(dir.join(kind)) else {
            continue;
        };
        for f in rd.flatten() {
            let v = read_json(&f.path());
            for (plain, std_) in [("fn", "fnt"), ("gn", "gnt")] {
                if let (Some(p), Some(want)) = (v["nam"][plain].as_str(), v["nam"][std_].as_str()) {
                    checked += 1;
                    let got = icao9303::transliterate(p);
                    if got != want {
                        diffs.push(format!(
                            "{}: {p:?} -> {got}, want {want}",
                            f.path().display()
                        ));
                    }
                }
            }
        }
    }
    println!("{checked} names checked, {} differences", diffs.len());
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert!(checked >= 10);
}
