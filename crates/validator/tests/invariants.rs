//! Every error-severity invariant in the vendored profiles parses with our FHIRPath
//! engine (otherwise it would be skipped at validation time with an information issue).

mod common;
use common::*;
use std::collections::BTreeMap;

#[test]
fn all_profile_invariants_parse() {
    let dir = ig_dir().join("definitions");
    let mut exprs: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("definitions").flatten() {
        let sd = read_json(&entry.path());
        let Some(els) = sd.pointer("/snapshot/element").and_then(|e| e.as_array()) else {
            continue;
        };
        for e in els {
            for c in e["constraint"].as_array().into_iter().flatten() {
                if c["severity"] == "error" {
                    if let (Some(k), Some(x)) = (c["key"].as_str(), c["expression"].as_str()) {
                        exprs.insert(format!("{k}: {x}"), x.to_string());
                    }
                }
            }
        }
    }
    let mut failed = 0;
    for (label, x) in &exprs {
        if let Err(e) = fhirpath::parse(x) {
            failed += 1;
            println!("does not parse: {label}\n    {e}");
        }
    }
    println!(
        "{} distinct error invariants, {failed} do not parse",
        exprs.len()
    );
    assert!(exprs.len() > 20);
    assert_eq!(failed, 0);
}
