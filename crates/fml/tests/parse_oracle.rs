//! Oracle test: every IG map parses, and the compiled tree equals the StructureMap
//! the IG Publisher (`structuremaps-compiled/`) or Matchbox
//! (`maps-2022-06/matchbox-compiled/`) produced from the same text.

use std::fs;
use std::path::{Path, PathBuf};

use fml::parse::{parse_map_with_options, Dialect, ParseOptions};
use serde_json::Value;

/// Keys the FML text determines. The others (`id`, `meta`, `text`, `status`,
/// `version`, `date`, `publisher`, `contact`, `jurisdiction`) come from the
/// server or the IG's configuration.
const COMPARED_KEYS: &[&str] = &[
    "url",
    "name",
    "title",
    "description",
    "structure",
    "import",
    "group",
    "contained",
];

fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("DDCC_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    dir.join("conformance").is_dir().then_some(dir)
}

struct KnownDifference {
    map: String,
    path: String,
}

fn known_differences() -> Vec<KnownDifference> {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parse/known-differences.json");
    let text = fs::read_to_string(&file).expect("known-differences.json is part of the crate");
    let v: Value = serde_json::from_str(&text).expect("known-differences.json is valid JSON");
    v.as_array()
        .expect("known-differences.json is an array")
        .iter()
        .map(|e| KnownDifference {
            map: e["map"].as_str().expect("map").to_string(),
            path: e["path"].as_str().expect("path").to_string(),
        })
        .collect()
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "<absent>".to_string(),
        Some(v) => v.to_string(),
    }
}

fn diff(path: &str, ours: Option<&Value>, theirs: Option<&Value>, out: &mut Vec<(String, String)>) {
    match (ours, theirs) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().collect();
            keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
            for k in keys {
                diff(&format!("{path}.{k}"), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                diff(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((
            path.to_string(),
            format!("ours={} theirs={}", show(a), show(b)),
        )),
    }
}

/// Matchbox builds of mid-2022 (not earlier ones) annotate each dependent
/// `variable` with the `original-item-type` extension left by their R5 → R4
/// conversion (`parameter.valueId` → `variable`). It records the item type, not
/// anything in the map text, so it is removed from the oracle before comparing.
fn strip_item_type_annotations(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let annotation_only = o.get("_variable").and_then(Value::as_array).is_some_and(|items| {
                items.iter().all(|item| {
                    item["extension"].as_array().is_some_and(|exts| {
                        exts.iter().all(|e| {
                            e["url"] == "http://hl7.org/fhir/tools/StructureDefinition/original-item-type"
                        })
                    })
                })
            });
            if annotation_only {
                o.remove("_variable");
            }
            o.values_mut().for_each(strip_item_type_annotations);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_item_type_annotations),
        _ => {}
    }
}

struct Case {
    source: PathBuf,
    oracle_dir: PathBuf,
    dialect: Dialect,
}

#[test]
fn ig_maps_match_compiled_structuremaps() {
    let Some(shared) = shared_dir() else {
        // CI sets DDCC_REQUIRE_ORACLES: there a missing corpus must fail the run.
        assert!(
            std::env::var_os("DDCC_REQUIRE_ORACLES").is_none(),
            "DDCC_REQUIRE_ORACLES is set but ../shared/conformance (or DDCC_SHARED) is missing"
        );
        eprintln!(
            "SKIP: ../shared/conformance not found (set DDCC_SHARED); parser oracle test not run"
        );
        return;
    };
    let ig = shared.join("conformance/ddcc-ig");
    let mut cases = Vec::new();
    for (dir, ext, oracle, dialect) in [
        (
            "maps",
            "fml",
            "structuremaps-compiled",
            Dialect::IgPublisher,
        ),
        (
            "maps-2022-06/maps-src",
            "map",
            "maps-2022-06/matchbox-compiled",
            Dialect::Matchbox2022,
        ),
    ] {
        let mut files: Vec<PathBuf> = fs::read_dir(ig.join(dir))
            .expect("map folder readable")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        cases.extend(files.into_iter().map(|source| Case {
            source,
            oracle_dir: ig.join(oracle),
            dialect,
        }));
    }
    assert_eq!(
        cases.len(),
        34,
        "expected 21 IG maps and 13 maps of 2022-06"
    );

    let known = known_differences();
    let mut parse_failures = Vec::new();
    let mut differences = 0usize;
    let mut known_seen = 0usize;
    let (mut compared, mut equal) = (0usize, 0usize);
    for case in &cases {
        let label = case
            .source
            .strip_prefix(&ig)
            .unwrap_or(&case.source)
            .display()
            .to_string();
        let text = fs::read_to_string(&case.source).expect("map readable");
        let options = ParseOptions {
            dialect: case.dialect,
        };
        let ours = match parse_map_with_options(&text, &options) {
            Ok(v) => v,
            Err(e) => {
                println!("{label}: PARSE ERROR {e}");
                parse_failures.push(label);
                continue;
            }
        };
        let name = ours["name"].as_str().unwrap_or_default().to_string();
        let oracle_file = case.oracle_dir.join(format!("StructureMap-{name}.json"));
        let Ok(oracle_text) = fs::read_to_string(&oracle_file) else {
            println!("{label}: parsed; no compiled oracle for map name {name:?}");
            continue;
        };
        let mut theirs: Value = serde_json::from_str(&oracle_text).expect("oracle is JSON");
        strip_item_type_annotations(&mut theirs);
        compared += 1;
        let mut diffs = Vec::new();
        for key in COMPARED_KEYS {
            diff(key, ours.get(*key), theirs.get(*key), &mut diffs);
        }
        let mut unexpected = 0;
        for (path, what) in &diffs {
            if known.iter().any(|k| k.map == label && k.path == *path) {
                known_seen += 1;
                println!("{label}: {path}: {what} (known, see known-differences.json)");
            } else {
                unexpected += 1;
                println!("{label}: {path}: {what}");
            }
        }
        differences += unexpected;
        if unexpected == 0 {
            equal += 1;
        }
    }
    println!(
        "{} of {} maps parse; {equal} of {compared} maps equal their compiled oracle; {differences} differences ({known_seen} known)",
        cases.len() - parse_failures.len(),
        cases.len()
    );
    assert!(
        parse_failures.is_empty(),
        "maps failed to parse: {parse_failures:?}"
    );
    assert_eq!(
        differences, 0,
        "compiled trees differ from the oracle (listed above)"
    );
}
