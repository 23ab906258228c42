//! Data-driven syntax cases: each `tests/data/parse/cases/<name>.fml` must compile
//! to `<name>.json` (the StructureMap the IG Publisher would produce, reviewed by
//! hand against the HL7 compiler's grammar). Every difference is printed.

use std::fs;
use std::path::Path;

use serde_json::Value;

fn diff(path: &str, ours: Option<&Value>, theirs: Option<&Value>, out: &mut Vec<String>) {
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
        (a, b) => out.push(format!(
            "{path}: ours={} expected={}",
            a.map_or("<absent>".to_string(), Value::to_string),
            b.map_or("<absent>".to_string(), Value::to_string)
        )),
    }
}

#[test]
fn syntax_cases_compile_to_expected_structuremaps() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parse/cases");
    let mut sources: Vec<_> = fs::read_dir(&dir)
        .expect("cases folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "fml"))
        .collect();
    sources.sort();
    assert!(sources.len() >= 5, "the case folder lost its cases");
    let mut differences = Vec::new();
    for source in &sources {
        let name = source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        let text = fs::read_to_string(source).expect("case readable");
        let expected: Value = serde_json::from_str(
            &fs::read_to_string(source.with_extension("json"))
                .expect("expected JSON beside the case"),
        )
        .expect("expected JSON parses");
        match fml::parse::parse_map(&text) {
            Ok(ours) => {
                let mut d = Vec::new();
                diff("", Some(&ours), Some(&expected), &mut d);
                differences.extend(d.into_iter().map(|d| format!("{name}: {d}")));
            }
            Err(e) => differences.push(format!("{name}: parse error {e}")),
        }
    }
    for d in &differences {
        println!("{d}");
    }
    println!(
        "{} of {} cases equal",
        sources.len()
            - differences
                .iter()
                .map(|d| d.split(':').next())
                .collect::<std::collections::HashSet<_>>()
                .len(),
        sources.len()
    );
    assert!(
        differences.is_empty(),
        "{} differences (listed above)",
        differences.len()
    );
}

const DIALECT_MAP: &str = r#"map "http://example.org/StructureMap/D" = "D"

group G(source src, target bundle) {
  // leading comment
  src.entry first as e -> bundle then Sub(e, bundle) "first-entry"; // trailing comment
}
"#;

#[test]
fn dialects_differ_only_where_the_two_compilers_did() {
    use fml::parse::{parse_map_with_options, Dialect, ParseOptions};
    let current = parse_map_with_options(DIALECT_MAP, &ParseOptions::default()).expect("parses");
    let old = parse_map_with_options(
        DIALECT_MAP,
        &ParseOptions {
            dialect: Dialect::Matchbox2022,
        },
    )
    .expect("parses");
    let (c, o) = (&current["group"][0]["rule"][0], &old["group"][0]["rule"][0]);
    // IG Publisher: trailing comment documents the rule, '-' dropped from the name,
    // a bare target variable is the target's context.
    assert_eq!(c["documentation"], "trailing comment");
    assert_eq!(c["name"], "firstentry");
    assert_eq!(
        c["target"][0],
        serde_json::json!({"context": "bundle", "contextType": "variable"})
    );
    // Matchbox 2022: the comment before the rule, the name as written, copy().
    assert_eq!(o["documentation"], "leading comment");
    assert_eq!(o["name"], "first-entry");
    assert_eq!(
        o["target"][0],
        serde_json::json!({"contextType": "variable", "transform": "copy", "parameter": [{"valueId": "bundle"}]})
    );
    assert_eq!(c["dependent"], o["dependent"]);
}

#[test]
fn parse_map_with_id_sets_the_id_after_resource_type() {
    let map = fml::parse::parse_map_with_id(DIALECT_MAP, "D").expect("parses");
    let keys: Vec<&String> = map.as_object().expect("object").keys().collect();
    assert_eq!(keys[..3], ["resourceType", "id", "url"]);
    assert_eq!(map["id"], "D");
}
