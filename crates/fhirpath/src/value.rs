//! Item helpers: primitive views of JSON nodes, equality, ordering, type tests.

use crate::temporal::Temporal;
use crate::{Decimal, Item};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

pub(crate) const UCUM: &str = "http://unitsofmeasure.org";

/// FHIR primitive type names, for lower-casing a choice suffix (`valueDateTime`).
pub(crate) const FHIR_PRIMITIVES: &[&str] = &[
    "boolean",
    "integer",
    "string",
    "decimal",
    "uri",
    "url",
    "canonical",
    "base64Binary",
    "instant",
    "date",
    "dateTime",
    "time",
    "code",
    "oid",
    "id",
    "markdown",
    "unsignedInt",
    "positiveInt",
    "uuid",
    "integer64",
    "xhtml",
];

/// Type name from a choice element suffix: `String` -> `string`, `Coding` -> `Coding`.
pub(crate) fn type_from_suffix(suffix: &str) -> String {
    let mut c = suffix.chars();
    let lower = match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    };
    if FHIR_PRIMITIVES.contains(&lower.as_str()) {
        lower
    } else {
        suffix.to_string()
    }
}

fn json_number<'a>(n: &serde_json::Number, ty: Option<&str>) -> Item<'a> {
    if ty != Some("decimal") {
        if let Some(i) = n.as_i64() {
            return Item::Integer(i);
        }
    }
    Item::Decimal(Decimal {
        text: n.to_string(),
    })
}

/// The system value of an item: JSON primitives become Boolean/Integer/Decimal/
/// String (or a date/time when the element type says so); other items unchanged.
pub(crate) fn prim<'a>(item: &Item<'a>) -> Item<'a> {
    match item {
        Item::Node { value, type_name } => {
            let ty = type_name.as_deref();
            match value {
                Value::Bool(b) => Item::Boolean(*b),
                Value::Number(n) => json_number(n, ty),
                Value::String(s) => {
                    string_node(s, ty).unwrap_or(Item::String(Cow::Borrowed(s.as_str())))
                }
                Value::Object(_) if is_quantity_type(ty) => quantity_json(value)
                    .map(|(value, unit)| Item::Quantity { value, unit })
                    .unwrap_or_else(|| item.clone()),
                _ => item.clone(),
            }
        }
        Item::Owned { value, type_name } => {
            let ty = type_name.as_deref();
            match &**value {
                Value::Bool(b) => Item::Boolean(*b),
                Value::Number(n) => json_number(n, ty),
                Value::String(s) => {
                    string_node(s, ty).unwrap_or_else(|| Item::String(Cow::Owned(s.clone())))
                }
                Value::Object(_) if is_quantity_type(ty) => quantity_json(value)
                    .map(|(value, unit)| Item::Quantity { value, unit })
                    .unwrap_or_else(|| item.clone()),
                _ => item.clone(),
            }
        }
        _ => item.clone(),
    }
}

/// FHIR types that are Quantities (a typed Quantity node compares and prints as one).
fn is_quantity_type(ty: Option<&str>) -> bool {
    matches!(
        ty,
        Some(
            "Quantity"
                | "Age"
                | "Duration"
                | "Distance"
                | "Count"
                | "SimpleQuantity"
                | "MoneyQuantity"
        )
    )
}

fn string_node<'a>(s: &str, ty: Option<&str>) -> Option<Item<'a>> {
    match ty {
        Some("date") => Temporal::parse_date(s).map(|_| Item::Date(s.to_string())),
        Some("dateTime") | Some("instant") => {
            Temporal::parse_date_time(s).map(|_| Item::DateTime(s.to_string()))
        }
        Some("time") => Temporal::parse_time(s).map(|_| Item::Time(s.to_string())),
        Some("integer64") => s.parse().ok().map(Item::Integer),
        _ => None,
    }
}

/// A Quantity view of an item (system Quantity or a FHIR Quantity object).
pub(crate) fn as_quantity(item: &Item<'_>) -> Option<(Decimal, String)> {
    match item {
        Item::Quantity { value, unit } => Some((value.clone(), unit.clone())),
        Item::Node { value, .. } => quantity_json(value),
        Item::Owned { value, .. } => quantity_json(value),
        _ => None,
    }
}

