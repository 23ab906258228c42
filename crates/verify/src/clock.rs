//! ISO-8601 date-times as scanners and test harnesses write them. RFC 3339 alone is
//! not enough: EU test vectors use `+0200`, no offset at all, and up to nine
//! fractional digits, so this parser is deliberately lenient about the shape while
//! strict about the values.

/// Seconds since the Unix epoch for an ISO-8601 date or date-time.
///
/// Accepts `YYYY-MM-DD`, optionally followed by `T` (or a space) and `hh:mm`,
/// `hh:mm:ss`, `hh:mm:ss.f…` (any number of fractional digits, truncated), then
/// `Z`, `±hh:mm`, `±hhmm`, `±hh`, or nothing (read as UTC). Returns `None` for
/// anything else, including out-of-range fields.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    let mut p = Cursor { s, i: 0 };
    let year = p.digits(4)?;
    p.expect(b'-')?;
    let month = p.digits(2)?;
    p.expect(b'-')?;
    let day = p.digits(2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs_of_day = 0i64;
    let mut offset = 0i64;
    if p.i < s.len() {
        match s[p.i] {
            b'T' | b't' | b' ' => p.i += 1,
            _ => return None,
        }
        let hour = p.digits(2)?;
        p.expect(b':')?;
        let minute = p.digits(2)?;
        let mut second = 0;
        if p.peek() == Some(b':') {
            p.i += 1;
            second = p.digits(2)?;
            if p.peek() == Some(b'.') || p.peek() == Some(b',') {
                p.i += 1;
                let start = p.i;
                while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                    p.i += 1;
                }
                if p.i == start {
                    return None;
                }
            }
        }
        // 60 admits a leap second; it folds into the next minute like most clocks do.
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        secs_of_day = hour * 3600 + minute * 60 + second;
        match p.peek() {
            None => {}
            Some(b'Z') | Some(b'z') => p.i += 1,
            Some(sign @ (b'+' | b'-')) => {
                p.i += 1;
                let oh = p.digits(2)?;
                let mut om = 0;
                if p.peek() == Some(b':') {
                    p.i += 1;
                    om = p.digits(2)?;
                } else if p.peek().is_some() {
                    om = p.digits(2)?;
                }
                if oh > 23 || om > 59 {
                    return None;
                }
                offset = (oh * 3600 + om * 60) * if sign == b'+' { 1 } else { -1 };
            }
            Some(_) => return None,
        }
        if p.i != s.len() {
            return None;
        }
    }
    Some(days_from_civil(year, month, day) * 86_400 + secs_of_day - offset)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }
    fn digits(&mut self, n: usize) -> Option<i64> {
        let part = self.s.get(self.i..self.i + n)?;
        let mut v = 0i64;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil: proleptic Gregorian, no table, no overflow
/// for four-digit years.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_iso8601;

    #[test]
    fn every_shape_of_the_eu_vectors() {
        let base = 1_621_536_762; // 2021-05-20T18:52:42Z
        for s in [
            "2021-05-20T18:52:42Z",
            "2021-05-20T18:52:42",
            "2021-05-20T18:52:42.9906293Z",
            "2021-05-20T18:52:42.170Z",
            "2021-05-20T18:52:42.479916Z",
            "2021-05-20T20:52:42+02:00",
            "2021-05-20T20:52:42+0200",
            "2021-05-20T20:52:42+02",
            "2021-05-20T18:52:42+00:00",
            "2021-05-20T16:52:42-02:00",
            "2021-05-20 18:52:42Z",
        ] {
            assert_eq!(parse_iso8601(s), Some(base), "{s}");
        }
        assert_eq!(parse_iso8601("1970-01-01"), Some(0));
        assert_eq!(parse_iso8601("2024-02-29T00:00Z"), Some(1_709_164_800));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2021",
            "2021-13-01",
            "2021-02-29",
            "2021-05-20T25:00:00Z",
            "2021-05-20T18:52:42.Z",
            "2021-05-20T18:52:42Zjunk",
            "2021-05-20T18:52:42+2",
            "２０２１-05-20",
        ] {
            assert_eq!(parse_iso8601(s), None, "{s}");
        }
    }
}
