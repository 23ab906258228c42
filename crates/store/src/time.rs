//! FHIR date/time handling without a calendar dependency: instants are kept as
//! milliseconds since the Unix epoch (UTC), and a FHIR date of any precision is a closed
//! range `[lo, hi]` of such milliseconds, which is what date search compares.

use fhirpath::calendar::{civil_from_days, days_from_civil, days_in_month};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock before 1970 is a broken host; the epoch keeps ordering sane.
        Err(_) => 0,
    }
}

/// FHIR `instant` text for epoch milliseconds, always UTC with millisecond precision.
pub fn format_instant(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        (rem / 60_000) % 60,
        (rem / 1000) % 60,
        rem % 1000
    )
}

fn num(s: &str, len: usize) -> Option<i64> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses a FHIR `date`, `dateTime` or `instant` (or a search value, which may omit
/// seconds) into the closed millisecond range it denotes. A time without a zone is read
/// as UTC: FHIR leaves that to the server, and UTC keeps all instances agreeing.
pub fn parse_range(s: &str) -> Option<(i64, i64)> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y = num(parts.next()?, 4)?;
    let m = parts.next().map(|p| num(p, 2)).unwrap_or(Some(0))?;
    let d = parts.next().map(|p| num(p, 2)).unwrap_or(Some(0))?;
    if parts.next().is_some() || m > 12 || (m == 0 && d != 0) {
        return None;
    }
    if m == 0 {
        let lo = days_from_civil(y, 1, 1) * 86_400_000;
        let hi = days_from_civil(y + 1, 1, 1) * 86_400_000 - 1;
        return time.is_none().then_some((lo, hi));
    }
    if d == 0 {
        let lo = days_from_civil(y, m, 1) * 86_400_000;
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let hi = days_from_civil(ny, nm, 1) * 86_400_000 - 1;
        return time.is_none().then_some((lo, hi));
    }
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day_ms = days_from_civil(y, m, d) * 86_400_000;
    let Some(t) = time else {
        return Some((day_ms, day_ms + 86_400_000 - 1));
    };
    // Split off the zone designator.
    let (clock, offset_min) = if let Some(c) = t.strip_suffix('Z') {
        (c, 0)
    } else if let Some(pos) = t.rfind(['+', '-']) {
        let (c, z) = t.split_at(pos);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = z[1..].split_once(':')?;
        let (hh, mm) = (num(hh, 2)?, num(mm, 2)?);
        if hh > 14 || mm > 59 {
            return None;
        }
        (c, sign * (hh * 60 + mm))
    } else {
        (t, 0)
    };
    let mut cp = clock.split(':');
    let hh = num(cp.next()?, 2)?;
    let mi = num(cp.next()?, 2)?;
    let (ss, frac, precision_ms) = match cp.next() {
        None => (0, 0, 60_000),
        Some(sec) => {
            let (s_int, s_frac) = match sec.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (sec, None),
            };
            let ss = num(s_int, 2)?;
            match s_frac {
                None => (ss, 0, 1000),
                Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                    // Keep millisecond resolution; finer digits fall inside that ms.
                    let mut ms = 0i64;
                    for (i, b) in f.bytes().take(3).enumerate() {
                        ms += i64::from(b - b'0') * [100, 10, 1][i];
                    }
                    (
                        ss,
                        ms,
                        if f.len() >= 3 {
                            1
                        } else {
                            [100, 10, 1][f.len() - 1]
                        },
                    )
                }
                Some(_) => return None,
            }
        }
    };
    if cp.next().is_some() || hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    let lo = day_ms + hh * 3_600_000 + mi * 60_000 + ss * 1000 + frac - offset_min * 60_000;
    Some((lo, lo + precision_ms - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip() {
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
        let (lo, hi) = parse_range("2021-03-04T05:06:07.089Z").unwrap();
        assert_eq!(lo, hi);
        assert_eq!(format_instant(lo), "2021-03-04T05:06:07.089Z");
        assert_eq!(
            format_instant(parse_range("2000-02-29").unwrap().0),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn precisions_become_ranges() {
        let (lo, hi) = parse_range("2021").unwrap();
        assert_eq!(format_instant(lo), "2021-01-01T00:00:00.000Z");
        assert_eq!(format_instant(hi), "2021-12-31T23:59:59.999Z");
        let (lo, hi) = parse_range("2020-02").unwrap();
        assert_eq!(format_instant(lo), "2020-02-01T00:00:00.000Z");
        assert_eq!(format_instant(hi), "2020-02-29T23:59:59.999Z");
        let (lo, hi) = parse_range("2021-06-01T10:00:00+02:00").unwrap();
        assert_eq!(format_instant(lo), "2021-06-01T08:00:00.000Z");
        assert_eq!(format_instant(hi), "2021-06-01T08:00:00.999Z");
        let (lo, hi) = parse_range("2021-06-01T10:00").unwrap();
        assert_eq!(hi - lo, 59_999);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "21",
            "2021-13",
            "2021-02-30",
            "2021-01-01T25:00",
            "2021-01-01T10:00:00.Z",
            "2021-1-01",
            "2021-01-01T10:00+1:00",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }
}
