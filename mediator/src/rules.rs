//! The CQL business rules behind `$verify-certificate`'s `rule` parameter: the
//! Libraries in `cql/` and the PlanDefinitions in `fhir-profiles/plandefinitions/`
//! (the same artefacts the trust network publishes), run by `ddcc-cql`.
//!
//! The rules read FHIR Patient and Immunization resources, while a verified
//! certificate yields DDCC core data sets; each core data set is turned into a DDCC
//! document with the issuing document map (the one our certificates are made with),
//! so a rule sees what it would see in a document we issued.

use std::path::Path;
use std::sync::Arc;

use ddcc_cql::{PatientData, RuleSet};
use serde_json::Value;

use crate::mapping::MappingService;
use crate::routes::verify::{RuleEngine, RuleOutcome};

/// Core data set → DDCC document (IG 1.0.0): the map issuing uses.
const DOCUMENT_MAP: &str = "http://ddcc-mediator.org/fhir/StructureMap/DDCCCoreDataSetVSToDocument";

pub struct CqlRules {
    rules: RuleSet,
    mapping: Arc<MappingService>,
}

impl CqlRules {
    /// `None` when `cql_dir` does not exist (rules are then reported as not evaluated).
    pub fn load(
        cql_dir: &Path,
        plandefinitions_dir: &Path,
        terminology: Arc<terminology::Terminology>,
        mapping: Arc<MappingService>,
    ) -> Result<Option<Self>, ddcc_cql::CqlError> {
        if !cql_dir.is_dir() {
            return Ok(None);
        }
        let rules = RuleSet::load(cql_dir, plandefinitions_dir)?.with_terminology(terminology);
        Ok(Some(CqlRules { rules, mapping }))
    }

    /// The Patient (the first: one certificate, one holder) and every Immunization of
    /// the documents the core data sets map to.
    fn patient_data(&self, core_data_set: &Value, now: i64) -> Result<PatientData, String> {
        let entries = core_data_set["entry"]
            .as_array()
            .ok_or("the core data set Bundle has no entries")?;
        let mut resources = Vec::new();
        let mut have_patient = false;
        for (i, e) in entries.iter().enumerate() {
            let doc = self
                .mapping
                .transform(DOCUMENT_MAP, &e["resource"], now)
                .map_err(|err| format!("core data set {i} → document: {err}"))?;
            for r in doc["entry"].as_array().into_iter().flatten() {
                let r = &r["resource"];
                match r["resourceType"].as_str() {
                    Some("Patient") if !have_patient => {
                        have_patient = true;
                        resources.push(r.clone());
                    }
                    Some("Immunization") => resources.push(r.clone()),
                    _ => {}
                }
            }
        }
        PatientData::from_resources(resources).map_err(|e| e.to_string())
    }
}

impl RuleEngine for CqlRules {
    fn evaluate(
        &self,
        rule: &str,
        core_data_set: &Value,
        validation_time_unix: i64,
    ) -> Result<RuleOutcome, String> {
        let data = self.patient_data(core_data_set, validation_time_unix)?;
        let results = self
            .rules
            .evaluate(Some(rule), &data)
            .map_err(|e| e.to_string())?;
        if results.is_empty() {
            return Err(format!("{rule} binds no rule expression"));
        }
        // Every expression the rule names must hold; one that cannot be evaluated
        // makes the verdict an error, never a pass.
        let mut lines = Vec::with_capacity(results.len());
        let mut passed = true;
        for r in &results {
            if let Some(e) = &r.error {
                return Err(format!("{}.{}: {e}", r.library, r.expression));
            }
            passed &= r.value == Some(true);
            lines.push(format!(
                "{}.{} = {}",
                r.library,
                r.expression,
                r.value.map_or("null".to_string(), |v| v.to_string())
            ));
        }
        Ok(RuleOutcome {
            passed,
            message: Some(lines.join("; ")),
        })
    }
}
