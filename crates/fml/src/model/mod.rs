//! Type information for the FML executor: FHIR R4 resources and data types (from a
//! table generated at build time of the repository, `r4.json`, see
//! `tools/gen-r4-model.py`) plus logical models and profiles loaded at run time from
//! StructureDefinitions.
//!
//! A position in a type is a [`TypeCtx`]: either an R4 path (`"Immunization"`,
//! `"Bundle.entry"`) or a path inside a logical model. Children are looked up by
//! element name; choice elements (`value[x]`) are reported once, under their base
//! name, with all their types.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Errors when loading a StructureDefinition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("StructureDefinition has no {0}")]
    Missing(&'static str),
    #[error("StructureDefinition {url}: {message}")]
    Invalid { url: String, message: String },
}

/// One element of a type: its base name (without `[x]`), its types, whether it
/// repeats and whether it is a choice.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementDef {
    pub name: Arc<str>,
    /// Full definition path (`Immunization.protocolApplied`); nested backbone
    /// elements live below it.
    pub path: Arc<str>,
    pub types: Vec<Arc<str>>,
    pub repeats: bool,
    pub choice: bool,
    /// For R4 elements of one type: the node of that type (or of the nested
    /// backbone path), resolved at load time so navigation needs no lookup.
    pub(crate) r4_target: Option<u32>,
}

/// A logical model (StructureDefinition with `kind = logical`).
#[derive(Debug)]
pub struct LogicalModel {
    pub url: String,
    /// JSON `resourceType` of instances: the last path segment of `type`.
    pub type_name: String,
    root: String,
    /// Parent path -> element name -> definition.
    elements: FastMap<String, FastMap<String, ElementDef>>,
}

impl LogicalModel {
    fn has_path(&self, path: &str) -> bool {
        path == self.root
            || path
                .rsplit_once('.')
                .and_then(|(p, n)| self.elements.get(p).map(|m| m.contains_key(n)))
                .unwrap_or(false)
    }
}

/// Where a value sits in the type system.
#[derive(Debug, Clone)]
pub enum TypeCtx {
    /// An R4 type name (`Coding`, `string`) or a backbone path (`Bundle.entry`):
    /// its node in the static R4 table.
    R4(&'static R4Node),
    /// A type name the model does not know (it has no elements).
    Named(Arc<str>),
    /// A path inside a logical model; `path == root` is the model itself.
    Logical {
        model: Arc<LogicalModel>,
        path: Arc<str>,
    },
}

impl PartialEq for TypeCtx {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TypeCtx::R4(a), TypeCtx::R4(b)) => std::ptr::eq(*a, *b),
            (TypeCtx::Named(a), TypeCtx::Named(b)) => a == b,
            (
                TypeCtx::Logical {
                    model: m1,
                    path: p1,
                },
                TypeCtx::Logical {
                    model: m2,
                    path: p2,
                },
            ) => Arc::ptr_eq(m1, m2) && p1 == p2,
            _ => false,
        }
    }
}

impl TypeCtx {
    /// The R4 type or backbone path `name` (or an unknown name).
    pub fn r4(name: &str) -> TypeCtx {
        match r4().intern(name) {
            Some(n) => TypeCtx::R4(n),
            None => TypeCtx::Named(Arc::from(name)),
        }
    }

    /// The FHIR type name: `Coding`, `string`, `BackboneElement` for nested
    /// elements, the logical model's type name for its root.
    pub fn type_name(&self) -> &str {
        match self {
            TypeCtx::R4(p) => {
                if p.is_backbone {
                    "BackboneElement"
                } else {
                    &p.path
                }
            }
            TypeCtx::Named(n) => n,
            TypeCtx::Logical { model, path } => {
                if **path == *model.root {
                    &model.type_name
                } else {
                    "BackboneElement"
                }
            }
        }
    }

