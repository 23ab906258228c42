//! CQL runtime values and the operators' comparison semantics.
//!
//! Equality, equivalence and ordering follow the reference engine (cql-execution
//! 3.3.2) where the CQL specification leaves room: `Equal` on lists compares element
//! by element (two empty lists are equal; a null element makes the result null);
//! structured values compare field by field, a field null on one side only making the
//! result null; values of different kinds are unequal, not null.

use fhirpath::calendar::{civil_from_days, days_from_civil};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A System.Code.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    pub code: Option<String>,
    pub system: Option<String>,
    pub version: Option<String>,
    pub display: Option<String>,
}

/// A System.Concept.
#[derive(Debug, Clone, PartialEq)]
pub struct Concept {
    pub codes: Vec<Code>,
    pub display: Option<String>,
}

/// A FHIR element or resource as the data model exposes it: its FHIR type (an R4 type
/// name such as `positiveInt` or `CodeableConcept`, or a backbone path such as
/// `Immunization.protocolApplied`) and its JSON. Primitives are objects with a `value`
/// key, merged with their `_name` sibling (id, extensions) as FHIR JSON splits them.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirValue {
    pub type_name: Arc<str>,
    pub json: Value,
}

/// A date or date-time with the precision it was written with. `Date` values have no
/// time components; an absent offset means "the evaluation's offset" (UTC here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqlDateTime {
    /// year, month, day, hour, minute, second, millisecond; `None` past the precision.
    pub parts: [Option<u32>; 7],
    /// Offset from UTC in minutes.
    pub offset_minutes: Option<i32>,
    pub is_date: bool,
}

/// A value set reference after resolution: its canonical URL (and version, if pinned).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSetRef {
    pub id: String,
    pub version: Option<String>,
}

/// A CQL runtime value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum CqlValue {
    #[default]
    Null,
    Boolean(bool),
    Integer(i64),
    Decimal(f64),
    String(String),
    Date(CqlDateTime),
    DateTime(CqlDateTime),
    Code(Code),
    Concept(Concept),
    List(Vec<CqlValue>),
    Tuple(BTreeMap<String, CqlValue>),
    Fhir(FhirValue),
    ValueSet(ValueSetRef),
    Interval(Box<Interval>),
}

/// An interval of ordered values (integers, decimals, dates); null bounds are unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub low: CqlValue,
    pub high: CqlValue,
    pub low_closed: bool,
    pub high_closed: bool,
}

impl CqlValue {
    pub fn is_null(&self) -> bool {
        matches!(self, CqlValue::Null)
    }

    pub fn from_bool(b: Option<bool>) -> CqlValue {
        b.map_or(CqlValue::Null, CqlValue::Boolean)
    }

    /// The boolean for a rule verdict: `Some` only for a Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            CqlValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            CqlValue::Integer(i) => Some(*i as f64),
            CqlValue::Decimal(d) => Some(*d),
            _ => None,
        }
    }

    /// The resource's `resourceType`, when this is a FHIR resource.
    pub fn resource_type(&self) -> Option<&str> {
        match self {
            CqlValue::Fhir(f) => f.json.get("resourceType").and_then(Value::as_str),
            _ => None,
        }
    }

    /// The canonical JSON form shared with the reference-engine runner
    /// (`tests/tools/cql/oracle.cjs`): scalars as JSON, lists as arrays, resources as
    /// `{"@type": "FHIR.<type>", "id"}`, other FHIR elements with their JSON, clinical
    /// types tagged with `@type`.
    pub fn to_json(&self) -> Value {
        match self {
            CqlValue::Null => Value::Null,
            CqlValue::Boolean(b) => Value::Bool(*b),
            CqlValue::Integer(i) => json!(i),
            CqlValue::Decimal(d) => {
                // JavaScript has one number type: an integral decimal prints as an integer.
                if d.fract() == 0.0 && d.abs() < 9.0e15 {
                    json!(*d as i64)
                } else {
                    json!(d)
                }
            }
            CqlValue::String(s) => Value::String(s.clone()),
            CqlValue::Date(d) => json!({"@type": "Date", "value": d.to_string()}),
            CqlValue::DateTime(d) => json!({"@type": "DateTime", "value": d.to_string()}),
            CqlValue::Code(c) => code_json(c),
            CqlValue::Concept(c) => json!({
                "@type": "Concept",
                "codes": c.codes.iter().map(code_json).collect::<Vec<_>>(),
                "display": c.display,
            }),
            CqlValue::List(items) => Value::Array(items.iter().map(CqlValue::to_json).collect()),
            CqlValue::Tuple(t) => {
                let mut m = Map::new();
                m.insert("@type".into(), json!("Tuple"));
                for (k, v) in t {
                    m.insert(k.clone(), v.to_json());
                }
                Value::Object(m)
            }
            CqlValue::Fhir(f) => match f.json.get("resourceType").and_then(Value::as_str) {
                Some(rt) => json!({"@type": format!("FHIR.{rt}"), "id": f.json.get("id")}),
                None => json!({"@type": format!("FHIR.{}", f.type_name), "json": f.json}),
            },
            CqlValue::ValueSet(v) => json!({"@type": "ValueSet", "id": v.id, "version": v.version}),
            CqlValue::Interval(i) => json!({
                "@type": "Interval",
                "low": i.low.to_json(),
                "high": i.high.to_json(),
                "lowClosed": i.low_closed,
                "highClosed": i.high_closed,
            }),
        }
    }
}

