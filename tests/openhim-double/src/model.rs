//! The double's stored data and the pure rules applied to it: config
//! definitions and values (contract §3.2 steps 3–4), registration (§3.2, §3.3),
//! heartbeat config semantics (§5) and hashing helpers (§2.3, §6.2).

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

pub fn sha512_hex(parts: &[&str]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds: the core compares `_configModifiedTS > _lastHeartbeat` on
/// millisecond Dates (§5), which loses a config change made in the same
/// millisecond as a heartbeat. The double keeps the rule but with a finer clock,
/// so tests do not inherit that race; it still reports milliseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn iso_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

/// An API user (§2.2). `local_password` stands for the 8.x local passport;
/// `token_salt`/`token_hash` for the legacy token passport (§2.3).
#[derive(Debug, Clone)]
pub struct User {
    pub email: String,
    pub groups: Vec<String>,
    pub local_password: Option<String>,
    pub token_salt: Option<String>,
    pub token_hash: Option<String>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "admin")
    }
    pub fn password_ok(&self, password: &str) -> bool {
        if self.local_password.as_deref() == Some(password) {
            return true;
        }
        // §2.2: a legacy passport is checked as hex(sha512(salt + password)).
        match (&self.token_salt, &self.token_hash) {
            (Some(salt), Some(hash)) => &sha512_hex(&[salt, password]) == hash,
            _ => false,
        }
    }
}

/// A router client (§6.2): sha512(password + salt), password first.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub roles: Vec<String>,
    pub password_salt: String,
    pub password_hash: String,
}

impl Client {
    pub fn new(client_id: &str, password: &str, roles: &[&str]) -> Self {
        let salt = random_hex(16);
        Self {
            client_id: client_id.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            password_hash: sha512_hex(&[password, &salt]),
            password_salt: salt,
        }
    }
    pub fn password_ok(&self, password: &str) -> bool {
        sha512_hex(&[password, &self.password_salt]) == self.password_hash
    }
}

/// A stored mediator document plus the core-only fields.
#[derive(Debug, Clone)]
pub struct Mediator {
    pub doc: Map<String, Value>,
    pub config_modified_us: Option<u64>,
    pub last_heartbeat_us: Option<u64>,
    pub uptime: Option<f64>,
}

impl Mediator {
    pub fn to_json(&self, mask_passwords: bool) -> Value {
        let mut doc = self.doc.clone();
        if mask_passwords {
            if let Some(Value::Object(cfg)) = doc.get_mut("config") {
                for p in password_params(&self.doc) {
                    if let Some(v) = cfg.get_mut(&p) {
                        if !v.is_null() {
                            *v = Value::String(MASK.into());
                        }
                    }
                }
            }
        }
        if let Some(ts) = self.config_modified_us {
            doc.insert("_configModifiedTS".into(), json!(ts / 1000));
        }
        if let Some(ts) = self.last_heartbeat_us {
            doc.insert("_lastHeartbeat".into(), json!(ts / 1000));
        }
        if let Some(u) = self.uptime {
            doc.insert("_uptime".into(), json!(u));
        }
        Value::Object(doc)
    }
}

pub const MASK: &str = "**********";