    /// The FHIRPath type name when it can be borrowed for the program's lifetime
    /// (R4 types), so evaluation items need no allocation.
    pub fn static_name(&self) -> Option<&'static str> {
        match self {
            TypeCtx::R4(p) => Some(&p.path),
            _ => None,
        }
    }

    /// The name FHIRPath sees as the node type: the type name, or for a nested
    /// element its path (so `ModelInfo` can answer questions about its children).
    pub fn fhirpath_name(&self) -> &str {
        match self {
            TypeCtx::R4(p) => &p.path,
            TypeCtx::Named(n) => n,
            TypeCtx::Logical { model, path } => {
                if **path == *model.root {
                    &model.type_name
                } else {
                    path
                }
            }
        }
    }

    pub fn is_primitive(&self) -> bool {
        matches!(self, TypeCtx::R4(p) if is_primitive_name(&p.path))
    }

    /// Is this a resource type (or a logical model root), i.e. does its JSON carry `resourceType`?
    pub fn resource_type(&self) -> Option<&str> {
        match self {
            TypeCtx::R4(p) => {
                if p.is_resource {
                    Some(&p.path)
                } else {
                    None
                }
            }
            TypeCtx::Named(_) => None,
            TypeCtx::Logical { model, path } => {
                if **path == *model.root {
                    Some(&model.type_name)
                } else {
                    None
                }
            }
        }
    }
}

/// FHIR primitive type names start with a lower-case letter.
pub fn is_primitive_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// The R4 base model, parsed once from the generated table.
pub struct R4Model {
    nodes: Vec<R4Node>,
    index: FastMap<String, u32>,
}

/// An R4 type or backbone path with its own elements.
#[derive(Debug)]
pub struct R4Node {
    pub path: String,
    base: Option<u32>,
    is_resource: bool,
    /// A nested element path (`Bundle.entry`), typed `BackboneElement`.
    is_backbone: bool,
    children: FastMap<String, ElementDef>,
}

/// FxHash: the keys are short trusted strings from our own tables; SipHash's
/// DoS resistance buys nothing here and costs a third of a lookup.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
}

pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

static R4_TABLE: &str = include_str!("r4.json");
static R4: OnceLock<R4Model> = OnceLock::new();

/// The R4 model (parsed on first use, about 1 ms).
pub fn r4() -> &'static R4Model {
    R4.get_or_init(|| R4Model::parse(R4_TABLE))
}

impl R4Model {
    fn parse(text: &str) -> R4Model {
        // The table is generated and committed; a malformed table is a build defect,
        // so an empty model (every lookup fails with a clear error) is the fallback.
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let mut parents: FastMap<String, String> = FastMap::default();
        if let Some(p) = v.get("parents").and_then(Value::as_object) {
            for (k, val) in p {
                if let Some(s) = val.as_str() {
                    parents.insert(k.clone(), s.to_string());
                }
            }
        }
        let mut flat: FastMap<String, ElementDef> = FastMap::default();
        if let Some(e) = v.get("elements").and_then(Value::as_object) {
            for (path, val) in e {
                let Some(spec) = val.as_str() else { continue };
                let (types, flags) = spec.split_once(';').unwrap_or((spec, ""));
                let name = path.rsplit('.').next().unwrap_or(path);
                flat.insert(
                    path.clone(),
                    ElementDef {
                        name: Arc::from(name),
                        path: Arc::from(path.as_str()),
                        types: types.split(',').map(Arc::from).collect(),
                        repeats: flags.contains('r'),
                        choice: flags.contains('c'),
                        r4_target: None,
                    },
                );
            }
        }
        if let Some(e) = v.get("elsewhere").and_then(Value::as_object) {
            for (path, target) in e {
                // A content reference has the shape of the element it points to.
                let Some(t) = target.as_str().and_then(|t| flat.get(t)) else {
                    continue;
                };
                let mut d = t.clone();
                d.name = Arc::from(path.rsplit('.').next().unwrap_or(path));
                flat.insert(path.clone(), d);
            }
        }
        // One node per type name and per path that has elements.
        let mut model = R4Model {
            nodes: Vec::new(),
            index: FastMap::default(),
        };
        let mut names: Vec<String> = parents.keys().cloned().collect();
        names.extend(
            [
                "Base",
                "Element",
                "BackboneElement",
                "Resource",
                "DomainResource",
            ]
            .map(String::from),
        );
        names.extend(
            flat.keys()
                .filter_map(|p| p.rsplit_once('.').map(|(a, _)| a.to_string())),
        );
        names.sort();
        names.dedup();
        for n in names {
            let idx = model.nodes.len() as u32;
            model.index.insert(n.clone(), idx);
            model.nodes.push(R4Node {
                is_backbone: n.contains('.'),
                path: n,
                base: None,
                is_resource: false,
                children: FastMap::default(),
            });
        }
        for i in 0..model.nodes.len() {
            let path = model.nodes[i].path.clone();
            let base = if path.contains('.') {
                Some("BackboneElement")
            } else {
                parents.get(&path).map(String::as_str)
            };
            model.nodes[i].base = base.and_then(|b| model.index.get(b).copied());
            let mut cur = path.as_str();
            for _ in 0..8 {
                if cur == "Resource" {
                    model.nodes[i].is_resource = true;
                    break;
                }
                match parents.get(cur) {
                    Some(p) => cur = p,
                    None => break,
                }
            }
        }
        for (path, mut d) in flat {
            let Some((parent, name)) = path.rsplit_once('.') else {
                continue;
            };
            if let [t] = d.types.as_slice() {
                let target = if &**t == "BackboneElement" || &**t == "Element" {
                    d.path.to_string()
                } else {
                    t.to_string()
                };
                d.r4_target = model.index.get(&target).copied();
            }
            if let Some(&pi) = model.index.get(parent) {
                model.nodes[pi as usize]
                    .children
                    .insert(name.to_string(), d);
            }
        }
        model
    }

