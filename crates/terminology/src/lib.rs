//! Local FHIR terminology: everything the DDCC flows need answered without a
//! terminology server. This crate is the only place that decides ValueSet
//! membership, expansion and ConceptMap lookups; the validator's and the mapping
//! engine's terminology types are adapters over [`Terminology`].
//!
//! The IG's value sets enumerate codes or include whole IG CodeSystems; the two R4
//! value sets the Questionnaire binds (`administrative-gender`, `iso3166-1-3`) use an
//! enumerated CodeSystem and a `regex` filter. That is the scope: enumerations,
//! whole-system includes, `valueSet` imports, excludes, expansions shipped inside a
//! ValueSet, and the filters `regex`, `=` and `is-a`/`descendent-of` over local
//! CodeSystem hierarchies. A value set that needs anything else answers "unknown",
//! never a guess: membership is three-valued (yes, no, cannot tell), and a "yes" or
//! "no" that does not depend on the unknown part still answers.
//!
//! Canonical URLs are matched without their `|version`, and through an alias table
//! (the IG renamed its terminology URLs in 2024; maps and old requests still use the
//! old ones). Aliases work in both directions.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

mod r4_core;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} without a url")]
    NoUrl { kind: &'static str },
    #[error("not a terminology resource: {0}")]
    NotTerminology(String),
    #[error("value set {0} is not known")]
    UnknownValueSet(String),
    #[error("value set {url} cannot be evaluated locally: {why}")]
    NotLocal { url: String, why: String },
    #[error("concept map {0} is not known")]
    UnknownConceptMap(String),
    #[error("invalid alias table: {0}")]
    Aliases(String),
}

/// A code in a system (`Coding` without the frills).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Code {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

/// One ConceptMap translation result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub target: Code,
    pub equivalence: String,
}

/// A target of a ConceptMap source element, as written (R4 `equivalence`, or R5
/// `relationship` when that is what the map has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapTarget {
    pub code: Option<String>,
    pub display: Option<String>,
    pub equivalence: Option<String>,
}

/// A ConceptMap source element that matches a code, with its group's systems.
/// Callers with their own selection rules (the mapping engine follows Matchbox)
/// choose among these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEntry<'a> {
    /// The group's `source` system, when it names one.
    pub source: Option<&'a str>,
    /// The group's `target` system, when it names one.
    pub target_system: Option<&'a str>,
    pub targets: &'a [MapTarget],
}

#[derive(Debug, Clone)]
enum Filter {
    Regex(Result<regex::Regex, String>),
    IsA(String),
    DescendentOf(String),
    Equals(String),
    Unsupported(String),
}

/// One `compose.include` or `compose.exclude`, parsed once when the ValueSet is added.
#[derive(Debug, Clone)]
struct Component {
    system: Option<String>,
    /// Enumerated concepts in order, with their displays; `None` = not enumerated.
    concepts: Option<Vec<(String, Option<String>)>>,
    concept_index: HashSet<String>,
    value_sets: Vec<String>,
    filters: Vec<Filter>,
}

/// An `expansion.contains` entry: (system, code, display).
type Listed = (Option<String>, String, Option<String>);

#[derive(Debug, Clone)]
struct ValueSet {
    url: String,
    resource: Value,
    /// `None` = no `compose.include` (the expansion, if any, answers).
    include: Option<Vec<Component>>,
    exclude: Vec<Component>,
    /// `expansion.contains`, nested entries flattened.
    expansion: Option<Vec<Listed>>,
}

#[derive(Debug, Default, Clone)]
struct CodeSystem {
    /// code -> (display, parent codes)
    concepts: HashMap<String, (Option<String>, Vec<String>)>,
    complete: bool,
}

#[derive(Debug, Clone)]
struct MapGroup {
    source: Option<String>,
    target: Option<String>,
    elements: Vec<(String, Vec<MapTarget>)>,
}

#[derive(Debug, Clone)]
struct ConceptMap {
    resource: Value,
    groups: Vec<MapGroup>,
}

/// Everything loaded; immutable after construction, cheap to share behind an `Arc`.
#[derive(Debug, Default, Clone)]
pub struct Terminology {
    value_sets: HashMap<String, ValueSet>,
    code_systems: HashMap<String, CodeSystem>,
    concept_maps: HashMap<String, ConceptMap>,
    /// ConceptMap `id` and `name` -> url: FML maps sometimes name a map that way.
    concept_map_names: HashMap<String, String>,
    /// old URL -> current URL
    aliases: HashMap<String, String>,
    /// current URL -> old URL, for resources loaded under their old URL
    reverse_aliases: HashMap<String, String>,
}

