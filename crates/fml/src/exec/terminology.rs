//! Terminology for `memberOf` (FHIRPath) and `translate` (FML), answered by the
//! `terminology` crate from ValueSets, CodeSystems and ConceptMaps the caller has
//! loaded. No server, no I/O.

use serde_json::Value;

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

/// Terminology resources held in memory: an adapter over the `terminology` crate,
/// which alone decides membership and finds ConceptMap entries. What stays here is
/// Matchbox's choice among a map's targets. Aliases for renamed canonical URLs (the
/// DDCC IG renamed its ValueSets, CodeSystems and ConceptMaps in 2024; the maps still
/// use the old names) work in both directions.
#[derive(Debug, Default, Clone)]
pub struct LocalTerminology {
    inner: terminology::Terminology,
}

impl From<terminology::Terminology> for LocalTerminology {
    /// Shares content already loaded elsewhere.
    fn from(inner: terminology::Terminology) -> Self {
        Self { inner }
    }
}

/// Equivalences (R4) and relationships (R5) Matchbox takes as a translation.
fn usable(equivalence: Option<&str>) -> bool {
    match equivalence {
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
    }
}

impl LocalTerminology {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a ValueSet, CodeSystem or ConceptMap (other resource types, and resources
    /// without a url, are ignored and reported as `false`).
    pub fn add_resource(&mut self, r: &Value) -> bool {
        matches!(
            r.get("resourceType").and_then(Value::as_str),
            Some("ValueSet" | "CodeSystem" | "ConceptMap")
        ) && self.inner.add(r.clone()).is_ok()
    }

    /// Treat `from` and `to` as the same canonical URL (both directions).
    pub fn add_alias(&mut self, from: &str, to: &str) {
        self.inner.add_alias(from, to);
    }

    /// Load an alias table: a JSON array of objects with an old and a new URL under
    /// `from_key`/`to_key` (for the DDCC IG's `terminology-url-aliases.json`:
    /// `url_2023_11` and `url_head`), or a JSON object `{old: new}`.
    pub fn add_alias_table(&mut self, table: &Value, from_key: &str, to_key: &str) -> usize {
        self.inner.add_alias_table(table, from_key, to_key)
    }
}

impl Terminology for LocalTerminology {
    /// `None` both for an unknown value set and for one whose answer cannot be
    /// evaluated locally: FHIRPath then fails the expression rather than guess.
    fn member_of(&self, system: Option<&str>, code: &str, value_set: &str) -> Option<bool> {
        self.inner.contains(value_set, system, code).ok()
    }

    /// Matchbox's rules: the first source element whose group source system matches
    /// (any group when the code has no system; a group without a source only when
    /// the code has no system); one usable target (equivalence absent or
    /// equal/equivalent/wider/subsumes/narrower/specializes/inexact) gives the result;
    /// `unmatched` or no element gives no result; several usable targets are an error.
    fn translate(
        &self,
        system: Option<&str>,
        code: &str,
        concept_map: &str,
    ) -> Result<Option<Coding>, String> {
        let entries = self
            .inner
            .concept_map_entries(concept_map, system, code)
            .map_err(|_| format!("ConceptMap {concept_map} is not loaded"))?;
        let Some(entry) = entries
            .into_iter()
            .find(|e| system.is_none() || e.source.is_some())
        else {
            return Ok(None);
        };
        if entry.targets.is_empty() {
            return Err(format!(
                "ConceptMap {concept_map} found no translation for {code}"
            ));
        }
        let mut result = None;
        let mut unmatched = false;
        for t in entry.targets {
            if usable(t.equivalence.as_deref()) {
                if result.is_some() {
                    return Err(format!(
                        "ConceptMap {concept_map} found multiple matches for {code}"
                    ));
                }
                result = Some(Coding {
                    system: entry.target_system.map(str::to_string),
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
            &json!({"resourceType": "CodeSystem", "url": "http://cs/new", "content": "complete",
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

    /// Asks every (system, code, value set) and prints each wrong answer.
    fn check_member_of(t: &LocalTerminology, cases: &[(Option<&str>, &str, &str, Option<bool>)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|&(system, code, vs, want)| {
                let got = t.member_of(system, code, vs);
                (got != want).then(|| format!("{system:?}|{code} in {vs}: {got:?}, want {want:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn member_of_enumerated_whole_system_and_alias() {
        check_member_of(
            &term(),
            &[
                (Some("http://s"), "x", "http://vs/enum", Some(true)),
                (Some("http://s"), "y", "http://vs/enum", Some(false)),
                (Some("http://other"), "x", "http://vs/enum", Some(false)),
                (None, "x", "http://vs/enum", Some(true)),
                (Some("http://cs/old"), "a1", "http://vs/old-all", Some(true)),
                (
                    Some("http://cs/new"),
                    "zz",
                    "http://vs/new-all",
                    Some(false),
                ),
                (None, "x", "http://vs/unknown", None),
            ],
        );
    }

    #[test]
    fn member_of_cannot_tell_is_none_not_a_guess() {
        let mut t = term();
        // A CodeSystem that is not loaded, or not complete, cannot refute a code.
        t.add_resource(&json!({"resourceType": "ValueSet", "url": "http://vs/ext",
            "compose": {"include": [{"system": "http://snomed.info/sct"}]}}));
        t.add_resource(
            &json!({"resourceType": "CodeSystem", "url": "http://cs/frag",
            "content": "fragment", "concept": [{"code": "f"}]}),
        );
        t.add_resource(&json!({"resourceType": "ValueSet", "url": "http://vs/frag",
            "compose": {"include": [{"system": "http://cs/frag"}]}}));
        check_member_of(
            &t,
            &[
                (Some("http://snomed.info/sct"), "1", "http://vs/ext", None),
                (Some("http://cs/frag"), "g", "http://vs/frag", None),
                (Some("http://cs/frag"), "f", "http://vs/frag", Some(true)),
                // The system alone still refutes.
                (Some("http://other"), "1", "http://vs/ext", Some(false)),
            ],
        );
    }

    #[test]
    fn shares_a_loaded_terminology() {
        let mut inner = terminology::Terminology::new();
        inner
            .add(json!({"resourceType": "ConceptMap", "url": "http://cm/2", "name": "CM2",
                "group": [{"source": "http://s", "target": "http://t",
                  "element": [{"code": "x", "target": [{"code": "X", "relationship": "equivalent"}]}]}]}))
            .expect("a ConceptMap");
        let t = LocalTerminology::from(inner);
        assert_eq!(
            t.translate(Some("http://s"), "x", "CM2")
                .expect("by name")
                .map(|c| c.code),
            Some("X".into())
        );
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
