//! The mapping service: the catalogue's compiled maps plus maps uploaded at run time
//! (`POST /fhir/StructureMap`, as Matchbox allows), persisted as FML in the data
//! directory so they survive a restart. Reads take a snapshot (`Arc`), uploads swap
//! in a new registry: a request never waits for an upload, and never re-parses a map.

use sha2::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ddcc_issuing::issue::{MapFailure, Mapper};
use fml::exec::{transform_with, LocalTerminology, MapRegistry, TransformError, TransformOptions};
use serde_json::Value;

use crate::catalogue::{Catalogue, LoadedMap};

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("FML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the StructureMap cannot be compiled: {0}")]
    Compile(String),
    #[error("StructureMap {0} is part of the service's catalogue and cannot be replaced")]
    Protected(String),
    #[error("cannot persist the StructureMap: {0}")]
    Persist(String),
    #[error(transparent)]
    Transform(#[from] TransformError),
}

struct Maps {
    registry: Arc<MapRegistry>,
    sources: HashMap<String, LoadedMap>,
}

pub struct MappingService {
    maps: RwLock<Maps>,
    terminology: Arc<LocalTerminology>,
    /// URLs from `fhir-profiles/`: uploads may add maps, never replace these.
    catalogue_urls: Vec<String>,
    upload_dir: Option<PathBuf>,
}

/// `2021-06-03T13:28:17Z` from Unix seconds, for FHIRPath's `now()`.
fn iso_now(unix: i64) -> String {
    ddcc_cert::rfc3339_utc(unix)
}

impl MappingService {
    /// Starts from the catalogue's maps; then loads earlier uploads from
    /// `upload_dir` (when given). A stored upload that no longer compiles is
    /// skipped with a log line rather than stopping the service.
    pub fn new(catalogue: &Catalogue, upload_dir: Option<PathBuf>) -> Self {
        let svc = MappingService {
            maps: RwLock::new(Maps {
                registry: Arc::new(catalogue.maps.clone()),
                sources: catalogue.map_sources.clone(),
            }),
            terminology: Arc::new(catalogue.map_terminology.clone()),
            catalogue_urls: catalogue.map_sources.keys().cloned().collect(),
            upload_dir,
        };
        if let Some(dir) = &svc.upload_dir {
            svc.load_uploads(dir);
        }
        svc
    }

    fn load_uploads(&self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("fml"))
            .collect();
        paths.sort();
        for p in paths {
            let result = std::fs::read_to_string(&p)
                .map_err(|e| MappingError::Persist(e.to_string()))
                .and_then(|text| self.add_fml(&text, false).map(|_| ()));
            if let Err(e) = result {
                tracing::warn!(file = %p.display(), error = %e, "skipping a stored StructureMap");
            }
        }
    }

    fn snapshot(&self) -> Arc<MapRegistry> {
        self.maps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .registry
            .clone()
    }

    /// Compile FML and add it; with `persist`, also write it to the upload folder.
    pub fn add_fml(&self, text: &str, persist: bool) -> Result<Value, MappingError> {
        let sm = fml::parse::parse_map(text).map_err(|e| MappingError::Syntax {
            line: e.line,
            column: e.column,
            message: e.message.clone(),
        })?;
        self.add(sm, Some(text.to_string()), persist)
    }

    /// Add a StructureMap resource (JSON).
    pub fn add(
        &self,
        sm: Value,
        fml: Option<String>,
        persist: bool,
    ) -> Result<Value, MappingError> {
        let url = sm
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if self.catalogue_urls.iter().any(|u| u == &url) {
            return Err(MappingError::Protected(url));
        }
        let mut guard = self.maps.write().unwrap_or_else(|e| e.into_inner());
        let mut registry = (*guard.registry).clone();
        registry
            .add_map(&sm)
            .map_err(|e| MappingError::Compile(e.to_string()))?;
        if persist {
            if let (Some(dir), Some(text)) = (&self.upload_dir, &fml) {
                persist_fml(dir, &sm, text)?;
            }
        }
        guard.registry = Arc::new(registry);
        guard.sources.insert(
            url,
            LoadedMap {
                structure_map: sm.clone(),
                fml,
            },
        );
        Ok(sm)
    }

    pub fn by_url(&self, url: &str) -> Option<Value> {
        let url = url.split('|').next().unwrap_or(url);
        let guard = self.maps.read().unwrap_or_else(|e| e.into_inner());
        guard.sources.get(url).map(|m| m.structure_map.clone())
    }

    pub fn by_id(&self, id: &str) -> Option<Value> {
        let guard = self.maps.read().unwrap_or_else(|e| e.into_inner());
        guard
            .sources
            .values()
            .find(|m| m.structure_map.get("id").and_then(Value::as_str) == Some(id))
            .map(|m| m.structure_map.clone())
    }

    pub fn all(&self) -> Vec<Value> {
        let guard = self.maps.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Value> = guard
            .sources
            .values()
            .map(|m| m.structure_map.clone())
            .collect();
        v.sort_by(|a, b| {
            a.get("url")
                .and_then(Value::as_str)
                .cmp(&b.get("url").and_then(Value::as_str))
        });
        v
    }

    pub fn transform(
        &self,
        map_url: &str,
        source: &Value,
        now_unix: i64,
    ) -> Result<Value, TransformError> {
        let registry = self.snapshot();
        let options = TransformOptions {
            now: Some(iso_now(now_unix)),
            ..Default::default()
        };
        transform_with(map_url, source, &registry, &*self.terminology, &options)
    }
}

/// Uploads are named by id (or a digest of the URL): one file per map, replaced in
/// place, written to a temporary file first so a crash never leaves half a map.
fn persist_fml(dir: &Path, sm: &Value, text: &str) -> Result<(), MappingError> {
    let id = sm
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let url = sm.get("url").and_then(Value::as_str).unwrap_or_default();
            hex::encode(&sha2::Sha256::digest(url.as_bytes())[..8])
        });
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| MappingError::Persist(e.to_string()))?;
    let tmp = dir.join(format!(".{safe}.fml.tmp"));
    std::fs::write(&tmp, text).map_err(|e| MappingError::Persist(e.to_string()))?;
    std::fs::rename(&tmp, dir.join(format!("{safe}.fml")))
        .map_err(|e| MappingError::Persist(e.to_string()))
}

impl Mapper for MappingService {
    fn transform(&self, map_url: &str, source: &Value, now_unix: i64) -> Result<Value, MapFailure> {
        MappingService::transform(self, map_url, source, now_unix).map_err(|e| MapFailure {
            map: map_url.to_string(),
            message: e.to_string(),
        })
    }
}
