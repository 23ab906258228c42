//! The published rules: FHIR Library resources carrying CQL and ELM
//! (`cql/Library-<Name>.json`), and the PlanDefinitions that bind them to use cases
//! (`fhir-profiles/plandefinitions/PlanDefinition-<id>.json`). Each PlanDefinition
//! action names a Library by canonical (`condition.expression.reference`) and the
//! Boolean expression that decides it (`condition.expression.expression`).
//!
//! What runs is the ELM inside the published Library, so a verifier evaluates exactly
//! what the trust network serves.

use crate::eval::{evaluate_expression, EvalParams, Libraries};
use crate::{CqlError, ElmLibrary, PatientData};
use base64::Engine as _;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// The expression a Library answers when a caller names the Library itself.
pub const DEFAULT_EXPRESSION: &str = "Completed Immunization";

/// One rule's verdict for one patient.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleResult {
    /// PlanDefinition canonical (`url|version`) the rule came from, if any.
    pub plan: Option<String>,
    /// Library canonical (`url|version`).
    pub library: String,
    /// The expression evaluated.
    pub expression: String,
    /// The verdict: `None` when the expression is null, not a Boolean, or failed.
    pub value: Option<bool>,
    /// Why the rule could not be evaluated (missing value set, malformed data, ...).
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
struct PublishedLibrary {
    url: String,
    version: String,
    elm: Arc<ElmLibrary>,
}

#[derive(Debug, Clone)]
struct Action {
    /// Index into `RuleSet::libraries`.
    library: usize,
    expression: String,
}

#[derive(Debug, Clone)]
struct Plan {
    url: String,
    version: String,
    actions: Vec<Action>,
}

/// The loaded rules. Immutable after loading; share it behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    libraries: Vec<PublishedLibrary>,
    includes: Libraries,
    plans: Vec<Plan>,
    terminology: Option<Arc<terminology::Terminology>>,
}

