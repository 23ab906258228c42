//! Our own maps (fhir-profiles/maps) on every example QuestionnaireResponse of both
//! IG editions: QuestionnaireResponse -> core data set -> DDCC document Bundle, with
//! the elements the IG's document profiles require and the IG maps leave out.

use ddcc_mediator::catalogue::Catalogue;
use fml::exec::{transform_with, TransformOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn catalogue() -> Catalogue {
    Catalogue::load(&root().join("fhir-profiles")).expect("fhir-profiles loads")
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The six IG example responses, from ../shared, or skip.
fn examples() -> Option<Vec<(String, Value)>> {
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let dir = shared.join("conformance/ddcc-ig/examples");
    if !dir.is_dir() {
        println!("SKIP: {} is absent", dir.display());
        return None;
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("QuestionnaireResponse-") {
            out.push((name, read(&p)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Some(out)
}

fn run(cat: &Catalogue, map: &str, source: &Value) -> Value {
    let opts = TransformOptions {
        now: Some("2021-06-03T13:28:17Z".into()),
        ..Default::default()
    };
    transform_with(map, source, &cat.maps, &cat.map_terminology, &opts)
        .unwrap_or_else(|e| panic!("{map}: {e}"))
}

fn resources<'a>(doc: &'a Value, rt: &str) -> Vec<&'a Value> {
    doc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == rt)
        .collect()
}

/// Each check: (what, holds?). Printed all, asserted together.
fn document_checks(doc: &Value, legacy: bool) -> Vec<(String, bool)> {
    let base = if legacy {
        "http://worldhealthorganization.github.io/ddcc/"
    } else {
        "http://smart.who.int/ddcc/"
    };
    let comp = resources(doc, "Composition");
    let org = resources(doc, "Organization");
    let imm = resources(doc, "Immunization");
    let docrefs = resources(doc, "DocumentReference");
    let full_urls: Vec<&str> = doc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["fullUrl"].as_str())
        .collect();
    let ext_urls: Vec<&str> = imm
        .first()
        .and_then(|i| i["extension"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e["url"].as_str())
        .collect();
    let mut checks = vec![
        (
            "Bundle.type = document".to_string(),
            doc["type"] == "document",
        ),
        (
            "Bundle.identifier".into(),
            doc["identifier"]["value"].is_string(),
        ),
        ("Bundle.timestamp".into(), doc["timestamp"].is_string()),
        (
            "Bundle.link publication urn:HCID: (one prefix)".into(),
            doc["link"][0]["relation"] == "publication"
                && doc["link"][0]["url"].as_str().is_some_and(|u| {
                    u.starts_with("urn:HCID:") && !u[9..].to_lowercase().starts_with("urn:hcid:")
                }),
        ),
        (
            "Composition first".into(),
            doc["entry"][0]["resource"]["resourceType"] == "Composition",
        ),
        ("one Composition".into(), comp.len() == 1),
        (
            "Composition.status".into(),
            comp.first().is_some_and(|c| c["status"] == "final"),
        ),
        (
            "Composition.date".into(),
            comp.first().is_some_and(|c| c["date"].is_string()),
        ),
        (
            "Composition.identifier".into(),
            comp.first().is_some_and(|c| {
                c["identifier"]["system"].is_string() && c["identifier"]["value"].is_string()
            }),
        ),
        (
            "Composition.attester".into(),
            comp.first().is_some_and(|c| {
                c["attester"][0]["mode"] == "official"
                    && c["attester"][0]["party"]["reference"].is_string()
            }),
        ),
        (
            "Organization with name".into(),
            org.len() == 1 && org[0]["name"].is_string(),
        ),
        (
            "one Patient with official name".into(),
            resources(doc, "Patient")
                .first()
                .is_some_and(|p| p["name"][0]["use"] == "official"),
        ),
        ("one Immunization".into(), imm.len() == 1),
        (
            "brand extension".into(),
            ext_urls.contains(&&*format!(
                "{base}StructureDefinition/{}",
                if legacy {
                    "DDCCVaccineBrand"
                } else {
                    "DDCCEventBrand"
                }
            )),
        ),
        (
            "country extension".into(),
            ext_urls.contains(&&*format!(
                "{base}StructureDefinition/{}",
                if legacy {
                    "DDCCCountryOfVaccination"
                } else {
                    "DDCCCountryOfEvent"
                }
            )),
        ),
        (
            "dose number is a positiveInt".into(),
            imm.first()
                .is_some_and(|i| i["protocolApplied"][0]["doseNumberPositiveInt"].is_u64()),
        ),
        (
            "four QR DocumentReferences (who, dcc, shc, icao)".into(),
            docrefs.len() == 4,
        ),
        (
            "DocumentReference authenticator".into(),
            !docrefs.is_empty()
                && docrefs
                    .iter()
                    .all(|d| d["authenticator"]["reference"].is_string()),
        ),
        (
            "DocumentReference kind (type, or category in 0.2.1)".into(),
            !docrefs.is_empty()
                && docrefs.iter().all(|d| {
                    if legacy {
                        d["category"][0]["coding"][0]["code"].is_string()
                    } else {
                        d["type"]["coding"][0]["code"].is_string()
                    }
                }),
        ),
        (
            "every reference resolves inside the Bundle".into(),
            references(doc)
                .iter()
                .all(|r| full_urls.contains(&r.as_str())),
        ),
    ];
    for r in resources(doc, "ImmunizationRecommendation") {
        checks.push((
            "ImmunizationRecommendation has an id".into(),
            r["id"].is_string(),
        ));
        checks.push((
            "dateCriterion has a value".into(),
            r["recommendation"][0]["dateCriterion"][0]["value"].is_string(),
        ));
    }
    checks
}

fn references(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if k == "reference" {
                        if let Some(s) = x.as_str() {
                            out.push(s.to_string());
                        }
                    } else {
                        walk(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

#[test]
fn main_flow_on_every_example_in_both_editions() {
    let Some(examples) = examples() else { return };
    let cat = catalogue();
    let mut failed = Vec::new();
    let mut total = 0;
    for (name, qr) in &examples {
        for legacy in [false, true] {
            let mut qr = qr.clone();
            if legacy {
                qr["questionnaire"] =
                    "http://worldhealthorganization.github.io/ddcc/DDCCVSCoreDataSetQuestionnaire"
                        .into();
            }
            let pipeline = cat
                .pipelines
                .for_questionnaire(qr["questionnaire"].as_str().unwrap())
                .unwrap();
            let cds = run(&cat, &pipeline.core_data_set_map, &qr);
            let doc = run(&cat, &pipeline.document_map, &cds);
            for (what, ok) in document_checks(&doc, legacy) {
                total += 1;
                if !ok {
                    failed.push(format!(
                        "{name} ({}): {what}",
                        if legacy { "0.2.1" } else { "1.0.0" }
                    ));
                }
            }
        }
    }
    for f in &failed {
        println!("FAILED {f}");
    }
    println!("{} of {total} document checks hold", total - failed.len());
    assert!(failed.is_empty());
}

#[test]
fn our_core_data_set_map_equals_the_ig_derivation() {
    let Some(examples) = examples() else { return };
    let cat = catalogue();
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let expected_dir = shared.join("conformance/ddcc-ig/derived/expected-core-data-set");
    let mut diffs = Vec::new();
    for (name, qr) in &examples {
        let expected = read(&expected_dir.join(name.replace(".json", ".expected.json")));
        let got = run(
            &cat,
            "http://ddcc-mediator.org/fhir/StructureMap/QRespToDDCCCoreDataSetVS",
            qr,
        );
        if got != expected {
            diffs.push(format!("{name}:\n  got      {got}\n  expected {expected}"));
        }
    }
    for d in &diffs {
        println!("{d}");
    }
    println!(
        "{} of {} core data sets equal the IG derivation",
        examples.len() - diffs.len(),
        examples.len()
    );
    assert!(diffs.is_empty());
}
