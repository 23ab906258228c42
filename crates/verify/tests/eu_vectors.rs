//! The EU DCC test vectors (`../shared/testvectors/dcc`): every file's expected
//! verdicts against ours, layer by layer. Prints every disagreement and the count
//! of agreeing files; fails on any disagreement not listed in `known_issues.csv`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ddcc_verify::{parse_iso8601, verify_hc1, CheckKind, TrustList, Verification};
use serde_json::Value;

fn vectors_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("testvectors/dcc");
    dir.is_dir().then_some(dir)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// `(country, test set)` → reason, from the upstream list of expected failures.
fn known_issues(dir: &Path) -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(dir.join("known_issues.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            match cols.as_slice() {
                [test, country, set, reason, ..] => Some((
                    (country.to_string(), set.to_string()),
                    format!("{test}: {reason}"),
                )),
                _ => None,
            }
        })
        .collect()
}

fn decoded(v: &Verification) -> bool {
    [
        CheckKind::Prefix,
        CheckKind::Base45,
        CheckKind::Cbor,
        CheckKind::Cose,
    ]
    .into_iter()
    .all(|c| v.passed(c))
        && !v
            .issues
            .iter()
            .any(|i| i.check == CheckKind::Decompression && i.message.starts_with("zlib"))
}

#[test]
fn eu_dcc_test_vectors_give_the_expected_verdicts() {
    let Some(dir) = vectors_dir() else {
        eprintln!("SKIP: ../shared/testvectors/dcc not found (set DDCC_SHARED)");
        return;
    };
    let known = known_issues(&dir);
    let mut files = Vec::new();
    walk(&dir, &mut files);
    files.sort();

    let mut total = 0;
    let mut agree = 0;
    let mut unexpected = Vec::new();
    let mut known_hits = Vec::new();
    let mut clocks = std::collections::BTreeSet::new();
    let mut unparsed_certificates = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let (Some(ctx), Some(expected)) = (doc.get("TESTCTX"), doc.get("EXPECTEDRESULTS")) else {
            continue;
        };
        total += 1;
        let mut diffs = Vec::new();

        let mut trust = TrustList::new();
        if let Some(cert) = ctx.get("CERTIFICATE").and_then(Value::as_str) {
            match base64::engine::general_purpose::STANDARD.decode(cert.trim()) {
                Ok(der) => {
                    if let Err(e) = trust.add_der(&der) {
                        unparsed_certificates.push(format!("{rel}: {e}"));
                    }
                }
                Err(e) => unparsed_certificates.push(format!("{rel}: base64: {e}")),
            }
        }
        let clock_text = ctx.get("VALIDATIONCLOCK").and_then(Value::as_str);
        let clock = match clock_text {
            Some(c) => {
                clocks.insert(c.to_string());
                match parse_iso8601(c) {
                    Some(t) => Some(t),
                    None => {
                        diffs.push(format!("VALIDATIONCLOCK {c:?} does not parse"));
                        None
                    }
                }
            }
            None => None,
        };
        let prefix = doc.get("PREFIX").and_then(Value::as_str).unwrap_or("");
        let v = verify_hc1(prefix, &trust, clock.unwrap_or(0));

        let ours: [(&str, Option<bool>); 8] = [
            ("UNPREFIX", Some(v.passed(CheckKind::Prefix))),
            (
                "B45DECODE",
                Some(v.passed(CheckKind::Prefix) && v.passed(CheckKind::Base45)),
            ),
            (
                "COMPRESSION",
                Some(
                    v.passed(CheckKind::Prefix)
                        && v.passed(CheckKind::Base45)
                        && v.passed(CheckKind::Decompression),
                ),
            ),
            ("DECODE", Some(decoded(&v))),
            (
                "VALIDJSON",
                doc.get("JSON").map(|json| v.payload.as_ref() == Some(json)),
            ),
            ("VERIFY", Some(v.signature_verified())),
            (
                "EXPIRATIONCHECK",
                clock.map(|_| v.passed(CheckKind::NotYetValid) && v.passed(CheckKind::Expired)),
            ),
            ("KEYUSAGE", Some(v.passed(CheckKind::KeyUsage))),
        ];
        for (flag, got) in ours {
            let Some(want) = expected
                .get(format!("EXPECTED{flag}"))
                .and_then(Value::as_bool)
            else {
                continue;
            };
            match got {
                Some(got) if got == want => {}
                Some(got) => diffs.push(format!(
                    "{flag}: expected {want}, got {got}; issues {:?}",
                    v.issues
                )),
                None => diffs.push(format!("{flag}: expected {want}, not evaluated")),
            }
        }

        if diffs.is_empty() {
            agree += 1;
            continue;
        }
        let country = rel.split('/').next().unwrap_or("").to_string();
        let set = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for d in diffs {
            match known.get(&(country.clone(), set.clone())) {
                Some(reason) => known_hits.push(format!("{rel}: {d} [known: {reason}]")),
                None => unexpected.push(format!("{rel}: {d}")),
            }
        }
    }

    eprintln!("validation clocks seen ({}): {clocks:?}", clocks.len());
    for c in &unparsed_certificates {
        eprintln!("certificate not parsed: {c}");
    }
    for k in &known_hits {
        eprintln!("KNOWN  {k}");
    }
    for u in &unexpected {
        eprintln!("DIFF   {u}");
    }
    eprintln!(
        "{agree} of {total} vectors agree ({} known issues)",
        known_hits.len()
    );
    assert!(total > 0, "no test vectors found under {}", dir.display());
    // Includes common/CO15, whose DSC is not strict DER (empty extendedKeyUsage).
    assert!(
        unparsed_certificates.is_empty(),
        "{} certificates did not parse",
        unparsed_certificates.len()
    );
    assert!(
        unexpected.is_empty(),
        "{} unexpected disagreements",
        unexpected.len()
    );
}
