//! Run-time configuration an OpenHIM operator may edit, typed by the
//! `configDefs` of our mediatorConfig.json and checked with the same rules the
//! core applies (contract §3.2 step 4). Config from a heartbeat is applied key by
//! key: a value that fails its definition is rejected with a log line and the
//! previous value stays.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Bigstring,
    Bool,
    Number,
    Option,
    Map,
    Struct,
    Password,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDef {
    pub param: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub template: Vec<ConfigDef>,
    #[serde(default)]
    pub array: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigValueError {
    #[error("No config definition found for parameter {0}")]
    UnknownParam(String),
    #[error("{param}: expected {expected}")]
    WrongType { param: String, expected: String },
    #[error("{param}: {value} is not one of the allowed values")]
    NotAnOption { param: String, value: String },
    #[error("{param}: key {key} is not in the struct template")]
    UnknownStructKey { param: String, key: String },
    #[error("invalid configDefs: {0}")]
    BadDefs(String),
}

fn wrong(param: &str, expected: &str) -> ConfigValueError {
    ConfigValueError::WrongType {
        param: param.into(),
        expected: expected.into(),
    }
}

/// Checks the definitions themselves (§3.2 step 3).
pub fn check_defs(defs: &[ConfigDef]) -> Result<(), ConfigValueError> {
    for d in defs {
        match d.kind {
            ParamType::Struct => {
                if d.template.is_empty() {
                    return Err(ConfigValueError::BadDefs(format!(
                        "struct {} needs a template",
                        d.param
                    )));
                }
                if d.template.iter().any(|t| t.kind == ParamType::Struct) {
                    return Err(ConfigValueError::BadDefs(format!(
                        "struct {} may not nest a struct",
                        d.param
                    )));
                }
            }
            ParamType::Option if d.values.is_empty() => {
                return Err(ConfigValueError::BadDefs(format!(
                    "option {} needs values",
                    d.param
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks one value against its definition (§3.2 step 4).
pub fn check_value(def: &ConfigDef, value: &Value) -> Result<(), ConfigValueError> {
    if def.array {
        let items = value
            .as_array()
            .ok_or_else(|| wrong(&def.param, "an array"))?;
        return items.iter().try_for_each(|v| check_scalar(def, v));
    }
    if value.is_array() {
        return Err(wrong(&def.param, "a single value, not an array"));
    }
    check_scalar(def, value)
}

fn check_scalar(def: &ConfigDef, value: &Value) -> Result<(), ConfigValueError> {
    let p = &def.param;
    match def.kind {
        ParamType::String | ParamType::Bigstring | ParamType::Password => value
            .as_str()
            .map(|_| ())
            .ok_or_else(|| wrong(p, "a string")),
        ParamType::Number => value
            .as_f64()
            .map(|_| ())
            .ok_or_else(|| wrong(p, "a number")),
        ParamType::Bool => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| wrong(p, "a boolean")),
        ParamType::Option => {
            let s = value.as_str().ok_or_else(|| wrong(p, "a string option"))?;
            if def.values.iter().any(|v| v == s) {
                Ok(())
            } else {
                Err(ConfigValueError::NotAnOption {
                    param: p.clone(),
                    value: s.into(),
                })
            }
        }
        ParamType::Map => {
            let m = value.as_object().ok_or_else(|| wrong(p, "an object"))?;
            if m.values().all(Value::is_string) {
                Ok(())
            } else {
                Err(wrong(p, "an object of strings"))
            }
        }
        ParamType::Struct => {
            let m = value.as_object().ok_or_else(|| wrong(p, "an object"))?;
            for key in m.keys() {
                if !def.template.iter().any(|t| &t.param == key) {
                    return Err(ConfigValueError::UnknownStructKey {
                        param: p.clone(),
                        key: key.clone(),
                    });
                }
            }
            Ok(())
        }
    }
}

/// The current run-time configuration: only values that passed their definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    values: BTreeMap<String, Value>,
}

/// What [`RuntimeConfig::apply`] did with an incoming config object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    pub changed: Vec<String>,
    pub rejected: Vec<ConfigValueError>,
}

impl RuntimeConfig {
    /// Starts from the `config` defaults of the mediator document.
    pub fn from_defaults(defs: &[ConfigDef], defaults: &Map<String, Value>) -> Self {
        let mut rc = Self::default();
        rc.apply(defs, defaults);
        rc
    }

    /// Applies each key that passes its definition; keeps old values for the rest.
    pub fn apply(&mut self, defs: &[ConfigDef], incoming: &Map<String, Value>) -> ApplyReport {
        let mut report = ApplyReport::default();
        for (key, value) in incoming {
            let Some(def) = defs.iter().find(|d| &d.param == key) else {
                report
                    .rejected
                    .push(ConfigValueError::UnknownParam(key.clone()));
                continue;
            };
            if value.is_null() {
                continue;
            }
            match check_value(def, value) {
                Ok(()) => {
                    if self.values.get(key) != Some(value) {
                        self.values.insert(key.clone(), value.clone());
                        report.changed.push(key.clone());
                    }
                }
                Err(e) => report.rejected.push(e),
            }
        }
        report
    }

    pub fn get(&self, param: &str) -> Option<&Value> {
        self.values.get(param)
    }
    pub fn get_str(&self, param: &str) -> Option<&str> {
        self.get(param).and_then(Value::as_str)
    }
    pub fn get_bool(&self, param: &str) -> Option<bool> {
        self.get(param).and_then(Value::as_bool)
    }
    pub fn get_f64(&self, param: &str) -> Option<f64> {
        self.get(param).and_then(Value::as_f64)
    }
    pub fn get_u64(&self, param: &str) -> Option<u64> {
        self.get(param).and_then(Value::as_u64)
    }
    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs() -> Vec<ConfigDef> {
        serde_json::from_value(json!([
            {"param": "url", "type": "string"},
            {"param": "days", "type": "number"},
            {"param": "on", "type": "bool"},
            {"param": "level", "type": "option", "values": ["L", "M", "Q", "H"]},
            {"param": "labels", "type": "map"},
            {"param": "hosts", "type": "string", "array": true},
            {"param": "s", "type": "struct", "template": [{"param": "a", "type": "string"}]}
        ]))
        .expect("defs parse")
    }

    #[test]
    fn values_are_checked_like_the_core() {
        let d = defs();
        check_defs(&d).expect("defs valid");
        let ok = [
            ("url", json!("http://x")),
            ("days", json!(365)),
            ("on", json!(false)),
            ("level", json!("Q")),
            ("labels", json!({"a": "b"})),
            ("hosts", json!(["a", "b"])),
            ("s", json!({"a": "1"})),
        ];
        for (k, v) in ok {
            let def = d.iter().find(|x| x.param == k).expect("def");
            assert_eq!(check_value(def, &v), Ok(()), "{k}");
        }
        let bad = [
            ("url", json!(1)),
            ("days", json!("365")),
            ("on", json!("true")),
            ("level", json!("X")),
            ("labels", json!({"a": 1})),
            ("hosts", json!("a")),
            ("url", json!(["a"])),
            ("s", json!({"b": "1"})),
        ];
        for (k, v) in bad {
            let def = d.iter().find(|x| x.param == k).expect("def");
            assert!(check_value(def, &v).is_err(), "{k} {v}");
        }
    }

    #[test]
    fn bad_defs_are_detected() {
        let d: Vec<ConfigDef> =
            serde_json::from_value(json!([{"param": "o", "type": "option"}])).expect("parse");
        assert!(check_defs(&d).is_err());
        let d: Vec<ConfigDef> =
            serde_json::from_value(json!([{"param": "s", "type": "struct"}])).expect("parse");
        assert!(check_defs(&d).is_err());
    }

    #[test]
    fn apply_keeps_old_values_for_rejected_keys() {
        let d = defs();
        let mut rc = RuntimeConfig::from_defaults(
            &d,
            json!({"days": 30, "level": "M"}).as_object().expect("obj"),
        );
        let report = rc.apply(
            &d,
            json!({"days": "forever", "level": "Q", "nope": 1})
                .as_object()
                .expect("obj"),
        );
        assert_eq!(report.changed, vec!["level".to_string()]);
        assert_eq!(report.rejected.len(), 2);
        assert_eq!(rc.get_u64("days"), Some(30));
        assert_eq!(rc.get_str("level"), Some("Q"));
    }
}
