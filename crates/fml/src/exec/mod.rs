//! The FML executor: runs compiled StructureMaps over FHIR JSON with Matchbox's
//! semantics.
//!
//! How a caller uses it:
//! 1. Build a [`MapRegistry`] once: `add_structure_definition` for every logical
//!    model/profile the maps use, `add_map` for every StructureMap (JSON; the FML
//!    parser produces it from `.fml` text). FHIRPath in the maps is parsed here, once.
//! 2. Build a [`LocalTerminology`] once from ValueSets, CodeSystems and ConceptMaps,
//!    plus an alias table for renamed canonical URLs.
//! 3. Per request: [`transform`]`(map_url, &source_json, &registry, &terminology)`.
//!    The registry and terminology are read-only during a transform, so both can
//!    sit in an `Arc` and serve concurrent requests.
//!
//! Semantics (HL7's Java StructureMap engine as Matchbox runs it; each point is
//! pinned by a test against the IG's own expectations):
//! - A rule's sources: children by element name (choice elements by their typed
//!   JSON name), then the type filter (literal compare: `: DDCCPatient` never
//!   matches a Patient), then `where` and `check`, evaluated with the enclosing
//!   variables and the item as focus (the rule's own variable is not bound yet),
//!   then the list mode. A bare identifier in FHIRPath is a variable first.
//! - Targets run in order; then dependent groups; then nested rules. A rule with
//!   one typed source variable, one target variable made by a parameterless
//!   `create` and nothing else uses the group whose input types match (`<<types>>`).
//! - Writing an element the target type does not define fails the transform with
//!   the map, group and rule named. A choice element is named from the value's
//!   type (`doseNumberInteger`); a primitive written to a non-choice primitive
//!   element takes that element's JSON form (integer 1 into a string is "1").
//! - Created objects are shared: `entry.resource = create('Patient') as p` and
//!   later writes to `p` are one object.
//! - Output: `resourceType` first, at the root and in Resource-typed elements;
//!   a logical model's `resourceType` is the last segment of its type URL.
//! - `translate` returns the ConceptMap group's target system and the code
//!   (`Coding`, `CodeableConcept`, `code`, `system` or `display`); no entry for the
//!   code sets nothing; several usable targets are an error.
//! - Groups calling groups and nested rules share a depth budget of 100.
//! - Conditions of the form `a.b.c = 'text'` over string-typed elements are
//!   evaluated natively (same result as FHIRPath; anything the shortcut cannot
//!   decide goes to the evaluator).

pub mod compile;
mod engine;
pub mod terminology;
mod tree;

pub use compile::{compile, CompileError, CompiledMap};
pub use terminology::{Coding, LocalTerminology, NoTerminology, Terminology};

use crate::model::{Definitions, ModelError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Why a transform failed. Rule failures name the map, group and rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("no StructureMap {0} is loaded")]
    UnknownMap(String),
    #[error("map {map}, group {group}, rule \"{rule}\": {cause}")]
    Rule {
        map: String,
        group: String,
        rule: String,
        cause: String,
    },
    #[error("map {map}: {cause}")]
    Setup { map: String, cause: String },
    #[error("map {map}, group {group}: groups and rules nested too deeply (recursion?)")]
    TooDeep { map: String, group: String },
}

impl TransformError {
    /// The error as a FHIR OperationOutcome (what `$transform` answers with 422).
    /// The map, group and rule are also in `diagnostics`/`expression` so a client
    /// can find the failing rule.
    pub fn to_operation_outcome(&self) -> Value {
        let (code, expression) = match self {
            TransformError::UnknownMap(_) => ("not-found", None),
            TransformError::Rule {
                map, group, rule, ..
            } => ("processing", Some(format!("{map}#{group}.{rule}"))),
            TransformError::Setup { .. } => ("processing", None),
            TransformError::TooDeep { map, group } => {
                ("too-costly", Some(format!("{map}#{group}")))
            }
        };
        let mut issue = serde_json::json!({
            "severity": "error",
            "code": code,
            "diagnostics": self.to_string(),
        });
        if let (Some(e), Some(obj)) = (expression, issue.as_object_mut()) {
            obj.insert("expression".into(), Value::Array(vec![Value::String(e)]));
        }
        serde_json::json!({"resourceType": "OperationOutcome", "issue": [issue]})
    }
}

/// What [`MapRegistry::add_resource`] did with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    Map,
    Definition,
    /// Not a StructureMap or StructureDefinition (terminology goes to [`LocalTerminology`]).
    Ignored,
}

/// Why a resource could not be loaded into the registry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Map(#[from] CompileError),
    #[error(transparent)]
    Definition(#[from] ModelError),
}

/// Knobs for one transform. `Default` = random UUIDs, system clock.
#[derive(Default)]
pub struct TransformOptions<'o> {
    /// Generator for `uuid()` (tests pass a deterministic one).
    pub uuid: Option<Box<dyn Fn() -> String + Send + Sync + 'o>>,
    /// The clock FHIRPath's `now()`/`today()` see (ISO 8601).
    pub now: Option<String>,
}

/// Compiled maps by canonical URL plus the type definitions they use.
#[derive(Debug, Default, Clone)]
pub struct MapRegistry {
    maps: HashMap<String, Arc<CompiledMap>>,
    url_aliases: HashMap<String, String>,
    pub(crate) definitions: Definitions,
}

impl MapRegistry {
    /// An empty registry. Also loads the built-in R4 model (about 10 ms, once per
    /// process) so the first request does not pay for it.
    pub fn new() -> Self {
        let _ = crate::model::r4();
        Self::default()
    }