fn code_json(c: &Code) -> Value {
    json!({"@type": "Code", "code": c.code, "system": c.system, "version": c.version, "display": c.display})
}

impl std::fmt::Display for CqlDateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.parts;
        if let Some(y) = p[0] {
            write!(f, "{y:04}")?;
        }
        if let Some(m) = p[1] {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = p[2] {
            write!(f, "-{d:02}")?;
        }
        if let Some(h) = p[3] {
            write!(f, "T{h:02}")?;
        }
        if let Some(mi) = p[4] {
            write!(f, ":{mi:02}")?;
        }
        if let Some(s) = p[5] {
            write!(f, ":{s:02}")?;
        }
        if let Some(ms) = p[6] {
            write!(f, ".{ms:03}")?;
        }
        if !self.is_date {
            if let Some(o) = self.offset_minutes {
                let sign = if o < 0 { '-' } else { '+' };
                write!(f, "{sign}{:02}:{:02}", o.abs() / 60, o.abs() % 60)?;
            }
        }
        Ok(())
    }
}

impl CqlDateTime {
    /// Parses FHIR `date` / `dateTime` / `instant` text (`YYYY`, `YYYY-MM`,
    /// `YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`). `None` for anything else.
    pub fn parse(text: &str, is_date: bool) -> Option<CqlDateTime> {
        let num = |s: &str, len: usize| -> Option<u32> {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (date_part, time_part) = match text.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (text, None),
        };
        if is_date && time_part.is_some() {
            return None;
        }
        let mut parts = [None; 7];
        let mut it = date_part.split('-');
        parts[0] = Some(num(it.next()?, 4)?);
        if let Some(m) = it.next() {
            parts[1] = Some(num(m, 2).filter(|m| (1..=12).contains(m))?);
        }
        if let Some(d) = it.next() {
            parts[2] = Some(num(d, 2).filter(|d| (1..=31).contains(d))?);
        }
        if it.next().is_some() {
            return None;
        }
        let mut offset = None;
        if let Some(t) = time_part {
            parts[2]?;
            let (clock, off) = if let Some(c) = t.strip_suffix('Z') {
                (c, Some(0))
            } else if let Some(i) = t.rfind(['+', '-']) {
                let (c, o) = t.split_at(i);
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let (oh, om) = o[1..].split_once(':')?;
                (
                    c,
                    Some(sign * (num(oh, 2)? as i32 * 60 + num(om, 2)? as i32)),
                )
            } else {
                (t, None)
            };
            offset = off;
            let (hms, frac) = match clock.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (clock, None),
            };
            let mut hit = hms.split(':');
            parts[3] = Some(num(hit.next()?, 2).filter(|h| *h < 24)?);
            if let Some(mi) = hit.next() {
                parts[4] = Some(num(mi, 2).filter(|m| *m < 60)?);
            }
            if let Some(s) = hit.next() {
                parts[5] = Some(num(s, 2).filter(|s| *s < 60)?);
            }
            if hit.next().is_some() {
                return None;
            }
            if let Some(f) = frac {
                if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) || parts[5].is_none() {
                    return None;
                }
                let ms: String = f.chars().chain("000".chars()).take(3).collect();
                parts[6] = ms.parse().ok();
            }
        }
        Some(CqlDateTime {
            parts,
            offset_minutes: offset,
            is_date,
        })
    }

    /// From components (a CQL `Date`/`DateTime` constructor): each must lie in its
    /// range and none may follow a missing one.
    pub fn from_parts(
        parts: [Option<u32>; 7],
        offset_minutes: Option<i32>,
        is_date: bool,
    ) -> Option<CqlDateTime> {
        let limits = [
            (1, 9999),
            (1, 12),
            (1, 31),
            (0, 23),
            (0, 59),
            (0, 59),
            (0, 999),
        ];
        let n = parts.iter().take_while(|p| p.is_some()).count();
        if n == 0 || parts[n..].iter().any(Option::is_some) || (is_date && n > 3) {
            return None;
        }
        for (p, (lo, hi)) in parts.iter().zip(limits) {
            if let Some(v) = p {
                if *v < lo || *v > hi {
                    return None;
                }
            }
        }
        Some(CqlDateTime {
            parts,
            offset_minutes: if is_date { None } else { offset_minutes },
            is_date,
        })
    }

    /// Comparison up to a precision (`Year` ... `Millisecond`; `None` = the finer of
    /// the two). Null (`Ok(None)`) when a component needed is missing on either side.
    pub fn compare_at(
        &self,
        other: &CqlDateTime,
        precision: Option<&str>,
    ) -> Result<Option<Ordering>, crate::CqlError> {
        let Some(p) = precision else {
            return Ok(self.compare(other));
        };
        let k = match p.to_ascii_lowercase().as_str() {
            "year" => 1,
            "month" => 2,
            "day" => 3,
            "hour" => 4,
            "minute" => 5,
            "second" => 6,
            "millisecond" => 7,
            other => {
                return Err(crate::CqlError::Unsupported(format!("precision {other}")));
            }
        };
        // As the reference engine and the CQL guidance: offsets are reconciled only for
        // comparisons finer than a day; at day precision and coarser each value's
        // own calendar fields count.
        let (a, b) = if k <= 3 {
            (
                self.parts.map(|p| p.map(i64::from)),
                other.parts.map(|p| p.map(i64::from)),
            )
        } else {
            (self.normalised(), other.normalised())
        };
        for i in 0..k {
            match (a[i], b[i]) {
                (Some(x), Some(y)) if x != y => return Ok(Some(x.cmp(&y))),
                (Some(_), Some(_)) => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(Ordering::Equal))
    }

    fn precision(&self) -> usize {
        self.parts.iter().take_while(|p| p.is_some()).count()
    }

    /// Components normalised to UTC where the value has a time and an offset.
    fn normalised(&self) -> [Option<i64>; 7] {
        let mut out = self.parts.map(|p| p.map(i64::from));
        if self.is_date || self.parts[4].is_none() {
            return out;
        }
        let Some(off) = self.offset_minutes else {
            return out;
        };
        // Shift by the offset on a minute count, then split back into fields.
        let (Some(y), Some(mo), Some(d), Some(h), Some(mi)) =
            (out[0], out[1], out[2], out[3], out[4])
        else {
            return out;
        };
        let days = days_from_civil(y, mo, d);
        let total = days * 1440 + h * 60 + mi - i64::from(off);
        let (nd, rem) = (total.div_euclid(1440), total.rem_euclid(1440));
        let (ny, nm, ndd) = civil_from_days(nd);
        out[0] = Some(ny);
        out[1] = Some(nm);
        out[2] = Some(ndd);
        out[3] = Some(rem / 60);
        out[4] = Some(rem % 60);
        out
    }

    /// CQL comparison: `None` when the precisions leave the order uncertain.
    pub fn compare(&self, other: &CqlDateTime) -> Option<Ordering> {
        let a = self.normalised();
        let b = other.normalised();
        let common = self.precision().min(other.precision());
        for i in 0..common {
            match a[i].cmp(&b[i]) {
                Ordering::Equal => {}
                o => return Some(o),
            }
        }
        if self.precision() == other.precision() {
            Some(Ordering::Equal)
        } else {
            None
        }
    }
}

