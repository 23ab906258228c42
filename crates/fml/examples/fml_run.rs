//! Run one compiled map on one JSON file: `fml_run <map-url> <source.json> [maps-dir...]`.
//! Definitions and terminology come from `$DDCC_SHARED/conformance/ddcc-ig`.
use fml::exec::{transform, LocalTerminology, MapRegistry};
use serde_json::Value;
use std::path::Path;

fn load_dir(dir: &Path, f: &mut dyn FnMut(&Value)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            load_dir(&p, f);
        } else if p.extension().is_some_and(|x| x == "json") {
            if let Ok(t) = std::fs::read_to_string(&p) {
                if let Ok(v) = serde_json::from_str::<Value>(t.trim_start_matches('\u{feff}')) {
                    f(&v);
                }
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fml_run <map-url> <source.json> [terminology-folder]");
        std::process::exit(2);
    }
    let shared = std::env::var("DDCC_SHARED").unwrap_or_else(|_| "../shared".into());
    let ig = Path::new(&shared).join("conformance/ddcc-ig");
    let mut reg = MapRegistry::new();
    for d in ["definitions", "external-logical-models"] {
        load_dir(&ig.join(d), &mut |v| {
            if v.get("resourceType").and_then(Value::as_str) == Some("StructureDefinition") {
                let _ = reg.add_structure_definition(v);
            }
        });
    }
    load_dir(&ig.join("structuremaps-compiled"), &mut |v| {
        if let Err(e) = reg.add_map(v) {
            eprintln!("map: {e}");
        }
    });
    let mut term = LocalTerminology::new();
    let folder = args.get(3).map(String::as_str).unwrap_or("terminology");
    load_dir(&ig.join(folder), &mut |v| {
        term.add_resource(v);
    });
    if let Ok(t) = std::fs::read_to_string(ig.join("derived/terminology-url-aliases.json")) {
        if let Ok(v) = serde_json::from_str::<Value>(&t) {
            term.add_alias_table(&v, "url_2023_11", "url_head");
        }
    }
    let src: Value = match std::fs::read_to_string(&args[2])
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(v) => v,
        None => {
            eprintln!("cannot read {}", args[2]);
            std::process::exit(2);
        }
    };
    match transform(&args[1], &src, &reg, &term) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