    /// The node of an R4 type name or backbone path.
    pub fn intern(&'static self, name: &str) -> Option<&'static R4Node> {
        self.index.get(name).map(|&i| &self.nodes[i as usize])
    }

    fn node(&'static self, i: u32) -> Option<&'static R4Node> {
        self.nodes.get(i as usize)
    }

    /// Is `name` an R4 type (resource, data type or primitive)?
    pub fn has_type(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn is_resource(&'static self, name: &str) -> bool {
        self.intern(name).is_some_and(|n| n.is_resource)
    }

    pub fn is_subtype(&'static self, ty: &str, base: &str) -> bool {
        let mut cur = self.intern(ty);
        for _ in 0..10 {
            match cur {
                Some(n) if n.path == base => return true,
                Some(n) => cur = n.base.and_then(|b| self.node(b)),
                None => return false,
            }
        }
        false
    }

    /// The element `name` of the R4 type or backbone path `path`.
    pub fn child(&'static self, path: &str, name: &str) -> Option<&'static ElementDef> {
        self.node_child(self.intern(path)?, name)
    }

    /// The element `name` of `node`, looking through base types.
    pub fn node_child(
        &'static self,
        node: &'static R4Node,
        name: &str,
    ) -> Option<&'static ElementDef> {
        let mut cur = node;
        for _ in 0..10 {
            if let Some(e) = cur.children.get(name) {
                return Some(e);
            }
            cur = self.node(cur.base?)?;
        }
        None
    }
}

/// Definitions loaded at run time: logical models by URL and type name, profiles
/// (and caller-supplied aliases) by URL mapped to their R4 base type.
#[derive(Default, Clone)]
pub struct Definitions {
    logical: FastMap<String, Arc<LogicalModel>>,
    logical_by_type: FastMap<String, Arc<LogicalModel>>,
    profiles: FastMap<String, String>,
}

impl std::fmt::Debug for Definitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Definitions")
            .field("logical", &self.logical.keys().collect::<Vec<_>>())
            .field("profiles", &self.profiles.len())
            .finish()
    }
}

const FHIR_SD_BASE: &str = "http://hl7.org/fhir/StructureDefinition/";
const SYSTEM_PREFIX: &str = "http://hl7.org/fhirpath/System.";

fn strip_version(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

impl Definitions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Load a StructureDefinition (JSON). Logical models need a snapshot (or a
    /// differential that lists every element); profiles only need `type`.
    pub fn add_structure_definition(&mut self, sd: &Value) -> Result<(), ModelError> {
        let url = sd
            .get("url")
            .and_then(Value::as_str)
            .ok_or(ModelError::Missing("url"))?;
        let ty = sd
            .get("type")
            .and_then(Value::as_str)
            .ok_or(ModelError::Missing("type"))?;
        let kind = sd.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != "logical" {
            let base = ty.strip_prefix(FHIR_SD_BASE).unwrap_or(ty);
            self.profiles.insert(url.to_string(), base.to_string());
            return Ok(());
        }
        let elements = sd
            .get("snapshot")
            .and_then(|s| s.get("element"))
            .or_else(|| sd.get("differential").and_then(|s| s.get("element")))
            .and_then(Value::as_array)
            .ok_or(ModelError::Missing("snapshot.element"))?;
        let root = elements
            .first()
            .and_then(|e| e.get("path"))
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::Invalid {
                url: url.to_string(),
                message: "no root element".into(),
            })?
            .to_string();
        let mut map: FastMap<String, FastMap<String, ElementDef>> = FastMap::default();
        for e in elements.iter().skip(1) {
            let Some(path) = e.get("path").and_then(Value::as_str) else {
                continue;
            };
            // Slices repeat a path with a `:name` id; the plain element is enough here.
            if e.get("sliceName").is_some() {
                continue;
            }
            let (path, choice) = match path.strip_suffix("[x]") {
                Some(p) => (p, true),
                None => (path, false),
            };
            let name = path.rsplit('.').next().unwrap_or(path);
            let mut types: Vec<Arc<str>> = e
                .get("type")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| t.get("code").and_then(Value::as_str))
                        .map(|c| {
                            let c = c.strip_prefix(SYSTEM_PREFIX).map_or(c, |s| {
                                if s == "String" {
                                    "string"
                                } else {
                                    s
                                }
                            });
                            Arc::from(c.strip_prefix(FHIR_SD_BASE).unwrap_or(c))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if types.is_empty() {
                if let Some(cr) = e.get("contentReference").and_then(Value::as_str) {
                    types.push(Arc::from(format!("#{}", cr.trim_start_matches('#'))));
                }
            }
            let repeats = e
                .get("max")
                .and_then(Value::as_str)
                .is_some_and(|m| m != "0" && m != "1");
            let Some((parent, _)) = path.rsplit_once('.') else {
                continue;
            };
            map.entry(parent.to_string()).or_default().insert(
                name.to_string(),
                ElementDef {
                    name: Arc::from(name),
                    path: Arc::from(path),
                    types,
                    repeats,
                    choice,
                    r4_target: None,
                },
            );
        }
        let type_name = ty.rsplit('/').next().unwrap_or(ty).to_string();
        let model = Arc::new(LogicalModel {
            url: url.to_string(),
            type_name: type_name.clone(),
            root,
            elements: map,
        });
        self.logical.insert(url.to_string(), model.clone());
        self.logical_by_type.entry(type_name).or_insert(model);
        Ok(())
    }

    /// Declare that the profile (or any StructureDefinition URL we do not have)
    /// `url` constrains the R4 type `base_type`. Used for IGs whose packages are not
    /// available locally (e.g. SMART Health Cards profiles of Bundle/Patient).
    pub fn add_profile_alias(&mut self, url: &str, base_type: &str) {
        self.profiles.insert(url.to_string(), base_type.to_string());
    }

    pub fn logical_model(&self, url: &str) -> Option<&Arc<LogicalModel>> {
        self.logical.get(strip_version(url))
    }

    pub fn logical_by_type_name(&self, name: &str) -> Option<&Arc<LogicalModel>> {
        self.logical_by_type.get(name)
    }

    /// The position named by a FHIRPath type name as [`TypeCtx::fhirpath_name`]
    /// gives it: a type name, a URL, an R4 backbone path or a path inside a
    /// logical model (`DDCCCoreDataSet.vaccination`).
    pub fn resolve_fhirpath_name(&self, name: &str) -> Option<TypeCtx> {
        if let Some(t) = self.resolve_type(name) {
            return Some(t);
        }
        let (head, _) = name.split_once('.')?;
        if let Some(m) = self.logical_by_type.values().find(|m| m.root == head) {
            if m.has_path(name) {
                return Some(TypeCtx::Logical {
                    model: m.clone(),
                    path: Arc::from(name),
                });
            }
        }
        r4().intern(name).map(TypeCtx::R4)
    }

    /// Resolve a type reference (a StructureDefinition URL, a profile URL, or an R4
    /// type name) to the position of its root.
    pub fn resolve_type(&self, reference: &str) -> Option<TypeCtx> {
        if !reference.contains(':') {
            if let Some(n) = r4().intern(reference) {
                return Some(TypeCtx::R4(n));
            }
        }
        let reference = strip_version(reference);
        if let Some(m) = self.logical.get(reference) {
            return Some(TypeCtx::Logical {
                model: m.clone(),
                path: Arc::from(m.root.as_str()),
            });
        }
        if let Some(base) = self.profiles.get(reference) {
            return self
                .resolve_type(base)
                .or_else(|| r4().has_type(base).then(|| TypeCtx::r4(base)));
        }
        if let Some(name) = reference.strip_prefix(FHIR_SD_BASE) {
            if r4().has_type(name) {
                return Some(TypeCtx::r4(name));
            }
        }
        if r4().has_type(reference) {
            return Some(TypeCtx::r4(reference));
        }
        None
    }

    /// The type of a JSON resource from its `resourceType`.
    pub fn resolve_resource_type(&self, resource_type: &str) -> Option<TypeCtx> {
        if let Some(n) = r4().intern(resource_type) {
            return Some(TypeCtx::R4(n));
        }
        self.logical_by_type
            .get(resource_type)
            .map(|m| TypeCtx::Logical {
                model: m.clone(),
                path: Arc::from(m.root.as_str()),
            })
    }

    /// The element `name` of the type at `ctx`.
    pub fn child<'c>(&self, ctx: &'c TypeCtx, name: &str) -> Option<&'c ElementDef> {
        match ctx {
            TypeCtx::R4(node) => r4().node_child(node, name),
            TypeCtx::Named(_) => None,
            TypeCtx::Logical { model, path } => {
                if let Some(e) = model.elements.get(&**path).and_then(|m| m.get(name)) {
                    return Some(e);
                }
                // Elements inherited from Element/BackboneElement (id, extension) are
                // usually in the snapshot; fall back to the R4 base otherwise.
                r4().child("BackboneElement", name)
            }
        }
    }