fn quantity_json(v: &Value) -> Option<(Decimal, String)> {
    let o = v.as_object()?;
    let n = o.get("value")?.as_number()?;
    let unit = o
        .get("code")
        .or_else(|| o.get("unit"))
        .and_then(Value::as_str)
        .unwrap_or("1");
    Some((
        Decimal {
            text: n.to_string(),
        },
        unit.to_string(),
    ))
}

pub(crate) fn json_of<'b>(item: &'b Item<'_>) -> Option<&'b Value> {
    match item {
        Item::Node { value, .. } => Some(value),
        Item::Owned { value, .. } => Some(value),
        _ => None,
    }
}

pub(crate) fn as_str<'b>(item: &'b Item<'_>) -> Option<&'b str> {
    match item {
        Item::String(s) => Some(s),
        Item::Node { value, .. } => value.as_str(),
        Item::Owned { value, .. } => value.as_str(),
        _ => None,
    }
}

pub(crate) fn temporal(item: &Item<'_>) -> Option<Temporal> {
    match item {
        Item::Date(s) | Item::DateTime(s) => Temporal::parse_date_time(s),
        Item::Time(s) => Temporal::parse_time(s),
        _ => None,
    }
}

fn num(item: &Item<'_>) -> Option<Decimal> {
    match item {
        Item::Integer(i) => Some(Decimal::from_i64(*i)),
        Item::Decimal(d) => Some(d.clone()),
        _ => None,
    }
}

/// Calendar keyword and UCUM code that denote the same duration for `=`.
fn canonical_unit(u: &str) -> &str {
    match u {
        "week" | "weeks" => "wk",
        "day" | "days" => "d",
        "hour" | "hours" => "h",
        "minute" | "minutes" => "min",
        "second" | "seconds" => "s",
        "millisecond" | "milliseconds" => "ms",
        "year" | "years" => "year",
        "month" | "months" => "month",
        other => other,
    }
}

/// Order of two quantities after converting the second to the first's unit;
/// `None` when the units are not commensurable.
fn quantity_order(v1: &Decimal, u1: &str, v2: &Decimal, u2: &str) -> Option<Ordering> {
    if canonical_unit(u1) == canonical_unit(u2) {
        return v1.cmp_value(v2);
    }
    // a calendar year or month is not the UCUM `a`/`mo` for `=`
    if matches!(canonical_unit(u1), "year" | "month")
        || matches!(canonical_unit(u2), "year" | "month")
    {
        return None;
    }
    let f = crate::units::factor(u2, u1)?;
    let converted = Decimal::from_f64(v2.to_f64() * f)?;
    // compare at the precision float conversion leaves exact
    let (x, y) = (v1.to_f64(), converted.to_f64());
    if (x - y).abs() <= 1e-12 * x.abs().max(y.abs()) {
        Some(Ordering::Equal)
    } else {
        x.partial_cmp(&y)
    }
}

fn temporal_pair(a: &Item<'_>, b: &Item<'_>) -> Option<(Temporal, Temporal)> {
    let ta = temporal(a).or_else(|| {
        let s = as_str(a)?;
        if matches!(b, Item::Time(_)) {
            Temporal::parse_time(s)
        } else {
            Temporal::parse_date_time(s)
        }
    });
    let tb = temporal(b).or_else(|| {
        let s = as_str(b)?;
        if matches!(a, Item::Time(_)) {
            Temporal::parse_time(s)
        } else {
            Temporal::parse_date_time(s)
        }
    });
    Some((ta?, tb?))
}

fn is_temporal(i: &Item<'_>) -> bool {
    matches!(i, Item::Date(_) | Item::DateTime(_) | Item::Time(_))
}

