//! Partial dates, dateTimes and times: parsing, precision-aware comparison and
//! calendar arithmetic.

use std::cmp::Ordering;

/// Fields present up to `precision`: 1 year, 2 month, 3 day, 4 hour, 5 minute,
/// 6 second (with or without fraction).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Temporal {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// Digits of the fraction as written (0 = none).
    pub frac_digits: usize,
    pub precision: u8,
    /// Offset in minutes; `None` = no zone written.
    pub tz: Option<i32>,
    pub has_date: bool,
    pub has_time: bool,
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_time_into(t: &mut Temporal, s: &str) -> Option<()> {
    let (clock, tz) = split_tz(s)?;
    t.tz = tz;
    let mut parts = clock.split(':');
    let h = parts.next()?;
    if h.len() != 2 {
        return None;
    }
    t.hour = num(h)?;
    t.precision = if t.has_date { 4 } else { 1 };
    if let Some(m) = parts.next() {
        if m.len() != 2 {
            return None;
        }
        t.minute = num(m)?;
        t.precision += 1;
        if let Some(sec) = parts.next() {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            if whole.len() != 2 {
                return None;
            }
            t.second = num(whole)?;
            t.precision += 1;
            if !frac.is_empty() {
                num(frac)?;
                t.frac_digits = frac.len();
                let f3: String = frac.chars().chain("000".chars()).take(3).collect();
                t.millis = num(&f3)?;
            }
        }
    }
    if parts.next().is_some() || t.hour > 23 || t.minute > 59 || t.second > 59 {
        return None;
    }
    Some(())
}

fn split_tz(s: &str) -> Option<(&str, Option<i32>)> {
    if let Some(c) = s.strip_suffix('Z') {
        return Some((c, Some(0)));
    }
    if s.len() > 6 && s.is_char_boundary(s.len() - 6) {
        let (c, z) = s.split_at(s.len() - 6);
        if !z.is_ascii() {
            return Some((s, None));
        }
        let b = z.as_bytes();
        if (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
            let h = num(&z[1..3])? as i32;
            let m = num(&z[4..6])? as i32;
            let off = h * 60 + m;
            return Some((c, Some(if b[0] == b'-' { -off } else { off })));
        }
    }
    Some((s, None))
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    crate::calendar::days_in_month(y, i64::from(m)) as u32
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    crate::calendar::days_from_civil(y, i64::from(m), i64::from(d))
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let (y, m, d) = crate::calendar::civil_from_days(z);
    (y, m as u32, d as u32)
}

impl Temporal {
    fn empty() -> Temporal {
        Temporal {
            year: 0,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            millis: 0,
            frac_digits: 0,
            precision: 0,
            tz: None,
            has_date: false,
            has_time: false,
        }
    }

    /// `YYYY(-MM(-DD)?)?` optionally followed by `T` and a time (dateTime form).
    pub fn parse_date_time(s: &str) -> Option<Temporal> {
        let mut t = Temporal::empty();
        t.has_date = true;
        let (date, time) = match s.split_once('T') {
            Some((d, tm)) => (d, Some(tm)),
            None => (s, None),
        };
        // a zone directly after a partial date (`2020Z`) is not valid; keep it simple
        let mut parts = date.split('-');
        let y = parts.next()?;
        if y.len() != 4 {
            return None;
        }
        t.year = num(y)? as i64;
        t.precision = 1;
        if let Some(m) = parts.next() {
            if m.len() != 2 {
                return None;
            }
            t.month = num(m)?;
            t.precision = 2;
            if let Some(d) = parts.next() {
                if d.len() != 2 {
                    return None;
                }
                t.day = num(d)?;
                t.precision = 3;
            }
        }
        if parts.next().is_some()
            || !(1..=12).contains(&t.month)
            || t.day < 1
            || t.day > days_in_month(t.year, t.month)
        {
            return None;
        }
        if let Some(tm) = time {
            if tm.is_empty() {
                return Some(t);
            }
            if t.precision < 3 {
                return None;
            }
            t.has_time = true;
            parse_time_into(&mut t, tm)?;
        }
        Some(t)
    }

    pub fn parse_date(s: &str) -> Option<Temporal> {
        if s.contains('T') {
            return None;
        }
        Temporal::parse_date_time(s)
    }

    pub fn parse_time(s: &str) -> Option<Temporal> {
        let s = s.strip_prefix('T').unwrap_or(s);
        let mut t = Temporal::empty();
        t.has_time = true;
        parse_time_into(&mut t, s)?;
        if t.tz.is_some() {
            return None;
        }
        Some(t)
    }

    /// Precision in the shared scale (1 year … 6 second) regardless of kind.
    fn level(&self) -> u8 {
        if self.has_date {
            self.precision
        } else {
            self.precision + 3
        }
    }

    pub fn format(&self) -> String {
        let mut s = String::new();
        if self.has_date {
            s.push_str(&format!("{:04}", self.year));
            if self.precision >= 2 {
                s.push_str(&format!("-{:02}", self.month));
            }
            if self.precision >= 3 {
                s.push_str(&format!("-{:02}", self.day));
            }
        }
        let lvl = self.level();
        if self.has_time && lvl >= 4 {
            if self.has_date {
                s.push('T');
            }
            s.push_str(&format!("{:02}", self.hour));
            if lvl >= 5 {
                s.push_str(&format!(":{:02}", self.minute));
            }
            if lvl >= 6 {
                s.push_str(&format!(":{:02}", self.second));
                if self.frac_digits > 0 {
                    s.push_str(&format!(".{:03}", self.millis));
                }
            }
            if let Some(tz) = self.tz {
                if tz == 0 && self.has_date {
                    s.push_str("+00:00");
                } else {
                    let sign = if tz < 0 { '-' } else { '+' };
                    s.push_str(&format!("{sign}{:02}:{:02}", tz.abs() / 60, tz.abs() % 60));
                }
            }
        }
        s
    }

