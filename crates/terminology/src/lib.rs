//! Local FHIR terminology: everything the DDCC flows need answered without a
//! terminology server.
//!
//! The IG's value sets enumerate codes or include whole IG CodeSystems; the two R4
//! value sets the Questionnaire binds (`administrative-gender`, `iso3166-1-3`) use an
//! enumerated CodeSystem and a `regex` filter. That is the scope: enumerations,
//! whole-system includes, `valueSet` imports, excludes, and the filters `regex`, `=`
//! and `is-a`/`descendent-of` over local CodeSystem hierarchies. A value set that
//! needs anything else answers "unknown", never a guess.
//!
//! Canonical URLs are matched without their `|version`, and through an alias table
//! (the IG renamed its terminology URLs in 2024; maps and old requests still use the
//! old ones).

use serde_json::Value;
use std::collections::{HashMap, HashSet};

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

#[derive(Debug, Default, Clone)]
struct CodeSystem {
    /// code -> (display, parent codes)
    concepts: HashMap<String, (Option<String>, Vec<String>)>,
    complete: bool,
}

/// Everything loaded; immutable after construction, cheap to share behind an `Arc`.
#[derive(Debug, Default, Clone)]
pub struct Terminology {
    value_sets: HashMap<String, Value>,
    code_systems: HashMap<String, CodeSystem>,
    concept_maps: HashMap<String, Value>,
    aliases: HashMap<String, String>,
}

