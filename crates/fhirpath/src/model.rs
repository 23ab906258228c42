//! Built-in FHIR R4 element types, used when the environment supplies no
//! [`ModelInfo`] (or it does not know a type). The table comes from the same
//! StructureDefinition-derived data FHIRPath.js ships (`data/r4-model.tsv`, see
//! `tools/gen-r4-model.js`), so type-dependent results match the oracle.
//!
//! Lookups borrow from the table (no allocation per navigation step): this sits
//! on the hot path of every member access.

use crate::value::type_from_suffix;
use crate::ModelInfo;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/r4-model.tsv");

/// FxHash: the table's keys are trusted, short identifiers, so a fast
/// non-cryptographic hash is fine here.
#[derive(Default)]
struct Fx(u64);
impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
}
type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// The type of an element: one type, or the allowed types of a choice element.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ElemType {
    One(&'static str),
    Choice(&'static [String]),
}

enum Entry {
    One(&'static str),
    Choice(Vec<String>),
}

/// The R4 model. Backbone elements are named by their path (`Bundle.entry`) so
/// that nested lookups continue from them.
pub struct R4Model {
    parent: FxMap<&'static str, &'static str>,
    /// parent type or backbone path -> element name -> type
    elements: FxMap<&'static str, FxMap<&'static str, Entry>>,
    elsewhere: FxMap<&'static str, &'static str>,
}

impl R4Model {
    fn load() -> R4Model {
        let mut m = R4Model {
            parent: FxMap::default(),
            elements: FxMap::default(),
            elsewhere: FxMap::default(),
        };
        let mut paths: Vec<(&'static str, &'static str)> = Vec::new();
        let mut choices: Vec<(&'static str, &'static str)> = Vec::new();
        for line in TABLE.lines() {
            let mut f = line.split('\t');
            let (Some(kind), Some(k), Some(v)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            match kind {
                "T" => {
                    m.parent.insert(k, v);
                }
                "P" => paths.push((k, v)),
                "C" => choices.push((k, v)),
                "E" => {
                    m.elsewhere.insert(k, v);
                }
                _ => {}
            }
        }
        for (path, ty) in paths {
            let Some((owner, element)) = path.rsplit_once('.') else {
                continue;
            };
            let ty = match ty {
                // a backbone element's type is its own path (or where it is defined)
                "BackboneElement" | "Element" => m.elsewhere.get(path).copied().unwrap_or(path),
                other => other,
            };
            m.elements
                .entry(owner)
                .or_default()
                .insert(element, Entry::One(ty));
        }
        for (path, types) in choices {
            let Some((owner, element)) = path.rsplit_once('.') else {
                continue;
            };
            let list = types.split(',').map(type_from_suffix).collect();
            m.elements
                .entry(owner)
                .or_default()
                .insert(element, Entry::Choice(list));
        }
        m
    }

    pub(crate) fn lookup(&'static self, parent_type: &str, element: &str) -> Option<ElemType> {
        let mut ty: &str = self
            .elsewhere
            .get(parent_type)
            .copied()
            .unwrap_or(parent_type);
        // walk up the type hierarchy: `Patient.id` is declared on Resource
        for _ in 0..8 {
            if let Some(e) = self.elements.get(ty).and_then(|els| els.get(element)) {
                return Some(match e {
                    Entry::One(t) => ElemType::One(t),
                    Entry::Choice(list) => ElemType::Choice(list),
                });
            }
            ty = if ty.contains('.') {
                // a backbone element inherits BackboneElement's elements
                "BackboneElement"
            } else {
                self.parent.get(ty).copied()?
            };
        }
        None
    }

    /// Is `t` a concrete R4 resource type (`Patient`, `Bundle`, `Binary`), i.e. derived
    /// from `Resource`? Derived from the model rather than kept as a second list.
    pub fn is_resource_type(&self, t: &str) -> bool {
        !t.contains('.')
            && !matches!(t, "Resource" | "DomainResource")
            && self.is_subtype(t, "Resource") == Some(true)
    }

    /// Every type name the model knows.
    pub fn parent_names(&self) -> impl Iterator<Item = &str> {
        self.parent.keys().copied()
    }

    /// Is `t` an R4 resource or data type name (`Coding`, `string`, `Patient`)?
    pub fn is_type_name(&self, t: &str) -> bool {
        self.parent.contains_key(t) || matches!(t, "Element" | "Resource" | "BackboneElement")
    }
}

impl ModelInfo for R4Model {
    fn element_types(&self, parent_type: &str, element: &str) -> Option<Vec<String>> {
        match r4().lookup(parent_type, element)? {
            ElemType::One(t) => Some(vec![t.to_string()]),
            ElemType::Choice(list) => Some(list.to_vec()),
        }
    }

    fn is_subtype(&self, ty: &str, base: &str) -> Option<bool> {
        let mut t: &str = ty;
        if t.contains('.') {
            if t == base {
                return Some(true);
            }
            t = "BackboneElement";
        }
        for _ in 0..10 {
            if t == base {
                return Some(true);
            }
            match self.parent.get(t) {
                Some(p) => t = p,
                None => return Some(false),
            }
        }
        Some(false)
    }
}

/// The shared R4 model (parsed once on first use).
pub fn r4() -> &'static R4Model {
    static MODEL: OnceLock<R4Model> = OnceLock::new();
    MODEL.get_or_init(R4Model::load)
}

#[cfg(test)]
mod resource_type_tests {
    use super::r4;

    #[test]
    fn resource_types_come_from_the_model() {
        let m = r4();
        for t in [
            "Patient",
            "Bundle",
            "Binary",
            "Parameters",
            "DocumentReference",
            "AuditEvent",
        ] {
            assert!(m.is_resource_type(t), "{t}");
        }
        for t in [
            "Coding",
            "string",
            "Resource",
            "DomainResource",
            "INVALIDTYPE",
            "Patient.contact",
            "",
        ] {
            assert!(!m.is_resource_type(t), "{t}");
        }
        // R4 (4.0.1) defines 146 concrete resource types.
        let count = m.parent_names().filter(|t| m.is_resource_type(t)).count();
        assert_eq!(count, 146);
    }
}