    /// Milliseconds since the epoch in UTC for the fields present (missing fields
    /// at their minimum).
    fn epoch_ms(&self) -> i64 {
        let days = if self.has_date {
            days_from_civil(self.year, self.month, self.day)
        } else {
            0
        };
        let ms = ((days * 24 + self.hour as i64) * 60 + self.minute as i64) * 60_000
            + self.second as i64 * 1000
            + self.millis as i64;
        ms - self.tz.unwrap_or(0) as i64 * 60_000
    }

    fn set_from_epoch_ms(&mut self, ms: i64) {
        let local = ms + self.tz.unwrap_or(0) as i64 * 60_000;
        let days = local.div_euclid(86_400_000);
        let rem = local.rem_euclid(86_400_000);
        if self.has_date {
            let (y, m, d) = civil_from_days(days);
            self.year = y;
            self.month = m;
            self.day = d;
        }
        self.hour = (rem / 3_600_000) as u32;
        self.minute = (rem / 60_000 % 60) as u32;
        self.second = (rem / 1000 % 60) as u32;
        self.millis = (rem % 1000) as u32;
    }

    /// FHIRPath comparison: `None` when precisions differ at the first field that
    /// would decide.
    pub fn compare(&self, o: &Temporal) -> Option<Ordering> {
        if self.has_date != o.has_date {
            return None;
        }
        let (a, b) = (self.level(), o.level());
        let both_tz = self.has_time && o.has_time && a >= 4 && b >= 4;
        let (x, y) = if both_tz && (self.tz.is_some() || o.tz.is_some()) {
            // bring both to UTC so fields compare; a missing zone counts as UTC
            let mut x = self.clone();
            let mut y = o.clone();
            let (ex, ey) = (x.epoch_ms(), y.epoch_ms());
            x.tz = Some(0);
            y.tz = Some(0);
            x.set_from_epoch_ms(ex);
            y.set_from_epoch_ms(ey);
            (x, y)
        } else {
            (self.clone(), o.clone())
        };
        let fields = |t: &Temporal| {
            [
                t.year,
                t.month as i64,
                t.day as i64,
                t.hour as i64,
                t.minute as i64,
                t.second as i64 * 1000 + t.millis as i64,
            ]
        };
        let (fx, fy) = (fields(&x), fields(&y));
        let start = if self.has_date { 0 } else { 3 };
        for i in start..6 {
            let lvl = i as u8 + 1;
            if lvl > a || lvl > b {
                return if a == b { Some(Ordering::Equal) } else { None };
            }
            match fx[i].cmp(&fy[i]) {
                Ordering::Equal => {}
                other => return Some(other),
            }
        }
        Some(Ordering::Equal)
    }

    /// Adds `value` of a calendar unit. Units finer than the precision are
    /// truncated to whole units of the precision (spec rule for partial dates).
    pub fn add(&self, value: f64, unit: &str) -> Option<Temporal> {
        let mut t = self.clone();
        let lvl = t.level();
        let whole = |v: f64| v.trunc() as i64;
        match unit {
            "year" | "years" | "a" => {
                if !t.has_date {
                    return None;
                }
                t.year += whole(value);
                t.day = t.day.min(days_in_month(t.year, t.month));
            }
            "month" | "months" | "mo" => {
                if !t.has_date {
                    return None;
                }
                let total = t.year * 12 + (t.month as i64 - 1) + whole(value);
                t.year = total.div_euclid(12);
                t.month = (total.rem_euclid(12) + 1) as u32;
                t.day = t.day.min(days_in_month(t.year, t.month));
            }
            _ => {
                let ms_per = match unit {
                    "week" | "weeks" | "wk" => 7.0 * 86_400_000.0,
                    "day" | "days" | "d" => 86_400_000.0,
                    "hour" | "hours" | "h" => 3_600_000.0,
                    "minute" | "minutes" | "min" => 60_000.0,
                    "second" | "seconds" | "s" => 1000.0,
                    "millisecond" | "milliseconds" | "ms" => 1.0,
                    _ => return None,
                };
                let mut delta = value * ms_per;
                // truncate to the unit of the value's precision
                let unit_ms = match lvl {
                    1 | 2 => {
                        // years/months precision: whole years/months only
                        let per = if lvl == 1 {
                            365.0 * 86_400_000.0
                        } else {
                            30.0 * 86_400_000.0
                        };
                        let n = (delta / per).trunc();
                        return if lvl == 1 {
                            self.add(n, "year")
                        } else {
                            self.add(n, "month")
                        };
                    }
                    3 => 86_400_000.0,
                    4 => 3_600_000.0,
                    5 => 60_000.0,
                    _ => 1.0,
                };
                delta = (delta / unit_ms).trunc() * unit_ms;
                if !delta.is_finite() || delta.abs() > 1e17 {
                    return None;
                }
                let ms = t.epoch_ms() + delta as i64;
                if t.has_date {
                    t.set_from_epoch_ms(ms);
                } else {
                    t.set_from_epoch_ms(ms.rem_euclid(86_400_000));
                }
            }
        }
        if t.has_date && (t.year < 1 || t.year > 9999) {
            return None;
        }
        Some(t)
    }
}
