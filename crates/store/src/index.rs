//! Search parameter table and the index rows extracted from a resource on write.
//!
//! Search never parses stored JSON: each write replaces the resource's rows in the `idx`
//! table, and queries match those rows. The table below is the whole set of parameters the
//! store answers (plus `_id`, `_lastUpdated`, `_count`, `_sort` for every type); anything
//! else is refused, so a client never silently gets an unfiltered result.

use serde_json::Value;

use crate::time::parse_range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `system|code` from a code, Coding, CodeableConcept or Identifier.
    Token,
    /// `Type/id` from a Reference.
    Reference,
    /// A millisecond range from a date, dateTime, instant or Period.
    Date,
    /// Case-folded text, matched by prefix.
    String,
}

pub struct ParamDef {
    pub resource_type: &'static str,
    pub name: &'static str,
    /// FHIRPath-like paths: field names separated by `.`, arrays flattened at each step,
    /// and `extension('url')` selecting extensions by URL.
    pub paths: &'static [&'static str],
    pub kind: Kind,
    /// For references: the type a bare id in a query refers to, and the type searched
    /// by a chained parameter (`patient.identifier=`).
    pub target: Option<&'static str>,
}

const DESIGNATION: &[&str] = &[
    "extension('https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType').valueCodeableConcept",
    "extension('http://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType').valueCodeableConcept",
];

const fn p(
    resource_type: &'static str,
    name: &'static str,
    paths: &'static [&'static str],
    kind: Kind,
    target: Option<&'static str>,
) -> ParamDef {
    ParamDef {
        resource_type,
        name,
        paths,
        kind,
        target,
    }
}

/// ITI-66 (List), ITI-67 (DocumentReference), BALP AuditEvent, and identifier lookups.
pub const PARAMS: &[ParamDef] = &[
    // ITI-67 Find Document References.
    p(
        "DocumentReference",
        "patient",
        &["subject"],
        Kind::Reference,
        Some("Patient"),
    ),
    p(
        "DocumentReference",
        "subject",
        &["subject"],
        Kind::Reference,
        None,
    ),
    p(
        "DocumentReference",
        "identifier",
        &["masterIdentifier", "identifier"],
        Kind::Token,
        None,
    ),
    p(
        "DocumentReference",
        "status",
        &["status"],
        Kind::Token,
        None,
    ),
    p("DocumentReference", "type", &["type"], Kind::Token, None),
    p(
        "DocumentReference",
        "category",
        &["category"],
        Kind::Token,
        None,
    ),
    p("DocumentReference", "date", &["date"], Kind::Date, None),
    // ITI-66 Find Document Lists (DDCC Folder / SubmissionSet).
    p(
        "List",
        "patient",
        &["subject"],
        Kind::Reference,
        Some("Patient"),
    ),
    p("List", "subject", &["subject"], Kind::Reference, None),
    p("List", "identifier", &["identifier"], Kind::Token, None),
    p("List", "code", &["code"], Kind::Token, None),
    p("List", "status", &["status"], Kind::Token, None),
    p("List", "date", &["date"], Kind::Date, None),
    p("List", "designationType", DESIGNATION, Kind::Token, None),
    // BALP audit.
    p("AuditEvent", "date", &["recorded"], Kind::Date, None),
    p("AuditEvent", "type", &["type"], Kind::Token, None),
    p("AuditEvent", "subtype", &["subtype"], Kind::Token, None),
    p(
        "AuditEvent",
        "entity",
        &["entity.what"],
        Kind::Reference,
        None,
    ),
    p(
        "AuditEvent",
        "entity-name",
        &["entity.name"],
        Kind::String,
        None,
    ),
    p("AuditEvent", "agent", &["agent.who"], Kind::Reference, None),
    p("AuditEvent", "outcome", &["outcome"], Kind::Token, None),
    p(
        "AuditEvent",
        "patient",
        &["entity.what"],
        Kind::Reference,
        Some("Patient"),
    ),
    // Identifier lookups.
    p("Bundle", "identifier", &["identifier"], Kind::Token, None),
    p("Patient", "identifier", &["identifier"], Kind::Token, None),
];