/// `=` on two items: `None` when the answer is empty (date precision differs).
pub(crate) fn equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    let (a, b) = (prim(a), prim(b));
    if let (Some(x), Some(y)) = (num(&a), num(&b)) {
        return Some(x.cmp_value(&y) == Some(Ordering::Equal));
    }
    if is_temporal(&a) || is_temporal(&b) {
        let (x, y) = temporal_pair(&a, &b)?;
        return x.compare(&y).map(|o| o == Ordering::Equal);
    }
    match (&a, &b) {
        (Item::Boolean(x), Item::Boolean(y)) => Some(x == y),
        (Item::String(x), Item::String(y)) => Some(x == y),
        (Item::Quantity { .. }, _) | (_, Item::Quantity { .. }) => {
            let ((v1, u1), (v2, u2)) = (as_quantity(&a)?, as_quantity(&b)?);
            Some(quantity_order(&v1, &u1, &v2, &u2) == Some(Ordering::Equal))
        }
        _ => match (json_of(&a), json_of(&b)) {
            (Some(x), Some(y)) => Some(json_eq(x, y)),
            _ => Some(false),
        },
    }
}

/// Deep JSON equality without recursion (documents built in code can be deeper
/// than any stack); objects compare regardless of key order.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    let mut stack = vec![(a, b)];
    while let Some((x, y)) = stack.pop() {
        if std::ptr::eq(x, y) {
            continue;
        }
        match (x, y) {
            (Value::Array(p), Value::Array(q)) => {
                if p.len() != q.len() {
                    return false;
                }
                stack.extend(p.iter().zip(q));
            }
            (Value::Object(p), Value::Object(q)) => {
                if p.len() != q.len() {
                    return false;
                }
                for (k, v) in p {
                    match q.get(k) {
                        Some(w) => stack.push((v, w)),
                        None => return false,
                    }
                }
            }
            (Value::Number(p), Value::Number(q)) => {
                if p != q && p.as_f64() != q.as_f64() {
                    return false;
                }
            }
            _ => {
                if x != y {
                    return false;
                }
            }
        }
    }
    true
}

/// Every whitespace character counts as a space; runs are not collapsed (the
/// spec treats whitespace characters as equivalent; FHIRPath.js agrees).
fn normalise_ws(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect::<String>()
        .to_lowercase()
}

/// `~` on two items.
pub(crate) fn equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    let (a, b) = (prim(a), prim(b));
    if let (Some(x), Some(y)) = (num(&a), num(&b)) {
        return x.equivalent(&y);
    }
    if is_temporal(&a) || is_temporal(&b) {
        return temporal_pair(&a, &b)
            .and_then(|(x, y)| x.compare(&y))
            .is_some_and(|o| o == Ordering::Equal);
    }
    match (&a, &b) {
        (Item::String(x), Item::String(y)) => normalise_ws(x) == normalise_ws(y),
        (Item::Quantity { .. }, _) | (_, Item::Quantity { .. }) => {
            match (as_quantity(&a), as_quantity(&b)) {
                (Some((v1, u1)), Some((v2, u2))) => {
                    let unit = |u: &str| match canonical_unit(u) {
                        "year" => "a".to_string(),
                        "month" => "mo".to_string(),
                        o => o.to_string(),
                    };
                    unit(&u1) == unit(&u2) && v1.equivalent(&v2)
                }
                _ => false,
            }
        }
        _ => equal(&a, &b).unwrap_or(false),
    }
}

/// Ordering for `<` and friends. `Ok(None)` = empty result; `Err` = not comparable.
pub(crate) fn compare(a: &Item<'_>, b: &Item<'_>) -> Result<Option<Ordering>, String> {
    let (a, b) = (prim(a), prim(b));
    if let (Some(x), Some(y)) = (num(&a), num(&b)) {
        return Ok(x.cmp_value(&y));
    }
    if is_temporal(&a) || is_temporal(&b) {
        return match temporal_pair(&a, &b) {
            Some((x, y)) => Ok(x.compare(&y)),
            None => Err("cannot compare a date/time with another type".into()),
        };
    }
    match (&a, &b) {
        (Item::String(x), Item::String(y)) => Ok(Some(x.cmp(y))),
        _ => match (as_quantity(&a), as_quantity(&b)) {
            (Some((v1, u1)), Some((v2, u2))) => Ok(quantity_order(&v1, &u1, &v2, &u2)),
            _ => Err(format!(
                "cannot compare {} with {}",
                type_label(&a),
                type_label(&b)
            )),
        },
    }
}

pub(crate) fn type_label(i: &Item<'_>) -> String {
    i.fhir_type()
        .map_or_else(|| "a value".to_string(), |c| c.into_owned())
}