/// `url|version` -> `url`
fn strip_version(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

const MAX_IMPORT_DEPTH: usize = 16;
const MAX_CONCEPT_DEPTH: usize = 64;

/// Kleene logic: the `decisive` answer (`true` for "or", `false` for "and") wins
/// over "cannot tell", which wins over the other answer.
fn kleene(
    answers: impl Iterator<Item = Result<bool, Error>>,
    decisive: bool,
) -> Result<bool, Error> {
    let mut unknown = None;
    for a in answers {
        match a {
            Ok(v) if v == decisive => return Ok(v),
            Ok(_) => {}
            Err(e) => {
                unknown.get_or_insert(e);
            }
        }
    }
    unknown.map_or(Ok(!decisive), Err)
}

fn any_of(answers: impl Iterator<Item = Result<bool, Error>>) -> Result<bool, Error> {
    kleene(answers, true)
}

fn all_of(answers: impl Iterator<Item = Result<bool, Error>>) -> Result<bool, Error> {
    kleene(answers, false)
}

impl Terminology {
    pub fn new() -> Self {
        Self::default()
    }

    /// With the small R4 core enumerations DDCC profiles bind `required`
    /// (`bundle-type`, `administrative-gender`, `event-status`, …).
    pub fn with_r4_core() -> Self {
        let mut t = Self::new();
        t.add_r4_core();
        t
    }

    /// Adds the R4 core enumerations (see [`Terminology::with_r4_core`]).
    pub fn add_r4_core(&mut self) {
        for (vs, cs, codes) in r4_core::R4_CORE {
            let system = format!("http://hl7.org/fhir/{cs}");
            let concepts: Vec<Value> = codes.iter().map(|c| json!({ "code": c })).collect();
            let code_system = json!({"resourceType": "CodeSystem", "url": system,
                "content": "complete", "concept": concepts});
            let value_set = json!({"resourceType": "ValueSet",
                "url": format!("http://hl7.org/fhir/ValueSet/{vs}"),
                "compose": {"include": [{"system": system, "concept": concepts}]}});
            for r in [code_system, value_set] {
                // Both have a url and a terminology resourceType, so `add` cannot fail.
                let _ = self.add(r);
            }
        }
    }

    /// Adds a ValueSet, CodeSystem or ConceptMap. A later resource with the same URL
    /// replaces the earlier one.
    pub fn add(&mut self, resource: Value) -> Result<(), Error> {
        let kind: &'static str = match resource.get("resourceType").and_then(Value::as_str) {
            Some("ValueSet") => "ValueSet",
            Some("CodeSystem") => "CodeSystem",
            Some("ConceptMap") => "ConceptMap",
            other => return Err(Error::NotTerminology(other.unwrap_or("").to_string())),
        };
        let url = str_of(&resource, "url").ok_or(Error::NoUrl { kind })?;
        match kind {
            "ValueSet" => {
                let vs = parse_value_set(url.clone(), resource);
                self.value_sets.insert(url, vs);
            }
            "CodeSystem" => {
                let mut cs = CodeSystem {
                    complete: resource.get("content").and_then(Value::as_str) == Some("complete"),
                    ..Default::default()
                };
                if let Some(concepts) = resource.get("concept").and_then(Value::as_array) {
                    collect_concepts(concepts, None, &mut cs.concepts, 0);
                }
                self.code_systems.insert(url, cs);
            }
            _ => {
                for key in ["id", "name"] {
                    if let Some(k) = str_of(&resource, key) {
                        self.concept_map_names
                            .entry(k)
                            .or_insert_with(|| url.clone());
                    }
                }
                let groups = parse_map_groups(&resource);
                self.concept_maps
                    .insert(url, ConceptMap { resource, groups });
            }
        }
        Ok(())
    }

    /// Loads the IG's alias table (`terminology-url-aliases.json`: entries with
    /// `url_2023_11` and `url_head`): each old URL resolves to the current one.
    pub fn add_aliases(&mut self, table: &Value) -> Result<(), Error> {
        if !table.is_array() {
            return Err(Error::Aliases("expected an array".into()));
        }
        self.add_alias_table(table, "url_2023_11", "url_head");
        Ok(())
    }

    /// Loads an alias table: a JSON array of objects with the old and the current URL
    /// under `old_key`/`new_key`, or a JSON object `{old: current}`. Returns how many
    /// aliases it held; anything else holds none.
    pub fn add_alias_table(&mut self, table: &Value, old_key: &str, new_key: &str) -> usize {
        let mut n = 0;
        if let Some(rows) = table.as_array() {
            for row in rows {
                let old = row.get(old_key).and_then(Value::as_str);
                let new = row.get(new_key).and_then(Value::as_str);
                if let (Some(old), Some(new)) = (old, new) {
                    self.add_alias(old, new);
                    n += 1;
                }
            }
        } else if let Some(obj) = table.as_object() {
            for (old, new) in obj {
                if let Some(new) = new.as_str() {
                    self.add_alias(old, new);
                    n += 1;
                }
            }
        }
        n
    }

    /// Adds one alias explicitly (e.g. the old `worldhealthorganization.github.io` base).
    pub fn add_alias(&mut self, old: &str, new: &str) {
        if old != new {
            self.aliases.insert(old.to_string(), new.to_string());
            self.reverse_aliases
                .insert(new.to_string(), old.to_string());
        }
    }

    /// `url` without its version, resolved through the alias table.
    fn resolve<'a>(&'a self, url: &'a str) -> &'a str {
        let url = strip_version(url);
        self.aliases.get(url).map(String::as_str).unwrap_or(url)
    }

    /// Are `a` and `b` the same canonical URL (up to version and aliases)?
    pub fn same_url(&self, a: &str, b: &str) -> bool {
        a == b || self.resolve(a) == self.resolve(b)
    }

    /// A resource by URL as given, by its current URL, or by its old one.
    fn lookup<'m, T>(&self, map: &'m HashMap<String, T>, url: &str) -> Option<&'m T> {
        let url = strip_version(url);
        map.get(url)
            .or_else(|| self.aliases.get(url).and_then(|u| map.get(u)))
            .or_else(|| self.reverse_aliases.get(url).and_then(|u| map.get(u)))
    }

    pub fn value_set(&self, url: &str) -> Option<&Value> {
        self.lookup(&self.value_sets, url).map(|vs| &vs.resource)
    }

    pub fn has_value_set(&self, url: &str) -> bool {
        self.lookup(&self.value_sets, url).is_some()
    }

    fn concept_map_ref(&self, reference: &str) -> Option<&ConceptMap> {
        self.lookup(&self.concept_maps, reference).or_else(|| {
            self.concept_map_names
                .get(strip_version(reference))
                .and_then(|u| self.concept_maps.get(u))
        })
    }

    /// A ConceptMap by canonical URL (or, failing that, by `id` or `name`).
    pub fn concept_map(&self, reference: &str) -> Option<&Value> {
        self.concept_map_ref(reference).map(|cm| &cm.resource)
    }

    pub fn has_code_system(&self, url: &str) -> bool {
        self.lookup(&self.code_systems, url).is_some()
    }

    /// Display of a code in a loaded CodeSystem.
    pub fn display(&self, system: &str, code: &str) -> Option<&str> {
        self.lookup(&self.code_systems, system)?
            .concepts
            .get(code)?
            .0
            .as_deref()
    }

    /// Is `system|code` in the value set? `Err(UnknownValueSet)` when the value set is
    /// not loaded, `Err(NotLocal)` when the answer depends on something that cannot be
    /// evaluated here. A `None` system matches a code in any included system (FHIRPath
    /// `memberOf` on a bare code).
    pub fn contains(
        &self,
        value_set: &str,
        system: Option<&str>,
        code: &str,
    ) -> Result<bool, Error> {
        self.contains_at(value_set, system, code, 0)
    }

    fn contains_at(
        &self,
        vs_url: &str,
        system: Option<&str>,
        code: &str,
        depth: usize,
    ) -> Result<bool, Error> {
        let vs = self
            .lookup(&self.value_sets, vs_url)
            .ok_or_else(|| Error::UnknownValueSet(strip_version(vs_url).to_string()))?;
        if depth > MAX_IMPORT_DEPTH {
            return Err(Error::NotLocal {
                url: vs.url.clone(),
                why: "value set imports nest too deeply (a cycle?)".into(),
            });
        }
        // A shipped expansion is authoritative for what it lists; it may be partial,
        // so a miss still asks the compose.
        if let Some(expansion) = &vs.expansion {
            if expansion
                .iter()
                .any(|(s, c, _)| c == code && self.expansion_system_matches(system, s.as_deref()))
            {
                return Ok(true);
            }
        }
        let Some(includes) = &vs.include else {
            return match vs.expansion {
                Some(_) => Ok(false),
                None => Err(Error::NotLocal {
                    url: vs.url.clone(),
                    why: "no compose and no expansion".into(),
                }),
            };
        };
        let included = any_of(
            includes
                .iter()
                .map(|c| self.component_has(vs, c, system, code, depth)),
        )?;
        if !included {
            return Ok(false);
        }
        let excluded = any_of(
            vs.exclude
                .iter()
                .map(|c| self.component_has(vs, c, system, code, depth)),
        )?;
        Ok(!excluded)
    }

    fn expansion_system_matches(&self, asked: Option<&str>, listed: Option<&str>) -> bool {
        match (asked, listed) {
            (None, _) => true,
            (Some(a), Some(l)) => self.same_url(a, l),
            (Some(_), None) => false,
        }
    }

    fn component_has(
        &self,
        vs: &ValueSet,
        comp: &Component,
        system: Option<&str>,
        code: &str,
        depth: usize,
    ) -> Result<bool, Error> {
        if let (Some(want), Some(have)) = (comp.system.as_deref(), system) {
            if !self.same_url(want, have) {
                return Ok(false);
            }
        }
        let not_local = |why: String| Error::NotLocal {
            url: vs.url.clone(),
            why,
        };
        let own = match (comp.system.as_deref(), &comp.concepts) {
            (_, Some(_)) => Ok(comp.concept_index.contains(code)),
            (Some(sys), None) if !comp.filters.is_empty() => {
                let cs = self.lookup(&self.code_systems, sys);
                all_of(
                    comp.filters
                        .iter()
                        .map(|f| filter_matches(f, sys, cs, code, &not_local)),
                )
            }
            (Some(sys), None) => match self.lookup(&self.code_systems, sys) {
                Some(cs) if cs.concepts.contains_key(code) => Ok(true),
                Some(cs) if cs.complete => Ok(false),
                Some(_) => Err(not_local(format!(
                    "{sys} is not complete here and does not list {code}"
                ))),
                None => Err(not_local(format!(
                    "includes all of {sys}, which is not loaded"
                ))),
            },
            // Only imports: they decide.
            (None, None) => Ok(!comp.value_sets.is_empty()),
        };
        // Imported value sets: the code must be in every one of them.
        all_of(
            std::iter::once(own).chain(comp.value_sets.iter().map(|imp| {
                self.contains_at(imp, system, code, depth + 1)
                    .map_err(|e| match e {
                        Error::UnknownValueSet(u) => {
                            not_local(format!("imports {u}, which is not loaded"))
                        }
                        other => other,
                    })
            })),
        )
    }

    /// The source elements of a ConceptMap (by canonical URL, `id` or `name`) whose
    /// code is `code` and whose group's source system is `system` (or names none), in
    /// map order. A `None` system matches every group.
    pub fn concept_map_entries(
        &self,
        concept_map: &str,
        system: Option<&str>,
        code: &str,
    ) -> Result<Vec<MapEntry<'_>>, Error> {
        let cm = self
            .concept_map_ref(concept_map)
            .ok_or_else(|| Error::UnknownConceptMap(concept_map.to_string()))?;
        let mut out = Vec::new();
        for g in &cm.groups {
            if let (Some(s), Some(gs)) = (system, g.source.as_deref()) {
                if !self.same_url(s, gs) {
                    continue;
                }
            }
            for (c, targets) in &g.elements {
                if c == code {
                    out.push(MapEntry {
                        source: g.source.as_deref(),
                        target_system: g.target.as_deref(),
                        targets,
                    });
                }
            }
        }
        Ok(out)
    }

    /// ConceptMap translation of `system|code` with the map at `map_url`. Returns the
    /// targets in map order; unmapped and non-matching groups give none.
    pub fn translate(
        &self,
        map_url: &str,
        system: &str,
        code: &str,
    ) -> Result<Vec<Translation>, Error> {
        let mut out = Vec::new();
        for entry in self.concept_map_entries(map_url, Some(system), code)? {
            for t in entry.targets {
                let equivalence = t.equivalence.as_deref().unwrap_or("equivalent");
                if matches!(equivalence, "unmatched" | "disjoint" | "not-related-to") {
                    continue;
                }
                if let Some(tc) = &t.code {
                    out.push(Translation {
                        target: Code {
                            system: entry.target_system.unwrap_or("").to_string(),
                            code: tc.clone(),
                            display: t.display.clone(),
                        },
                        equivalence: equivalence.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// `ValueSet/$expand` for value sets that can be enumerated locally (no filters,
    /// complete CodeSystems): the codes in compose order, without duplicates.
    pub fn expand(&self, url: &str) -> Result<Vec<Code>, Error> {
        self.expand_at(url, 0)
    }

    fn expand_at(&self, url: &str, depth: usize) -> Result<Vec<Code>, Error> {
        let vs = self
            .lookup(&self.value_sets, url)
            .ok_or_else(|| Error::UnknownValueSet(strip_version(url).to_string()))?;
        if depth > MAX_IMPORT_DEPTH {
            return Err(Error::NotLocal {
                url: vs.url.clone(),
                why: "value set imports nest too deeply (a cycle?)".into(),
            });
        }
        let Some(includes) = &vs.include else {
            let expansion = vs.expansion.as_ref().ok_or_else(|| Error::NotLocal {
                url: vs.url.clone(),
                why: "no compose and no expansion".into(),
            })?;
            return Ok(expansion
                .iter()
                .filter_map(|(s, c, d)| {
                    Some(Code {
                        system: s.clone()?,
                        code: c.clone(),
                        display: d.clone(),
                    })
                })
                .collect());
        };
        let mut out: Vec<Code> = Vec::new();
        let mut seen = HashSet::new();
        for inc in includes {
            for code in self.expand_component(vs, inc, depth)? {
                if seen.insert((code.system.clone(), code.code.clone())) {
                    out.push(code);
                }
            }
        }
        let mut excluded = HashSet::new();
        for exc in &vs.exclude {
            for code in self.expand_component(vs, exc, depth)? {
                excluded.insert((code.system, code.code));
            }
        }
        out.retain(|c| !excluded.contains(&(c.system.clone(), c.code.clone())));
        Ok(out)
    }

    fn expand_component(
        &self,
        vs: &ValueSet,
        comp: &Component,
        depth: usize,
    ) -> Result<Vec<Code>, Error> {
        let not_local = |why: String| Error::NotLocal {
            url: vs.url.clone(),
            why,
        };
        let system = comp.system.as_deref().map(|s| self.resolve(s).to_string());
        let mut codes: Vec<Code> = match (&system, &comp.concepts) {
            (Some(system), Some(concepts)) => concepts
                .iter()
                .map(|(code, display)| Code {
                    system: system.clone(),
                    code: code.clone(),
                    display: display
                        .clone()
                        .or_else(|| self.display(system, code).map(str::to_string)),
                })
                .collect(),
            (Some(system), None) => {
                if !comp.filters.is_empty() {
                    return Err(not_local("filtered includes cannot be enumerated".into()));
                }
                let cs = self.lookup(&self.code_systems, system).ok_or_else(|| {
                    not_local(format!("includes all of {system}, which is not loaded"))
                })?;
                if !cs.complete {
                    return Err(not_local(format!("{system} is not complete here")));
                }
                let mut v: Vec<Code> = cs
                    .concepts
                    .iter()
                    .map(|(code, (display, _))| Code {
                        system: system.clone(),
                        code: code.clone(),
                        display: display.clone(),
                    })
                    .collect();
                v.sort_by(|a, b| a.code.cmp(&b.code));
                v
            }
            (None, _) => Vec::new(),
        };
        for (i, imp) in comp.value_sets.iter().enumerate() {
            let imported = self.expand_at(imp, depth + 1)?;
            if system.is_none() && i == 0 {
                codes = imported;
            } else {
                let keep: HashSet<_> = imported.into_iter().map(|c| (c.system, c.code)).collect();
                codes.retain(|c| keep.contains(&(c.system.clone(), c.code.clone())));
            }
        }
        Ok(codes)
    }
}

fn filter_matches(
    filter: &Filter,
    system: &str,
    cs: Option<&CodeSystem>,
    code: &str,
    not_local: &dyn Fn(String) -> Error,
) -> Result<bool, Error> {
    match filter {
        Filter::Regex(Ok(re)) => {
            Ok(re.is_match(code)
                && cs.is_none_or(|cs| !cs.complete || cs.concepts.contains_key(code)))
        }
        Filter::Regex(Err(e)) => Err(not_local(format!("bad regex filter: {e}"))),
        Filter::IsA(value) | Filter::DescendentOf(value) => {
            let cs = cs.ok_or_else(|| not_local(format!("{system} is not loaded")))?;
            if matches!(filter, Filter::IsA(_)) && code == value {
                return Ok(cs.concepts.contains_key(code));
            }
            Ok(is_descendant(cs, code, value))
        }
        Filter::Equals(value) => Ok(code == value),
        Filter::Unsupported(what) => {
            Err(not_local(format!("filter {what} is not supported locally")))
        }
    }
}

fn parse_filter(f: &Value) -> Filter {
    let prop = f.get("property").and_then(Value::as_str).unwrap_or("");
    let op = f.get("op").and_then(Value::as_str).unwrap_or("");
    let value = f
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match (prop, op) {
        // FHIR regexes match the whole code.
        ("code", "regex") => {
            Filter::Regex(regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| e.to_string()))
        }
        ("concept", "is-a") => Filter::IsA(value),
        ("concept", "descendent-of") => Filter::DescendentOf(value),
        ("concept", "=") | ("code", "=") => Filter::Equals(value),
        _ => Filter::Unsupported(format!("{prop} {op}")),
    }
}

fn parse_component(v: &Value) -> Component {
    let concepts: Option<Vec<(String, Option<String>)>> =
        v.get("concept").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|c| Some((str_of(c, "code")?, str_of(c, "display"))))
                .collect()
        });
    Component {
        system: str_of(v, "system"),
        concept_index: concepts.iter().flatten().map(|(c, _)| c.clone()).collect(),
        concepts,
        value_sets: v
            .get("valueSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        filters: v
            .get("filter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(parse_filter)
            .collect(),
    }
}

fn parse_value_set(url: String, resource: Value) -> ValueSet {
    let compose = resource.get("compose");
    let components = |key: &str| {
        compose
            .and_then(|c| c.get(key))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(parse_component).collect::<Vec<_>>())
    };
    let include = components("include");
    let exclude = components("exclude").unwrap_or_default();
    let expansion = resource
        .pointer("/expansion/contains")
        .and_then(Value::as_array)
        .map(|c| {
            let mut out = Vec::new();
            collect_expansion(c, &mut out, 0);
            out
        });
    ValueSet {
        url,
        resource,
        include,
        exclude,
        expansion,
    }
}

fn parse_map_groups(cm: &Value) -> Vec<MapGroup> {
    let list = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    list(cm, "group")
        .iter()
        .map(|g| MapGroup {
            source: str_of(g, "source"),
            target: str_of(g, "target"),
            elements: list(g, "element")
                .iter()
                .filter_map(|e| {
                    let targets = list(e, "target")
                        .iter()
                        .map(|t| MapTarget {
                            code: str_of(t, "code"),
                            display: str_of(t, "display"),
                            equivalence: str_of(t, "equivalence")
                                .or_else(|| str_of(t, "relationship")),
                        })
                        .collect();
                    Some((str_of(e, "code")?, targets))
                })
                .collect(),
        })
        .collect()
}

fn collect_expansion(list: &[Value], out: &mut Vec<Listed>, depth: usize) {
    if depth > MAX_CONCEPT_DEPTH {
        return;
    }
    for c in list {
        if let Some(code) = str_of(c, "code") {
            out.push((str_of(c, "system"), code, str_of(c, "display")));
        }
        if let Some(sub) = c.get("contains").and_then(Value::as_array) {
            collect_expansion(sub, out, depth + 1);
        }
    }
}

fn collect_concepts(
    concepts: &[Value],
    parent: Option<&str>,
    out: &mut HashMap<String, (Option<String>, Vec<String>)>,
    depth: usize,
) {
    if depth > MAX_CONCEPT_DEPTH {
        return;
    }
    for c in concepts {
        let Some(code) = c.get("code").and_then(Value::as_str) else {
            continue;
        };
        let display = str_of(c, "display");
        let entry = out.entry(code.to_string()).or_insert((display, Vec::new()));
        if let Some(p) = parent {
            entry.1.push(p.to_string());
        }
        if let Some(children) = c.get("concept").and_then(Value::as_array) {
            collect_concepts(children, Some(code), out, depth + 1);
        }
    }
}

fn is_descendant(cs: &CodeSystem, code: &str, ancestor: &str) -> bool {
    let mut stack: Vec<&str> = vec![code];
    let mut seen = HashSet::new();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        if let Some((_, parents)) = cs.concepts.get(c) {
            for p in parents {
                if p == ancestor {
                    return true;
                }
                stack.push(p);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Terminology {
        let mut t = Terminology::new();
        t.add(json!({"resourceType": "CodeSystem", "url": "http://x/cs", "content": "complete",
            "concept": [{"code": "a", "display": "A", "concept": [{"code": "a1"}]}, {"code": "b"}]}))
            .unwrap();
        t.add(
            json!({"resourceType": "ValueSet", "url": "http://x/vs-enum",
            "compose": {"include": [{"system": "http://x/cs", "concept": [{"code": "a"}]}]}}),
        )
        .unwrap();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/vs-all",
            "compose": {"include": [{"system": "http://x/cs"}], "exclude": [{"system": "http://x/cs", "concept": [{"code": "b"}]}]}}))
            .unwrap();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/vs-regex",
            "compose": {"include": [{"system": "urn:iso:std:iso:3166", "filter": [{"property": "code", "op": "regex", "value": "[A-Z]{3}"}]}]}}))
            .unwrap();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/vs-isa",
            "compose": {"include": [{"system": "http://x/cs", "filter": [{"property": "concept", "op": "is-a", "value": "a"}]}]}}))
            .unwrap();
        t.add(json!({"resourceType": "ConceptMap", "url": "http://x/cm", "group": [{"source": "http://x/cs", "target": "http://y",
            "element": [{"code": "a", "target": [{"code": "Y1", "equivalence": "equivalent"}, {"code": "Y2", "equivalence": "unmatched"}]}]}]}))
            .unwrap();
        t.add_alias("http://old/vs", "http://x/vs-enum");
        t
    }

    #[test]
    fn enumerated_membership() {
        let t = sample();
        assert!(t
            .contains("http://x/vs-enum", Some("http://x/cs"), "a")
            .unwrap());
        assert!(!t
            .contains("http://x/vs-enum", Some("http://x/cs"), "b")
            .unwrap());
        assert!(!t
            .contains("http://x/vs-enum", Some("http://other"), "a")
            .unwrap());
        assert!(t.contains("http://x/vs-enum", None, "a").unwrap());
    }

    #[test]
    fn versions_and_aliases_resolve() {
        let t = sample();
        assert!(t
            .contains("http://x/vs-enum|1.0.0", Some("http://x/cs"), "a")
            .unwrap());
        assert!(t
            .contains("http://old/vs", Some("http://x/cs"), "a")
            .unwrap());
    }

    #[test]
    fn whole_system_with_exclude_and_hierarchy() {
        let t = sample();
        assert!(t
            .contains("http://x/vs-all", Some("http://x/cs"), "a1")
            .unwrap());
        assert!(!t
            .contains("http://x/vs-all", Some("http://x/cs"), "b")
            .unwrap());
        assert!(t
            .contains("http://x/vs-isa", Some("http://x/cs"), "a1")
            .unwrap());
        assert!(t
            .contains("http://x/vs-isa", Some("http://x/cs"), "a")
            .unwrap());
        assert!(!t
            .contains("http://x/vs-isa", Some("http://x/cs"), "b")
            .unwrap());
    }

    #[test]
    fn regex_filter_is_anchored() {
        let t = sample();
        assert!(t
            .contains("http://x/vs-regex", Some("urn:iso:std:iso:3166"), "CHE")
            .unwrap());
        assert!(!t
            .contains("http://x/vs-regex", Some("urn:iso:std:iso:3166"), "CH")
            .unwrap());
        assert!(!t
            .contains("http://x/vs-regex", Some("urn:iso:std:iso:3166"), "CHEE")
            .unwrap());
    }

    #[test]
    fn unknown_value_set_is_an_error_not_false() {
        let t = sample();
        assert!(matches!(
            t.contains("http://nope", None, "a"),
            Err(Error::UnknownValueSet(_))
        ));
    }

    #[test]
    fn translate_skips_unmatched() {
        let t = sample();
        let r = t.translate("http://x/cm", "http://x/cs", "a").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].target.code, "Y1");
        assert!(t
            .translate("http://x/cm", "http://x/cs", "b")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn expansion_enumerates_and_refuses_filters() {
        let t = sample();
        let codes: Vec<_> = t
            .expand("http://x/vs-all")
            .unwrap()
            .into_iter()
            .map(|c| c.code)
            .collect();
        assert_eq!(codes, vec!["a", "a1"]);
        assert!(matches!(
            t.expand("http://x/vs-regex"),
            Err(Error::NotLocal { .. })
        ));
    }

    #[test]
    fn import_cycles_do_not_overflow() {
        let mut t = Terminology::new();
        t.add(json!({"resourceType": "ValueSet", "url": "http://c/1", "compose": {"include": [{"valueSet": ["http://c/2"]}]}}))
            .unwrap();
        t.add(json!({"resourceType": "ValueSet", "url": "http://c/2", "compose": {"include": [{"valueSet": ["http://c/1"]}]}}))
            .unwrap();
        assert!(matches!(
            t.contains("http://c/1", None, "x"),
            Err(Error::NotLocal { .. })
        ));
    }

    #[test]
    fn three_valued_membership() {
        let mut t = Terminology::new();
        t.add(
            json!({"resourceType": "CodeSystem", "url": "http://x/frag", "content": "fragment",
            "concept": [{"code": "f"}]}),
        )
        .unwrap();
        // One include cannot be evaluated, the other answers: a member is a member.
        t.add(
            json!({"resourceType": "ValueSet", "url": "http://x/mixed", "compose": {"include": [
            {"system": "http://snomed.info/sct"},
            {"system": "http://x/e", "concept": [{"code": "e"}]}]}}),
        )
        .unwrap();
        assert!(t
            .contains("http://x/mixed", Some("http://x/e"), "e")
            .unwrap());
        assert!(!t
            .contains("http://x/mixed", Some("http://x/other"), "e")
            .unwrap());
        assert!(matches!(
            t.contains("http://x/mixed", None, "zz"),
            Err(Error::NotLocal { .. })
        ));
        // An incomplete CodeSystem confirms what it lists and refutes nothing.
        t.add(
            json!({"resourceType": "ValueSet", "url": "http://x/frag-vs",
            "compose": {"include": [{"system": "http://x/frag"}]}}),
        )
        .unwrap();
        assert!(t.contains("http://x/frag-vs", None, "f").unwrap());
        assert!(t.contains("http://x/frag-vs", None, "g").is_err());
        // An exclude that cannot be evaluated leaves an included code undecided.
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/excl", "compose": {
            "include": [{"system": "http://x/e", "concept": [{"code": "e"}]}],
            "exclude": [{"system": "http://x/e", "filter": [{"property": "parent", "op": "in", "value": "q"}]}]}}))
            .unwrap();
        assert!(t.contains("http://x/excl", None, "e").is_err());
        assert!(!t.contains("http://x/excl", None, "d").unwrap());
        // A missing import is "cannot tell" about the importing set, not "unknown".
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/imp",
            "compose": {"include": [{"valueSet": ["http://x/missing"]}]}}))
            .unwrap();
        assert!(matches!(
            t.contains("http://x/imp", None, "e"),
            Err(Error::NotLocal { .. })
        ));
    }

    #[test]
    fn shipped_expansions_answer() {
        let mut t = Terminology::new();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/exp", "expansion": {"contains": [
            {"system": "http://s", "code": "p", "contains": [{"system": "http://s", "code": "q"}]}]}}))
            .unwrap();
        assert!(t.contains("http://x/exp", Some("http://s"), "q").unwrap());
        assert!(!t.contains("http://x/exp", Some("http://s"), "r").unwrap());
        assert!(!t.contains("http://x/exp", Some("http://t"), "p").unwrap());
        let codes: Vec<_> = t
            .expand("http://x/exp")
            .unwrap()
            .into_iter()
            .map(|c| c.code)
            .collect();
        assert_eq!(codes, vec!["p", "q"]);
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/empty"}))
            .unwrap();
        assert!(matches!(
            t.contains("http://x/empty", None, "p"),
            Err(Error::NotLocal { .. })
        ));
    }

    #[test]
    fn aliases_work_both_ways() {
        let mut t = Terminology::new();
        // Loaded under the old URL, asked for by the new one.
        t.add(json!({"resourceType": "ValueSet", "url": "http://old/vs",
            "compose": {"include": [{"system": "http://old/cs", "concept": [{"code": "a"}]}]}}))
            .unwrap();
        let n = t.add_alias_table(
            &json!({"http://old/vs": "http://new/vs", "http://old/cs": "http://new/cs"}),
            "",
            "",
        );
        assert_eq!(n, 2);
        assert!(t
            .contains("http://new/vs", Some("http://new/cs"), "a")
            .unwrap());
        assert!(t
            .contains("http://old/vs|2", Some("http://old/cs"), "a")
            .unwrap());
        assert!(t.same_url("http://new/cs", "http://old/cs"));
        assert!(!t.same_url("http://new/cs", "http://other"));
    }

    #[test]
    fn unsupported_filters_and_bad_regexes_cannot_tell() {
        let mut t = sample();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/vs-prop",
            "compose": {"include": [{"system": "http://x/cs", "filter": [{"property": "status", "op": "=", "value": "x"}]}]}}))
            .unwrap();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/vs-badre",
            "compose": {"include": [{"system": "http://x/cs", "filter": [{"property": "code", "op": "regex", "value": "(["}]}]}}))
            .unwrap();
        assert!(matches!(
            t.contains("http://x/vs-prop", None, "a"),
            Err(Error::NotLocal { .. })
        ));
        assert!(matches!(
            t.contains("http://x/vs-badre", None, "a"),
            Err(Error::NotLocal { .. })
        ));
        // The system alone still refutes.
        assert!(!t
            .contains("http://x/vs-badre", Some("http://y"), "a")
            .unwrap());
    }

    #[test]
    fn r4_core_enumerations() {
        let t = Terminology::with_r4_core();
        let vs = "http://hl7.org/fhir/ValueSet/bundle-type|4.0.1";
        assert!(t
            .contains(vs, Some("http://hl7.org/fhir/bundle-type"), "document")
            .unwrap());
        assert!(!t
            .contains(vs, Some("http://hl7.org/fhir/bundle-type"), "letter")
            .unwrap());
        assert!(t
            .contains(
                "http://hl7.org/fhir/ValueSet/immunization-status",
                None,
                "not-done"
            )
            .unwrap());
        assert!(!t
            .contains(
                "http://hl7.org/fhir/ValueSet/immunization-status",
                None,
                "stopped"
            )
            .unwrap());
    }

    #[test]
    fn concept_map_entries_by_url_id_or_name() {
        let mut t = sample();
        t.add(json!({"resourceType": "ConceptMap", "url": "http://x/cm2", "id": "cm-2", "name": "CmTwo",
            "group": [{"target": "http://z", "element": [{"code": "a", "target": [{"code": "Z", "relationship": "equivalent"}]}]},
                      {"source": "http://x/cs", "target": "http://y", "element": [{"code": "a", "target": []}]}]}))
            .unwrap();
        for reference in ["http://x/cm2", "cm-2", "CmTwo"] {
            let e = t
                .concept_map_entries(reference, Some("http://x/cs"), "a")
                .unwrap();
            assert_eq!(e.len(), 2, "{reference}");
            assert_eq!(e[0].source, None);
            assert_eq!(e[0].targets[0].equivalence.as_deref(), Some("equivalent"));
            assert_eq!(e[1].target_system, Some("http://y"));
        }
        assert_eq!(
            t.concept_map_entries("cm-2", Some("http://q"), "a")
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            t.concept_map_entries("nope", None, "a"),
            Err(Error::UnknownConceptMap(_))
        ));
        let tr = t.translate("cm-2", "http://x/cs", "a").unwrap();
        assert_eq!(tr.len(), 1);
        assert_eq!(tr[0].target.system, "http://z");
    }
}