fn password_params(doc: &Map<String, Value>) -> Vec<String> {
    doc.get("configDefs")
        .and_then(Value::as_array)
        .map(|defs| {
            defs.iter()
                .filter(|d| d.get("type").and_then(Value::as_str) == Some("password"))
                .filter_map(|d| d.get("param").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

const PREFIX: &str = "Could not add Mediator via the API: ";

/// §3.2 step 2: `semver.valid`, leading `v` tolerated.
pub fn parse_semver(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).ok()
}

/// §3.2 step 3.
pub fn check_config_defs(defs: &Value) -> Result<(), String> {
    let Some(defs) = defs.as_array() else {
        return Err("configDefs must be an array".into());
    };
    for d in defs {
        let kind = d.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "struct" => {
                let template = d.get("template").and_then(Value::as_array);
                let Some(template) = template.filter(|t| !t.is_empty()) else {
                    return Err("Must specify a template for struct param".into());
                };
                for t in template {
                    if t.get("param").is_none() || t.get("type").is_none() {
                        return Err("Must specify field param and type for struct templates".into());
                    }
                    if t.get("type").and_then(Value::as_str) == Some("struct") {
                        return Err("May not recursively specify struct".into());
                    }
                }
            }
            "option"
                if d.get("values")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty) =>
            {
                return Err("Must specify a values array for option param".into());
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_scalar(def: &Value, param: &str, v: &Value) -> Result<(), String> {
    let kind = def.get("type").and_then(Value::as_str).unwrap_or("");
    let ok = match kind {
        "string" | "bigstring" | "password" => v.is_string(),
        "number" => v.is_number(),
        "bool" => v.is_boolean(),
        "option" => {
            let values = def.get("values").and_then(Value::as_array);
            v.as_str()
                .is_some_and(|s| values.is_some_and(|vs| vs.iter().any(|x| x == s)))
        }
        "map" => v
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)),
        "struct" => {
            let template = def.get("template").and_then(Value::as_array);
            v.as_object().is_some_and(|m| {
                m.keys().all(|k| {
                    template.is_some_and(|t| {
                        t.iter()
                            .any(|e| e.get("param").and_then(Value::as_str) == Some(k))
                    })
                })
            })
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Expected config param {param} to be a {kind}"))
    }
}

/// §3.2 step 4 (also the PUT config check of §4).
pub fn check_config(defs: &Value, config: &Value) -> Result<(), String> {
    let Some(config) = config.as_object() else {
        return Err("config must be an object".into());
    };
    let empty = Vec::new();
    let defs = defs.as_array().unwrap_or(&empty);
    for (param, v) in config {
        let Some(def) = defs
            .iter()
            .find(|d| d.get("param").and_then(Value::as_str) == Some(param))
        else {
            return Err(format!("No config definition found for parameter {param}"));
        };
        if v.is_null() {
            continue;
        }
        if def.get("array").and_then(Value::as_bool) == Some(true) {
            let Some(items) = v.as_array() else {
                return Err(format!(
                    "Expected config param {param} to be an array of type"
                ));
            };
            for item in items {
                check_scalar(def, param, item)?;
            }
        } else if v.is_array() {
            return Err(format!("Expected config param {param} to not be an array"));
        } else {
            check_scalar(def, param, v)?;
        }
    }
    Ok(())
}

/// A route object as a Mongoose sub-document: `name` required (§3.1).
fn check_routes(field: &str, routes: &[Value]) -> Result<(), String> {
    for (i, r) in routes.iter().enumerate() {
        if r.get("name").and_then(Value::as_str).is_none() {
            return Err(format!(
                "ValidationError: {field}.{i}.name: Path `name` is required."
            ));
        }
    }
    Ok(())
}

/// Outcome of `POST /mediators`.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    Created,
    Updated,
    Unchanged,
}

/// §3.2 + §3.3: validates in the core's order, then creates, updates or ignores.
pub fn register(
    store: &mut BTreeMap<String, Mediator>,
    body: &Value,
) -> Result<Registration, String> {
    let Some(obj) = body.as_object() else {
        return Err(format!("{PREFIX}ValidationError: URN is required"));
    };
    let Some(urn) = obj.get("urn").and_then(Value::as_str) else {
        return Err(format!("{PREFIX}ValidationError: URN is required"));
    };
    let Some(version) = obj
        .get("version")
        .and_then(Value::as_str)
        .and_then(parse_semver)
    else {
        return Err(format!(
            "{PREFIX}ValidationError: Version is required. Must be in SemVer form x.y.z"
        ));
    };
    if let Some(defs) = obj.get("configDefs") {
        check_config_defs(defs).map_err(|e| format!("{PREFIX}{e}"))?;
        if let Some(cfg) = obj.get("config") {
            check_config(defs, cfg).map_err(|e| format!("{PREFIX}{e}"))?;
        }
    }
    match store.get_mut(urn) {
        None => {
            if obj
                .get("endpoints")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                return Err(format!(
                    "{PREFIX}ValidationError: At least 1 endpoint is required"
                ));
            }
            if obj.get("name").and_then(Value::as_str).is_none() {
                return Err(format!(
                    "{PREFIX}ValidationError: name: Path `name` is required."
                ));
            }
            if let Some(eps) = obj.get("endpoints").and_then(Value::as_array) {
                check_routes("endpoints", eps).map_err(|e| format!("{PREFIX}{e}"))?;
            }
            let mut doc = obj.clone();
            for k in ["_configModifiedTS", "_uptime", "_lastHeartbeat"] {
                doc.remove(k);
            }
            store.insert(
                urn.to_string(),
                Mediator {
                    doc,
                    config_modified_us: None,
                    last_heartbeat_us: None,
                    uptime: None,
                },
            );
            Ok(Registration::Created)
        }
        Some(existing) => {
            let stored_version = existing
                .doc
                .get("version")
                .and_then(Value::as_str)
                .and_then(parse_semver);
            if stored_version.is_some_and(|s| version <= s) {
                return Ok(Registration::Unchanged);
            }
            let old_config = existing.doc.get("config").cloned();
            for (k, v) in obj {
                if k.starts_with('_') || k == "config" {
                    continue;
                }
                existing.doc.insert(k.clone(), v.clone());
            }
            // §3.3 merge: existing non-null values win, new keys take the
            // incoming default, keys only in the old config are dropped.
            if let Some(Value::Object(incoming)) = obj.get("config") {
                let old = old_config
                    .and_then(|c| c.as_object().cloned())
                    .unwrap_or_default();
                let mut merged = Map::new();
                for (k, v) in incoming {
                    match old.get(k) {
                        Some(existing_v) if !existing_v.is_null() => {
                            merged.insert(k.clone(), existing_v.clone())
                        }
                        _ => merged.insert(k.clone(), v.clone()),
                    };
                }
                existing.doc.insert("config".into(), Value::Object(merged));
            }
            Ok(Registration::Updated)
        }
    }
}

/// §4 `PUT /mediators/:urn/config`: masked values come back from the store.
pub fn put_config(m: &mut Mediator, mut config: Value) -> Result<(), String> {
    let defs = m
        .doc
        .get("configDefs")
        .cloned()
        .unwrap_or(Value::Array(vec![]));
    if let (Some(new), Some(Value::Object(old))) = (config.as_object_mut(), m.doc.get("config")) {
        for (k, v) in new.iter_mut() {
            if v.as_str() == Some(MASK) {
                if let Some(stored) = old.get(k) {
                    *v = stored.clone();
                }
            }
        }
    }
    check_config(&defs, &config)?;
    m.doc.insert("config".into(), config);
    m.config_modified_us = Some(now_us());
    Ok(())
}

/// §5: what the heartbeat answers, then the bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub enum HeartbeatReply {
    Config(Value),
    /// `config: true` but no config stored: body `OK`.
    Ok,
    Empty,
}

pub fn heartbeat(m: &mut Mediator, uptime: f64, want_config: bool, now: u64) -> HeartbeatReply {
    let changed = match (m.config_modified_us, m.last_heartbeat_us) {
        (Some(modified), Some(last)) => modified > last,
        // First heartbeat: `_lastHeartbeat` unset, the comparison is false (§5).
        _ => false,
    };
    let reply = if changed || want_config {
        match m.doc.get("config") {
            Some(cfg) if !cfg.is_null() => HeartbeatReply::Config(cfg.clone()),
            _ => HeartbeatReply::Ok,
        }
    } else {
        HeartbeatReply::Empty
    };
    m.last_heartbeat_us = Some(now);
    m.uptime = Some(uptime);
    reply
}

/// One API request as the double saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub at: Instant,
    pub status: u16,
    /// `basic`, `token`, or `none`.
    pub auth: &'static str,
}

