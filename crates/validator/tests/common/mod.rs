//! Shared test setup: the IG artefacts vendored in the repo and the conformance
//! corpus beside the workspace (`../shared`, or `DDCC_SHARED`).
#![allow(dead_code)]

use fhir_validator::{Issue, ProfileSet, Severity, Terminology, Validator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The conformance corpus, or `None` (the caller prints a skip message).
pub fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    p.join("conformance").is_dir().then_some(p)
}

pub fn ig_dir() -> PathBuf {
    workspace_root().join("fhir-profiles/ig")
}

pub fn profiles() -> ProfileSet {
    let (set, skipped) =
        ProfileSet::load_dir(ig_dir().join("definitions")).expect("vendored profiles load");
    assert!(
        skipped.is_empty(),
        "definitions without snapshot: {skipped:?}"
    );
    set
}

pub fn terminology() -> Terminology {
    let mut t = Terminology::with_r4_core();
    t.add_dir(ig_dir().join("terminology"))
        .expect("vendored terminology loads");
    t
}

/// One validator per test binary: building it parses ~50 definitions.
pub fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let mut v = Validator::new(profiles(), terminology());
        v.add_questionnaire_dir(ig_dir().join("questionnaires"))
            .expect("vendored questionnaires load");
        v
    })
}

pub fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn errors(issues: &[Issue]) -> Vec<&Issue> {
    issues
        .iter()
        .filter(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
        .collect()
}

pub const DDCC: &str = "http://smart.who.int/ddcc/StructureDefinition/";
