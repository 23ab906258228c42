//! Golden outputs: the EU DCC payload and the ICAO VDS-NC `data` for every core
//! data set (fixtures, plus the IG-derived ones when `../shared` is present) are
//! compared with reviewed files in `tests/data/golden/`. Every difference is
//! printed before the assertion. `DDCC_BLESS=1` rewrites the files after a
//! deliberate change (review the diff before committing).

mod common;

use ddcc_cert::{eudcc, icao};
use serde_json::{json, Value};
use std::path::Path;

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[test]
fn dcc_and_icao_outputs_match_reviewed_goldens() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let bless = std::env::var_os("DDCC_BLESS").is_some();
    let mut diffs = Vec::new();
    let mut compared = 0;
    for (name, cds) in common::core_data_sets() {
        let dcc = eudcc::from_core_data_set(
            &cds,
            &eudcc::DccOptions {
                uvci_checksum: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| json!({"error": e.to_string()}));
        let icao = icao::data_from_core_data_set(&cds, "USA")
            .unwrap_or_else(|e| json!({"error": e.to_string()}));
        let got = json!({"dcc": dcc, "icao": icao});
        let path = dir.join(format!("{}.json", slug(&name)));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            diffs.push(format!("{name}: no golden {}", path.display()));
            continue;
        };
        let want: Value = serde_json::from_str(&text).unwrap();
        compared += 1;
        if want != got {
            diffs.push(format!(
                "{name}:\n  want {}\n  got  {}",
                serde_json::to_string(&want).unwrap(),
                serde_json::to_string(&got).unwrap()
            ));
        }
    }
    println!("{compared} goldens compared, {} differences", diffs.len());
    for d in &diffs {
        println!("{d}");
    }
    assert!(
        diffs.is_empty(),
        "{} golden differences (see output)",
        diffs.len()
    );
}
