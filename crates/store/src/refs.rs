//! `urn:uuid:` reference resolution for transactions (ITI-65): every reference to an
//! entry's fullUrl becomes that entry's `Type/id`; an unresolved `urn:uuid:` reference is
//! a client error because storing it would leave a dangling link in the registry.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::StoreError;

/// Nesting deeper than this is refused rather than walked (stack safety on hostile input).
pub const MAX_DEPTH: usize = 64;

/// Rewrites, in place, `reference` values and Attachment-style `url` values that name a
/// fullUrl in `map`. `urn:uuid:` references that are in neither `map` nor the entries of
/// a Bundle that contains them give [`StoreError::BrokenReference`]. A stored Bundle (a
/// DDCC document, whether the value itself or nested in it) keeps its internal
/// references: they name its own entries' fullUrls, which FHIR resolves within the
/// Bundle, not against the transaction.
pub fn rewrite(value: &mut Value, map: &HashMap<String, String>) -> Result<(), StoreError> {
    walk(value, map, &HashSet::new(), 0)
}

fn walk(
    value: &mut Value,
    map: &HashMap<String, String>,
    local: &HashSet<String>,
    depth: usize,
) -> Result<(), StoreError> {
    if depth > MAX_DEPTH {
        return Err(StoreError::InvalidResource(format!(
            "nesting deeper than {MAX_DEPTH}"
        )));
    }
    match value {
        Value::Array(items) => {
            for item in items {
                walk(item, map, local, depth + 1)?;
            }
        }
        Value::Object(obj) => {
            // A Bundle (e.g. the DDCC document) defines its own fullUrls.
            let nested_local;
            let local = if obj.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                let mut l = local.clone();
                if let Some(Value::Array(entries)) = obj.get("entry") {
                    for e in entries {
                        if let Some(u) = e.get("fullUrl").and_then(Value::as_str) {
                            l.insert(u.to_owned());
                        }
                    }
                }
                nested_local = l;
                &nested_local
            } else {
                local
            };
            for (k, v) in obj.iter_mut() {
                if let Value::String(s) = v {
                    if k == "reference" || k == "url" {
                        if let Some(target) = map.get(s.as_str()) {
                            if !local.contains(s.as_str()) {
                                *s = target.clone();
                            }
                        } else if k == "reference"
                            && s.starts_with("urn:uuid:")
                            && !local.contains(s.as_str())
                        {
                            return Err(StoreError::BrokenReference(s.chars().take(80).collect()));
                        }
                    }
                } else {
                    walk(v, map, local, depth + 1)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Refuses values nested deeper than [`MAX_DEPTH`], so no later recursive walk (index
/// extraction, encoding) meets unbounded depth.
pub fn check_depth(value: &Value) -> Result<(), StoreError> {
    fn depth_ok(v: &Value, d: usize) -> bool {
        if d > MAX_DEPTH {
            return false;
        }
        match v {
            Value::Array(a) => a.iter().all(|x| depth_ok(x, d + 1)),
            Value::Object(o) => o.values().all(|x| depth_ok(x, d + 1)),
            _ => true,
        }
    }
    if depth_ok(value, 0) {
        Ok(())
    } else {
        Err(StoreError::InvalidResource(format!(
            "nesting deeper than {MAX_DEPTH}"
        )))
    }
}

/// Replaces every string equal to a fullUrl in `map` (used for the caller's idempotency
/// result, which may name entries by fullUrl before their ids exist).
pub fn rewrite_all_strings(value: &mut Value, map: &HashMap<String, String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::String(s) => {
            if let Some(t) = map.get(s.as_str()) {
                *s = t.clone();
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|v| rewrite_all_strings(v, map, depth + 1)),
        Value::Object(o) => o
            .values_mut()
            .for_each(|v| rewrite_all_strings(v, map, depth + 1)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rewrites_and_detects_broken() {
        let map: HashMap<String, String> = [
            ("urn:uuid:b".to_owned(), "Binary/1".to_owned()),
            ("urn:uuid:p".to_owned(), "Patient/2".to_owned()),
        ]
        .into();
        let mut dr = json!({"resourceType": "DocumentReference",
            "masterIdentifier": {"value": "urn:uuid:not-a-reference"},
            "subject": {"reference": "urn:uuid:p"},
            "content": [{"attachment": {"url": "urn:uuid:b"}}]});
        rewrite(&mut dr, &map).unwrap();
        assert_eq!(dr["subject"]["reference"], "Patient/2");
        assert_eq!(dr["content"][0]["attachment"]["url"], "Binary/1");
        assert_eq!(dr["masterIdentifier"]["value"], "urn:uuid:not-a-reference");
        let mut bad = json!({"subject": {"reference": "urn:uuid:nowhere"}});
        assert!(matches!(
            rewrite(&mut bad, &map),
            Err(StoreError::BrokenReference(_))
        ));
    }

    #[test]
    fn stored_bundle_resolves_against_its_own_entries() {
        let map: HashMap<String, String> =
            [("urn:uuid:p".to_owned(), "Patient/2".to_owned())].into();
        let mut doc = json!({"resourceType": "Bundle", "type": "document", "entry": [
            {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition",
                "subject": {"reference": "urn:uuid:in"}, "author": [{"reference": "urn:uuid:p"}]}},
            {"fullUrl": "urn:uuid:in", "resource": {"resourceType": "Patient"}}]});
        rewrite(&mut doc, &map).unwrap();
        let composition = &doc["entry"][0]["resource"];
        assert_eq!(composition["subject"]["reference"], "urn:uuid:in");
        // A name the Bundle does not define still resolves against the transaction …
        assert_eq!(composition["author"][0]["reference"], "Patient/2");
        // … and one neither defines is broken.
        let mut bad = json!({"resourceType": "Bundle", "type": "document", "entry": [
            {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition",
                "subject": {"reference": "urn:uuid:elsewhere"}}}]});
        assert!(matches!(
            rewrite(&mut bad, &map),
            Err(StoreError::BrokenReference(_))
        ));
    }

    #[test]
    fn nested_bundle_keeps_internal_references() {
        let map: HashMap<String, String> =
            [("urn:uuid:p".to_owned(), "Patient/2".to_owned())].into();
        let mut doc = json!({"resourceType": "Bundle", "type": "document", "entry": [
            {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition", "subject": {"reference": "urn:uuid:in"}}},
            {"fullUrl": "urn:uuid:in", "resource": {"resourceType": "Patient"}}]});
        let mut outer = json!({"wrapper": doc.take()});
        rewrite(&mut outer, &map).unwrap();
        assert_eq!(
            outer["wrapper"]["entry"][0]["resource"]["subject"]["reference"],
            "urn:uuid:in"
        );
    }
}