    /// Find an element by its JSON name, including a concrete choice name
    /// (`valueCoding` -> `value[x]` with type `Coding`). Returns the element and the
    /// chosen type for a choice.
    pub fn child_by_json_name<'c>(
        &self,
        ctx: &'c TypeCtx,
        json_name: &str,
    ) -> Option<(&'c ElementDef, Option<Arc<str>>)> {
        if let Some(e) = self.child(ctx, json_name) {
            return Some((e, None));
        }
        for (i, c) in json_name.char_indices().skip(1) {
            if !c.is_ascii_uppercase() {
                continue;
            }
            let (base, suffix) = json_name.split_at(i);
            if let Some(e) = self.child(ctx, base) {
                if e.choice {
                    let t = e.types.iter().find(|t| eq_capitalized(t, suffix)).cloned();
                    if let Some(t) = t {
                        return Some((e, Some(t)));
                    }
                }
            }
        }
        None
    }

    /// The position below element `e` (found on `parent`) when its value has type `ty`.
    pub fn child_ctx(&self, parent: &TypeCtx, e: &ElementDef, ty: &str) -> Option<TypeCtx> {
        let nested = ty == "BackboneElement" || ty == "Element";
        match parent {
            TypeCtx::Logical { model, .. } => {
                if let Some(cr) = ty.strip_prefix('#') {
                    return Some(TypeCtx::Logical {
                        model: model.clone(),
                        path: Arc::from(cr),
                    });
                }
                if nested && model.has_path(&e.path) {
                    return Some(TypeCtx::Logical {
                        model: model.clone(),
                        path: e.path.clone(),
                    });
                }
            }
            TypeCtx::R4(_) | TypeCtx::Named(_) => {
                if let Some(n) = e.r4_target.and_then(|i| r4().node(i)) {
                    if e.types.len() == 1 && &*e.types[0] == ty {
                        return Some(TypeCtx::R4(n));
                    }
                }
                if nested {
                    return Some(TypeCtx::r4(&e.path));
                }
            }
        }
        self.resolve_type(ty)
    }
}

