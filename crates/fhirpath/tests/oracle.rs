//! FHIRPath oracle: every expression of `tests/corpus/expressions.json` is evaluated
//! by this crate and by HL7's FHIRPath.js (R4 model) over the DDCC IG examples, and
//! the normalised results must agree except for the deliberate differences listed
//! in `tests/corpus/known-differences.json`.
//!
//! Needs `../shared` (skips without it) and the oracle installed by
//! `tests/tools/setup-fhirpath-oracle.sh` (skips without it unless
//! `DDCC_REQUIRE_ORACLES` is set).

use fhirpath::{Environment, Item};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared_dir() -> PathBuf {
    std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}

fn oracle_missing(why: &str) {
    if std::env::var_os("DDCC_REQUIRE_ORACLES").is_some() {
        panic!("FHIRPath oracle required but {why}; run tests/tools/setup-fhirpath-oracle.sh");
    }
    eprintln!("SKIP fhirpath oracle test: {why} (run tests/tools/setup-fhirpath-oracle.sh; set DDCC_REQUIRE_ORACLES to make this a failure)");
}

struct VarEnv {
    vars: HashMap<String, Value>,
}

impl<'a> Environment<'a> for VarEnv {
    fn variable(&self, name: &str) -> Option<Vec<Item<'a>>> {
        let v = self.vars.get(name)?;
        Some(vec![match v {
            Value::Number(n) if n.is_i64() => Item::Integer(n.as_i64().unwrap_or(0)),
            Value::Number(n) => Item::Decimal(fhirpath::Decimal {
                text: n.to_string(),
            }),
            Value::String(s) => Item::String(s.clone().into()),
            Value::Bool(b) => Item::Boolean(*b),
            other => Item::Owned {
                value: std::sync::Arc::new(other.clone()),
                type_name: None,
            },
        }])
    }
}

/// Our result in FHIRPath.js's output shape: dates/times and quantities as text.
fn ours_json(item: &Item<'_>) -> Value {
    match item {
        Item::Date(_) | Item::DateTime(_) | Item::Time(_) | Item::Quantity { .. } => {
            Value::String(item.to_fhirpath_string().unwrap_or_default())
        }
        Item::Decimal(d) => {
            serde_json::Number::from_f64(d.to_f64()).map_or(Value::Null, Value::Number)
        }
        other => other.to_json(),
    }
}

/// `2021-05-03T00:00:00.000Z` and `2021-05-03T00:00:00-00:00` name the same instant at
/// millisecond precision; FHIRPath.js drops zero milliseconds and writes UTC as `-00:00`.
fn norm_string(s: &str) -> String {
    if let Some(q) = norm_quantity(s) {
        return q;
    }
    let s = s.strip_suffix('T').unwrap_or(s);
    let b = s.as_bytes();
    let looks_temporal =
        b.len() >= 4 && b[..4].iter().all(u8::is_ascii_digit) && (b.len() == 4 || b[4] == b'-');
    if !looks_temporal || !s.contains('T') {
        return s.to_string();
    }
    let mut t = s.to_string();
    for utc in ["Z", "-00:00"] {
        if let Some(x) = t.strip_suffix(utc) {
            t = format!("{x}+00:00");
        }
    }
    t.replace(".000+", "+").replace(".000-", "-")
}