    /// Compile and store a StructureMap (JSON). Replaces a map with the same URL.
    pub fn add_map(&mut self, structure_map: &Value) -> Result<Arc<CompiledMap>, CompileError> {
        let m = Arc::new(compile(structure_map)?);
        self.maps.insert(m.url.clone(), m.clone());
        Ok(m)
    }

    /// Load whatever the service finds in its profile folder: StructureMaps are
    /// compiled, StructureDefinitions added to the type model, anything else ignored.
    pub fn add_resource(&mut self, resource: &Value) -> Result<Loaded, LoadError> {
        match resource.get("resourceType").and_then(Value::as_str) {
            Some("StructureMap") => {
                self.add_map(resource)?;
                Ok(Loaded::Map)
            }
            Some("StructureDefinition") => {
                self.add_structure_definition(resource)?;
                Ok(Loaded::Definition)
            }
            _ => Ok(Loaded::Ignored),
        }
    }

    /// Also answer to `alias` for the map (or import) URL `url`, e.g. the DDCC IG's
    /// old canonical base `http://worldhealthorganization.github.io/ddcc/...`.
    pub fn add_map_url_alias(&mut self, alias: &str, url: &str) {
        self.url_aliases.insert(alias.to_string(), url.to_string());
    }

    /// Load a StructureDefinition (logical model or profile) the maps refer to.
    pub fn add_structure_definition(&mut self, sd: &Value) -> Result<(), ModelError> {
        self.definitions.add_structure_definition(sd)
    }

    /// Declare a profile URL we have no StructureDefinition for as a constraint on
    /// the R4 type `base_type`.
    pub fn add_profile_alias(&mut self, url: &str, base_type: &str) {
        self.definitions.add_profile_alias(url, base_type);
    }

    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }

    pub(crate) fn definitions_ref(&self) -> &Definitions {
        &self.definitions
    }

    /// The map with this canonical URL (a `|version` suffix is ignored).
    pub fn map(&self, url: &str) -> Option<&Arc<CompiledMap>> {
        let url = url.split('|').next().unwrap_or(url);
        self.maps.get(url).or_else(|| {
            self.url_aliases
                .get(url)
                .and_then(|u| self.maps.get(u.as_str()))
        })
    }

    pub fn maps(&self) -> impl Iterator<Item = &Arc<CompiledMap>> {
        self.maps.values()
    }

    /// The maps an `imports` entry names; `*` is a wildcard.
    pub(crate) fn imported(&self, pattern: &str) -> Vec<&CompiledMap> {
        if !pattern.contains('*') {
            return self.map(pattern).map(|m| &**m).into_iter().collect();
        }
        let mut out: Vec<&CompiledMap> = self
            .maps
            .values()
            .filter(|m| glob(pattern, &m.url))
            .map(|m| &**m)
            .collect();
        out.sort_by(|a, b| a.url.cmp(&b.url));
        out
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(p) => rest = &rest[p + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// Run the map `map_url` on `source` (a FHIR resource or logical-model instance as
/// JSON) and return the target as JSON (`resourceType` first; for a logical model
/// the last segment of its type URL).
pub fn transform(
    map_url: &str,
    source: &Value,
    registry: &MapRegistry,
    terminology: &dyn Terminology,
) -> Result<Value, TransformError> {
    transform_with(
        map_url,
        source,
        registry,
        terminology,
        &TransformOptions::default(),
    )
}

/// [`transform`] with options (deterministic UUIDs, a fixed clock).
pub fn transform_with(
    map_url: &str,
    source: &Value,
    registry: &MapRegistry,
    terminology: &dyn Terminology,
    options: &TransformOptions<'_>,
) -> Result<Value, TransformError> {
    let map = registry
        .map(map_url)
        .ok_or_else(|| TransformError::UnknownMap(map_url.to_string()))?;
    let mut engine = engine::Engine::new(registry, terminology, options);
    engine.run(map, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_as_operation_outcome_and_resource_loading() {
        let e = TransformError::Rule {
            map: "http://m".into(),
            group: "G".into(),
            rule: "r".into(),
            cause: "element 'x' is not defined on type Patient".into(),
        };
        let oo = e.to_operation_outcome();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["code"], "processing");
        assert_eq!(oo["issue"][0]["expression"][0], "http://m#G.r");
        assert!(oo["issue"][0]["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("not defined")));

        let mut reg = MapRegistry::new();
        let sm =
            serde_json::json!({"resourceType": "StructureMap", "url": "http://m", "group": []});
        assert_eq!(reg.add_resource(&sm), Ok(Loaded::Map));
        let vs = serde_json::json!({"resourceType": "ValueSet", "url": "http://v"});
        assert_eq!(reg.add_resource(&vs), Ok(Loaded::Ignored));
        let bad = serde_json::json!({"resourceType": "StructureDefinition"});
        assert!(reg.add_resource(&bad).is_err());
        assert!(reg.map("http://m").is_some());
    }

    #[test]
    fn shared_state_is_thread_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MapRegistry>();
        assert_send_sync::<LocalTerminology>();
        assert_send_sync::<TransformError>();
    }

    #[test]
    fn import_wildcards() {
        assert!(glob("http://x/StructureMap/*", "http://x/StructureMap/A"));
        assert!(glob("http://x/*/A", "http://x/StructureMap/A"));
        assert!(!glob("http://x/StructureMap/*", "http://y/StructureMap/A"));
        assert!(glob("exact", "exact"));
    }
}
