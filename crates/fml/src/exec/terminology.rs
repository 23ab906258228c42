//! Terminology for `memberOf` (FHIRPath) and `translate` (FML), answered from
//! ValueSets, CodeSystems and ConceptMaps the caller has loaded. No server, no I/O.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A code with its system, as `translate` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coding {
    pub system: Option<String>,
    pub code: String,
    pub display: Option<String>,
}

/// What the executor asks of terminology.
pub trait Terminology: Send + Sync {
    /// Is `code` (in `system`, when known) a member of the value set `value_set`?
    /// `None` = the value set is unknown.
    fn member_of(&self, system: Option<&str>, code: &str, value_set: &str) -> Option<bool>;

    /// Translate a code with the ConceptMap `concept_map` (canonical URL, id or
    /// name). `Ok(None)` = the map has no entry for the code; `Err` = unknown map
    /// or an ambiguous/unusable translation (Matchbox fails the transform then).
    fn translate(
        &self,
        system: Option<&str>,
        code: &str,
        concept_map: &str,
    ) -> Result<Option<Coding>, String>;
}

/// Terminology that knows nothing: every `memberOf` is unknown, every `translate` fails.
pub struct NoTerminology;

impl Terminology for NoTerminology {
    fn member_of(&self, _: Option<&str>, _: &str, _: &str) -> Option<bool> {
        None
    }
    fn translate(&self, _: Option<&str>, _: &str, map: &str) -> Result<Option<Coding>, String> {
        Err(format!("no ConceptMap {map} loaded"))
    }
}

#[derive(Debug, Default, Clone)]
struct Include {
    system: Option<String>,
    /// Empty = the whole code system.
    codes: HashSet<String>,
    value_sets: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct ValueSetDef {
    include: Vec<Include>,
    exclude: Vec<Include>,
    expansion: Vec<(Option<String>, String)>,
}

#[derive(Debug, Clone)]
struct MapTarget {
    code: Option<String>,
    display: Option<String>,
    equivalence: Option<String>,
}

#[derive(Debug, Clone)]
struct MapGroup {
    source: Option<String>,
    target: Option<String>,
    elements: Vec<(String, Vec<MapTarget>)>,
}

/// Terminology resources held in memory, with an alias table for renamed canonical
/// URLs (the DDCC IG renamed its ValueSets, CodeSystems and ConceptMaps in 2024;
/// the maps still use the old names).
#[derive(Debug, Default, Clone)]
pub struct LocalTerminology {
    value_sets: HashMap<String, ValueSetDef>,
    code_systems: HashMap<String, HashSet<String>>,
    concept_maps: HashMap<String, std::sync::Arc<Vec<MapGroup>>>,
    aliases: HashMap<String, String>,
}

fn strip_version(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

fn collect_concepts(concepts: &Value, out: &mut HashSet<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    if let Some(arr) = concepts.as_array() {
        for c in arr {
            if let Some(code) = c.get("code").and_then(Value::as_str) {
                out.insert(code.to_string());
            }
            if let Some(nested) = c.get("concept") {
                collect_concepts(nested, out, depth + 1);
            }
        }
    }
}

fn parse_includes(v: Option<&Value>) -> Vec<Include> {
    let mut out = Vec::new();
    for inc in v.and_then(Value::as_array).into_iter().flatten() {
        let mut i = Include {
            system: inc
                .get("system")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Include::default()
        };
        for c in inc
            .get("concept")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(code) = c.get("code").and_then(Value::as_str) {
                i.codes.insert(code.to_string());
            }
        }
        for vs in inc
            .get("valueSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(u) = vs.as_str() {
                i.value_sets.push(u.to_string());
            }
        }
        out.push(i);
    }
    out
}

