//! Every QuestionnaireResponse in the conformance corpus (the IG's six examples and
//! those inside the compliance framework's requests) conforms to its Questionnaire,
//! in whichever IG edition it names; the framework's invalid requests do not.

use ddcc_issuing::pipeline::Pipelines;
use ddcc_issuing::{input, questionnaire};
use serde_json::Value;
use std::path::{Path, PathBuf};
use terminology::Terminology;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    if p.is_dir() {
        Some(p)
    } else {
        println!(
            "SKIP: {} is absent: the corpus tests need ../shared",
            p.display()
        );
        None
    }
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(json_files(&p));
        } else if p.extension().and_then(|x| x.to_str()) == Some("json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn load() -> (Vec<Value>, Terminology) {
    let profiles = root().join("fhir-profiles");
    let mut qs = Vec::new();
    let mut t = Terminology::new();
    for dir in ["ig/questionnaires", "ig/terminology", "ig-0.2.1", "r4"] {
        for p in json_files(&profiles.join(dir)) {
            let v = read(&p);
            match v["resourceType"].as_str() {
                Some("Questionnaire") => qs.push(v),
                Some("ValueSet" | "CodeSystem" | "ConceptMap") => t.add(v).unwrap(),
                _ => {}
            }
        }
    }
    t.add_aliases(&read(&profiles.join("ig/terminology-url-aliases.json")))
        .unwrap();
    (qs, t)
}

/// All QuestionnaireResponses a file holds, however it wraps them.
fn responses(v: &Value) -> Vec<Value> {
    match v["resourceType"].as_str() {
        Some("QuestionnaireResponse") | Some("Parameters") => input::questionnaire_response(v)
            .into_iter()
            .cloned()
            .collect(),
        Some("Bundle") if v["type"] == "batch" => input::batch_entries(v)
            .map(|es| es.into_iter().filter_map(Result::ok).cloned().collect())
            .unwrap_or_default(),
        _ => vec![],
    }
}

#[test]
fn corpus_responses_conform_to_their_questionnaire() {
    let Some(shared) = shared() else { return };
    let (qs, t) = load();
    let pipelines =
        Pipelines::from_json(&read(&root().join("fhir-profiles/issuing.json"))).unwrap();
    let mut files = json_files(&shared.join("conformance/ddcc-ig/examples"));
    files.extend(json_files(
        &shared.join("conformance/compliance-testing-framework/features/fixtures"),
    ));
    let (mut checked, mut failures) = (0, Vec::new());
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for r in responses(&read(&f)) {
            let url = r["questionnaire"].as_str().unwrap_or("");
            let Some(q) = qs.iter().find(|q| q["url"] == url) else {
                failures.push(format!("{name}: no Questionnaire {url}"));
                continue;
            };
            checked += 1;
            let Some(pipeline) = pipelines.for_questionnaire(url) else {
                failures.push(format!("{name}: no pipeline for {url}"));
                continue;
            };
            let issues = questionnaire::check(q, &r, &t, &pipeline.also_accepted);
            if !issues.is_empty() {
                failures.push(format!("{name}: {issues:?}"));
            }
        }
    }
    for f in &failures {
        println!("{f}");
    }
    println!(
        "{} of {checked} corpus responses conform",
        checked - failures.len()
    );
    assert!(
        checked >= 12,
        "expected the six IG examples and the framework's requests, found {checked}"
    );
    assert!(failures.is_empty());
}

#[test]
fn framework_invalid_requests_are_refused_as_wholes() {
    let Some(shared) = shared() else { return };
    let fx = shared.join("conformance/compliance-testing-framework/features/fixtures");
    let bad_generate = read(
        &fx.join("generateHealthCertificate/Parameters-DDCC-VS-TX-SHE-Parameters-1-invalid.json"),
    );
    assert_eq!(
        input::questionnaire_response(&bad_generate),
        Err(input::InputError::MissingResponse)
    );
    let bad_batch =
        read(&fx.join("submitHealthEvent/Bundle-DDCC-TX-SHE-bundle-example-invalid.json"));
    assert_eq!(
        input::batch_entries(&bad_batch),
        Err(input::InputError::EmptyBatch)
    );
}