/// CQL `=`: `None` is null.
pub fn equal(a: &CqlValue, b: &CqlValue) -> Option<bool> {
    use CqlValue as V;
    match (a, b) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Boolean(x), V::Boolean(y)) => Some(x == y),
        (V::String(x), V::String(y)) => Some(x == y),
        (V::Integer(_) | V::Decimal(_), V::Integer(_) | V::Decimal(_)) => {
            Some(a.as_number() == b.as_number())
        }
        (V::Date(x), V::Date(y)) | (V::DateTime(x), V::DateTime(y)) => {
            x.compare(y).map(|o| o == Ordering::Equal)
        }
        (V::Code(x), V::Code(y)) => fields_equal(&code_fields(x), &code_fields(y), equal),
        (V::Concept(x), V::Concept(y)) => {
            fields_equal(&concept_fields(x), &concept_fields(y), equal)
        }
        (V::List(x), V::List(y)) => {
            if x.iter().chain(y.iter()).any(CqlValue::is_null) {
                return None;
            }
            Some(x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q) == Some(true)))
        }
        (V::Tuple(x), V::Tuple(y)) => {
            let xs: Vec<_> = x.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let ys: Vec<_> = y.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            fields_equal(&xs, &ys, equal)
        }
        (V::Fhir(x), V::Fhir(y)) => {
            if x.type_name != y.type_name {
                return Some(false);
            }
            json_equal(&x.json, &y.json)
        }
        (V::ValueSet(x), V::ValueSet(y)) => Some(x == y),
        _ => Some(false),
    }
}

