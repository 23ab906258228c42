//! Data-driven: every expression of our libraries (`cql/elm/`) and the IG's
//! (`../shared/conformance/ddcc-ig/cql/`) over our edge-case patients
//! (`tests/cql/patients/`) and the IG's example documents, evaluated by this crate
//! and by the reference engine (cql-execution + cql-exec-fhir, installed by
//! `tests/tools/setup-cql-oracle.sh`, run through `tests/tools/cql/oracle.cjs`) on the
//! same ELM. Every difference is printed as a table row; there must be none.
//!
//! Also checked: the intended verdicts in `tests/cql/expected-verdicts.json` (always,
//! with or without the oracle) and the recorded IG results in
//! `../shared/conformance/ddcc-ig/derived/cql-results-ig-examples.json`.

use ddcc_cql::{evaluate, CqlValue, ElmLibrary, EvalParams, Libraries, PatientData};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    p.is_dir().then_some(p)
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn oracle_tools() -> Result<PathBuf, String> {
    let dir = root().join("tests/.tools/cql-oracle");
    for m in ["cql-execution", "cql-exec-fhir"] {
        if !dir
            .join("node_modules")
            .join(m)
            .join("package.json")
            .exists()
        {
            return Err(format!("{m} is not installed in tests/.tools/cql-oracle"));
        }
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node is not available".into());
    }
    Ok(dir)
}

fn terminology() -> terminology::Terminology {
    let mut t = terminology::Terminology::new();
    let dir = root().join("fhir-profiles/ig/terminology");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for p in files {
        let v = read_json(&p);
        if matches!(
            v.get("resourceType").and_then(Value::as_str),
            Some("ValueSet" | "CodeSystem" | "ConceptMap")
        ) {
            t.add(v).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    t
}

/// One library to run: its name, ELM path, and how its includes resolve for the
/// oracle (our FHIRHelpers restatement, or an empty stub as for the IG's libraries).
struct Lib {
    name: String,
    elm_path: PathBuf,
    elm: ElmLibrary,
    helpers: Option<PathBuf>,
}

/// The patient Bundles: ours, and each IG example document's Patient + Immunization
/// entries (how the recorded IG results were produced).
fn cases(shared: Option<&Path>, tmp: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let dir = root().join("tests/cql/patients");
    for e in std::fs::read_dir(&dir)
        .expect("tests/cql/patients")
        .flatten()
    {
        let p = e.path();
        if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
            out.insert(stem.to_string(), p.clone());
        }
    }
    if let Some(shared) = shared {
        let ex = shared.join("conformance/ddcc-ig/examples");
        for e in std::fs::read_dir(&ex).expect("IG examples").flatten() {
            let p = e.path();
            let Some(name) = p.file_name().and_then(|s| s.to_str()).map(String::from) else {
                continue;
            };
            if !name.starts_with("Bundle-") {
                continue;
            }
            let b = read_json(&p);
            let entries: Vec<Value> = b["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    matches!(
                        e["resource"]["resourceType"].as_str(),
                        Some("Patient" | "Immunization")
                    )
                })
                .cloned()
                .collect();
            if !entries
                .iter()
                .any(|e| e["resource"]["resourceType"] == "Patient")
            {
                continue;
            }
            let path = tmp.join(&name);
            let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
            std::fs::write(&path, bundle.to_string()).expect("write case");
            out.insert(format!("ig:{name}"), path);
        }
    }
    out
}

