//! Bad ELM and bad data give errors, never panics or unbounded work.

use ddcc_cql::{evaluate, CqlError, CqlValue, ElmLibrary, EvalParams, Libraries, PatientData};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn library(defs: Vec<Value>) -> ElmLibrary {
    ElmLibrary::from_json(&json!({"library": {
        "identifier": {"id": "T", "version": "1"},
        "statements": {"def": defs}}}))
    .expect("library")
}

fn def(name: &str, expression: Value) -> Value {
    json!({"name": name, "context": "Patient", "expression": expression})
}

fn boolean(b: bool) -> Value {
    json!({"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}Boolean", "value": b.to_string()})
}

fn run(lib: &ElmLibrary) -> Result<std::collections::BTreeMap<String, CqlValue>, CqlError> {
    evaluate(lib, &PatientData::default(), &EvalParams::default())
}

#[test]
fn nesting_is_bounded_without_exhausting_the_stack() {
    // Deeper than the bound: an error. Just under it: evaluates, on a test thread's
    // default stack, so the bound fits the stack the mediator's workers have.
    for (depth, ok) in [(300, false), (90, true)] {
        let mut e = boolean(true);
        for _ in 0..depth {
            e = json!({"type": "Not", "operand": e});
        }
        let r = run(&library(vec![def("X", e)]));
        match (ok, r) {
            (true, Ok(v)) => assert_eq!(v["X"], CqlValue::Boolean(true)),
            (false, Err(CqlError::Limit(_))) => {}
            (_, other) => panic!("depth {depth}: {other:?}"),
        }
    }
    // The same through nested queries, whose frames are larger.
    for (levels, ok) in [(60, false), (20, true)] {
        let mut q = json!({"type": "List", "element": [boolean(true)]});
        for i in 0..levels {
            q = json!({"type": "Query", "source": [{"alias": format!("a{i}"), "expression": q}],
                       "where": {"type": "Not", "operand": {"type": "IsNull", "operand": {"type": "AliasRef", "name": format!("a{i}")}}}});
        }
        let r = run(&library(vec![def("Q", q)]));
        assert_eq!(r.is_ok(), ok, "{levels} nested queries: {r:?}");
    }
}

#[test]
fn cycles_unknown_nodes_and_huge_products_are_errors() {
    let cyc = library(vec![
        def("A", json!({"type": "ExpressionRef", "name": "B"})),
        def("B", json!({"type": "ExpressionRef", "name": "A"})),
    ]);
    assert!(matches!(run(&cyc), Err(CqlError::Elm(m)) if m.contains("refers to itself")));

    let unknown = library(vec![def("U", json!({"type": "Frobnicate"}))]);
    assert!(matches!(run(&unknown), Err(CqlError::Unsupported(_))));

    let no_type = library(vec![def("U", json!({"operand": []}))]);
    assert!(run(&no_type).is_err());

    let big = json!({"type": "List", "element": vec![boolean(true); 1_500]});
    let product = json!({"type": "Query", "source": [
        {"alias": "a", "expression": big.clone()},
        {"alias": "b", "expression": big}]});
    assert!(matches!(
        run(&library(vec![def("P", product)])),
        Err(CqlError::Limit(_))
    ));

    let not_bool = library(vec![def(
        "N",
        json!({"type": "And", "operand": [
        {"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}String", "value": "x"}, boolean(true)]}),
    )]);
    assert!(matches!(run(&not_bool), Err(CqlError::Type(_))));

    let bad_literal = library(vec![def(
        "L",
        json!({"type": "Literal",
        "valueType": "{urn:hl7-org:elm-types:r1}Integer", "value": "12x"}),
    )]);
    assert!(matches!(run(&bad_literal), Err(CqlError::Elm(_))));

    for bad in [
        json!({}),
        json!({"library": 3}),
        json!({"library": {"identifier": {}}}),
    ] {
        assert!(ElmLibrary::from_json(&bad).is_err(), "{bad}");
    }
    assert!(matches!(
        PatientData::from_bundle(
            &json!({"resourceType": "Bundle", "entry": [{"resource": {"id": "x"}}]})
        ),
        Err(CqlError::Data(_))
    ));
}