/// The System type name of a literal-kind item.
pub(crate) fn system_type(i: &Item<'_>) -> Option<&'static str> {
    Some(match i {
        Item::Boolean(_) => "Boolean",
        Item::Integer(_) => "Integer",
        Item::Decimal(_) => "Decimal",
        Item::String(_) => "String",
        Item::Date(_) => "Date",
        Item::DateTime(_) => "DateTime",
        Item::Time(_) => "Time",
        Item::Quantity { .. } => "Quantity",
        _ => return None,
    })
}

/// Text of a quantity as FHIRPath prints it: `5 'mg'`, `4 days`.
pub(crate) fn quantity_text(value: &Decimal, unit: &str) -> String {
    if crate::units::CALENDAR_UNITS.contains(&unit) {
        format!("{} {}", value.text, unit)
    } else {
        format!("{} '{}'", value.text, unit)
    }
}

/// Collection equality (`=`): same length, pairwise equal in order.
pub(crate) fn collections_equal(a: &[Item<'_>], b: &[Item<'_>]) -> Option<bool> {
    if a.len() != b.len() {
        return Some(false);
    }
    let mut result = Some(true);
    for (x, y) in a.iter().zip(b) {
        match equal(x, y) {
            Some(false) => return Some(false),
            None => result = None,
            Some(true) => {}
        }
    }
    result
}

/// Collection equivalence (`~`): same length, every item has an equivalent partner.
pub(crate) fn collections_equivalent(a: &[Item<'_>], b: &[Item<'_>]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    'outer: for x in a {
        for (j, y) in b.iter().enumerate() {
            if !used[j] && equivalent(x, y) {
                used[j] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

pub(crate) fn contains_item(list: &[Item<'_>], item: &Item<'_>) -> bool {
    list.iter().any(|x| equal(x, item) == Some(true))
}

pub(crate) fn distinct<'a>(items: Vec<Item<'a>>) -> Vec<Item<'a>> {
    let mut out: Vec<Item<'a>> = Vec::with_capacity(items.len());
    for i in items {
        if !contains_item(&out, &i) {
            out.push(i);
        }
    }
    out
}

/// A hash consistent with [`json_eq`] (key order ignored, `1` = `1.0`), computed
/// bottom-up without recursion; `memo` caches subtrees by address so a chain of
/// nested nodes costs linear time overall.
pub(crate) fn structural_hash(
    v: &Value,
    memo: &mut std::collections::HashMap<*const Value, u64>,
) -> u64 {
    use std::hash::{Hash, Hasher};
    fn h<T: Hash>(t: T) -> u64 {
        let mut s = std::collections::hash_map::DefaultHasher::new();
        t.hash(&mut s);
        s.finish()
    }
    let mut stack = vec![(v, false)];
    while let Some((n, children_done)) = stack.pop() {
        let key = n as *const Value;
        if memo.contains_key(&key) {
            continue;
        }
        let leaf = match n {
            Value::Null => Some(h(0u8)),
            Value::Bool(b) => Some(h((1u8, b))),
            Value::Number(x) => Some(h((2u8, x.as_f64().map(f64::to_bits)))),
            Value::String(x) => Some(h((3u8, x))),
            _ => None,
        };
        if let Some(x) = leaf {
            memo.insert(key, x);
            continue;
        }
        if !children_done {
            stack.push((n, true));
            match n {
                Value::Array(a) => stack.extend(a.iter().map(|c| (c, false))),
                Value::Object(o) => stack.extend(o.values().map(|c| (c, false))),
                _ => {}
            }
            continue;
        }
        let child = |c: &Value, memo: &std::collections::HashMap<*const Value, u64>| {
            memo.get(&(c as *const Value)).copied().unwrap_or(0)
        };
        let x = match n {
            Value::Array(a) => a.iter().fold(h(4u8), |acc, c| h((acc, child(c, memo)))),
            Value::Object(o) => o.iter().fold(h((5u8, o.len())), |acc, (k, c)| {
                acc.wrapping_add(h((k, child(c, memo))))
            }),
            _ => 0,
        };
        memo.insert(key, x);
    }
    memo.get(&(v as *const Value)).copied().unwrap_or(0)
}