/// Parameters whose values identify a person: HCIDs (Folder and document
/// identifiers) and patient identifiers. Their index rows hold blind values
/// ([`crate::crypto::DataKeys::blind`]), so they match whole, exact values only. Audit
/// `entity-name` stays clear for prefix search: our AuditEvents put OpenHIM transaction
/// ids there, never personal data (their bodies are sealed like every other).
pub fn is_personal(resource_type: &str, param: &str) -> bool {
    matches!(
        (resource_type, param),
        (
            "DocumentReference" | "List" | "Bundle" | "Patient",
            "identifier"
        )
    )
}

/// The blind-value scope of a parameter: values of different parameters never link.
pub fn blind_scope(resource_type: &str, param: &str) -> String {
    format!("{resource_type}.{param}")
}

pub fn param_def(resource_type: &str, name: &str) -> Option<&'static ParamDef> {
    PARAMS
        .iter()
        .find(|d| d.resource_type == resource_type && d.name == name)
}

/// One row of the `idx` table. Tokens use `sys`/`val`, references `sys` = target type and
/// `val` = id, strings `val`, dates `lo`/`hi`. Absent systems are `""` rather than NULL
/// so equality works the same in SQLite and PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub param: &'static str,
    pub sys: String,
    pub val: String,
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

const MAX_DEPTH: usize = 16;

enum Step<'a> {
    Field(&'a str),
    Ext(&'a str),
}

fn parse_path(path: &str) -> Vec<Step<'_>> {
    // Split on dots outside quotes: extension URLs contain dots.
    let mut steps = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in path.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '.' if !quoted => {
                steps.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    steps.push(&path[start..]);
    steps
        .into_iter()
        .map(|s| {
            match s
                .strip_prefix("extension('")
                .and_then(|r| r.strip_suffix("')"))
            {
                Some(url) => Step::Ext(url),
                None => Step::Field(s),
            }
        })
        .collect()
}

fn collect<'v>(v: &'v Value, steps: &[Step<'_>], out: &mut Vec<&'v Value>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Value::Array(items) = v {
        for item in items {
            collect(item, steps, out, depth + 1);
        }
        return;
    }
    let Some((first, rest)) = steps.split_first() else {
        out.push(v);
        return;
    };
    match first {
        Step::Field(name) => {
            if let Some(child) = v.get(*name) {
                collect(child, rest, out, depth + 1);
            }
        }
        Step::Ext(url) => {
            if let Some(Value::Array(exts)) = v.get("extension") {
                for e in exts {
                    if e.get("url").and_then(Value::as_str) == Some(*url) {
                        collect(e, rest, out, depth + 1);
                    }
                }
            }
        }
    }
}

/// Elements at `path` in `resource`, arrays flattened.
pub fn select<'v>(resource: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut out = Vec::new();
    collect(resource, &parse_path(path), &mut out, 0);
    out
}

fn token_rows(param: &'static str, v: &Value, out: &mut Vec<IndexRow>) {
    let mut push = |sys: Option<&Value>, code: &str| {
        out.push(IndexRow {
            param,
            sys: sys.and_then(Value::as_str).unwrap_or("").to_owned(),
            val: code.to_owned(),
            lo: None,
            hi: None,
        });
    };
    match v {
        Value::String(s) => push(None, s),
        Value::Bool(b) => push(None, if *b { "true" } else { "false" }),
        Value::Object(o) => {
            if let Some(Value::Array(codings)) = o.get("coding") {
                for c in codings {
                    if let Some(code) = c.get("code").and_then(Value::as_str) {
                        push(c.get("system"), code);
                    }
                }
            } else if let Some(code) = o.get("code").and_then(Value::as_str) {
                push(o.get("system"), code);
            } else if let Some(value) = o.get("value").and_then(Value::as_str) {
                push(o.get("system"), value);
            }
        }
        _ => {}
    }
}

/// Splits a reference into (type, id): `Patient/1`, `http://x/fhir/Patient/1`,
/// `Patient/1/_history/2` all give `("Patient", "1")`; anything else (urn:uuid:…, a
/// contained `#x`) is kept whole as an id with no type.
pub fn split_reference(r: &str) -> (String, String) {
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    if r.starts_with("urn:") || r.starts_with('#') {
        return (String::new(), r.to_owned());
    }
    let mut segs = r.rsplit('/');
    match (segs.next(), segs.next()) {
        (Some(id), Some(t)) if crate::ids::is_resource_type(t) => (t.to_owned(), id.to_owned()),
        _ => (String::new(), r.to_owned()),
    }
}

