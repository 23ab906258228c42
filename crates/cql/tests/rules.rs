//! The rule API the verifier calls: the published Libraries and PlanDefinitions as
//! they are in the repository, evaluated by canonical.

use ddcc_cql::{CqlError, PatientData, RuleSet};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const BASE: &str = "http://ddcc-mediator.org/fhir";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn patient(name: &str) -> PatientData {
    let p = root().join(format!("tests/cql/patients/{name}.json"));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("patient")).expect("json");
    PatientData::from_bundle(&v).expect("bundle")
}

fn terminology() -> Arc<terminology::Terminology> {
    let mut t = terminology::Terminology::new();
    let p = root().join("fhir-profiles/ig/terminology/ValueSet-WHODDCCVaccinesCOVID19.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).expect("vs")).expect("json");
    t.add(v).expect("value set");
    Arc::new(t)
}

fn rules() -> RuleSet {
    RuleSet::load(
        &root().join("cql"),
        &root().join("fhir-profiles/plandefinitions"),
    )
    .expect("rules load")
    .with_terminology(terminology())
}

#[test]
fn every_use_case_is_evaluated_when_no_rule_is_named() {
    let set = rules();
    let results = set
        .evaluate(None, &patient("complete-2-of-2"))
        .expect("evaluate");
    let mut plans: Vec<_> = results
        .iter()
        .map(|r| (r.plan.clone().unwrap_or_default(), r.value, r.error.clone()))
        .collect();
    plans.sort();
    assert_eq!(
        plans,
        vec![
            (
                format!("{BASE}/PlanDefinition/product-series|1.0.0"),
                Some(true),
                None
            ),
            (
                format!("{BASE}/PlanDefinition/travel-full-series|1.0.0"),
                Some(true),
                None
            ),
            (
                format!("{BASE}/PlanDefinition/venue-any-dose|1.0.0"),
                Some(true),
                None
            ),
        ]
    );
    assert!(results
        .iter()
        .all(|r| r.expression == "Completed Immunization"));
}

#[test]
fn a_plan_or_a_library_can_be_named_with_or_without_version() {
    let set = rules();
    let partial = patient("partial-1-of-2");
    let travel = set
        .evaluate(
            Some(&format!("{BASE}/PlanDefinition/travel-full-series")),
            &partial,
        )
        .expect("plan");
    assert_eq!(travel.len(), 1);
    assert_eq!(travel[0].library, format!("{BASE}/Library/DDCCPass|1.0.0"));
    assert_eq!(travel[0].value, Some(false));
    let venue = set
        .evaluate(Some(&format!("{BASE}/Library/AnyDosePass|1.0.0")), &partial)
        .expect("library");
    assert_eq!(
        (venue[0].plan.as_deref(), venue[0].value),
        (None, Some(true))
    );
    assert_eq!(
        set.evaluate(Some(&format!("{BASE}/Library/AnyDosePass|9.9.9")), &partial),
        Err(CqlError::UnknownRule(format!(
            "{BASE}/Library/AnyDosePass|9.9.9"
        )))
    );
    assert!(set.canonicals().len() == 6, "{:?}", set.canonicals());
}

#[test]
fn a_rule_that_cannot_be_evaluated_says_why_and_others_still_answer() {
    let no_terminology = RuleSet::load(
        &root().join("cql"),
        &root().join("fhir-profiles/plandefinitions"),
    )
    .expect("load");
    let results = no_terminology
        .evaluate(None, &patient("complete-2-of-2"))
        .expect("evaluate");
    let venue = results
        .iter()
        .find(|r| r.library.contains("AnyDosePass"))
        .expect("venue rule");
    assert_eq!(venue.value, None);
    assert!(
        venue
            .error
            .as_deref()
            .is_some_and(|e| e.contains("WHODDCCVaccinesCOVID19")),
        "{venue:?}"
    );
    assert!(results
        .iter()
        .filter(|r| r.error.is_none())
        .all(|r| r.value == Some(true)));

    let two = rules()
        .evaluate(None, &patient("two-patients"))
        .expect("evaluate");
    assert!(
        two.iter().all(|r| r.value.is_none() && r.error.is_some()),
        "{two:?}"
    );
}

fn write(dir: &Path, name: &str, v: &Value) {
    std::fs::write(dir.join(name), v.to_string()).expect("write");
}

#[test]
fn broken_artefacts_are_load_errors_naming_the_file() {
    let tmp = std::env::temp_dir().join(format!("ddcc-cql-rules-{}", std::process::id()));
    let (cql, plans) = (tmp.join("cql"), tmp.join("plans"));
    std::fs::create_dir_all(&cql).expect("dir");
    std::fs::create_dir_all(&plans).expect("dir");
    let lib = |data: &str| {
        json!({"resourceType": "Library", "url": "http://x/Library/L", "version": "1.0.0",
               "content": [{"contentType": "application/elm+json", "data": data}]})
    };
    let expect_err = |needle: &str| {
        let e = RuleSet::load(&cql, &plans).expect_err("must fail");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    };
    write(&cql, "Library-L.json", &lib("!!!"));
    expect_err(
        "Library-L.json: loading rules: Library http://x/Library/L: ELM content is not base64",
    );
    write(&cql, "Library-L.json", &lib("bm90IGpzb24="));
    expect_err("not JSON");
    use base64::Engine as _;
    let elm = json!({"library": {"identifier": {"id": "L", "version": "1.0.0"},
        "statements": {"def": [{"name": "Completed Immunization", "expression": {"type": "Literal",
        "valueType": "{urn:hl7-org:elm-types:r1}Boolean", "value": "true"}}]}}});
    write(
        &cql,
        "Library-L.json",
        &lib(&base64::engine::general_purpose::STANDARD.encode(elm.to_string())),
    );
    let plan = |reference: &str, expression: &str| {
        json!({"resourceType": "PlanDefinition", "url": "http://x/PlanDefinition/P", "version": "1",
               "action": [{"condition": [{"kind": "applicability", "expression":
                   {"language": "text/cql-identifier", "expression": expression, "reference": reference}}]}]})
    };
    write(
        &plans,
        "PlanDefinition-P.json",
        &plan("http://x/Library/Missing", "Completed Immunization"),
    );
    expect_err("PlanDefinition-P.json: loading rules: PlanDefinition http://x/PlanDefinition/P cites http://x/Library/Missing");
    write(
        &plans,
        "PlanDefinition-P.json",
        &plan("http://x/Library/L|1.0.0", "Nope"),
    );
    expect_err("has no expression \"Nope\"");
    write(
        &plans,
        "PlanDefinition-P.json",
        &plan("http://x/Library/L|1.0.0", "Completed Immunization"),
    );
    let set = RuleSet::load(&cql, &plans).expect("loads");
    let r = set
        .evaluate(Some("http://x/PlanDefinition/P|1"), &PatientData::default())
        .expect("eval");
    assert_eq!(r[0].value, Some(true));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The IG's own published Libraries load as they are and give the recorded results
/// over the IG's example documents (whole document Bundles, as a verifier has them).
#[test]
fn the_igs_published_libraries_give_the_recorded_results() {
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let ig = shared.join("conformance/ddcc-ig");
    if !ig.is_dir() {
        eprintln!("SKIP: ../shared is absent (the IG's Libraries and examples live there)");
        return;
    }
    let read = |p: PathBuf| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .expect("json")
    };
    let mut set = RuleSet::default();
    for name in ["DDCCPass", "AnyDosePass", "ModernaOrPfizerPass"] {
        set.add_library(&read(ig.join(format!("cql/Library-{name}-1.0.0.json"))))
            .expect("IG Library loads");
    }
    let recorded = read(ig.join("derived/cql-results-ig-examples.json"));
    let mut n = 0;
    for (file, row) in recorded["results"].as_object().expect("results") {
        let data =
            PatientData::from_bundle(&read(ig.join("examples").join(file))).expect("document");
        for (lib, want) in row.as_object().expect("row") {
            let canonical = format!("http://localhost/Library/{lib}|1.0.0");
            let r = set.evaluate(Some(&canonical), &data).expect("rule");
            assert_eq!(
                (r.len(), r[0].value, r[0].error.as_deref()),
                (1, want.as_bool(), None),
                "{file} {lib}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 18);
}
