//! ValueSet membership over loaded ValueSets and CodeSystems.

use crate::profile::{read_json_dir, ProfileError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Member,
    NotMember,
    /// The value set is not loaded.
    UnknownValueSet,
    /// Loaded, but its content cannot be enumerated here (filters, external code
    /// systems): the code is neither confirmed nor refuted.
    CannotTell,
}

#[derive(Debug, Clone)]
struct Include {
    system: Option<String>,
    concepts: Option<HashSet<String>>,
    value_sets: Vec<String>,
    filtered: bool,
}

#[derive(Debug, Clone)]
struct ValueSetDef {
    includes: Vec<Include>,
    excludes: Vec<Include>,
    expansion: Option<HashSet<(String, String)>>,
}

#[derive(Debug, Clone)]
struct CodeSystemDef {
    codes: HashSet<String>,
    complete: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Terminology {
    value_sets: HashMap<String, ValueSetDef>,
    code_systems: HashMap<String, CodeSystemDef>,
}

/// R4 core ValueSets that DDCC profiles bind `required`; the R4 core package is
/// not shipped, and these short enumerations are fixed by the R4 specification.
const R4_CORE: &[(&str, &str, &[&str])] = &[
    (
        "bundle-type",
        "bundle-type",
        &[
            "document",
            "message",
            "transaction",
            "transaction-response",
            "batch",
            "batch-response",
            "history",
            "searchset",
            "collection",
        ],
    ),
    (
        "http-verb",
        "http-verb",
        &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"],
    ),
    (
        "search-entry-mode",
        "search-entry-mode",
        &["match", "include", "outcome"],
    ),
    (
        "immunization-status",
        "event-status",
        &["completed", "entered-in-error", "not-done"],
    ),
    (
        "event-status",
        "event-status",
        &[
            "preparation",
            "in-progress",
            "not-done",
            "on-hold",
            "stopped",
            "completed",
            "entered-in-error",
            "unknown",
        ],
    ),
    (
        "composition-status",
        "composition-status",
        &["preliminary", "final", "amended", "entered-in-error"],
    ),
    (
        "composition-attestation-mode",
        "composition-attestation-mode",
        &["personal", "professional", "legal", "official"],
    ),
    (
        "administrative-gender",
        "administrative-gender",
        &["male", "female", "other", "unknown"],
    ),
    (
        "identifier-use",
        "identifier-use",
        &["usual", "official", "temp", "secondary", "old"],
    ),
    (
        "name-use",
        "name-use",
        &[
            "usual",
            "official",
            "temp",
            "nickname",
            "anonymous",
            "old",
            "maiden",
        ],
    ),
    (
        "document-reference-status",
        "document-reference-status",
        &["current", "superseded", "entered-in-error"],
    ),
    (
        "document-relationship-type",
        "document-relationship-type",
        &["replaces", "transforms", "signs", "appends"],
    ),
    (
        "publication-status",
        "publication-status",
        &["draft", "active", "retired", "unknown"],
    ),
    (
        "questionnaire-answers-status",
        "questionnaire-answers-status",
        &[
            "in-progress",
            "completed",
            "amended",
            "entered-in-error",
            "stopped",
        ],
    ),
    (
        "observation-status",
        "observation-status",
        &[
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
    ),
    (
        "diagnostic-report-status",
        "diagnostic-report-status",
        &[
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
    ),
    (
        "address-use",
        "address-use",
        &["home", "work", "temp", "old", "billing"],
    ),
    (
        "address-type",
        "address-type",
        &["postal", "physical", "both"],
    ),
    (
        "link-type",
        "link-type",
        &["replaced-by", "replaces", "refer", "seealso"],
    ),
    (
        "list-mode",
        "list-mode",
        &["working", "snapshot", "changes"],
    ),
    (
        "list-status",
        "list-status",
        &["current", "retired", "entered-in-error"],
    ),
    (
        "specimen-status",
        "specimen-status",
        &[
            "available",
            "unavailable",
            "unsatisfactory",
            "entered-in-error",
        ],
    ),
    (
        "item-type",
        "item-type",
        &[
            "group",
            "display",
            "question",
            "boolean",
            "decimal",
            "integer",
            "date",
            "dateTime",
            "time",
            "string",
            "text",
            "url",
            "choice",
            "open-choice",
            "attachment",
            "reference",
            "quantity",
        ],
    ),
    (
        "questionnaire-enable-behavior",
        "questionnaire-enable-behavior",
        &["all", "any"],
    ),
    (
        "questionnaire-enable-operator",
        "questionnaire-enable-operator",
        &["exists", "=", "!=", ">", "<", ">=", "<="],
    ),
    (
        "days-of-week",
        "days-of-week",
        &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    ),
    (
        "narrative-status",
        "narrative-status",
        &["generated", "extensions", "additional", "empty"],
    ),
    (
        "quantity-comparator",
        "quantity-comparator",
        &["<", "<=", ">=", ">"],
    ),
    (
        "contact-point-system",
        "contact-point-system",
        &["phone", "fax", "email", "pager", "url", "sms", "other"],
    ),
    (
        "contact-point-use",
        "contact-point-use",
        &["home", "work", "temp", "old", "mobile"],
    ),
];

impl Terminology {
    pub fn new() -> Self {
        Self::default()
    }

    /// With the small R4 core enumerations DDCC profiles bind `required`.
    pub fn with_r4_core() -> Self {
        let mut t = Self::new();
        for (vs, cs, codes) in R4_CORE {
            let system = format!("http://hl7.org/fhir/{cs}");
            let set: HashSet<String> = codes.iter().map(|c| c.to_string()).collect();
            t.code_systems.insert(
                system.clone(),
                CodeSystemDef {
                    codes: set.clone(),
                    complete: true,
                },
            );
            t.value_sets.insert(
                format!("http://hl7.org/fhir/ValueSet/{vs}"),
                ValueSetDef {
                    includes: vec![Include {
                        system: Some(system),
                        concepts: Some(set),
                        value_sets: Vec::new(),
                        filtered: false,
                    }],
                    excludes: Vec::new(),
                    expansion: None,
                },
            );
        }
        t
    }

    /// Add a ValueSet or CodeSystem; other resources are ignored (returns false).
    pub fn add(&mut self, res: &Value) -> bool {
        let Some(url) = res.get("url").and_then(Value::as_str) else {
            return false;
        };
        match res.get("resourceType").and_then(Value::as_str) {
            Some("ValueSet") => {
                let parse = |k: &str| -> Vec<Include> {
                    res.pointer(&format!("/compose/{k}"))
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(parse_include).collect())
                        .unwrap_or_default()
                };
                let expansion = res
                    .pointer("/expansion/contains")
                    .and_then(Value::as_array)
                    .map(|c| {
                        let mut out = HashSet::new();
                        collect_expansion(c, &mut out, 0);
                        out
                    });
                self.value_sets.insert(
                    url.to_string(),
                    ValueSetDef {
                        includes: parse("include"),
                        excludes: parse("exclude"),
                        expansion,
                    },
                );
                true
            }
            Some("CodeSystem") => {
                let mut codes = HashSet::new();
                if let Some(c) = res.get("concept").and_then(Value::as_array) {
                    collect_concepts(c, &mut codes, 0);
                }
                let complete = res.get("content").and_then(Value::as_str) == Some("complete");
                self.code_systems
                    .insert(url.to_string(), CodeSystemDef { codes, complete });
                true
            }
            _ => false,
        }
    }

    /// Every ValueSet/CodeSystem `*.json` in `dir`; returns how many were added.
    pub fn add_dir(&mut self, dir: impl AsRef<Path>) -> Result<usize, ProfileError> {
        Ok(read_json_dir(dir.as_ref())?
            .iter()
            .filter(|(_, j)| self.add(j))
            .count())
    }

    pub fn has_value_set(&self, url: &str) -> bool {
        self.value_sets.contains_key(strip_version(url))
    }

    /// Is `code` (in `system`, when known) a member of `value_set`?
    pub fn member(&self, value_set: &str, system: Option<&str>, code: &str) -> Membership {
        self.member_at(strip_version(value_set), system, code, 0)
    }

    fn member_at(&self, vs: &str, system: Option<&str>, code: &str, depth: usize) -> Membership {
        // ValueSets may import each other; a cycle must not recurse forever.
        if depth > 16 {
            return Membership::CannotTell;
        }
        let Some(def) = self.value_sets.get(vs) else {
            return Membership::UnknownValueSet;
        };
        if let Some(exp) = &def.expansion {
            let hit = match system {
                Some(s) => exp.contains(&(s.to_string(), code.to_string())),
                None => exp.iter().any(|(_, c)| c == code),
            };
            if hit {
                return Membership::Member;
            }
        }
        for ex in &def.excludes {
            if self.include_has(ex, system, code, depth) == Membership::Member {
                return Membership::NotMember;
            }
        }
        let mut result = Membership::NotMember;
        for inc in &def.includes {
            match self.include_has(inc, system, code, depth) {
                Membership::Member => return Membership::Member,
                Membership::CannotTell | Membership::UnknownValueSet => {
                    result = Membership::CannotTell
                }
                Membership::NotMember => {}
            }
        }
        result
    }

    fn include_has(
        &self,
        inc: &Include,
        system: Option<&str>,
        code: &str,
        depth: usize,
    ) -> Membership {
        if let (Some(want), Some(have)) = (inc.system.as_deref(), system) {
            if want != have {
                return Membership::NotMember;
            }
        }
        let mut verdict = if let Some(concepts) = &inc.concepts {
            if concepts.contains(code) {
                Membership::Member
            } else {
                Membership::NotMember
            }
        } else if inc.filtered {
            Membership::CannotTell
        } else if let Some(sys) = &inc.system {
            match self.code_systems.get(sys) {
                Some(cs) if cs.codes.contains(code) => Membership::Member,
                Some(cs) if cs.complete => Membership::NotMember,
                _ => Membership::CannotTell,
            }
        } else {
            Membership::Member
        };
        for vs in &inc.value_sets {
            if verdict == Membership::NotMember {
                break;
            }
            let sub = self.member_at(strip_version(vs), system, code, depth + 1);
            verdict = match (verdict, sub) {
                (_, Membership::NotMember) => Membership::NotMember,
                (Membership::Member, Membership::Member) => Membership::Member,
                _ => Membership::CannotTell,
            };
        }
        verdict
    }
}

fn strip_version(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

fn parse_include(v: &Value) -> Include {
    Include {
        system: v.get("system").and_then(Value::as_str).map(str::to_string),
        concepts: v.get("concept").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|c| c.get("code").and_then(Value::as_str).map(str::to_string))
                .collect()
        }),
        value_sets: v
            .get("valueSet")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        filtered: v
            .get("filter")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty()),
    }
}

fn collect_concepts(list: &[Value], out: &mut HashSet<String>, depth: usize) {
    if depth > 32 {
        return;
    }
    for c in list {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            out.insert(code.to_string());
        }
        if let Some(sub) = c.get("concept").and_then(Value::as_array) {
            collect_concepts(sub, out, depth + 1);
        }
    }
}

fn collect_expansion(list: &[Value], out: &mut HashSet<(String, String)>, depth: usize) {
    if depth > 32 {
        return;
    }
    for c in list {
        if let (Some(s), Some(code)) = (
            c.get("system").and_then(Value::as_str),
            c.get("code").and_then(Value::as_str),
        ) {
            out.insert((s.to_string(), code.to_string()));
        }
        if let Some(sub) = c.get("contains").and_then(Value::as_array) {
            collect_expansion(sub, out, depth + 1);
        }
    }
}