/// Fail the next `remaining` API requests whose path contains `path_contains`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub remaining: usize,
    pub status: u16,
    pub path_contains: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(version: &str, config: Value) -> Value {
        json!({
            "urn": "urn:mediator:t", "version": version, "name": "T",
            "endpoints": [{"name": "e", "host": "h", "port": 1}],
            "configDefs": [
                {"param": "a", "type": "string"},
                {"param": "b", "type": "number"},
                {"param": "c", "type": "bool"}
            ],
            "config": config
        })
    }

    #[test]
    fn validation_order_and_messages() {
        let mut s = BTreeMap::new();
        let e = register(&mut s, &json!({"version": "x"})).unwrap_err();
        assert!(e.ends_with("URN is required"), "{e}");
        let e = register(&mut s, &json!({"urn": "u", "version": "1.0"})).unwrap_err();
        assert!(e.contains("SemVer"), "{e}");
        let e = register(
            &mut s,
            &json!({"urn": "u", "version": "1.0.0", "configDefs": [{"param": "o", "type": "option"}]}),
        )
        .unwrap_err();
        assert!(e.contains("values"), "{e}");
        let e = register(
            &mut s,
            &json!({"urn": "u", "version": "1.0.0", "configDefs": [], "config": {"x": 1}}),
        )
        .unwrap_err();
        assert!(
            e.contains("No config definition found for parameter x"),
            "{e}"
        );
        let e = register(
            &mut s,
            &json!({"urn": "u", "version": "1.0.0", "name": "n"}),
        )
        .unwrap_err();
        assert!(e.contains("At least 1 endpoint is required"), "{e}");
        let e = register(
            &mut s,
            &json!({"urn": "u", "version": "1.0.0", "endpoints": [{"name": "e"}]}),
        )
        .unwrap_err();
        assert!(e.contains("name: Path `name` is required."), "{e}");
        assert!(s.is_empty());
    }

    #[test]
    fn reregistration_rules() {
        let mut s = BTreeMap::new();
        assert_eq!(
            register(&mut s, &doc("1.0.0", json!({"a": "x", "b": 1}))),
            Ok(Registration::Created)
        );
        let m = s.get_mut("urn:mediator:t").expect("stored");
        put_config(m, json!({"a": "operator", "b": 2})).expect("valid");
        // Same or lower version: nothing changes.
        assert_eq!(
            register(&mut s, &doc("1.0.0", json!({"a": "new"}))),
            Ok(Registration::Unchanged)
        );
        assert_eq!(
            register(&mut s, &doc("0.9.0", json!({"a": "new"}))),
            Ok(Registration::Unchanged)
        );
        // Newer: operator value kept, new key gets default, dropped key gone.
        assert_eq!(
            register(&mut s, &doc("v1.1.0", json!({"a": "default", "c": true}))),
            Ok(Registration::Updated)
        );
        let cfg = &s["urn:mediator:t"].doc["config"];
        assert_eq!(cfg, &json!({"a": "operator", "c": true}));
        assert_eq!(s["urn:mediator:t"].doc["version"], "v1.1.0");
    }

    #[test]
    fn heartbeat_config_semantics() {
        let mut s = BTreeMap::new();
        register(&mut s, &doc("1.0.0", json!({"a": "x"}))).expect("created");
        let m = s.get_mut("urn:mediator:t").expect("stored");
        assert_eq!(heartbeat(m, 1.0, false, 10), HeartbeatReply::Empty);
        assert_eq!(
            heartbeat(m, 2.0, true, 20),
            HeartbeatReply::Config(json!({"a": "x"}))
        );
        m.config_modified_us = Some(25);
        assert_eq!(
            heartbeat(m, 3.0, false, 30),
            HeartbeatReply::Config(json!({"a": "x"}))
        );
        assert_eq!(heartbeat(m, 4.0, false, 40), HeartbeatReply::Empty);
        m.doc.remove("config");
        assert_eq!(heartbeat(m, 5.0, true, 50), HeartbeatReply::Ok);
    }

    #[test]
    fn masks_and_restores_passwords() {
        let mut s = BTreeMap::new();
        let mut d = doc("1.0.0", json!({"p": "secret"}));
        d["configDefs"] =
            json!([{"param": "p", "type": "password"}, {"param": "a", "type": "string"}]);
        register(&mut s, &d).expect("created");
        let m = s.get_mut("urn:mediator:t").expect("stored");
        assert_eq!(m.to_json(true)["config"]["p"], MASK);
        put_config(m, json!({"p": MASK, "a": "z"})).expect("valid");
        assert_eq!(m.doc["config"]["p"], "secret");
    }

    #[test]
    fn client_hash_order_is_password_then_salt() {
        let c = Client::new("c", "pw", &["r"]);
        assert!(c.password_ok("pw"));
        assert!(!c.password_ok("PW"));
        assert_eq!(c.password_hash, sha512_hex(&["pw", &c.password_salt]));
    }
}