fn date_rows(param: &'static str, v: &Value, out: &mut Vec<IndexRow>) {
    let range = match v {
        Value::String(s) => parse_range(s),
        Value::Object(o) => {
            let lo = o
                .get("start")
                .and_then(Value::as_str)
                .and_then(parse_range)
                .map(|r| r.0);
            let hi = o
                .get("end")
                .and_then(Value::as_str)
                .and_then(parse_range)
                .map(|r| r.1);
            (lo.is_some() || hi.is_some()).then(|| (lo.unwrap_or(i64::MIN), hi.unwrap_or(i64::MAX)))
        }
        _ => None,
    };
    if let Some((lo, hi)) = range {
        out.push(IndexRow {
            param,
            sys: String::new(),
            val: String::new(),
            lo: Some(lo),
            hi: Some(hi),
        });
    }
}

/// Case- and accent-insensitive enough for the ASCII identifiers and names we index.
pub fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

/// All index rows for `resource` (whose type is `resource_type`), excluding `_lastUpdated`
/// which the writer adds from the version it assigns.
pub fn extract(resource_type: &str, resource: &Value) -> Vec<IndexRow> {
    let mut out = Vec::new();
    for def in PARAMS.iter().filter(|d| d.resource_type == resource_type) {
        for path in def.paths {
            for v in select(resource, path) {
                match def.kind {
                    Kind::Token => token_rows(def.name, v, &mut out),
                    Kind::Reference => {
                        if let Some(r) = v.get("reference").and_then(Value::as_str) {
                            let (t, id) = split_reference(r);
                            out.push(IndexRow {
                                param: def.name,
                                sys: t,
                                val: id,
                                lo: None,
                                hi: None,
                            });
                        }
                    }
                    Kind::Date => date_rows(def.name, v, &mut out),
                    Kind::String => {
                        if let Some(s) = v.as_str() {
                            out.push(IndexRow {
                                param: def.name,
                                sys: String::new(),
                                val: fold(s),
                                lo: None,
                                hi: None,
                            });
                        }
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| (a.param, &a.sys, &a.val, a.lo).cmp(&(b.param, &b.sys, &b.val, b.lo)));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn document_reference_rows() {
        let dr = json!({
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"},
            "identifier": [{"value": "abc"}],
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "82593-5"}]},
            "category": [{"coding": [{"system": "s", "code": "a"}, {"system": "s", "code": "b"}]}],
            "subject": {"reference": "http://h/fhir/Patient/p1/_history/3"},
            "date": "2021-05-01T10:00:00Z"
        });
        let rows = extract("DocumentReference", &dr);
        let has = |param: &str, sys: &str, val: &str| {
            rows.iter()
                .any(|r| r.param == param && r.sys == sys && r.val == val)
        };
        assert!(has("identifier", "urn:ietf:rfc:3986", "urn:uuid:1"));
        assert!(has("identifier", "", "abc"));
        assert!(has("status", "", "current"));
        assert!(has("type", "http://loinc.org", "82593-5"));
        assert!(has("category", "s", "a") && has("category", "s", "b"));
        assert!(has("patient", "Patient", "p1") && has("subject", "Patient", "p1"));
        assert!(rows.iter().any(|r| r.param == "date" && r.lo.is_some()));
    }

    #[test]
    fn extension_paths_and_depth() {
        let list = json!({"resourceType": "List", "extension": [
            {"url": "other", "valueCodeableConcept": {"coding": [{"code": "x"}]}},
            {"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType",
             "valueCodeableConcept": {"coding": [{"system": "d", "code": "ddcc"}]}}]});
        let rows = extract("List", &list);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].param, rows[0].sys.as_str(), rows[0].val.as_str()),
            ("designationType", "d", "ddcc")
        );
        // Pathologically nested arrays do not recurse without bound.
        let mut deep = json!("x");
        for _ in 0..200 {
            deep = Value::Array(vec![deep]);
        }
        let doc = json!({"status": deep});
        assert!(extract("DocumentReference", &doc).is_empty());
    }

    #[test]
    fn references() {
        assert_eq!(split_reference("Patient/1"), ("Patient".into(), "1".into()));
        assert_eq!(
            split_reference("urn:uuid:x"),
            ("".into(), "urn:uuid:x".into())
        );
        assert_eq!(split_reference("1"), ("".into(), "1".into()));
    }
}
