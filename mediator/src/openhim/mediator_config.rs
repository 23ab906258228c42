//! The registration document (`openhim-config/mediatorConfig.json`, embedded at
//! build time) and the substitutions made before it is sent.

use serde_json::{Map, Value};

use super::configdefs::{check_defs, check_value, ConfigDef, ConfigValueError};
use crate::config::Config;

/// The mediatorConfig.json shipped with this build.
pub const EMBEDDED: &str = include_str!("../../../openhim-config/mediatorConfig.json");

#[derive(Debug, thiserror::Error)]
pub enum MediatorConfigError {
    #[error("cannot read mediator config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("mediator config is not valid JSON: {0}")]
    Json(String),
    #[error("mediator config: {0}")]
    Invalid(String),
    #[error("mediator config: {0}")]
    Config(#[from] ConfigValueError),
}

/// A validated registration document.
#[derive(Debug, Clone)]
pub struct MediatorDoc {
    pub doc: Value,
    pub urn: String,
    pub version: String,
    pub defs: Vec<ConfigDef>,
    pub defaults: Map<String, Value>,
}

impl MediatorDoc {
    /// Parses and checks the document the way the core will (§3.2), so a broken
    /// file fails at start-up instead of in an endless 400 retry loop.
    pub fn parse(text: &str) -> Result<Self, MediatorConfigError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| MediatorConfigError::Json(e.to_string()))?;
        Self::from_value(doc)
    }

    pub fn from_value(doc: Value) -> Result<Self, MediatorConfigError> {
        let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
        let urn =
            field("urn").ok_or_else(|| MediatorConfigError::Invalid("urn is required".into()))?;
        let version = field("version").filter(|v| is_semver(v)).ok_or_else(|| {
            MediatorConfigError::Invalid("version is required, in SemVer form x.y.z".into())
        })?;
        if field("name").is_none() {
            return Err(MediatorConfigError::Invalid("name is required".into()));
        }
        if doc
            .get("endpoints")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            return Err(MediatorConfigError::Invalid(
                "at least 1 endpoint is required".into(),
            ));
        }
        let defs: Vec<ConfigDef> = match doc.get("configDefs") {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| MediatorConfigError::Invalid(format!("configDefs: {e}")))?,
            None => Vec::new(),
        };
        check_defs(&defs)?;
        let defaults = doc
            .get("config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &defaults {
            let def = defs
                .iter()
                .find(|d| &d.param == k)
                .ok_or_else(|| ConfigValueError::UnknownParam(k.clone()))?;
            check_value(def, v)?;
        }
        Ok(Self {
            doc,
            urn,
            version,
            defs,
            defaults,
        })
    }

    /// The document from `OPENHIM_MEDIATOR_CONFIG` or the embedded one, with
    /// `MEDIATOR_HOST`/`MEDIATOR_PORT` substituted.
    pub fn for_config(cfg: &Config) -> Result<Self, MediatorConfigError> {
        let text = match &cfg.openhim.mediator_config {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| MediatorConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?
            }
            None => EMBEDDED.to_string(),
        };
        let mut doc = Self::parse(&text)?;
        let port = cfg.openhim.mediator_port.unwrap_or(cfg.server.port);
        substitute(
            &mut doc.doc,
            cfg.openhim.mediator_host.as_deref(),
            Some(port),
        );
        Ok(doc)
    }
}

/// `x.y.z` with an optional leading `v` and optional pre-release/build suffix,
/// the forms `semver.valid` accepts.
pub fn is_semver(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

/// Replaces every `host` (and `port`) field anywhere in the document, as the
/// reference mediator does with `MEDIATOR_HOST` (§3.4): the core reaches us at
/// the address we report, in endpoints and in default channel routes alike.
pub fn substitute(v: &mut Value, host: Option<&str>, port: Option<u16>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match (k.as_str(), host, port) {
                    ("host", Some(h), _) if child.is_string() => *child = Value::String(h.into()),
                    ("port", _, Some(p)) if child.is_string() || child.is_number() => {
                        *child = Value::from(p)
                    }
                    _ => substitute(child, host, port),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| substitute(c, host, port)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_document_is_valid_and_matches_the_crate_version() {
        let doc = MediatorDoc::parse(EMBEDDED).expect("embedded mediatorConfig.json is valid");
        assert_eq!(doc.version, env!("CARGO_PKG_VERSION"));
        assert!(doc.urn.starts_with("urn:mediator:"));
        let channels = doc.doc["defaultChannelConfig"]
            .as_array()
            .expect("channels");
        assert!(!channels.is_empty());
        for ch in channels {
            let pattern = ch["urlPattern"].as_str().expect("urlPattern");
            assert!(
                pattern.starts_with('^') && pattern.ends_with('$'),
                "{pattern}"
            );
            assert!(!ch["methods"].as_array().expect("methods").is_empty());
            let primaries = ch["routes"]
                .as_array()
                .expect("routes")
                .iter()
                .filter(|r| r["primary"] == true)
                .count();
            assert_eq!(primaries, 1);
        }
    }

    #[test]
    fn host_and_port_are_replaced_everywhere() {
        let mut cfg = Config::default();
        cfg.openhim.mediator_host = Some("ddcc-mediator".into());
        cfg.server.port = 9999;
        let doc = MediatorDoc::for_config(&cfg).expect("doc");
        let text = doc.doc.to_string();
        assert!(!text.contains("\"localhost\""));
        assert!(!text.contains("4321"));
        assert_eq!(doc.doc["endpoints"][0]["host"], "ddcc-mediator");
        assert_eq!(
            doc.doc["defaultChannelConfig"][0]["routes"][0]["port"],
            9999
        );
    }

    #[test]
    fn semver_rules() {
        for ok in ["1.0.0", "v0.1.0", "1.2.3-rc.1", "10.20.30+build"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in ["1.0", "1", "", "a.b.c", "01.0.0", "1.0.0.0"] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn invalid_documents_fail_early() {
        assert!(MediatorDoc::parse("{").is_err());
        assert!(MediatorDoc::parse(r#"{"version":"1.0.0","name":"n","endpoints":[{}]}"#).is_err());
        assert!(
            MediatorDoc::parse(r#"{"urn":"u","version":"1.0","name":"n","endpoints":[{}]}"#)
                .is_err()
        );
        assert!(
            MediatorDoc::parse(r#"{"urn":"u","version":"1.0.0","name":"n","endpoints":[]}"#)
                .is_err()
        );
        assert!(MediatorDoc::parse(
            r#"{"urn":"u","version":"1.0.0","name":"n","endpoints":[{}],"config":{"x":1}}"#
        )
        .is_err());
    }
}
