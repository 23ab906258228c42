//! StructureDefinitions compiled from their snapshots into element trees.

use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("not a StructureDefinition")]
    NotStructureDefinition,
    #[error("StructureDefinition {0} has no url")]
    NoUrl(String),
    #[error("StructureDefinition {0} has no snapshot")]
    NoSnapshot(String),
    #[error("StructureDefinition {url}: bad element {index}: {reason}")]
    BadElement {
        url: String,
        index: usize,
        reason: String,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone)]
pub struct TypeRef {
    pub code: String,
    pub profiles: Vec<String>,
    pub target_profiles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingStrength {
    Required,
    Extensible,
    Preferred,
    Example,
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub strength: BindingStrength,
    /// Without `|version`.
    pub value_set: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscriminatorType {
    Value,
    Pattern,
    Type,
    Profile,
    Exists,
}

#[derive(Debug, Clone)]
pub struct Discriminator {
    pub kind: DiscriminatorType,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Slicing {
    pub discriminators: Vec<Discriminator>,
    pub closed: bool,
}

#[derive(Debug)]
pub struct Constraint {
    pub key: String,
    pub error: bool,
    pub human: String,
    pub expression: Option<String>,
    /// Parsed lazily: the FHIRPath engine may be unavailable and most profiles'
    /// constraints are never reached by a given resource.
    pub(crate) compiled: OnceLock<Result<fhirpath::Expression, String>>,
}

#[derive(Debug)]
pub struct ElementDef {
    pub id: String,
    pub path: String,
    /// Last path segment, e.g. `value[x]`.
    pub name: String,
    pub slice_name: Option<String>,
    pub min: u32,
    /// `None` = unbounded.
    pub max: Option<u32>,
    /// The base definition allows more than one: the JSON form is an array.
    pub is_array: bool,
    pub types: Vec<TypeRef>,
    pub fixed: Option<Value>,
    pub pattern: Option<Value>,
    pub binding: Option<Binding>,
    pub constraints: Vec<Constraint>,
    pub slicing: Option<Slicing>,
    pub children: Vec<usize>,
    pub slices: Vec<usize>,
    /// Index of the element a `contentReference` points to.
    pub content_ref: Option<usize>,
}

impl ElementDef {
    pub fn is_choice(&self) -> bool {
        self.name.ends_with("[x]")
    }
    pub fn base_name(&self) -> &str {
        self.name.strip_suffix("[x]").unwrap_or(&self.name)
    }
}

#[derive(Debug)]
pub struct Profile {
    pub url: String,
    pub name: String,
    /// The JSON `resourceType` this profile applies to (last segment for logical models).
    pub type_name: String,
    pub kind: String,
    /// The profile this one constrains (without `|version`).
    pub base_definition: Option<String>,
    pub elements: Vec<ElementDef>,
}

impl Profile {
    pub fn from_json(sd: &Value) -> Result<Profile, ProfileError> {
        if sd.get("resourceType").and_then(Value::as_str) != Some("StructureDefinition") {
            return Err(ProfileError::NotStructureDefinition);
        }
        let name = str_of(sd, "name").unwrap_or("?").to_string();
        let url = str_of(sd, "url")
            .ok_or_else(|| ProfileError::NoUrl(name.clone()))?
            .to_string();
        let raw = sd
            .pointer("/snapshot/element")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ProfileError::NoSnapshot(url.clone()))?;
        let ty = str_of(sd, "type").unwrap_or("");
        let type_name = ty.rsplit('/').next().unwrap_or(ty).to_string();
        let kind = str_of(sd, "kind").unwrap_or("resource").to_string();

        let mut elements: Vec<ElementDef> = Vec::with_capacity(raw.len());
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut content_refs: Vec<(usize, String)> = Vec::new();
        for (index, e) in raw.iter().enumerate() {
            let bad = |reason: &str| ProfileError::BadElement {
                url: url.clone(),
                index,
                reason: reason.to_string(),
            };
            let path = str_of(e, "path").ok_or_else(|| bad("no path"))?.to_string();
            let id = str_of(e, "id")
                .map(str::to_string)
                .unwrap_or_else(|| path.clone());
            let el = compile_element(e, &id, &path);
            let idx = elements.len();
            if let Some(cr) = str_of(e, "contentReference") {
                content_refs.push((idx, cr.trim_start_matches('#').to_string()));
            }
            elements.push(el);
            by_id.insert(id.clone(), idx);
            if index == 0 {
                continue;
            }
            let (parent_id, last) = match id.rfind('.') {
                Some(p) => (&id[..p], &id[p + 1..]),
                None => return Err(bad("element id has no parent")),
            };
            if let Some(colon) = last.find(':') {
                // A slice (or re-slice): attach to the sliced element.
                let sliced = format!("{}.{}", parent_id, &last[..colon]);
                let target = by_id
                    .get(&sliced)
                    .copied()
                    .ok_or_else(|| bad("slice of an unknown element"))?;
                elements[target].slices.push(idx);
            } else {
                let parent = by_id
                    .get(parent_id)
                    .copied()
                    .ok_or_else(|| bad("unknown parent element"))?;
                elements[parent].children.push(idx);
            }
        }
        for (idx, target) in content_refs {
            // contentReference names a path; the unsliced element with that id is the target.
            elements[idx].content_ref = by_id.get(&target).copied();
        }
        let base_definition =
            str_of(sd, "baseDefinition").map(|b| b.split('|').next().unwrap_or(b).to_string());
        Ok(Profile {
            url,
            name,
            type_name,
            kind,
            base_definition,
            elements,
        })
    }

    pub fn root(&self) -> usize {
        0
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn parse_max(s: Option<&str>) -> Option<u32> {
    match s {
        None | Some("*") => None,
        Some(n) => n.parse().ok(),
    }
}

fn compile_element(e: &Value, id: &str, path: &str) -> ElementDef {
    let name = path.rsplit('.').next().unwrap_or(path).to_string();
    let min = e
        .get("min")
        .and_then(Value::as_u64)
        .map(|m| m.min(u32::MAX as u64) as u32)
        .unwrap_or(0);
    let max = parse_max(str_of(e, "max"));
    let base_max = e.pointer("/base/max").and_then(Value::as_str);
    let is_array = match base_max {
        Some(b) => b != "1" && b != "0",
        None => max != Some(1) && max != Some(0),
    };
    let types = e
        .get("type")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    let mut code = str_of(t, "code")?.to_string();
                    // `id` elements are typed System.String with the FHIR type in an extension.
                    if code.starts_with("http://hl7.org/fhirpath/System.") {
                        if let Some(ft) = t
                            .get("extension")
                            .and_then(Value::as_array)
                            .and_then(|a| {
                                a.iter().find(|x| {
                                    str_of(x, "url")
                                        == Some("http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
                                })
                            })
                            .and_then(|x| str_of(x, "valueUrl").or_else(|| str_of(x, "valueUri")))
                        {
                            code = ft.to_string();
                        }
                    }
                    let list = |k: &str| -> Vec<String> {
                        t.get(k)
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(|s| s.split('|').next().unwrap_or(s).to_string())
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    Some(TypeRef {
                        code,
                        profiles: list("profile"),
                        target_profiles: list("targetProfile"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut fixed = None;
    let mut pattern = None;
    if let Some(obj) = e.as_object() {
        for (k, v) in obj {
            if k.len() > 5 && k.starts_with("fixed") {
                fixed = Some(v.clone());
            } else if k.len() > 7 && k.starts_with("pattern") {
                pattern = Some(v.clone());
            }
        }
    }
    let binding = e.get("binding").and_then(|b| {
        let strength = match str_of(b, "strength")? {
            "required" => BindingStrength::Required,
            "extensible" => BindingStrength::Extensible,
            "preferred" => BindingStrength::Preferred,
            _ => BindingStrength::Example,
        };
        let vs = str_of(b, "valueSet")?;
        Some(Binding {
            strength,
            value_set: vs.split('|').next().unwrap_or(vs).to_string(),
        })
    });
    let constraints = e
        .get("constraint")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some(Constraint {
                        key: str_of(c, "key")?.to_string(),
                        error: str_of(c, "severity") == Some("error"),
                        human: str_of(c, "human").unwrap_or("").to_string(),
                        expression: str_of(c, "expression").map(str::to_string),
                        compiled: OnceLock::new(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let slicing = e.get("slicing").map(|s| Slicing {
        discriminators: s
            .get("discriminator")
            .and_then(Value::as_array)
            .map(|ds| {
                ds.iter()
                    .filter_map(|d| {
                        let kind = match str_of(d, "type")? {
                            "value" => DiscriminatorType::Value,
                            "pattern" => DiscriminatorType::Pattern,
                            "type" => DiscriminatorType::Type,
                            "profile" => DiscriminatorType::Profile,
                            "exists" => DiscriminatorType::Exists,
                            _ => return None,
                        };
                        Some(Discriminator {
                            kind,
                            path: str_of(d, "path")?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        closed: str_of(s, "rules") == Some("closed"),
    });
    ElementDef {
        id: id.to_string(),
        path: path.to_string(),
        name,
        slice_name: str_of(e, "sliceName").map(str::to_string),
        min,
        max,
        is_array,
        types,
        fixed,
        pattern,
        binding,
        constraints,
        slicing,
        children: Vec::new(),
        slices: Vec::new(),
        content_ref: None,
    }
}

/// The profiles a validator knows, by canonical URL, plus caller-supplied aliases
/// (e.g. the pre-2023 `worldhealthorganization.github.io/ddcc` canonicals).
#[derive(Debug, Default, Clone)]
pub struct ProfileSet {
    profiles: HashMap<String, Arc<Profile>>,
    aliases: HashMap<String, String>,
    prefix_aliases: Vec<(String, String)>,
}

impl ProfileSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one StructureDefinition (must carry a snapshot).
    pub fn add(&mut self, sd: &Value) -> Result<(), ProfileError> {
        let p = Profile::from_json(sd)?;
        self.profiles.insert(p.url.clone(), Arc::new(p));
        Ok(())
    }

    /// Every `*.json` StructureDefinition with a snapshot in `dir`; other resources
    /// and snapshot-less definitions are skipped (returned as the second value).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<(ProfileSet, Vec<String>), ProfileError> {
        let mut set = ProfileSet::new();
        let skipped = set.add_dir(dir)?;
        Ok((set, skipped))
    }

    pub fn add_dir(&mut self, dir: impl AsRef<Path>) -> Result<Vec<String>, ProfileError> {
        let mut skipped = Vec::new();
        for (path, json) in read_json_dir(dir.as_ref())? {
            match self.add(&json) {
                Ok(()) => {}
                Err(ProfileError::NotStructureDefinition) => {}
                Err(e @ ProfileError::NoSnapshot(_)) => skipped.push(format!("{path}: {e}")),
                Err(e) => return Err(e),
            }
        }
        Ok(skipped)
    }

    /// Resolve `from` (exact canonical) as `to`.
    pub fn add_alias(&mut self, from: impl Into<String>, to: impl Into<String>) {
        self.aliases.insert(from.into(), to.into());
    }

    /// Treat every canonical starting with `old_base` as the same canonical under
    /// `new_base` (e.g. the pre-2023 DDCC base, or IHE's http -> https move). Applies
    /// to profile lookup and to canonical URLs compared as values (extension urls,
    /// fixed/pattern uris).
    pub fn add_base_alias(&mut self, old_base: impl Into<String>, new_base: impl Into<String>) {
        self.prefix_aliases.push((old_base.into(), new_base.into()));
    }

    /// The canonical a URL stands for after aliasing (exact aliases, then base aliases).
    pub fn canonical<'a>(&'a self, url: &'a str) -> Cow<'a, str> {
        if let Some(to) = self.aliases.get(url) {
            return Cow::Borrowed(to);
        }
        for (old, new) in &self.prefix_aliases {
            if let Some(rest) = url.strip_prefix(old.as_str()) {
                let rewritten = format!("{new}{rest}");
                return match self.aliases.get(&rewritten) {
                    Some(to) => Cow::Borrowed(to),
                    None => Cow::Owned(rewritten),
                };
            }
        }
        Cow::Borrowed(url)
    }

    /// String equality up to canonical aliases.
    pub(crate) fn same_str(&self, a: &str, b: &str) -> bool {
        a == b
            || ((!self.aliases.is_empty() || !self.prefix_aliases.is_empty())
                && self.canonical(a) == self.canonical(b))
    }

    /// Is `ancestor` in the `baseDefinition` chain of `profile` (through loaded profiles)?
    pub fn derives_from(&self, profile: &Profile, ancestor: &str) -> bool {
        let mut cur = profile.base_definition.as_deref();
        // Bounded: a cyclic baseDefinition chain must not loop.
        for _ in 0..32 {
            let Some(b) = cur else { return false };
            if b == ancestor {
                return true;
            }
            cur = self.get(b).and_then(|p| p.base_definition.as_deref());
        }
        false
    }

    /// Does any loaded profile (e.g. a logical model) define this `resourceType`?
    pub fn defines_type(&self, type_name: &str) -> bool {
        self.profiles.values().any(|p| p.type_name == type_name)
    }

    pub fn get(&self, url: &str) -> Option<&Profile> {
        let url = url.split('|').next().unwrap_or(url);
        self.profiles
            .get(url)
            .or_else(|| self.profiles.get(self.canonical(url).as_ref()))
            .map(Arc::as_ref)
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }
}

pub(crate) fn read_json_dir(dir: &Path) -> Result<Vec<(String, Value)>, ProfileError> {
    let io = |path: &Path, source| ProfileError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for p in names {
        let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        let json = serde_json::from_str(&text).map_err(|source| ProfileError::Json {
            path: p.display().to_string(),
            source,
        })?;
        out.push((p.display().to_string(), json));
    }
    Ok(out)
}