fn read_json_files(dir: &Path, prefix: &str) -> Result<Vec<(String, Value)>, CqlError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| CqlError::Load(format!("{}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| CqlError::Load(format!("{}: {e}", dir.display())))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(name.starts_with(prefix) && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CqlError::Load(format!("{}: {e}", path.display())))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| CqlError::Load(format!("{}: {e}", path.display())))?;
        out.push((name.to_string(), v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn canonical(url: &str, version: &str) -> String {
    if url.contains('|') {
        url.to_string()
    } else {
        format!("{url}|{version}")
    }
}

/// `url` or `url|version` against a resource's url and version.
fn matches_canonical(wanted: &str, url: &str, version: &str) -> bool {
    // Some published Libraries (the IG's) carry the version inside `url` itself.
    if wanted == url {
        return true;
    }
    match wanted.split_once('|') {
        Some((u, v)) => u == url && v == version,
        None => wanted == url,
    }
}

impl RuleSet {
    /// Loads every `Library-*.json` in `cql_dir` (decoding its `application/elm+json`
    /// content) and every `PlanDefinition-*.json` in `plandefinitions_dir`. A
    /// PlanDefinition citing a Library that is not there is a load error.
    pub fn load(cql_dir: &Path, plandefinitions_dir: &Path) -> Result<Self, CqlError> {
        let mut set = RuleSet::default();
        for (file, lib) in read_json_files(cql_dir, "Library-")? {
            set.add_library(&lib)
                .map_err(|e| CqlError::Load(format!("{file}: {e}")))?;
        }
        for (file, pd) in read_json_files(plandefinitions_dir, "PlanDefinition-")? {
            set.add_plan(&pd)
                .map_err(|e| CqlError::Load(format!("{file}: {e}")))?;
        }
        Ok(set)
    }

    /// Value set membership for rules that use value sets.
    pub fn with_terminology(mut self, terminology: Arc<terminology::Terminology>) -> Self {
        self.terminology = Some(terminology);
        self
    }

    /// Adds a FHIR Library resource with ELM content.
    pub fn add_library(&mut self, resource: &Value) -> Result<(), CqlError> {
        if resource.get("resourceType").and_then(Value::as_str) != Some("Library") {
            return Err(CqlError::Load("not a Library".into()));
        }
        let url = str_of(resource, "url")?;
        let version = str_of(resource, "version")?;
        let elm_b64 = resource
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("contentType").and_then(Value::as_str) == Some("application/elm+json"))
            .and_then(|c| c.get("data"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CqlError::Load(format!("Library {url} has no application/elm+json content"))
            })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(elm_b64)
            .map_err(|e| {
                CqlError::Load(format!("Library {url}: ELM content is not base64: {e}"))
            })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| CqlError::Load(format!("Library {url}: ELM content is not UTF-8")))?;
        let elm = Arc::new(ElmLibrary::parse(&text)?);
        if elm.version.as_deref() != Some(version.as_str()) {
            return Err(CqlError::Load(format!(
                "Library {url} version {version} carries ELM of version {:?}",
                elm.version
            )));
        }
        self.includes.add(elm.clone());
        self.libraries.push(PublishedLibrary { url, version, elm });
        Ok(())
    }

    /// Adds a PlanDefinition whose actions cite loaded Libraries.
    pub fn add_plan(&mut self, resource: &Value) -> Result<(), CqlError> {
        if resource.get("resourceType").and_then(Value::as_str) != Some("PlanDefinition") {
            return Err(CqlError::Load("not a PlanDefinition".into()));
        }
        let url = str_of(resource, "url")?;
        let version = str_of(resource, "version")?;
        let mut actions = Vec::new();
        for action in resource
            .get("action")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for cond in action
                .get("condition")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let expr = cond.get("expression").ok_or_else(|| {
                    CqlError::Load(format!(
                        "PlanDefinition {url}: condition without expression"
                    ))
                })?;
                let reference = str_of(expr, "reference")?;
                let expression = str_of(expr, "expression")?;
                let index = self.library_index(&reference).ok_or_else(|| {
                    CqlError::Load(format!(
                        "PlanDefinition {url} cites {reference}, which is not loaded"
                    ))
                })?;
                if self.libraries[index].elm.expression(&expression).is_none() {
                    return Err(CqlError::Load(format!(
                        "PlanDefinition {url}: {reference} has no expression {expression:?}"
                    )));
                }
                actions.push(Action {
                    library: index,
                    expression,
                });
            }
        }
        if actions.is_empty() {
            return Err(CqlError::Load(format!("PlanDefinition {url} has no rule")));
        }
        self.plans.push(Plan {
            url,
            version,
            actions,
        });
        Ok(())
    }

    fn library_index(&self, wanted: &str) -> Option<usize> {
        self.libraries
            .iter()
            .position(|l| matches_canonical(wanted, &l.url, &l.version))
    }

    /// Canonicals (`url|version`) of the loaded PlanDefinitions and Libraries.
    pub fn canonicals(&self) -> Vec<String> {
        self.plans
            .iter()
            .map(|p| canonical(&p.url, &p.version))
            .chain(self.libraries.iter().map(|l| canonical(&l.url, &l.version)))
            .collect()
    }

    /// Evaluates the rule named by `rule_canonical` (a PlanDefinition's or a
    /// Library's `url` or `url|version`) for the patient: every action of a
    /// PlanDefinition, or a Library's [`DEFAULT_EXPRESSION`]. With `None`, every
    /// PlanDefinition. An unknown canonical is an error; a rule that cannot be
    /// evaluated on this data is a result with `error` set.
    pub fn evaluate(
        &self,
        rule_canonical: Option<&str>,
        data: &PatientData,
    ) -> Result<Vec<RuleResult>, CqlError> {
        let mut jobs: Vec<(Option<String>, usize, String)> = Vec::new();
        match rule_canonical {
            None => {
                for p in &self.plans {
                    for a in &p.actions {
                        jobs.push((
                            Some(canonical(&p.url, &p.version)),
                            a.library,
                            a.expression.clone(),
                        ));
                    }
                }
            }
            Some(wanted) => {
                if let Some(p) = self
                    .plans
                    .iter()
                    .find(|p| matches_canonical(wanted, &p.url, &p.version))
                {
                    for a in &p.actions {
                        jobs.push((
                            Some(canonical(&p.url, &p.version)),
                            a.library,
                            a.expression.clone(),
                        ));
                    }
                } else if let Some(index) = self.library_index(wanted) {
                    jobs.push((None, index, DEFAULT_EXPRESSION.to_string()));
                } else {
                    return Err(CqlError::UnknownRule(wanted.to_string()));
                }
            }
        }
        let params = EvalParams {
            libraries: Some(&self.includes),
            terminology: self.terminology.as_deref(),
            parameters: None,
        };
        let mut out = Vec::new();
        for (plan, index, expression) in jobs {
            let Some(lib) = self.libraries.get(index) else {
                continue;
            };
            let library = canonical(&lib.url, &lib.version);
            let (value, error) = match evaluate_expression(&lib.elm, &expression, data, &params) {
                Ok(v) => (v.as_bool(), None),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(RuleResult {
                plan,
                library,
                expression,
                value,
                error,
            });
        }
        Ok(out)
    }
}

fn str_of(v: &Value, key: &str) -> Result<String, CqlError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| CqlError::Load(format!("missing {key}")))
}
