//! The IG's terminology, as vendored in `fhir-profiles/ig/terminology/`, loads and
//! answers locally: every ValueSet expands or says precisely why it cannot.

use serde_json::Value;
use std::path::PathBuf;
use terminology::Terminology;

fn load() -> Terminology {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fhir-profiles");
    let mut t = Terminology::new();
    for sub in ["ig/terminology", "r4"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("fhir-profiles is part of the repo") {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if matches!(
                v["resourceType"].as_str(),
                Some("ValueSet" | "CodeSystem" | "ConceptMap")
            ) {
                t.add(v)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
    let aliases: Value = serde_json::from_slice(
        &std::fs::read(dir.join("ig/terminology-url-aliases.json")).unwrap(),
    )
    .unwrap();
    t.add_aliases(&aliases).unwrap();
    t
}

#[test]
fn every_ig_value_set_expands() {
    let t = load();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fhir-profiles/ig/terminology");
    let mut failures = Vec::new();
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if v["resourceType"] != "ValueSet" {
            continue;
        }
        n += 1;
        let url = v["url"].as_str().unwrap();
        match t.expand(url) {
            Ok(codes) if !codes.is_empty() => {
                // Every expanded code is a member: expansion and membership agree.
                for c in &codes {
                    if !t.contains(url, Some(&c.system), &c.code).unwrap_or(false) {
                        failures.push(format!(
                            "{url}: {}|{} expanded but not a member",
                            c.system, c.code
                        ));
                    }
                }
            }
            Ok(_) => failures.push(format!("{url}: empty expansion")),
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    for f in &failures {
        println!("{f}");
    }
    println!("{} of {n} IG value sets expand", n - failures.len());
    assert!(failures.is_empty());
}

#[test]
fn questionnaire_bindings_answer() {
    let t = load();
    let gender = "http://hl7.org/fhir/ValueSet/administrative-gender";
    assert!(t
        .contains(
            gender,
            Some("http://hl7.org/fhir/administrative-gender"),
            "male"
        )
        .unwrap());
    assert!(!t
        .contains(
            gender,
            Some("http://hl7.org/fhir/administrative-gender"),
            "man"
        )
        .unwrap());
    let country = "http://hl7.org/fhir/ValueSet/iso3166-1-3";
    assert!(t
        .contains(country, Some("urn:iso:std:iso:3166"), "CHE")
        .unwrap());
    assert!(!t
        .contains(country, Some("urn:iso:std:iso:3166"), "CH")
        .unwrap());
    let vaccines = "http://smart.who.int/ddcc/ValueSet/WHODDCCVaccinesCOVID19";
    assert!(t
        .contains(vaccines, Some("http://id.who.int/icd11/mms"), "XM0GQ8")
        .unwrap());
    assert!(!t
        .contains(vaccines, Some("http://id.who.int/icd11/mms"), "RA01")
        .unwrap());
}