/// `dateTime` vs `DateTime`: a choice suffix is the type name with a capital first letter.
pub fn eq_capitalized(ty: &str, suffix: &str) -> bool {
    let mut a = ty.chars();
    let mut b = suffix.chars();
    match (a.next(), b.next()) {
        (Some(x), Some(y)) => x.to_ascii_uppercase() == y && a.as_str() == b.as_str(),
        _ => false,
    }
}

/// `dateTime` -> `DateTime`.
pub fn capitalize(ty: &str) -> String {
    let mut c = ty.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn element_type_names(e: &ElementDef) -> Vec<String> {
    e.types
        .iter()
        .map(|t| {
            if &**t == "BackboneElement" || &**t == "Element" {
                e.path.to_string()
            } else {
                t.to_string()
            }
        })
        .collect()
}

/// Type information for the FHIRPath evaluator over R4 and the loaded logical models.
impl fhirpath::ModelInfo for Definitions {
    fn element_types(&self, parent_type: &str, element: &str) -> Option<Vec<String>> {
        // R4 types: the evaluator's own R4 table (generated from the same FHIRPath.js
        // model as ours) answers without allocating; we add the logical models.
        if r4().has_type(parent_type) {
            return None;
        }
        let ctx = if let Some(m) = self.logical_by_type.get(parent_type) {
            TypeCtx::Logical {
                model: m.clone(),
                path: Arc::from(m.root.as_str()),
            }
        } else {
            let (head, _) = parent_type.split_once('.')?;
            let m = self.logical_by_type.values().find(|m| m.root == head)?;
            if !m.has_path(parent_type) {
                return None;
            }
            TypeCtx::Logical {
                model: m.clone(),
                path: Arc::from(parent_type),
            }
        };
        self.child(&ctx, element).map(element_type_names)
    }

    fn is_subtype(&self, ty: &str, base: &str) -> Option<bool> {
        if r4().has_type(ty) {
            Some(r4().is_subtype(ty, base))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r4_choice_and_repeats() {
        let d = Definitions::new();
        let imm = TypeCtx::r4("Immunization");
        let occ = d.child(&imm, "occurrence").expect("occurrence");
        assert!(occ.choice);
        assert_eq!(occ.types, vec![Arc::from("dateTime"), Arc::from("string")]);
        let pa = d.child(&imm, "protocolApplied").expect("protocolApplied");
        assert!(pa.repeats);
        let pactx = d.child_ctx(&imm, pa, "BackboneElement").expect("ctx");
        assert_eq!(pactx.type_name(), "BackboneElement");
        let dn = d.child(&pactx, "doseNumber").expect("doseNumber");
        assert!(dn.choice);
        // inherited from DomainResource / Element
        assert!(d.child(&imm, "extension").is_some_and(|e| e.repeats));
        assert!(d.child(&TypeCtx::r4("Coding"), "id").is_some());
        assert!(d.child(&imm, "nonsense").is_none());
        let ext = TypeCtx::r4("Extension");
        let (e, t) = d
            .child_by_json_name(&ext, "valueCoding")
            .expect("valueCoding");
        assert_eq!(&*e.name, "value");
        assert_eq!(t.as_deref(), Some("Coding"));
        // content reference
        let bundle = TypeCtx::r4("Bundle");
        let entry = d.child(&bundle, "entry").expect("entry");
        let ectx = d.child_ctx(&bundle, entry, "BackboneElement");
        let ectx = ectx.expect("entry ctx");
        assert!(d.child(&ectx, "link").is_some_and(|e| e.repeats));
        assert!(r4().is_resource("Patient"));
        assert!(!r4().is_resource("Coding"));
    }

    #[test]
    fn logical_model_from_structure_definition() {
        let sd = serde_json::json!({
            "resourceType": "StructureDefinition",
            "url": "http://example.org/StructureDefinition/M",
            "type": "http://example.org/StructureDefinition/M",
            "kind": "logical",
            "snapshot": {"element": [
                {"path": "M"},
                {"path": "M.a", "type": [{"code": "string"}], "max": "1"},
                {"path": "M.b", "type": [{"code": "BackboneElement"}], "max": "*"},
                {"path": "M.b.c", "type": [{"code": "Coding"}], "max": "1"},
                {"path": "M.d[x]", "type": [{"code": "integer"}, {"code": "string"}], "max": "1"}
            ]}
        });
        let mut d = Definitions::new();
        d.add_structure_definition(&sd).expect("load");
        let root = d
            .resolve_type("http://example.org/StructureDefinition/M")
            .expect("root");
        assert_eq!(root.resource_type(), Some("M"));
        let b = d.child(&root, "b").expect("b");
        assert!(b.repeats);
        let bctx = d.child_ctx(&root, b, "BackboneElement").expect("b ctx");
        let c = d.child(&bctx, "c").expect("c");
        let cctx = d.child_ctx(&bctx, c, "Coding").expect("coding");
        assert_eq!(cctx.type_name(), "Coding");
        assert!(d.child(&root, "d").is_some_and(|e| e.choice));
        assert!(d.child(&root, "zz").is_none());
    }
}
