//! ELM (JSON) libraries: the declarations an evaluation needs, indexed once at load.
//! Expression bodies stay JSON and are interpreted by `eval`.

use crate::CqlError;
use serde_json::Value;
use std::collections::HashMap;

/// `include <path> version '<version>' called <alias>`.
#[derive(Debug, Clone, PartialEq)]
pub struct IncludeDef {
    pub alias: String,
    pub path: String,
    pub version: Option<String>,
}

/// A code system, value set or code declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminologyDef {
    pub id: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeDef {
    pub code: String,
    /// Name of the code system declaration (in this library).
    pub code_system: String,
    pub display: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub operands: Vec<(String, Option<Value>)>,
    pub body: Option<Value>,
}

/// One ELM library, ready to evaluate.
#[derive(Debug, Clone)]
pub struct ElmLibrary {
    pub name: String,
    pub version: Option<String>,
    pub includes: Vec<IncludeDef>,
    pub code_systems: HashMap<String, TerminologyDef>,
    pub value_sets: HashMap<String, TerminologyDef>,
    pub codes: HashMap<String, CodeDef>,
    /// Concept declarations: names of their code declarations.
    pub concepts: HashMap<String, (Vec<String>, Option<String>)>,
    /// Parameter name -> default expression.
    pub parameters: HashMap<String, Option<Value>>,
    /// Expression definitions in declaration order.
    pub expressions: Vec<(String, Value)>,
    pub functions: HashMap<String, Vec<FunctionDef>>,
}

fn defs<'a>(lib: &'a Value, key: &str) -> &'a [Value] {
    lib.get(key)
        .and_then(|v| v.get("def"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

fn required(v: &Value, key: &str, what: &str) -> Result<String, CqlError> {
    text(v, key).ok_or_else(|| CqlError::Elm(format!("{what} without {key}")))
}

impl ElmLibrary {
    /// Reads ELM JSON (`{"library": {...}}`) as the CQL-to-ELM translator writes it.
    pub fn from_json(elm: &Value) -> Result<ElmLibrary, CqlError> {
        let lib = elm
            .get("library")
            .filter(|l| l.is_object())
            .ok_or_else(|| CqlError::Elm("no library object".into()))?;
        let ident = lib
            .get("identifier")
            .ok_or_else(|| CqlError::Elm("library without identifier".into()))?;
        let name = required(ident, "id", "library identifier")?;
        let version = text(ident, "version");
        let mut out = ElmLibrary {
            name,
            version,
            includes: Vec::new(),
            code_systems: HashMap::new(),
            value_sets: HashMap::new(),
            codes: HashMap::new(),
            concepts: HashMap::new(),
            parameters: HashMap::new(),
            expressions: Vec::new(),
            functions: HashMap::new(),
        };
        for d in defs(lib, "includes") {
            out.includes.push(IncludeDef {
                alias: required(d, "localIdentifier", "include")?,
                path: required(d, "path", "include")?,
                version: text(d, "version"),
            });
        }
        for d in defs(lib, "codeSystems") {
            out.code_systems.insert(
                required(d, "name", "codesystem")?,
                TerminologyDef {
                    id: required(d, "id", "codesystem")?,
                    version: text(d, "version"),
                },
            );
        }
        for d in defs(lib, "valueSets") {
            out.value_sets.insert(
                required(d, "name", "valueset")?,
                TerminologyDef {
                    id: required(d, "id", "valueset")?,
                    version: text(d, "version"),
                },
            );
        }
        for d in defs(lib, "codes") {
            let system = d
                .get("codeSystem")
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| CqlError::Elm("code without codeSystem".into()))?;
            out.codes.insert(
                required(d, "name", "code")?,
                CodeDef {
                    code: required(d, "id", "code")?,
                    code_system: system.to_string(),
                    display: text(d, "display"),
                },
            );
        }
        for d in defs(lib, "concepts") {
            let codes = d
                .get("code")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|c| text(c, "name")).collect())
                .unwrap_or_default();
            out.concepts
                .insert(required(d, "name", "concept")?, (codes, text(d, "display")));
        }
        for d in defs(lib, "parameters") {
            out.parameters
                .insert(required(d, "name", "parameter")?, d.get("default").cloned());
        }
        for d in defs(lib, "statements") {
            let name = required(d, "name", "statement")?;
            let is_function = d.get("type").and_then(Value::as_str) == Some("FunctionDef")
                || d.get("operand").is_some();
            if is_function {
                let mut operands = Vec::new();
                for o in d
                    .get("operand")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    operands.push((
                        required(o, "name", "function operand")?,
                        o.get("operandTypeSpecifier").cloned(),
                    ));
                }
                let external = d.get("external").and_then(Value::as_bool) == Some(true);
                out.functions.entry(name).or_default().push(FunctionDef {
                    operands,
                    body: if external {
                        None
                    } else {
                        d.get("expression").cloned()
                    },
                });
            } else {
                let body = d.get("expression").cloned().ok_or_else(|| {
                    CqlError::Elm(format!("definition {name} without expression"))
                })?;
                out.expressions.push((name, body));
            }
        }
        Ok(out)
    }

    /// Reads ELM JSON text.
    pub fn parse(text: &str) -> Result<ElmLibrary, CqlError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| CqlError::Elm(format!("not JSON: {e}")))?;
        ElmLibrary::from_json(&v)
    }

    pub fn expression(&self, name: &str) -> Option<&Value> {
        self.expressions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}