impl LocalTerminology {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a ValueSet, CodeSystem or ConceptMap (other resource types are ignored
    /// and reported as `false`).
    pub fn add_resource(&mut self, r: &Value) -> bool {
        let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
        let url = r.get("url").and_then(Value::as_str).map(str::to_string);
        match rt {
            "ValueSet" => {
                let Some(url) = url else { return false };
                let compose = r.get("compose");
                let mut def = ValueSetDef {
                    include: parse_includes(compose.and_then(|c| c.get("include"))),
                    exclude: parse_includes(compose.and_then(|c| c.get("exclude"))),
                    expansion: Vec::new(),
                };
                for c in r
                    .get("expansion")
                    .and_then(|e| e.get("contains"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(code) = c.get("code").and_then(Value::as_str) {
                        let sys = c.get("system").and_then(Value::as_str).map(str::to_string);
                        def.expansion.push((sys, code.to_string()));
                    }
                }
                self.value_sets.insert(url, def);
                true
            }
            "CodeSystem" => {
                let Some(url) = url else { return false };
                let mut codes = HashSet::new();
                if let Some(c) = r.get("concept") {
                    collect_concepts(c, &mut codes, 0);
                }
                self.code_systems.insert(url, codes);
                true
            }
            "ConceptMap" => {
                let mut groups = Vec::new();
                for g in r
                    .get("group")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let mut elements = Vec::new();
                    for e in g
                        .get("element")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let Some(code) = e.get("code").and_then(Value::as_str) else {
                            continue;
                        };
                        let targets = e
                            .get("target")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(|t| MapTarget {
                                code: t.get("code").and_then(Value::as_str).map(str::to_string),
                                display: t
                                    .get("display")
                                    .and_then(Value::as_str)
                                    .map(str::to_string),
                                equivalence: t
                                    .get("equivalence")
                                    .or_else(|| t.get("relationship"))
                                    .and_then(Value::as_str)
                                    .map(str::to_string),
                            })
                            .collect();
                        elements.push((code.to_string(), targets));
                    }
                    groups.push(MapGroup {
                        source: g.get("source").and_then(Value::as_str).map(str::to_string),
                        target: g.get("target").and_then(Value::as_str).map(str::to_string),
                        elements,
                    });
                }
                let groups = std::sync::Arc::new(groups);
                // Maps refer to ConceptMaps by canonical URL, and sometimes by id or name.
                for key in ["url", "id", "name"] {
                    if let Some(k) = r.get(key).and_then(Value::as_str) {
                        self.concept_maps
                            .entry(k.to_string())
                            .or_insert_with(|| groups.clone());
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Treat `from` and `to` as the same canonical URL (both directions).
    pub fn add_alias(&mut self, from: &str, to: &str) {
        if from != to {
            self.aliases.insert(from.to_string(), to.to_string());
            self.aliases.insert(to.to_string(), from.to_string());
        }
    }

    /// Load an alias table: a JSON array of objects with an old and a new URL under
    /// `from_key`/`to_key` (for the DDCC IG's `terminology-url-aliases.json`:
    /// `url_2023_11` and `url_head`), or a JSON object `{old: new}`.
    pub fn add_alias_table(&mut self, table: &Value, from_key: &str, to_key: &str) -> usize {
        let mut n = 0;
        if let Some(arr) = table.as_array() {
            for e in arr {
                if let (Some(f), Some(t)) = (
                    e.get(from_key).and_then(Value::as_str),
                    e.get(to_key).and_then(Value::as_str),
                ) {
                    self.add_alias(f, t);
                    n += 1;
                }
            }
        } else if let Some(obj) = table.as_object() {
            for (f, t) in obj {
                if let Some(t) = t.as_str() {
                    self.add_alias(f, t);
                    n += 1;
                }
            }
        }
        n
    }

    fn same_url(&self, a: &str, b: &str) -> bool {
        a == b || self.aliases.get(a).is_some_and(|x| x == b)
    }

    fn value_set(&self, url: &str) -> Option<&ValueSetDef> {
        let url = strip_version(url);
        self.value_sets
            .get(url)
            .or_else(|| self.aliases.get(url).and_then(|u| self.value_sets.get(u)))
    }

    fn code_system(&self, url: &str) -> Option<&HashSet<String>> {
        self.code_systems
            .get(url)
            .or_else(|| self.aliases.get(url).and_then(|u| self.code_systems.get(u)))
    }

    fn include_matches(
        &self,
        inc: &Include,
        system: Option<&str>,
        code: &str,
        depth: usize,
    ) -> bool {
        if let (Some(s), Some(is)) = (system, inc.system.as_deref()) {
            if !self.same_url(s, is) {
                return false;
            }
        }
        let code_ok = match &inc.system {
            Some(sys) if inc.codes.is_empty() => {
                // The whole code system; when we do not have it, any code of it counts.
                self.code_system(sys)
                    .is_none_or(|codes| codes.contains(code))
            }
            Some(_) => inc.codes.contains(code),
            None => inc.codes.is_empty() || inc.codes.contains(code),
        };
        if !code_ok {
            return false;
        }
        inc.value_sets
            .iter()
            .all(|vs| self.member_of_depth(system, code, vs, depth + 1) == Some(true))
    }

    fn member_of_depth(
        &self,
        system: Option<&str>,
        code: &str,
        value_set: &str,
        depth: usize,
    ) -> Option<bool> {
        if depth > 16 {
            return Some(false);
        }
        let vs = self.value_set(value_set)?;
        if vs.include.is_empty() && !vs.expansion.is_empty() {
            return Some(vs.expansion.iter().any(|(s, c)| {
                c == code
                    && match (system, s) {
                        (Some(a), Some(b)) => self.same_url(a, b),
                        _ => true,
                    }
            }));
        }
        let included = vs
            .include
            .iter()
            .any(|i| self.include_matches(i, system, code, depth));
        let excluded = vs
            .exclude
            .iter()
            .any(|i| self.include_matches(i, system, code, depth));
        Some(included && !excluded)
    }
}

impl Terminology for LocalTerminology {
    fn member_of(&self, system: Option<&str>, code: &str, value_set: &str) -> Option<bool> {
        self.member_of_depth(system, code, value_set, 0)
    }

    /// Matchbox's rules: the first source element whose group source system matches
    /// (any group when the code has no system); one usable target (equivalence
    /// absent or equal/equivalent/wider/subsumes/narrower/specializes/inexact)
    /// gives the result; `unmatched` or no element gives no result; several usable
    /// targets are an error.
    fn translate(
        &self,
        system: Option<&str>,
        code: &str,
        concept_map: &str,
    ) -> Result<Option<Coding>, String> {
        let key = strip_version(concept_map);
        let groups = self
            .concept_maps
            .get(key)
            .or_else(|| self.aliases.get(key).and_then(|u| self.concept_maps.get(u)))
            .ok_or_else(|| format!("ConceptMap {concept_map} is not loaded"))?;
        let hit = groups.iter().find_map(|g| {
            let sys_ok = match (system, g.source.as_deref()) {
                (None, _) => true,
                (Some(s), Some(gs)) => self.same_url(s, gs),
                (Some(_), None) => false,
            };
            if !sys_ok {
                return None;
            }
            g.elements
                .iter()
                .find(|(c, _)| c == code)
                .map(|(_, targets)| (g, targets))
        });
        let Some((group, targets)) = hit else {
            return Ok(None);
        };
        if targets.is_empty() {
            return Err(format!(
                "ConceptMap {concept_map} found no translation for {code}"
            ));
        }
        let mut result = None;
        let mut unmatched = false;
        for t in targets {
            let usable = match t.equivalence.as_deref() {
                None => true,
                Some(e) => matches!(
                    e,
                    "equal"
                        | "equivalent"
                        | "wider"
                        | "subsumes"
                        | "narrower"
                        | "specializes"
                        | "inexact"
                        | "related-to"
                        | "source-is-narrower-than-target"
                        | "source-is-broader-than-target"
                ),
            };
            if usable {
                if result.is_some() {
                    return Err(format!(
                        "ConceptMap {concept_map} found multiple matches for {code}"
                    ));
                }
                result = Some(Coding {
                    system: group.target.clone(),
                    code: t.code.clone().unwrap_or_default(),
                    display: t.display.clone(),
                });
            } else if t.equivalence.as_deref() == Some("unmatched") {
                unmatched = true;
            }
        }
        match result {
            Some(c) => Ok(Some(c)),
            None if unmatched => Ok(None),
            None => Err(format!(
                "ConceptMap {concept_map} found no usable translation for {code}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn term() -> LocalTerminology {
        let mut t = LocalTerminology::new();
        t.add_resource(
            &json!({"resourceType": "CodeSystem", "url": "http://cs/new",
            "concept": [{"code": "a", "concept": [{"code": "a1"}]}, {"code": "b"}]}),
        );
        t.add_resource(&json!({"resourceType": "ValueSet", "url": "http://vs/enum",
            "compose": {"include": [{"system": "http://s", "concept": [{"code": "x"}]}]}}));
        t.add_resource(
            &json!({"resourceType": "ValueSet", "url": "http://vs/new-all",
            "compose": {"include": [{"system": "http://cs/new"}]}}),
        );
        t.add_resource(
            &json!({"resourceType": "ConceptMap", "url": "http://cm/1", "id": "cm-1",
            "group": [{"source": "http://s", "target": "http://t",
              "element": [{"code": "x", "target": [{"code": "X", "equivalence": "equivalent"}]},
                          {"code": "u", "target": [{"equivalence": "unmatched"}]},
                          {"code": "m", "target": [{"code": "M1"}, {"code": "M2"}]}]}]}),
        );
        t.add_alias("http://vs/old-all", "http://vs/new-all");
        t.add_alias("http://cs/old", "http://cs/new");
        t
    }

    #[test]
    fn member_of_enumerated_whole_system_and_alias() {
        let t = term();
        assert_eq!(
            t.member_of(Some("http://s"), "x", "http://vs/enum"),
            Some(true)
        );
        assert_eq!(
            t.member_of(Some("http://s"), "y", "http://vs/enum"),
            Some(false)
        );
        assert_eq!(
            t.member_of(Some("http://other"), "x", "http://vs/enum"),
            Some(false)
        );
        assert_eq!(t.member_of(None, "x", "http://vs/enum"), Some(true));
        assert_eq!(
            t.member_of(Some("http://cs/old"), "a1", "http://vs/old-all"),
            Some(true)
        );
        assert_eq!(
            t.member_of(Some("http://cs/new"), "zz", "http://vs/new-all"),
            Some(false)
        );
        assert_eq!(t.member_of(None, "x", "http://vs/unknown"), None);
    }

    #[test]
    fn translate_rules() {
        let t = term();
        let c = t
            .translate(Some("http://s"), "x", "http://cm/1")
            .expect("ok");
        assert_eq!(
            c,
            Some(Coding {
                system: Some("http://t".into()),
                code: "X".into(),
                display: None
            })
        );
        assert_eq!(
            t.translate(None, "x", "cm-1")
                .expect("by id")
                .map(|c| c.code),
            Some("X".into())
        );
        assert_eq!(
            t.translate(Some("http://s"), "nope", "http://cm/1"),
            Ok(None)
        );
        assert_eq!(t.translate(Some("http://s"), "u", "http://cm/1"), Ok(None));
        assert!(t.translate(Some("http://s"), "m", "http://cm/1").is_err());
        assert!(t
            .translate(Some("http://s"), "x", "http://cm/unknown")
            .is_err());
        assert_eq!(
            t.translate(Some("http://elsewhere"), "x", "http://cm/1"),
            Ok(None)
        );
    }
}
