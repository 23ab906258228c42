//! The FHIR artefacts the service loads once at start-up from `fhir-profiles/`:
//! our FML maps (compiled), StructureDefinitions, Questionnaires, ValueSets,
//! CodeSystems and ConceptMaps of both IG editions, and the issuing pipelines.
//!
//! Everything here is read-only after loading, shared behind an `Arc`; maps added at
//! run time (`POST /fhir/StructureMap`) live in [`RuntimeMaps`], not here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ddcc_issuing::pipeline::Pipelines;
use fml::exec::{LocalTerminology, MapRegistry};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A StructureMap as loaded: its JSON and, when it came from FML, the text.
#[derive(Debug, Clone)]
pub struct LoadedMap {
    pub structure_map: Value,
    pub fml: Option<String>,
}

/// Conformance and terminology resources by type and id, for serving them.
#[derive(Debug, Default, Clone)]
pub struct Artefacts {
    by_type: HashMap<String, Vec<Arc<Value>>>,
}

impl Artefacts {
    fn add(&mut self, v: Value) {
        if let Some(rt) = v.get("resourceType").and_then(Value::as_str) {
            self.by_type
                .entry(rt.to_string())
                .or_default()
                .push(Arc::new(v));
        }
    }

    pub fn of_type(&self, resource_type: &str) -> &[Arc<Value>] {
        self.by_type
            .get(resource_type)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn by_id(&self, resource_type: &str, id: &str) -> Option<&Arc<Value>> {
        self.of_type(resource_type)
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
    }

    /// By canonical URL (and `version` when given).
    pub fn by_url(
        &self,
        resource_type: &str,
        url: &str,
        version: Option<&str>,
    ) -> Vec<&Arc<Value>> {
        self.of_type(resource_type)
            .iter()
            .filter(|r| r.get("url").and_then(Value::as_str) == Some(url))
            .filter(|r| version.is_none_or(|v| r.get("version").and_then(Value::as_str) == Some(v)))
            .collect()
    }
}

pub struct Catalogue {
    pub dir: PathBuf,
    /// Compiled maps plus the definitions they use.
    pub maps: MapRegistry,
    /// The maps as loaded, by canonical URL.
    pub map_sources: HashMap<String, LoadedMap>,
    /// Terminology for `memberOf`/`translate` inside maps.
    pub map_terminology: LocalTerminology,
    /// Terminology for Questionnaire bindings and `$expand`.
    pub terminology: Arc<terminology::Terminology>,
    pub questionnaires: Vec<Value>,
    pub structure_definitions: Vec<Arc<Value>>,
    pub pipelines: Pipelines,
    pub artefacts: Artefacts,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("dir", &self.dir)
            .field("maps", &self.map_sources.len())
            .field("questionnaires", &self.questionnaires.len())
            .field("structure_definitions", &self.structure_definitions.len())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, CatalogueError> {
    std::fs::read_to_string(path).map_err(|e| CatalogueError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn read_json(path: &Path) -> Result<Value, CatalogueError> {
    let text = read(path)?;
    serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| CatalogueError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<(), CatalogueError> {
    let rd = std::fs::read_dir(dir).map_err(|e| CatalogueError::Read {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            files(&p, ext, out)?;
        } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(p);
        }
    }
    out.sort();
    Ok(())
}

/// The 2023-11 terminology URLs the IG's maps use, resolved to the current ones.
const ALIAS_TABLE: &str = "ig/terminology-url-aliases.json";

impl Catalogue {
    pub fn load(dir: &Path) -> Result<Self, CatalogueError> {
        let mut maps = MapRegistry::new();
        let mut map_terminology = LocalTerminology::new();
        let mut terminology = terminology::Terminology::new();
        let mut questionnaires = Vec::new();
        let mut structure_definitions = Vec::new();
        let mut artefacts = Artefacts::default();

        let mut json_files = Vec::new();
        files(dir, "json", &mut json_files)?;
        for path in &json_files {
            if path.ends_with(ALIAS_TABLE) || path.ends_with("issuing.json") {
                continue;
            }
            let v = read_json(path)?;
            let invalid = |message: String| CatalogueError::Invalid {
                path: path.clone(),
                message,
            };
            match v.get("resourceType").and_then(Value::as_str) {
                Some("StructureDefinition") => {
                    maps.add_structure_definition(&v)
                        .map_err(|e| invalid(e.to_string()))?;
                    structure_definitions.push(Arc::new(v.clone()));
                }
                Some("ValueSet" | "CodeSystem" | "ConceptMap") => {
                    map_terminology.add_resource(&v);
                    terminology
                        .add(v.clone())
                        .map_err(|e| invalid(e.to_string()))?;
                }
                Some("Questionnaire") => questionnaires.push(v.clone()),
                _ => continue,
            }
            artefacts.add(v);
        }
        let aliases = read_json(&dir.join(ALIAS_TABLE))?;
        map_terminology.add_alias_table(&aliases, "url_2023_11", "url_head");
        terminology
            .add_aliases(&aliases)
            .map_err(|e| CatalogueError::Invalid {
                path: dir.join(ALIAS_TABLE),
                message: e.to_string(),
            })?;

        let mut map_sources = HashMap::new();
        let mut fml_files = Vec::new();
        files(&dir.join("maps"), "fml", &mut fml_files)?;
        for path in fml_files {
            let text = read(&path)?;
            let sm = fml::parse::parse_map(&text).map_err(|e| CatalogueError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            maps.add_map(&sm).map_err(|e| CatalogueError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let url = sm
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            artefacts.add(sm.clone());
            map_sources.insert(
                url,
                LoadedMap {
                    structure_map: sm,
                    fml: Some(text),
                },
            );
        }

        let pipelines_path = dir.join("issuing.json");
        let pipelines = Pipelines::from_json(&read_json(&pipelines_path)?).map_err(|e| {
            CatalogueError::Invalid {
                path: pipelines_path.clone(),
                message: e.to_string(),
            }
        })?;
        for p in pipelines.iter() {
            for url in [&p.core_data_set_map, &p.document_map, &p.shc_map] {
                if maps.map(url).is_none() {
                    return Err(CatalogueError::Invalid {
                        path: pipelines_path.clone(),
                        message: format!(
                            "pipeline for {} names map {url}, which is not loaded",
                            p.questionnaire
                        ),
                    });
                }
            }
            if !questionnaires
                .iter()
                .any(|q| q.get("url").and_then(Value::as_str) == Some(&p.questionnaire))
            {
                return Err(CatalogueError::Invalid {
                    path: pipelines_path.clone(),
                    message: format!(
                        "pipeline names questionnaire {}, which is not loaded",
                        p.questionnaire
                    ),
                });
            }
        }

        Ok(Catalogue {
            dir: dir.to_path_buf(),
            maps,
            map_sources,
            map_terminology,
            terminology: Arc::new(terminology),
            questionnaires,
            structure_definitions,
            pipelines,
            artefacts,
        })
    }
}
