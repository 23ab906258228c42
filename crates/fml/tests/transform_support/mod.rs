//! Shared helpers for the transform oracle tests: locate the conformance corpus,
//! load the IG's compiled maps, definitions and terminology, compare JSON.
#![allow(dead_code)]

use fml::exec::{LocalTerminology, MapRegistry};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `<workspace root>/../shared/conformance`, or `$DDCC_SHARED/conformance`.
pub fn conformance_dir() -> Option<PathBuf> {
    let shared = match std::env::var_os("DDCC_SHARED") {
        Some(s) => PathBuf::from(s),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let dir = shared.join("conformance");
    if dir.join("ddcc-ig").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: conformance corpus not found at {} (set DDCC_SHARED)",
            dir.display()
        );
        None
    }
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(json_files(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every StructureDefinition of the IG plus the external EU DCC logical models.
pub fn load_definitions(reg: &mut MapRegistry, conf: &Path) {
    for dir in ["ddcc-ig/definitions", "ddcc-ig/external-logical-models"] {
        for f in json_files(&conf.join(dir)) {
            if f.components().any(|c| c.as_os_str() == "openapi") {
                continue;
            }
            let v = read_json(&f);
            if v.get("resourceType").and_then(Value::as_str) == Some("StructureDefinition") {
                reg.add_structure_definition(&v)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            }
        }
    }
}

/// The IG Publisher's compiled maps (main build).
pub fn load_ig_maps(reg: &mut MapRegistry, conf: &Path) {
    for f in json_files(&conf.join("ddcc-ig/structuremaps-compiled")) {
        let v = read_json(&f);
        reg.add_map(&v)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

pub fn ig_registry(conf: &Path) -> MapRegistry {
    let mut reg = MapRegistry::new();
    load_definitions(&mut reg, conf);
    load_ig_maps(&mut reg, conf);
    reg
}

/// The same maps compiled by our parser from the IG's `.fml` files.
pub fn ig_registry_from_fml(conf: &Path) -> MapRegistry {
    let mut reg = MapRegistry::new();
    load_definitions(&mut reg, conf);
    let dir = conf.join("ddcc-ig/maps");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        if f.extension().is_none_or(|x| x != "fml") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let map = fml::parse::parse_map(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        reg.add_map(&map)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    reg
}

/// Both ways of getting the IG's maps: the IG Publisher's compiled JSON and our
/// parser on the `.fml` text. Oracle tests run against each.
pub fn ig_registries(conf: &Path) -> Vec<(&'static str, MapRegistry)> {
    vec![
        ("compiled StructureMaps", ig_registry(conf)),
        ("maps parsed from .fml", ig_registry_from_fml(conf)),
    ]
}

/// Terminology from one of the IG's terminology folders, with the IG's alias table.
pub fn terminology(conf: &Path, folder: &str) -> LocalTerminology {
    let mut t = LocalTerminology::new();
    for f in json_files(&conf.join("ddcc-ig").join(folder)) {
        t.add_resource(&read_json(&f));
    }
    let aliases = read_json(&conf.join("ddcc-ig/derived/terminology-url-aliases.json"));
    t.add_alias_table(&aliases, "url_2023_11", "url_head");
    t
}

/// Drop empty objects and arrays (and keys that become empty), recursively.
pub fn prune(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            let out: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => {
            let out: Vec<Value> = a.iter().filter_map(prune).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Value::Null => None,
        other => Some(other.clone()),
    }
}

/// Every difference between two JSON values, as `path: expected X, got Y` lines.
pub fn diff(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(va, vb, &p, out),
                    None => out.push(format!("{p}: missing (expected {va})")),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(format!("{path}.{k}: unexpected {vb}"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!(
                    "{path}: expected {} items, got {}",
                    a.len(),
                    b.len()
                ));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) => {
            if a != b {
                out.push(format!("{path}: expected {a}, got {b}"));
            }
        }
    }
}
