//! The slice of UCUM that FHIRPath comparisons and `toQuantity(unit)` need:
//! metric prefixes on one base unit, and durations. Anything else converts only
//! to itself.

/// FHIRPath's calendar duration keywords (`4 days`, `1 year`): written without
/// quotes, and not UCUM (`1 year` is a calendar year, `1 'a'` is 365.25 days).
pub const CALENDAR_UNITS: &[&str] = &[
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

const PREFIXES: &[(&str, f64)] = &[
    ("da", 1e1),
    ("k", 1e3),
    ("h", 1e2),
    ("d", 1e-1),
    ("c", 1e-2),
    ("m", 1e-3),
    ("u", 1e-6),
    ("n", 1e-9),
    ("p", 1e-12),
    ("M", 1e6),
    ("G", 1e9),
];

const BASES: &[&str] = &[
    "g", "m", "L", "l", "mol", "Pa", "Hz", "J", "W", "V", "A", "K", "eq", "U", "bar",
];

/// Seconds per duration unit; calendar keywords count as their UCUM definite
/// duration only from a week down (a year or month is not a fixed length).
fn seconds(u: &str) -> Option<f64> {
    Some(match u {
        "ms" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "second" | "seconds" => 1.0,
        "min" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "wk" | "week" | "weeks" => 604800.0,
        _ => return None,
    })
}

fn metric(u: &str) -> Option<(f64, &str)> {
    if BASES.contains(&u) {
        return Some((1.0, u));
    }
    PREFIXES.iter().find_map(|(p, f)| {
        let base = u.strip_prefix(p)?;
        BASES.contains(&base).then_some((*f, base))
    })
}

/// How many `to` one `from` is, when the two units are commensurable here.
pub(crate) fn factor(from: &str, to: &str) -> Option<f64> {
    if from == to {
        return Some(1.0);
    }
    if let (Some(a), Some(b)) = (seconds(from), seconds(to)) {
        return Some(a / b);
    }
    let ((fa, ba), (fb, bb)) = (metric(from)?, metric(to)?);
    let same_base = ba == bb || (ba.eq_ignore_ascii_case("l") && bb.eq_ignore_ascii_case("l"));
    same_base.then_some(fa / fb)
}