/// `url|version` -> `url`
fn strip_version(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

const MAX_IMPORT_DEPTH: usize = 16;

impl Terminology {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a ValueSet, CodeSystem or ConceptMap. A later resource with the same URL
    /// replaces the earlier one.
    pub fn add(&mut self, resource: Value) -> Result<(), Error> {
        let kind = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind_static: &'static str = match kind.as_str() {
            "ValueSet" => "ValueSet",
            "CodeSystem" => "CodeSystem",
            "ConceptMap" => "ConceptMap",
            other => return Err(Error::NotTerminology(other.to_string())),
        };
        let url = resource
            .get("url")
            .and_then(Value::as_str)
            .ok_or(Error::NoUrl { kind: kind_static })?
            .to_string();
        match kind_static {
            "ValueSet" => {
                self.value_sets.insert(url, resource);
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
                self.concept_maps.insert(url, resource);
            }
        }
        Ok(())
    }

    /// Loads the IG's alias table (`terminology-url-aliases.json`: entries with
    /// `url_2023_11` and `url_head`): each old URL resolves to the current one.
    pub fn add_aliases(&mut self, table: &Value) -> Result<(), Error> {
        let rows = table
            .as_array()
            .ok_or_else(|| Error::Aliases("expected an array".into()))?;
        for row in rows {
            let old = row.get("url_2023_11").and_then(Value::as_str);
            let new = row.get("url_head").and_then(Value::as_str);
            if let (Some(old), Some(new)) = (old, new) {
                if old != new {
                    self.aliases.insert(old.to_string(), new.to_string());
                }
            }
        }
        Ok(())
    }

    /// Adds one alias explicitly (e.g. the old `worldhealthorganization.github.io` base).
    pub fn add_alias(&mut self, old: &str, new: &str) {
        self.aliases.insert(old.to_string(), new.to_string());
    }

    fn resolve<'a>(&'a self, url: &'a str) -> &'a str {
        let url = strip_version(url);
        self.aliases.get(url).map(String::as_str).unwrap_or(url)
    }

    pub fn value_set(&self, url: &str) -> Option<&Value> {
        self.value_sets.get(self.resolve(url))
    }

    pub fn concept_map(&self, url: &str) -> Option<&Value> {
        self.concept_maps.get(self.resolve(url))
    }

    pub fn has_code_system(&self, url: &str) -> bool {
        self.code_systems.contains_key(self.resolve(url))
    }

    /// Display of a code in a loaded CodeSystem.
    pub fn display(&self, system: &str, code: &str) -> Option<&str> {
        self.code_systems
            .get(self.resolve(system))?
            .concepts
            .get(code)?
            .0
            .as_deref()
    }

    /// Is `system|code` in the value set? `Err(UnknownValueSet)` when the value set is
    /// not loaded, `Err(NotLocal)` when it cannot be evaluated here. A `None` system
    /// matches a code in any included system (FHIRPath `memberOf` on a bare code).
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
        let url = self.resolve(vs_url);
        if depth > MAX_IMPORT_DEPTH {
            return Err(Error::NotLocal {
                url: url.to_string(),
                why: "value set imports nest too deeply (a cycle?)".into(),
            });
        }
        let vs = self
            .value_sets
            .get(url)
            .ok_or_else(|| Error::UnknownValueSet(url.to_string()))?;
        let compose = vs.get("compose");
        let includes = compose
            .and_then(|c| c.get("include"))
            .and_then(Value::as_array);
        let excludes = compose
            .and_then(|c| c.get("exclude"))
            .and_then(Value::as_array);
        let Some(includes) = includes else {
            // A value set with only an expansion still answers from it.
            return self.in_expansion(vs, url, system, code);
        };
        let mut found = false;
        for inc in includes {
            if self.component_matches(url, inc, system, code, depth)? {
                found = true;
                break;
            }
        }
        if found {
            for exc in excludes.into_iter().flatten() {
                if self.component_matches(url, exc, system, code, depth)? {
                    return Ok(false);
                }
            }
        }
        Ok(found)
    }

    fn in_expansion(
        &self,
        vs: &Value,
        url: &str,
        system: Option<&str>,
        code: &str,
    ) -> Result<bool, Error> {
        let contains = vs
            .get("expansion")
            .and_then(|e| e.get("contains"))
            .and_then(Value::as_array)
            .ok_or_else(|| Error::NotLocal {
                url: url.to_string(),
                why: "no compose and no expansion".into(),
            })?;
        Ok(contains.iter().any(|c| {
            c.get("code").and_then(Value::as_str) == Some(code)
                && system.is_none_or(|s| {
                    c.get("system")
                        .and_then(Value::as_str)
                        .map(|x| self.resolve(x))
                        == Some(self.resolve(s))
                })
        }))
    }

    fn component_matches(
        &self,
        vs_url: &str,
        comp: &Value,
        system: Option<&str>,
        code: &str,
        depth: usize,
    ) -> Result<bool, Error> {
        // Imported value sets: the code must be in every one of them.
        if let Some(imports) = comp.get("valueSet").and_then(Value::as_array) {
            for imp in imports.iter().filter_map(Value::as_str) {
                if !self.contains_at(imp, system, code, depth + 1)? {
                    return Ok(false);
                }
            }
            if comp.get("system").is_none() {
                return Ok(!imports.is_empty());
            }
        }
        let Some(comp_system) = comp.get("system").and_then(Value::as_str) else {
            return Ok(false);
        };
        let comp_system = self.resolve(comp_system);
        if let Some(s) = system {
            if self.resolve(s) != comp_system {
                return Ok(false);
            }
        }
        if let Some(concepts) = comp.get("concept").and_then(Value::as_array) {
            return Ok(concepts
                .iter()
                .any(|c| c.get("code").and_then(Value::as_str) == Some(code)));
        }
        let filters = comp.get("filter").and_then(Value::as_array);
        let cs = self.code_systems.get(comp_system);
        match filters {
            None => match cs {
                Some(cs) => Ok(cs.concepts.contains_key(code)),
                None => Err(Error::NotLocal {
                    url: vs_url.to_string(),
                    why: format!("includes all of {comp_system}, which is not loaded"),
                }),
            },
            Some(filters) => {
                for f in filters {
                    if !self.filter_matches(vs_url, comp_system, cs, f, code)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    fn filter_matches(
        &self,
        vs_url: &str,
        system: &str,
        cs: Option<&CodeSystem>,
        filter: &Value,
        code: &str,
    ) -> Result<bool, Error> {
        let prop = filter.get("property").and_then(Value::as_str).unwrap_or("");
        let op = filter.get("op").and_then(Value::as_str).unwrap_or("");
        let value = filter.get("value").and_then(Value::as_str).unwrap_or("");
        let not_local = |why: String| Error::NotLocal {
            url: vs_url.to_string(),
            why,
        };
        match (prop, op) {
            ("code", "regex") => {
                // FHIR regexes match the whole code.
                let re = regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| not_local(format!("bad regex filter: {e}")))?;
                Ok(re.is_match(code)
                    && cs.is_none_or(|cs| !cs.complete || cs.concepts.contains_key(code)))
            }
            ("concept", "is-a") | ("concept", "descendent-of") => {
                let cs = cs.ok_or_else(|| not_local(format!("{system} is not loaded")))?;
                if op == "is-a" && code == value {
                    return Ok(cs.concepts.contains_key(code));
                }
                Ok(is_descendant(cs, code, value))
            }
            ("concept", "=") | ("code", "=") => Ok(code == value),
            _ => Err(not_local(format!(
                "filter {prop} {op} is not supported locally"
            ))),
        }
    }

    /// ConceptMap translation of `system|code` with the map at `map_url`. Returns the
    /// targets in map order; unmapped and non-matching groups give none.
    pub fn translate(
        &self,
        map_url: &str,
        system: &str,
        code: &str,
    ) -> Result<Vec<Translation>, Error> {
        let cm = self
            .concept_map(map_url)
            .ok_or_else(|| Error::UnknownValueSet(map_url.to_string()))?;
        let system = self.resolve(system);
        let mut out = Vec::new();
        for group in cm
            .get("group")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let src = group
                .get("source")
                .and_then(Value::as_str)
                .map(|s| self.resolve(s));
            if src.is_some_and(|s| s != system) {
                continue;
            }
            let target_system = group.get("target").and_then(Value::as_str).unwrap_or("");
            for el in group
                .get("element")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if el.get("code").and_then(Value::as_str) != Some(code) {
                    continue;
                }
                for t in el
                    .get("target")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let equivalence = t
                        .get("equivalence")
                        .and_then(Value::as_str)
                        .unwrap_or("equivalent")
                        .to_string();
                    if equivalence == "unmatched" || equivalence == "disjoint" {
                        continue;
                    }
                    if let Some(tc) = t.get("code").and_then(Value::as_str) {
                        out.push(Translation {
                            target: Code {
                                system: target_system.to_string(),
                                code: tc.to_string(),
                                display: t
                                    .get("display")
                                    .and_then(Value::as_str)
                                    .map(str::to_string),
                            },
                            equivalence,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// `ValueSet/$expand` for value sets that can be enumerated locally (no regex
    /// filters): the codes in compose order, without duplicates.
    pub fn expand(&self, url: &str) -> Result<Vec<Code>, Error> {
        self.expand_at(url, 0)
    }

    fn expand_at(&self, url: &str, depth: usize) -> Result<Vec<Code>, Error> {
        let url = self.resolve(url);
        if depth > MAX_IMPORT_DEPTH {
            return Err(Error::NotLocal {
                url: url.to_string(),
                why: "value set imports nest too deeply (a cycle?)".into(),
            });
        }
        let vs = self
            .value_sets
            .get(url)
            .ok_or_else(|| Error::UnknownValueSet(url.to_string()))?;
        let compose = vs.get("compose");
        let mut out: Vec<Code> = Vec::new();
        let mut seen = HashSet::new();
        for inc in compose
            .and_then(|c| c.get("include"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for code in self.expand_component(url, inc, depth)? {
                if seen.insert((code.system.clone(), code.code.clone())) {
                    out.push(code);
                }
            }
        }
        let mut excluded = HashSet::new();
        for exc in compose
            .and_then(|c| c.get("exclude"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for code in self.expand_component(url, exc, depth)? {
                excluded.insert((code.system, code.code));
            }
        }
        out.retain(|c| !excluded.contains(&(c.system.clone(), c.code.clone())));
        Ok(out)
    }

    fn expand_component(
        &self,
        vs_url: &str,
        comp: &Value,
        depth: usize,
    ) -> Result<Vec<Code>, Error> {
        let system = comp
            .get("system")
            .and_then(Value::as_str)
            .map(|s| self.resolve(s).to_string());
        let mut codes: Vec<Code> = match (&system, comp.get("concept").and_then(Value::as_array)) {
            (Some(system), Some(concepts)) => concepts
                .iter()
                .filter_map(|c| {
                    let code = c.get("code").and_then(Value::as_str)?;
                    Some(Code {
                        system: system.clone(),
                        code: code.to_string(),
                        display: c
                            .get("display")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| self.display(system, code).map(str::to_string)),
                    })
                })
                .collect(),
            (Some(system), None) => {
                if comp.get("filter").is_some() {
                    return Err(Error::NotLocal {
                        url: vs_url.to_string(),
                        why: "filtered includes cannot be enumerated".into(),
                    });
                }
                let cs = self
                    .code_systems
                    .get(system.as_str())
                    .ok_or_else(|| Error::NotLocal {
                        url: vs_url.to_string(),
                        why: format!("includes all of {system}, which is not loaded"),
                    })?;
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
        if let Some(imports) = comp.get("valueSet").and_then(Value::as_array) {
            for (i, imp) in imports.iter().filter_map(Value::as_str).enumerate() {
                let imported = self.expand_at(imp, depth + 1)?;
                if system.is_none() && i == 0 {
                    codes = imported;
                } else {
                    let keep: HashSet<_> =
                        imported.into_iter().map(|c| (c.system, c.code)).collect();
                    codes.retain(|c| keep.contains(&(c.system.clone(), c.code.clone())));
                }
            }
        }
        Ok(codes)
    }
}

fn collect_concepts(
    concepts: &[Value],
    parent: Option<&str>,
    out: &mut HashMap<String, (Option<String>, Vec<String>)>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    for c in concepts {
        let Some(code) = c.get("code").and_then(Value::as_str) else {
            continue;
        };
        let display = c.get("display").and_then(Value::as_str).map(str::to_string);
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
}