/// CQL `~`: never null.
pub fn equivalent(a: &CqlValue, b: &CqlValue) -> bool {
    use CqlValue as V;
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Null, _) | (_, V::Null) => false,
        (V::Code(_) | V::Concept(_), _) => codes_match(&code_list(b), &code_list(a)),
        (V::String(x), V::String(y)) => {
            let norm = |s: &str| -> String {
                s.chars()
                    .map(|c| if c.is_whitespace() { ' ' } else { c })
                    .flat_map(char::to_lowercase)
                    .collect()
            };
            norm(x) == norm(y)
        }
        (V::List(x), V::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equivalent(p, q))
        }
        (V::Tuple(x), V::Tuple(y)) => {
            let xs: Vec<_> = x.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let ys: Vec<_> = y.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            fields_equal(&xs, &ys, |p, q| Some(equivalent(p, q))) == Some(true)
        }
        _ => equal(a, b) == Some(true),
    }
}

/// `<`-style ordering for numbers, strings and date-times; `None` otherwise.
pub fn compare(a: &CqlValue, b: &CqlValue) -> Option<Ordering> {
    use CqlValue as V;
    match (a, b) {
        (V::Integer(_) | V::Decimal(_), V::Integer(_) | V::Decimal(_)) => {
            a.as_number()?.partial_cmp(&b.as_number()?)
        }
        (V::String(x), V::String(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        (V::Date(x), V::Date(y)) | (V::DateTime(x), V::DateTime(y)) => x.compare(y),
        _ => None,
    }
}

fn code_fields(c: &Code) -> Vec<(&'static str, CqlValue)> {
    let s = |o: &Option<String>| o.clone().map_or(CqlValue::Null, CqlValue::String);
    vec![
        ("code", s(&c.code)),
        ("display", s(&c.display)),
        ("system", s(&c.system)),
        ("version", s(&c.version)),
    ]
}

fn concept_fields(c: &Concept) -> Vec<(&'static str, CqlValue)> {
    vec![
        (
            "codes",
            CqlValue::List(c.codes.iter().cloned().map(CqlValue::Code).collect()),
        ),
        (
            "display",
            c.display.clone().map_or(CqlValue::Null, CqlValue::String),
        ),
    ]
}

/// Field-by-field comparison: both null is a match, null on one side makes the
/// result null (unless another field differs).
fn fields_equal<K: PartialEq>(
    a: &[(K, CqlValue)],
    b: &[(K, CqlValue)],
    cmp: impl Fn(&CqlValue, &CqlValue) -> Option<bool>,
) -> Option<bool> {
    if a.len() != b.len() || a.iter().zip(b).any(|((ka, _), (kb, _))| ka != kb) {
        return Some(false);
    }
    let mut unknown = false;
    for ((_, x), (_, y)) in a.iter().zip(b) {
        if x.is_null() && y.is_null() {
            continue;
        }
        match cmp(x, y) {
            Some(true) => {}
            Some(false) => return Some(false),
            None => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(true)
    }
}

/// Structural equality of FHIR JSON with the same null rules as `fields_equal`.
fn json_equal(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut unknown = false;
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                match (x.get(k), y.get(k)) {
                    (None | Some(Value::Null), None | Some(Value::Null)) => {}
                    (None | Some(Value::Null), _) | (_, None | Some(Value::Null)) => unknown = true,
                    (Some(p), Some(q)) => match json_equal(p, q) {
                        Some(true) => {}
                        Some(false) => return Some(false),
                        None => unknown = true,
                    },
                }
            }
            if unknown {
                None
            } else {
                Some(true)
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.iter().chain(y).any(Value::is_null) {
                return None;
            }
            Some(x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q) == Some(true)))
        }
        (Value::Number(x), Value::Number(y)) => Some(x.as_f64() == y.as_f64()),
        _ => Some(a == b),
    }
}

