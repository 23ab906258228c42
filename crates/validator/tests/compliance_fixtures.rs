//! The compliance framework's request fixtures: the invalid ones (`*-invalid`,
//! `*-400`, `*-404`, `*-422`) have errors, the valid ones none. They use the old
//! canonical base, validated through an alias table onto the current profiles.

mod common;
use common::*;
use fhir_validator::Validator;

const OLD_BASE: &str = "http://worldhealthorganization.github.io/ddcc/StructureDefinition/";

/// Fixtures the framework treats as valid that do not validate — against the current
/// IG nor against the 0.2.1 edition they were written for — why, and the exact
/// errors that say so (so nothing else hides behind them).
const DIVERGENCES: &[(&str, &str, &[&str])] = &[(
    "registerHealthCertificate/Bundle-ProvideDDCCDocument.json",
    "its DocumentReference has 3 contents with inline attachment.data; DDCCDocumentReference \
     (0.2.1 and current) allows 1 content with attachment.url and no data, so the \
     entry also matches no slice of the closed DDCCProvideDocumentBundle.entry slicing; \
     and its SubmissionSet lists the Patient, where MHD allows only DocumentReference or List",
    &[
        "SLICE_UNMATCHED",
        "CARDINALITY_MAX",
        "CARDINALITY_MAX",
        "CARDINALITY_MIN",
        "CARDINALITY_MAX",
        "CARDINALITY_MIN",
        "CARDINALITY_MAX",
        "CARDINALITY_MIN",
        "REFERENCE_TARGET_TYPE",
    ],
)];

/// The framework's fixtures as resources, with their path relative to `fixtures/`.
/// (relative path, resource) pairs and the paths of non-resource fragments.
type Fixtures = (Vec<(String, serde_json::Value)>, Vec<String>);

fn fixtures() -> Option<Fixtures> {
    let shared = shared()?;
    let root = shared.join("conformance/compliance-testing-framework/features/fixtures");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("fixtures dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut resources = Vec::new();
    let mut not_resources = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap_or(&f).display().to_string();
        let res = read_json(&f);
        if res.get("resourceType").is_none() {
            // Expected-response fragments the framework matches against, not resources.
            not_resources.push(rel);
        } else {
            resources.push((rel, res));
        }
    }
    Some((resources, not_resources))
}

/// Prints the verdict for one fixture; true when it is the expected one.
fn verdict(rel: &str, errs: &[&fhir_validator::Issue]) -> bool {
    let divergence = DIVERGENCES.iter().find(|d| d.0 == rel);
    let ok = match divergence {
        Some((_, why, ids)) => {
            println!("note {rel}: does not validate: {why}");
            errs.iter().map(|e| e.message_id).collect::<Vec<_>>() == *ids
        }
        None => expect_invalid(rel) != errs.is_empty(),
    };
    println!(
        "{} {rel}: expected {}, {} error(s)",
        if ok { "ok  " } else { "FAIL" },
        if expect_invalid(rel) || divergence.is_some() {
            "invalid"
        } else {
            "valid"
        },
        errs.len()
    );
    for e in errs.iter().take(if ok { 3 } else { 50 }) {
        println!("      {e}");
    }
    ok
}

fn expect_invalid(rel: &str) -> bool {
    let stem = rel.trim_end_matches(".json");
    ["-invalid", "-400", "-404", "-422"]
        .iter()
        .any(|s| stem.ends_with(s))
}

/// Validates every fixture (`verdict` prints each wrong one) and asserts none is wrong.
fn assert_verdicts(
    v: &Validator,
    resources: &[(String, serde_json::Value)],
    not_resources: &[String],
) {
    let mut wrong = 0;
    for (rel, res) in resources {
        let issues = v.validate(res, None);
        if !verdict(rel, &errors(&issues)) {
            wrong += 1;
        }
    }
    println!(
        "{} fixtures validated, {wrong} wrong verdicts; not resources (skipped): {not_resources:?}",
        resources.len()
    );
    assert!(resources.len() >= 12);
    assert_eq!(wrong, 0);
}

/// Against the IG edition the framework was written for (0.2.1, old canonicals),
/// vendored in `fhir-profiles/ig-0.2.1/`: no aliases needed, no divergences.
#[test]
fn compliance_fixtures_against_ig_0_2_1() {
    let Some((resources, not_resources)) = fixtures() else {
        eprintln!("skip: conformance corpus not found (../shared or DDCC_SHARED)");
        return;
    };
    let dir = workspace_root().join("fhir-profiles/ig-0.2.1");
    let v = Validator::load_ig(&dir, |_| {}).expect("IG 0.2.1 loads");
    assert_verdicts(&v, &resources, &not_resources);
}

/// Against the current IG through the caller's alias table.
#[test]
fn compliance_fixtures_valid_and_invalid() {
    let Some((resources, not_resources)) = fixtures() else {
        eprintln!("skip: conformance corpus not found (../shared or DDCC_SHARED)");
        return;
    };
    // The caller's alias table: the 2022 fixtures predate the canonical move, two
    // extension renames and IHE MHD's move from http to https canonicals.
    let mut profiles = profiles();
    profiles.add_alias(
        format!("{OLD_BASE}DDCCVaccineBrand"),
        format!("{DDCC}DDCCEventBrand"),
    );
    profiles.add_alias(
        format!("{OLD_BASE}DDCCCountryOfVaccination"),
        format!("{DDCC}DDCCCountryOfEvent"),
    );
    profiles.add_base_alias(OLD_BASE, DDCC);
    profiles.add_base_alias(
        "http://profiles.ihe.net/ITI/MHD/",
        "https://profiles.ihe.net/ITI/MHD/",
    );
    let v = Validator::new(profiles, terminology());
    assert_verdicts(&v, &resources, &not_resources);
}