/// A tiny deterministic generator: the same mutations every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn mutate(v: &mut Value, rng: &mut Lcg, rate: u64) {
    let replacements = [
        json!(null),
        json!(7),
        json!(-1.5),
        json!("2"),
        json!("x"),
        json!(true),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"value": 1}),
    ];
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if k == "resourceType" {
                    continue;
                }
                if rng.next().is_multiple_of(rate) {
                    m.insert(k, replacements[(rng.next() % 10) as usize].clone());
                } else if let Some(child) = m.get_mut(&k) {
                    mutate(child, rng, rate);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| mutate(c, rng, rate)),
        _ => {}
    }
}

#[test]
fn mutated_patient_data_never_panics() {
    let term = {
        let mut t = terminology::Terminology::new();
        let p = root().join("fhir-profiles/ig/terminology/ValueSet-WHODDCCVaccinesCOVID19.json");
        t.add(serde_json::from_str(&std::fs::read_to_string(p).expect("vs")).expect("json"))
            .expect("vs");
        t
    };
    let includes = Libraries::new();
    let params = EvalParams {
        libraries: Some(&includes),
        terminology: Some(&term),
        parameters: None,
    };
    let libs: Vec<ElmLibrary> = ["DDCCPass", "AnyDosePass", "ProductSeriesPass"]
        .iter()
        .map(|n| {
            let p = root().join(format!("cql/elm/{n}-1.0.0.elm.json"));
            ElmLibrary::parse(&std::fs::read_to_string(p).expect("elm")).expect("elm")
        })
        .collect();
    let mut patients = Vec::new();
    for e in std::fs::read_dir(root().join("tests/cql/patients"))
        .expect("patients")
        .flatten()
    {
        patients.push(
            serde_json::from_str::<Value>(&std::fs::read_to_string(e.path()).expect("read"))
                .expect("json"),
        );
    }
    patients.sort_by_key(|p| p.to_string());
    let mut rng = Lcg(0x5eed);
    let (mut ok, mut err) = (0, 0);
    for _round in 0..40 {
        for p in &patients {
            let mut m = p.clone();
            mutate(&mut m, &mut rng, 6);
            let Ok(data) = PatientData::from_bundle(&m) else {
                err += 1;
                continue;
            };
            for lib in &libs {
                match evaluate(lib, &data, &params) {
                    Ok(_) => ok += 1,
                    Err(_) => err += 1,
                }
            }
        }
    }
    eprintln!("mutated evaluations: {ok} ok, {err} errors, no panic");
    assert!(ok > 0 && err > 0, "mutations should exercise both outcomes");
}

#[test]
fn mutated_elm_never_panics() {
    let data: Vec<PatientData> = [
        "complete-2-of-2",
        "string-dose-numbers",
        "two-codings-icd-and-eu",
    ]
    .iter()
    .map(|n| {
        let p = root().join(format!("tests/cql/patients/{n}.json"));
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json");
        PatientData::from_bundle(&v).expect("data")
    })
    .collect();
    let term = terminology::Terminology::new();
    let includes = Libraries::new();
    let params = EvalParams {
        libraries: Some(&includes),
        terminology: Some(&term),
        parameters: None,
    };
    let mut rng = Lcg(0xe1e1);
    let (mut loaded, mut rejected) = (0, 0);
    for name in [
        "DDCCPass",
        "AnyDosePass",
        "ProductSeriesPass",
        "FHIRHelpers",
    ] {
        let version = if name == "FHIRHelpers" {
            "4.0.1"
        } else {
            "1.0.0"
        };
        let p = root().join(format!("cql/elm/{name}-{version}.elm.json"));
        let elm: Value =
            serde_json::from_str(&std::fs::read_to_string(p).expect("elm")).expect("json");
        for _ in 0..60 {
            let mut m = elm.clone();
            mutate(&mut m, &mut rng, 200);
            match ElmLibrary::from_json(&m) {
                Ok(lib) => {
                    loaded += 1;
                    for d in &data {
                        let _ = evaluate(&lib, d, &params);
                    }
                }
                Err(_) => rejected += 1,
            }
        }
    }
    eprintln!("mutated ELM: {loaded} loaded and evaluated, {rejected} rejected, no panic");
    assert!(loaded > 0);
}
