//! FHIR primitive formats and a small table of R4 complex datatypes, for the
//! types whose definitions are not loaded (the R4 core package is not shipped).

use serde_json::Value;

// Hand-written recognisers for the R4 primitive regexes (the lexical forms in the
// specification): they run for every primitive of every validation, where a
// general regex engine dominated the profile.

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` at the start; returns bytes consumed and precision (1..=3).
fn date_prefix(b: &[u8]) -> Option<(usize, u8)> {
    let y = digits(b, 0, 4)?;
    if y == 0 {
        return None;
    }
    if b.get(4) != Some(&b'-') {
        return Some((4, 1));
    }
    let m = digits(b, 5, 2)?;
    if !(1..=12).contains(&m) {
        return None;
    }
    if b.get(7) != Some(&b'-') {
        return Some((7, 2));
    }
    let d = digits(b, 8, 2)?;
    if !(1..=31).contains(&d) {
        return None;
    }
    Some((10, 3))
}

/// `hh:mm:ss(.f+)?` at `at`; returns the index after it.
fn time_at(b: &[u8], at: usize) -> Option<usize> {
    let h = digits(b, at, 2)?;
    let m = digits(b, at + 3, 2)?;
    let sec = digits(b, at + 6, 2)?;
    if b.get(at + 2) != Some(&b':') || b.get(at + 5) != Some(&b':') || h > 23 || m > 59 || sec > 60
    {
        return None;
    }
    let mut i = at + 8;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    Some(i)
}

/// `Z` or `(+|-)hh:mm` (00:00-13:59, 14:00) exactly from `at` to the end.
fn zone_at(b: &[u8], at: usize) -> bool {
    match b.get(at) {
        Some(b'Z') => b.len() == at + 1,
        Some(b'+') | Some(b'-') => {
            b.len() == at + 6
                && b.get(at + 3) == Some(&b':')
                && match (digits(b, at + 1, 2), digits(b, at + 4, 2)) {
                    (Some(h), Some(m)) => (h <= 13 && m <= 59) || (h == 14 && m == 0),
                    _ => false,
                }
        }
        _ => false,
    }
}

fn is_date(s: &str) -> bool {
    matches!(date_prefix(s.as_bytes()), Some((n, _)) if n == s.len())
}

fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    match date_prefix(b) {
        Some((n, _)) if n == b.len() => true,
        Some((10, 3)) if b.get(10) == Some(&b'T') => {
            time_at(b, 11).is_some_and(|end| zone_at(b, end))
        }
        _ => false,
    }
}

fn is_instant(s: &str) -> bool {
    let b = s.as_bytes();
    matches!(date_prefix(b), Some((10, 3)))
        && b.get(10) == Some(&b'T')
        && time_at(b, 11).is_some_and(|end| zone_at(b, end))
}

fn is_time(s: &str) -> bool {
    time_at(s.as_bytes(), 0) == Some(s.len())
}

fn is_code(s: &str) -> bool {
    // `[^\s]+( [^\s]+)*`: no leading/trailing/double spaces, no other whitespace.
    !s.is_empty()
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains("  ")
        && !s.chars().any(|c| c.is_whitespace() && c != ' ')
}

fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

fn is_uri(s: &str) -> bool {
    !s.chars().any(char::is_whitespace)
}

fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut parts = rest.split('.');
    let first_ok = parts.next().is_some_and(|p| matches!(p, "0" | "1" | "2"));
    let mut n = 0;
    let rest_ok = parts.all(|p| {
        n += 1;
        !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    });
    first_ok && n > 0 && rest_ok
}

fn is_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

fn is_base64(s: &str) -> bool {
    s.bytes().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') || c.is_ascii_whitespace()
    })
}

/// Is `code` a FHIR primitive type name (including FHIRPath System types)?
pub fn is_primitive(code: &str) -> bool {
    matches!(
        code,
        "boolean"
            | "integer"
            | "integer64"
            | "string"
            | "decimal"
            | "uri"
            | "url"
            | "canonical"
            | "base64Binary"
            | "instant"
            | "date"
            | "dateTime"
            | "time"
            | "code"
            | "oid"
            | "id"
            | "markdown"
            | "unsignedInt"
            | "positiveInt"
            | "uuid"
            | "xhtml"
    ) || code.starts_with("http://hl7.org/fhirpath/System.")
}

/// A primitive's problem: (message id, message).
pub type PrimitiveError = (&'static str, String);

/// Check a JSON value against a primitive type: JSON kind first, then the lexical form.
pub fn check_primitive(v: &Value, code: &str) -> Result<(), PrimitiveError> {
    let code = match code.strip_prefix("http://hl7.org/fhirpath/System.") {
        Some("String") => "string",
        Some("Boolean") => "boolean",
        Some("Integer") => "integer",
        Some("Decimal") => "decimal",
        Some("Date") => "date",
        Some("DateTime") => "dateTime",
        Some("Time") => "time",
        Some(_) => return Ok(()),
        None => code,
    };
    let wrong_kind = |want: &str| {
        Err((
            "TYPE_WRONG_JSON",
            format!(
                "expected a JSON {want} for FHIR type {code}, found {}",
                kind(v)
            ),
        ))
    };
    match code {
        "boolean" => {
            if !v.is_boolean() {
                return wrong_kind("boolean");
            }
            Ok(())
        }
        "integer" | "positiveInt" | "unsignedInt" => {
            let Some(n) = v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)) else {
                return if v.is_number() {
                    Err(("PRIMITIVE_FORMAT", format!("{v} is not a valid {code}")))
                } else {
                    wrong_kind("number")
                };
            };
            let ok = match code {
                "positiveInt" => (1..=i32::MAX as i64).contains(&n),
                "unsignedInt" => (0..=i32::MAX as i64).contains(&n),
                _ => (i32::MIN as i64..=i32::MAX as i64).contains(&n),
            };
            if ok {
                Ok(())
            } else {
                Err(("PRIMITIVE_FORMAT", format!("{n} is not a valid {code}")))
            }
        }
        "decimal" => {
            if !v.is_number() {
                return wrong_kind("number");
            }
            Ok(())
        }
        "integer64" => match v.as_str() {
            Some(s) if s.parse::<i64>().is_ok() => Ok(()),
            Some(s) => Err((
                "PRIMITIVE_FORMAT",
                format!("'{s}' is not a valid integer64"),
            )),
            None => wrong_kind("string"),
        },
        _ => {
            let Some(s) = v.as_str() else {
                return wrong_kind("string");
            };
            if s.is_empty() {
                return Err((
                    "PRIMITIVE_EMPTY",
                    format!("a {code} value must not be empty"),
                ));
            }
            let ok = match code {
                "date" => is_date(s),
                "dateTime" => is_date_time(s),
                "instant" => is_instant(s),
                "time" => is_time(s),
                "code" => is_code(s),
                "id" => is_id(s),
                "uri" | "url" | "canonical" => is_uri(s),
                "oid" => is_oid(s),
                "uuid" => is_uuid(s),
                "base64Binary" => is_base64(s),
                _ => true,
            };
            if ok {
                Ok(())
            } else {
                Err((
                    "PRIMITIVE_FORMAT",
                    format!("'{}' is not a valid {code}", truncate(s)),
                ))
            }
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 60 {
        let mut t: String = s.chars().take(60).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One element of a built-in datatype: name (`value[x]` for choices), allowed
/// type codes (`*` = any), min, whether repeating, required value set.
pub struct BuiltinElement {
    pub name: &'static str,
    pub types: &'static [&'static str],
    pub min: u32,
    pub many: bool,
    pub required_vs: Option<&'static str>,
}

const fn el(
    name: &'static str,
    types: &'static [&'static str],
    min: u32,
    many: bool,
    required_vs: Option<&'static str>,
) -> BuiltinElement {
    BuiltinElement {
        name,
        types,
        min,
        many,
        required_vs,
    }
}

macro_rules! vs {
    ($n:literal) => {
        Some(concat!("http://hl7.org/fhir/ValueSet/", $n))
    };
}

static CODING: &[BuiltinElement] = &[
    el("system", &["uri"], 0, false, None),
    el("version", &["string"], 0, false, None),
    el("code", &["code"], 0, false, None),
    el("display", &["string"], 0, false, None),
    el("userSelected", &["boolean"], 0, false, None),
];
static CODEABLE_CONCEPT: &[BuiltinElement] = &[
    el("coding", &["Coding"], 0, true, None),
    el("text", &["string"], 0, false, None),
];
static IDENTIFIER: &[BuiltinElement] = &[
    el("use", &["code"], 0, false, vs!("identifier-use")),
    el("type", &["CodeableConcept"], 0, false, None),
    el("system", &["uri"], 0, false, None),
    el("value", &["string"], 0, false, None),
    el("period", &["Period"], 0, false, None),
    el("assigner", &["Reference"], 0, false, None),
];
static REFERENCE: &[BuiltinElement] = &[
    el("reference", &["string"], 0, false, None),
    el("type", &["uri"], 0, false, None),
    el("identifier", &["Identifier"], 0, false, None),
    el("display", &["string"], 0, false, None),
];
static PERIOD: &[BuiltinElement] = &[
    el("start", &["dateTime"], 0, false, None),
    el("end", &["dateTime"], 0, false, None),
];
static QUANTITY: &[BuiltinElement] = &[
    el("value", &["decimal"], 0, false, None),
    el(
        "comparator",
        &["code"],
        0,
        false,
        vs!("quantity-comparator"),
    ),
    el("unit", &["string"], 0, false, None),
    el("system", &["uri"], 0, false, None),
    el("code", &["code"], 0, false, None),
];
static HUMAN_NAME: &[BuiltinElement] = &[
    el("use", &["code"], 0, false, vs!("name-use")),
    el("text", &["string"], 0, false, None),
    el("family", &["string"], 0, false, None),
    el("given", &["string"], 0, true, None),
    el("prefix", &["string"], 0, true, None),
    el("suffix", &["string"], 0, true, None),
    el("period", &["Period"], 0, false, None),
];
static EXTENSION: &[BuiltinElement] = &[
    el("url", &["uri"], 1, false, None),
    el("value[x]", &["*"], 0, false, None),
];
static META: &[BuiltinElement] = &[
    el("versionId", &["id"], 0, false, None),
    el("lastUpdated", &["instant"], 0, false, None),
    el("source", &["uri"], 0, false, None),
    el("profile", &["canonical"], 0, true, None),
    el("security", &["Coding"], 0, true, None),
    el("tag", &["Coding"], 0, true, None),
];
static NARRATIVE: &[BuiltinElement] = &[
    el("status", &["code"], 1, false, vs!("narrative-status")),
    el("div", &["xhtml"], 1, false, None),
];
static ATTACHMENT: &[BuiltinElement] = &[
    el("contentType", &["code"], 0, false, None),
    el("language", &["code"], 0, false, None),
    el("data", &["base64Binary"], 0, false, None),
    el("url", &["url"], 0, false, None),
    el("size", &["unsignedInt"], 0, false, None),
    el("hash", &["base64Binary"], 0, false, None),
    el("title", &["string"], 0, false, None),
    el("creation", &["dateTime"], 0, false, None),
];
static CONTACT_POINT: &[BuiltinElement] = &[
    el("system", &["code"], 0, false, vs!("contact-point-system")),
    el("value", &["string"], 0, false, None),
    el("use", &["code"], 0, false, vs!("contact-point-use")),
    el("rank", &["positiveInt"], 0, false, None),
    el("period", &["Period"], 0, false, None),
];
static ADDRESS: &[BuiltinElement] = &[
    el("use", &["code"], 0, false, vs!("address-use")),
    el("type", &["code"], 0, false, vs!("address-type")),
    el("text", &["string"], 0, false, None),
    el("line", &["string"], 0, true, None),
    el("city", &["string"], 0, false, None),
    el("district", &["string"], 0, false, None),
    el("state", &["string"], 0, false, None),
    el("postalCode", &["string"], 0, false, None),
    el("country", &["string"], 0, false, None),
    el("period", &["Period"], 0, false, None),
];
static ANNOTATION: &[BuiltinElement] = &[
    el("author[x]", &["Reference", "string"], 0, false, None),
    el("time", &["dateTime"], 0, false, None),
    el("text", &["markdown"], 1, false, None),
];

/// The elements of a known complex datatype (without `id` and `extension`, which
/// every datatype has).
pub fn builtin_datatype(code: &str) -> Option<&'static [BuiltinElement]> {
    Some(match code {
        "Coding" => CODING,
        "CodeableConcept" => CODEABLE_CONCEPT,
        "Identifier" => IDENTIFIER,
        "Reference" => REFERENCE,
        "Period" => PERIOD,
        "Quantity" | "SimpleQuantity" | "Age" | "Duration" | "Count" | "Distance"
        | "MoneyQuantity" => QUANTITY,
        "HumanName" => HUMAN_NAME,
        "Extension" => EXTENSION,
        "Meta" => META,
        "Narrative" => NARRATIVE,
        "Attachment" => ATTACHMENT,
        "ContactPoint" => CONTACT_POINT,
        "Address" => ADDRESS,
        "Annotation" => ANNOTATION,
        _ => return None,
    })
}

/// Every type name that may follow a choice prefix (`value` + `String`), for
/// `value[x]` elements that allow any type.
pub fn is_known_type(code: &str) -> bool {
    is_primitive(code)
        || builtin_datatype(code).is_some()
        || matches!(
            code,
            "Money"
                | "Range"
                | "Ratio"
                | "SampledData"
                | "Signature"
                | "Timing"
                | "ContactDetail"
                | "Contributor"
                | "DataRequirement"
                | "Expression"
                | "ParameterDefinition"
                | "RelatedArtifact"
                | "TriggerDefinition"
                | "UsageContext"
                | "Dosage"
        )
}

/// `String` -> `string`, `DateTime` -> `dateTime`, `CodeableConcept` unchanged.
pub fn type_from_suffix(suffix: &str) -> String {
    let lower = {
        let mut c = suffix.chars();
        match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    };
    if is_primitive(&lower) {
        lower
    } else {
        suffix.to_string()
    }
}

/// `dateTime` -> `DateTime`: the suffix a type gives a choice element.
pub fn suffix_of(code: &str) -> String {
    let code = match code.strip_prefix("http://hl7.org/fhirpath/System.") {
        Some(s) => return s.to_string(),
        None => code,
    };
    let mut c = code.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Is `t` an R4 resource type? (From the FHIRPath crate's R4 model, the one list.)
pub fn is_r4_resource_type(t: &str) -> bool {
    fhirpath::model::r4().is_resource_type(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        let ok = |v: Value, t: &str| check_primitive(&v, t).is_ok();
        assert!(ok(json!("2021-06-03"), "date"));
        assert!(ok(json!("2021"), "date"));
        assert!(!ok(json!("2021-13-01"), "date"));
        assert!(!ok(json!("03/06/2021"), "date"));
        assert!(ok(json!("2021-06-03T13:28:17-05:00"), "dateTime"));
        assert!(!ok(json!("2021-06-03T13:28:17"), "dateTime"));
        assert!(ok(json!("2021-06-03T13:28:17.123Z"), "instant"));
        assert!(!ok(json!("2021-06-03"), "instant"));
        assert!(ok(json!("12:00:00"), "time"));
        assert!(ok(json!("abc-1.2"), "id"));
        assert!(!ok(json!("abc_1"), "id"));
        assert!(!ok(json!("a  b"), "code"));
        assert!(ok(json!(1), "positiveInt"));
        assert!(!ok(json!(0), "positiveInt"));
        assert!(ok(json!(0), "unsignedInt"));
        assert!(!ok(json!(-1), "unsignedInt"));
        assert!(!ok(json!("1"), "integer"));
        assert!(!ok(json!(1.5), "integer"));
        assert!(ok(json!(1.5), "decimal"));
        assert!(!ok(json!("true"), "boolean"));
        assert!(!ok(json!(""), "string"));
        assert!(ok(json!("x"), "http://hl7.org/fhirpath/System.String"));
        assert!(!ok(json!("has space"), "uri"));
        assert!(ok(json!("urn:oid:1.2.3"), "oid"));
        assert!(!ok(json!("urn:oid:3.2"), "oid"));
        assert!(!ok(json!("urn:oid:1.02"), "oid"));
        assert!(ok(
            json!("urn:uuid:5a3b7c1e-0000-4000-8000-000000000001"),
            "uuid"
        ));
        assert!(!ok(
            json!("urn:uuid:5A3B7C1E-0000-4000-8000-000000000001"),
            "uuid"
        ));
        assert!(ok(json!("2021-06-03T13:28:17+14:00"), "dateTime"));
        assert!(!ok(json!("2021-06-03T13:28:17+14:30"), "dateTime"));
        assert!(!ok(json!("2021-06-03T24:00:00Z"), "dateTime"));
        assert!(ok(json!("2021-06-03T23:59:60Z"), "instant"));
        assert!(!ok(json!("2021-06-03T23:59:59."), "time"));
        assert!(ok(json!("23:59:59.5"), "time"));
        assert!(!ok(json!("0000"), "date"));
        assert!(ok(json!("2021-06"), "date"));
        assert!(!ok(json!("2021-6"), "date"));
        assert!(!ok(json!("2021-06-03T10:00Z"), "dateTime"));
        assert!(ok(json!("a b"), "code"));
        assert!(!ok(json!(" a"), "code"));
        assert!(!ok(json!("a\tb"), "code"));
        assert!(!ok(json!("x".repeat(65)), "id"));
        assert!(ok(json!("aGVsbG8=\n"), "base64Binary"));
    }

    #[test]
    fn suffixes() {
        assert_eq!(type_from_suffix("DateTime"), "dateTime");
        assert_eq!(type_from_suffix("CodeableConcept"), "CodeableConcept");
        assert_eq!(suffix_of("positiveInt"), "PositiveInt");
        assert_eq!(suffix_of("http://hl7.org/fhirpath/System.String"), "String");
    }
}
