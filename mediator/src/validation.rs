//! The profile validator, built once from the catalogue's StructureDefinitions,
//! terminology and Questionnaires (both IG editions, so old-canonical requests
//! validate against their own edition's profiles, not through aliases).

use std::sync::Arc;

use ddcc_issuing::issue::DocumentCheck;
use fhir_validator::{has_errors, ProfileSet, Terminology, Validator};
use serde_json::Value;

use crate::catalogue::Catalogue;

/// Profiles the DDCC compliance framework names that no package here defines; they
/// constrain core resources, so base checks are what can be done.
const CORE_ALIASES: [(&str, &str); 1] = [(
    "http://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.ProvideDocumentBundleResponse",
    "http://hl7.org/fhir/StructureDefinition/Bundle",
)];

pub fn build(catalogue: &Catalogue) -> Validator {
    let mut profiles = ProfileSet::new();
    for sd in &catalogue.structure_definitions {
        if let Err(e) = profiles.add(sd) {
            let url = sd.get("url").and_then(|u| u.as_str()).unwrap_or("?");
            tracing::warn!(url, error = %e, "profile not usable for validation");
        }
    }
    for (from, to) in CORE_ALIASES {
        profiles.add_alias(from, to);
    }
    let mut terminology = Terminology::with_r4_core();
    for kind in ["ValueSet", "CodeSystem"] {
        for r in catalogue.artefacts.of_type(kind) {
            terminology.add(r);
        }
    }
    let mut v = Validator::new(profiles, terminology);
    for q in &catalogue.questionnaires {
        v.add_questionnaire(q);
    }
    v
}

/// The issuer's self-check: a document that fails its own profile is our bug.
pub struct ProfileCheck(pub Arc<Validator>);

impl DocumentCheck for ProfileCheck {
    fn errors(&self, document: &Value, profile: &str) -> Vec<String> {
        let issues = self.0.validate(document, Some(profile));
        if !has_errors(&issues) {
            return Vec::new();
        }
        issues
            .iter()
            .filter(|i| {
                matches!(
                    i.severity,
                    fhir_validator::Severity::Error | fhir_validator::Severity::Fatal
                )
            })
            .map(|i| format!("{} at {}: {}", i.message_id, i.location, i.message))
            .collect()
    }
}
