//! Which maps turn a given Questionnaire's responses into a document, in which IG
//! edition, and which profile the document must meet (`fhir-profiles/issuing.json`).

use crate::questionnaire::AlsoAccepted;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The Questionnaire canonical (without version) whose responses this handles.
    pub questionnaire: String,
    /// IG edition of the documents produced (`1.0.0`, or `0.2.1` for the old canonical base).
    pub edition: String,
    /// The map the Questionnaire's `targetStructureMap` names (the IG's definition).
    pub target_structure_map: String,
    /// Our implementation of that map: QuestionnaireResponse -> core data set.
    pub core_data_set_map: String,
    /// Core data set -> document Bundle in this edition.
    pub document_map: String,
    pub document_profile: String,
    pub also_accepted: AlsoAccepted,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("issuing configuration: {0}")]
    Config(String),
}

#[derive(Debug, Clone, Default)]
pub struct Pipelines(Vec<Pipeline>);

impl Pipelines {
    pub fn from_json(v: &Value) -> Result<Self, PipelineError> {
        let rows = v
            .get("pipelines")
            .and_then(Value::as_array)
            .ok_or_else(|| PipelineError::Config("no 'pipelines' array".into()))?;
        let mut out = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let field = |name: &str| {
                row.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| PipelineError::Config(format!("pipeline {i}: missing '{name}'")))
            };
            let mut also = AlsoAccepted::new();
            if let Some(obj) = row.get("alsoAccepted").and_then(Value::as_object) {
                for (link, sets) in obj {
                    let sets = sets.as_array().ok_or_else(|| {
                        PipelineError::Config(format!(
                            "pipeline {i}: alsoAccepted.{link} must be an array"
                        ))
                    })?;
                    also.insert(
                        link.clone(),
                        sets.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    );
                }
            }
            out.push(Pipeline {
                questionnaire: field("questionnaire")?,
                edition: field("edition")?,
                target_structure_map: field("targetStructureMap")?,
                core_data_set_map: field("coreDataSetMap")?,
                document_map: field("documentMap")?,
                document_profile: field("documentProfile")?,
                also_accepted: also,
            });
        }
        Ok(Pipelines(out))
    }

    /// The pipeline for a QuestionnaireResponse's `questionnaire` (a canonical,
    /// possibly with `|version`).
    pub fn for_questionnaire(&self, canonical: &str) -> Option<&Pipeline> {
        let url = canonical.split('|').next().unwrap_or(canonical);
        self.0.iter().find(|p| p.questionnaire == url)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Pipeline> {
        self.0.iter()
    }
}

/// The `targetStructureMap` a Questionnaire names (SDC extension).
pub fn target_structure_map(questionnaire: &Value) -> Option<&str> {
    questionnaire
        .get("extension")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| {
            e.get("url").and_then(Value::as_str)
                == Some("http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-targetStructureMap")
        })?
        .get("valueCanonical")
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Pipelines {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fhir-profiles/issuing.json"
        );
        Pipelines::from_json(&serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .unwrap()
    }

    #[test]
    fn both_editions_have_a_pipeline() {
        let p = shipped();
        assert_eq!(
            p.for_questionnaire("http://smart.who.int/ddcc/DDCCVSCoreDataSetQuestionnaire|1.0.0")
                .unwrap()
                .edition,
            "1.0.0"
        );
        assert_eq!(
            p.for_questionnaire(
                "http://worldhealthorganization.github.io/ddcc/DDCCVSCoreDataSetQuestionnaire"
            )
            .unwrap()
            .edition,
            "0.2.1"
        );
        assert!(p
            .for_questionnaire("http://example.org/Questionnaire/other")
            .is_none());
    }

    #[test]
    fn each_pipeline_matches_its_questionnaires_target_map() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fhir-profiles");
        for (file, url) in [
            (
                "ig/questionnaires/Questionnaire-DDCCVSCoreDataSetQuestionnaire.json",
                "http://smart.who.int/ddcc/DDCCVSCoreDataSetQuestionnaire",
            ),
            (
                "ig-0.2.1/Questionnaire-DDCCVSCoreDataSetQuestionnaire.json",
                "http://worldhealthorganization.github.io/ddcc/DDCCVSCoreDataSetQuestionnaire",
            ),
        ] {
            let q: Value =
                serde_json::from_slice(&std::fs::read(format!("{dir}/{file}")).unwrap()).unwrap();
            assert_eq!(q["url"], url);
            let p = shipped();
            assert_eq!(
                target_structure_map(&q),
                Some(
                    p.for_questionnaire(url)
                        .unwrap()
                        .target_structure_map
                        .as_str()
                )
            );
        }
    }

    #[test]
    fn malformed_configuration_is_reported() {
        assert!(Pipelines::from_json(&serde_json::json!({})).is_err());
        assert!(
            Pipelines::from_json(&serde_json::json!({"pipelines": [{"questionnaire": "x"}]}))
                .is_err()
        );
    }
}
