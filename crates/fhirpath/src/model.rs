//! Built-in FHIR R4 element types, used when the environment supplies no
//! [`ModelInfo`] (or it does not know a type). The table comes from the same
//! StructureDefinition-derived data FHIRPath.js ships (`data/r4-model.tsv`, see
//! `tools/gen-r4-model.js`), so type-dependent results match the oracle.

use crate::value::type_from_suffix;
use crate::ModelInfo;
use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/r4-model.tsv");

/// The R4 model. Backbone elements are named by their path (`Bundle.entry`) so
/// that nested lookups continue from them.
pub struct R4Model {
    parent: HashMap<&'static str, &'static str>,
    path: HashMap<&'static str, &'static str>,
    choice: HashMap<&'static str, Vec<String>>,
    elsewhere: HashMap<&'static str, &'static str>,
}

impl R4Model {
    fn load() -> R4Model {
        let mut m = R4Model {
            parent: HashMap::new(),
            path: HashMap::new(),
            choice: HashMap::new(),
            elsewhere: HashMap::new(),
        };
        for line in TABLE.lines() {
            let mut f = line.split('\t');
            let (Some(kind), Some(k), Some(v)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            match kind {
                "T" => {
                    m.parent.insert(k, v);
                }
                "P" => {
                    m.path.insert(k, v);
                }
                "C" => {
                    m.choice
                        .insert(k, v.split(',').map(type_from_suffix).collect());
                }
                "E" => {
                    m.elsewhere.insert(k, v);
                }
                _ => {}
            }
        }
        m
    }
}

impl ModelInfo for R4Model {
    fn element_types(&self, parent_type: &str, element: &str) -> Option<Vec<String>> {
        let parent = self
            .elsewhere
            .get(parent_type)
            .copied()
            .unwrap_or(parent_type);
        let mut ty = parent.to_string();
        // walk up the type hierarchy: `Patient.id` is declared on Resource
        for _ in 0..8 {
            let key = format!("{ty}.{element}");
            if let Some(t) = self.path.get(key.as_str()) {
                return Some(vec![match *t {
                    "BackboneElement" | "Element" => self
                        .elsewhere
                        .get(key.as_str())
                        .copied()
                        .unwrap_or(key.as_str())
                        .to_string(),
                    other => other.to_string(),
                }]);
            }
            if let Some(ts) = self.choice.get(key.as_str()) {
                return Some(ts.clone());
            }
            if ty.contains('.') {
                // a backbone element inherits BackboneElement's elements
                ty = "BackboneElement".into();
                continue;
            }
            match self.parent.get(ty.as_str()) {
                Some(p) => ty = p.to_string(),
                None => return None,
            }
        }
        None
    }

    fn is_subtype(&self, ty: &str, base: &str) -> Option<bool> {
        let mut t = ty.to_string();
        if t.contains('.') {
            t = self
                .path
                .get(t.as_str())
                .map_or("BackboneElement".to_string(), |p| p.to_string());
        }
        for _ in 0..10 {
            if t == base {
                return Some(true);
            }
            match self.parent.get(t.as_str()) {
                Some(p) => t = p.to_string(),
                None => return Some(false),
            }
        }
        Some(false)
    }
}

impl R4Model {
    /// Is `t` an R4 resource or data type name (`Coding`, `string`, `Patient`)?
    pub fn is_type_name(&self, t: &str) -> bool {
        self.parent.contains_key(t) || matches!(t, "Element" | "Resource" | "BackboneElement")
    }
}

/// The shared R4 model (parsed once on first use).
pub fn r4() -> &'static R4Model {
    static MODEL: OnceLock<R4Model> = OnceLock::new();
    MODEL.get_or_init(R4Model::load)
}