/// The codes a value stands for in a terminology match: a Code, a Concept's codes, a
/// list of either (flattened). Strings match by code alone.
pub(crate) fn code_list(v: &CqlValue) -> Vec<CodeOrString> {
    match v {
        CqlValue::Code(c) => vec![CodeOrString::Code(c.clone())],
        CqlValue::Concept(c) => c.codes.iter().cloned().map(CodeOrString::Code).collect(),
        CqlValue::String(s) => vec![CodeOrString::String(s.clone())],
        CqlValue::List(items) => items.iter().flat_map(code_list).collect(),
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone)]
pub(crate) enum CodeOrString {
    Code(Code),
    String(String),
}

/// Does any of `left` match any code in `right` (same code and system)?
pub(crate) fn codes_match(left: &[CodeOrString], right: &[CodeOrString]) -> bool {
    left.iter().any(|l| {
        right.iter().any(|r| match (l, r) {
            (CodeOrString::String(s), CodeOrString::Code(c)) => c.code.as_deref() == Some(s),
            (CodeOrString::Code(a), CodeOrString::Code(b)) => {
                a.code == b.code && a.system == b.system
            }
            _ => false,
        })
    })
}

/// A key for `distinct`: values equal under the reference engine's normalisation
/// collapse to one key.
pub(crate) fn distinct_key(v: &CqlValue) -> String {
    match v {
        CqlValue::Integer(i) => format!("n:{}", *i as f64),
        CqlValue::Decimal(d) => format!("n:{d}"),
        CqlValue::Fhir(f) => format!("f:{}:{}", f.type_name, canonical(&f.json)),
        CqlValue::List(items) => {
            let inner: Vec<String> = items.iter().map(distinct_key).collect();
            format!("l:[{}]", inner.join(","))
        }
        other => format!("v:{}", canonical(&other.to_json())),
    }
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| !m[*k].is_null()).collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_parse_and_compare_with_precision() {
        let a = CqlDateTime::parse("2021-05-06", false).unwrap();
        let b = CqlDateTime::parse("2021-05", false).unwrap();
        let c = CqlDateTime::parse("2021-05-06T23:30:00-02:00", false).unwrap();
        let d = CqlDateTime::parse("2021-05-07T01:30:00Z", false).unwrap();
        assert_eq!(a.compare(&b), None);
        assert_eq!(c.compare(&d), Some(Ordering::Equal));
        assert_eq!(a.to_string(), "2021-05-06");
        for bad in [
            "2021-13",
            "21-05-06",
            "2021-05-06T25:00",
            "2021-05-06T10:00:00.",
            "x",
        ] {
            assert_eq!(CqlDateTime::parse(bad, false), None, "{bad}");
        }
        assert_eq!(CqlDateTime::parse("2021-05-06T10:00", true), None);
    }

    #[test]
    fn list_equality_follows_the_reference_engine() {
        let l = |v: Vec<CqlValue>| CqlValue::List(v);
        assert_eq!(equal(&l(vec![]), &l(vec![])), Some(true));
        assert_eq!(
            equal(
                &l(vec![CqlValue::Integer(1)]),
                &l(vec![CqlValue::Decimal(1.0)])
            ),
            Some(true)
        );
        assert_eq!(
            equal(&l(vec![CqlValue::Null]), &l(vec![CqlValue::Null])),
            None
        );
        assert_eq!(
            equal(
                &l(vec![CqlValue::Integer(1)]),
                &l(vec![CqlValue::String("1".into())])
            ),
            Some(false)
        );
        assert_eq!(equal(&CqlValue::Null, &l(vec![])), None);
    }

    #[test]
    fn code_matching_ignores_version_and_display() {
        let c = |code: &str, sys: &str, disp: Option<&str>| Code {
            code: Some(code.into()),
            system: Some(sys.into()),
            version: None,
            display: disp.map(String::from),
        };
        let concept = CqlValue::Concept(Concept {
            codes: vec![c("a", "s", None), c("b", "s", None)],
            display: None,
        });
        assert!(equivalent(
            &concept,
            &CqlValue::Code(c("b", "s", Some("B")))
        ));
        assert!(!equivalent(&concept, &CqlValue::Code(c("b", "t", None))));
        assert!(!equivalent(&concept, &CqlValue::Null));
        assert_eq!(
            equal(
                &CqlValue::Code(c("b", "s", None)),
                &CqlValue::Code(c("b", "s", Some("B")))
            ),
            None
        );
    }
}