/// Our result for one case and library, in the oracle's JSON shape.
fn ours(lib: &Lib, bundle: &Path, params: &EvalParams<'_>) -> Value {
    let data = PatientData::from_bundle(&read_json(bundle)).expect("patient data");
    match evaluate(&lib.elm, &data, params) {
        Ok(values) => {
            let m: Map<String, Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            Value::Object(m)
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// JSON equality with JavaScript's single number type.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
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
fn rules_agree_with_cql_execution() {
    let shared = shared();
    if shared.is_none() {
        eprintln!("NOTE: ../shared is absent: running our patients only, without the IG's libraries and examples");
    }
    let tmp = std::env::temp_dir().join(format!("ddcc-cql-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp dir");

    let helpers = root().join("cql/elm/FHIRHelpers-4.0.1.elm.json");
    let mut libs = Vec::new();
    for name in ["DDCCPass", "AnyDosePass", "ProductSeriesPass"] {
        let elm_path = root().join(format!("cql/elm/{name}-1.0.0.elm.json"));
        let elm = ElmLibrary::from_json(&read_json(&elm_path)).expect("our ELM loads");
        libs.push(Lib {
            name: name.to_string(),
            elm_path,
            elm,
            helpers: Some(helpers.clone()),
        });
    }
    // Not a rule: a test library exercising the operators the rules do not use.
    let elm_path = root().join("tests/cql/libraries/elm/OperatorCoverage-1.0.0.elm.json");
    let elm = ElmLibrary::from_json(&read_json(&elm_path)).expect("coverage ELM loads");
    libs.push(Lib {
        name: "OperatorCoverage".into(),
        elm_path,
        elm,
        helpers: Some(helpers.clone()),
    });
    if let Some(s) = &shared {
        for name in ["DDCCPass", "AnyDosePass", "ModernaOrPfizerPass"] {
            let elm_path = s.join(format!("conformance/ddcc-ig/cql/{name}-1.0.0.elm.json"));
            let elm = ElmLibrary::from_json(&read_json(&elm_path)).expect("IG ELM loads");
            libs.push(Lib {
                name: format!("ig:{name}"),
                elm_path,
                elm,
                helpers: None,
            });
        }
    }
    let term = terminology();
    let includes = Libraries::new();
    let params = EvalParams {
        libraries: Some(&includes),
        terminology: Some(&term),
        parameters: None,
    };
    let cases = cases(shared.as_deref(), &tmp);
    assert!(
        cases.len() >= 12 + usize::from(shared.is_some()) * 6,
        "{} cases",
        cases.len()
    );

    // Ours, for every case and library.
    let mut mine: BTreeMap<(String, String), Value> = BTreeMap::new();
    for (case, path) in &cases {
        for lib in &libs {
            mine.insert((case.clone(), lib.name.clone()), ours(lib, path, &params));
        }
    }

    // The intended verdicts, independent of any engine.
    let expected = read_json(&root().join("tests/cql/expected-verdicts.json"));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (case, row) in expected["verdicts"].as_object().expect("verdicts") {
        assert!(
            cases.contains_key(case),
            "expected-verdicts names unknown patient {case}"
        );
        for (lib, want) in row.as_object().expect("row") {
            if lib == "why" {
                continue;
            }
            let got = &mine[&(case.clone(), lib.clone())];
            let got = if got.get("error").is_some() {
                json!("error")
            } else {
                got["Completed Immunization"].clone()
            };
            checked += 1;
            if &got != want {
                wrong.push(format!("{case} {lib}: want {want}, got {got}"));
            }
        }
    }
    for w in &wrong {
        eprintln!("VERDICT {w}");
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} intended verdicts differ",
        wrong.len()
    );
    eprintln!("intended verdicts: {checked}/{checked} agree");

    // The recorded IG results.
    if let Some(s) = &shared {
        let rec = read_json(&s.join("conformance/ddcc-ig/derived/cql-results-ig-examples.json"));
        let expr = rec["expression"].as_str().expect("expression");
        let mut n = 0;
        for (file, row) in rec["results"].as_object().expect("results") {
            for (lib, want) in row.as_object().expect("row") {
                let got = &mine[&(format!("ig:{file}"), format!("ig:{lib}"))][expr];
                assert_eq!(got, want, "recorded IG result {file} {lib}");
                n += 1;
            }
        }
        eprintln!("recorded IG results: {n}/{n} agree");
    }

    // The reference engine, live.
    let tools = match oracle_tools() {
        Ok(t) => t,
        Err(why) => {
            if std::env::var_os("DDCC_REQUIRE_ORACLES").is_some() {
                panic!("CQL oracle required but {why}; run tests/tools/setup-cql-oracle.sh");
            }
            eprintln!("SKIP cql-execution comparison: {why} (run tests/tools/setup-cql-oracle.sh; set DDCC_REQUIRE_ORACLES to make this a failure)");
            return;
        }
    };
    let mut value_sets = Map::new();
    for lib in &libs {
        for vs in lib.elm.value_sets.values() {
            let codes: Vec<Value> = term
                .expand(&vs.id)
                .unwrap_or_else(|e| panic!("expanding {}: {e}", vs.id))
                .into_iter()
                .map(|c| json!({"system": c.system, "code": c.code}))
                .collect();
            value_sets.insert(vs.id.clone(), Value::Array(codes));
        }
    }
    let mut oracle: BTreeMap<(String, String), Value> = BTreeMap::new();
    for with_helpers in [true, false] {
        let group: Vec<&Lib> = libs
            .iter()
            .filter(|l| l.helpers.is_some() == with_helpers)
            .collect();
        if group.is_empty() {
            continue;
        }
        let job = json!({
            "tools": tools,
            "libraries": group.iter().map(|l| (l.name.clone(), json!(l.elm_path))).collect::<Map<_, _>>(),
            "includes": {"FHIRHelpers": if with_helpers { json!(helpers) } else { Value::Null }},
            "valuesets": value_sets,
            "cases": cases.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
        });
        let job_path = tmp.join(format!("job-{with_helpers}.json"));
        let out_path = tmp.join(format!("out-{with_helpers}.json"));
        std::fs::write(&job_path, job.to_string()).expect("write job");
        let status = std::process::Command::new("node")
            .arg(root().join("tests/tools/cql/oracle.cjs"))
            .arg(&job_path)
            .arg(&out_path)
            .status()
            .expect("run node");
        assert!(status.success(), "oracle runner failed");
        let out = read_json(&out_path);
        for (case, row) in out.as_object().expect("oracle output") {
            for (lib, v) in row.as_object().expect("oracle row") {
                oracle.insert((case.clone(), lib.clone()), v.clone());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);

    let mut diffs: Vec<[String; 4]> = Vec::new();
    let mut expressions = 0;
    for ((case, lib), theirs) in &oracle {
        let Some(m) = mine.get(&(case.clone(), lib.clone())) else {
            diffs.push([
                case.clone(),
                lib.clone(),
                "*".into(),
                "missing on our side".into(),
            ]);
            continue;
        };
        match (m.get("error"), theirs.get("error")) {
            (Some(_), Some(_)) => {
                expressions += 1;
                continue;
            }
            (Some(e), None) | (None, Some(e)) => {
                let side = if m.get("error").is_some() {
                    "we"
                } else {
                    "oracle"
                };
                diffs.push([
                    case.clone(),
                    lib.clone(),
                    "*".into(),
                    format!("only {side} failed: {e}"),
                ]);
                continue;
            }
            (None, None) => {}
        }
        let (mo, to) = (
            m.as_object().expect("obj"),
            theirs.as_object().expect("obj"),
        );
        for key in mo.keys().chain(to.keys().filter(|k| !mo.contains_key(*k))) {
            expressions += 1;
            let a = mo.get(key).unwrap_or(&Value::Null);
            let b = to.get(key).unwrap_or(&Value::Null);
            if !same(a, b) {
                diffs.push([
                    case.clone(),
                    lib.clone(),
                    key.clone(),
                    format!("ours {a} | cql-execution {b}"),
                ]);
            }
        }
    }
    if !diffs.is_empty() {
        eprintln!(
            "{:<36} {:<24} {:<28} difference",
            "patient", "library", "expression"
        );
        for [c, l, e, d] in &diffs {
            eprintln!("{c:<36} {l:<24} {e:<28} {d}");
        }
    }
    eprintln!(
        "cql-execution: {}/{} expression results agree ({} patients x {} libraries)",
        expressions - diffs.len(),
        expressions,
        cases.len(),
        libs.len()
    );
    assert!(
        diffs.is_empty(),
        "{} differences from cql-execution",
        diffs.len()
    );
}

/// Our CqlValue JSON for the rule verdict type, so a rename in `to_json` shows here.
#[test]
fn verdict_values_serialise_as_the_oracle_does() {
    assert_eq!(CqlValue::Boolean(true).to_json(), json!(true));
    assert_eq!(CqlValue::Null.to_json(), Value::Null);
    assert_eq!(CqlValue::Decimal(2.0).to_json(), json!(2));
}