/// Quantity text `1.50 'cm'`: FHIRPath.js keeps numbers as JavaScript floats and so
/// drops trailing zeros that this crate keeps; compare the numeric value.
fn norm_quantity(s: &str) -> Option<String> {
    let (num, unit) = s.split_once(' ')?;
    let unit_ok = (unit.starts_with('\'') && unit.ends_with('\'') && unit.len() >= 2)
        || unit.chars().all(|c| c.is_ascii_lowercase());
    let n: f64 = num.parse().ok()?;
    (unit_ok
        && num
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-'))
    .then(|| format!("{n} {unit}"))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::String(x), Value::String(y)) => norm_string(x) == norm_string(y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn fhirpath_js_oracle_agrees() {
    let examples = shared_dir().join("conformance/ddcc-ig/examples");
    if !examples.is_dir() {
        eprintln!(
            "SKIP fhirpath oracle test: {} not found (set DDCC_SHARED)",
            examples.display()
        );
        return;
    }
    let root = workspace_root();
    if Command::new("node").arg("--version").output().is_err() {
        return oracle_missing("node is not installed");
    }
    if !root
        .join("tests/.tools/fhirpath-oracle/node_modules/fhirpath/package.json")
        .is_file()
    {
        return oracle_missing("FHIRPath.js is not installed in tests/.tools/fhirpath-oracle");
    }
    let corpus_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/expressions.json");
    let out_path =
        std::env::temp_dir().join(format!("fhirpath-oracle-{}.json", std::process::id()));
    let status = Command::new("node")
        .arg(root.join("tests/tools/fhirpath-oracle.js"))
        .arg(&corpus_path)
        .arg(&examples)
        .arg(&out_path)
        .status()
        .expect("run node");
    assert!(status.success(), "fhirpath-oracle.js failed");
    let oracle: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&out_path).expect("oracle output"))
            .expect("oracle JSON");
    let _ = std::fs::remove_file(&out_path);
    let corpus: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&corpus_path).expect("corpus"))
            .expect("corpus JSON");
    let known: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/known-differences.json"),
        )
        .expect("known-differences.json"),
    )
    .expect("known-differences JSON");
    let known: HashMap<String, String> = known
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap_or("").to_string(),
                k["expression"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let by_id: HashMap<&str, &Value> = oracle
        .iter()
        .map(|o| (o["id"].as_str().unwrap_or(""), o))
        .collect();

    let mut docs: HashMap<String, Value> = HashMap::new();
    let mut agree = 0;
    let mut unexpected = Vec::new();
    let mut known_hit = 0;
    let mut stale = Vec::new();
    for entry in &corpus {
        let id = entry["id"].as_str().expect("id");
        let expr = entry["expression"].as_str().expect("expression");
        let file = entry["resource"].as_str().expect("resource");
        let doc = docs.entry(file.to_string()).or_insert_with(|| {
            serde_json::from_str(&std::fs::read_to_string(examples.join(file)).expect("example"))
                .expect("example JSON")
        });
        let env = VarEnv {
            vars: entry
                .get("vars")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        };
        let root_item = Item::Node {
            value: &*doc,
            type_name: doc
                .get("resourceType")
                .and_then(Value::as_str)
                .map(Into::into),
        };
        let ours = fhirpath::parse(expr).and_then(|e| fhirpath::evaluate(&e, &[root_item], &env));
        let theirs = by_id.get(id).copied().expect("oracle result for every id");
        let ok = match (&ours, theirs.get("error")) {
            (Err(_), Some(_)) => true,
            (Ok(items), None) => {
                let mine = Value::Array(items.iter().map(ours_json).collect());
                same(&mine, &theirs["result"])
            }
            _ => false,
        };
        let is_known = known.get(id).is_some_and(|e| e == expr);
        if ok {
            agree += 1;
            if is_known {
                stale.push(id.to_string());
            }
        } else if is_known {
            known_hit += 1;
        } else {
            let mine = match &ours {
                Ok(items) => Value::Array(items.iter().map(ours_json).collect()).to_string(),
                Err(e) => format!("error: {e}"),
            };
            let theirs = match theirs.get("error") {
                Some(e) => format!("error: {}", e.as_str().unwrap_or("")),
                None => theirs["result"].to_string(),
            };
            unexpected.push(format!(
                "{id} [{file}] {expr}\n    ours:        {mine}\n    FHIRPath.js: {theirs}"
            ));
        }
    }
    for d in &unexpected {
        eprintln!("DIFFERENCE {d}");
    }
    for s in &stale {
        eprintln!("NOTE: {s} is listed in known-differences.json but now agrees");
    }
    eprintln!(
        "{agree} agree out of {} ({known_hit} known differences, {} unexpected)",
        corpus.len(),
        unexpected.len()
    );
    assert!(
        corpus.len() >= 300,
        "corpus must hold at least 300 expressions"
    );
    assert!(
        unexpected.is_empty(),
        "{} unexpected differences with FHIRPath.js",
        unexpected.len()
    );
}
