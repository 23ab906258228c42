//! Decimal arithmetic on the written text: sums and products are exact (scaled
//! 128-bit integers) so `1.10 + 2.0` keeps its precision; other operations go
//! through `f64` like FHIRPath.js does.

use crate::Decimal;
use std::cmp::Ordering;

pub(crate) fn negate_text(t: &str) -> String {
    match t.strip_prefix('-') {
        Some(rest) => rest.to_string(),
        None => format!("-{t}"),
    }
}

/// Mantissa and scale: `-1.25` -> (-125, 2).
fn scaled(text: &str) -> Option<(i128, u32)> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if int.len() + frac.len() > 36 {
        return None;
    }
    let m: i128 = format!("{int}{frac}").parse().ok()?;
    Some((if neg { -m } else { m }, frac.len() as u32))
}

fn from_scaled(m: i128, scale: u32) -> Decimal {
    let neg = m < 0;
    let digits = m.unsigned_abs().to_string();
    let scale = scale as usize;
    let text = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    Decimal {
        text: if neg { format!("-{text}") } else { text },
    }
}

fn align(a: (i128, u32), b: (i128, u32)) -> Option<(i128, i128, u32)> {
    let s = a.1.max(b.1);
    let am = a.0.checked_mul(10i128.checked_pow(s - a.1)?)?;
    let bm = b.0.checked_mul(10i128.checked_pow(s - b.1)?)?;
    Some((am, bm, s))
}

impl Decimal {
    /// A decimal from its text; `None` when the text is not a FHIRPath decimal.
    pub fn parse(text: &str) -> Option<Decimal> {
        let t = text.trim();
        if scaled(t).is_some() {
            return Some(Decimal {
                text: t.strip_prefix('+').unwrap_or(t).to_string(),
            });
        }
        let f: f64 = t.parse().ok()?;
        if !f.is_finite() || t.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
            return None;
        }
        Decimal::from_f64(f)
    }

    pub fn from_i64(i: i64) -> Decimal {
        Decimal {
            text: i.to_string(),
        }
    }

    /// Shortest round-trip text of a finite float (no exponent), like JavaScript.
    pub fn from_f64(f: f64) -> Option<Decimal> {
        if !f.is_finite() {
            return None;
        }
        let f = if f == 0.0 { 0.0 } else { f };
        Some(Decimal {
            text: format!("{f}"),
        })
    }

    pub fn to_f64(&self) -> f64 {
        self.text.parse().unwrap_or(f64::NAN)
    }

    /// Digits after the point as written.
    pub fn scale(&self) -> u32 {
        self.text.split_once('.').map_or(0, |(_, f)| f.len() as u32)
    }

    /// The integer value when there is no fractional part (`2.0` counts).
    pub fn as_integer(&self) -> Option<i64> {
        let (m, s) = scaled(&self.text)?;
        let p = 10i128.checked_pow(s)?;
        if m % p == 0 {
            i64::try_from(m / p).ok()
        } else {
            None
        }
    }

    pub fn add(&self, o: &Decimal) -> Option<Decimal> {
        if let (Some(a), Some(b)) = (scaled(&self.text), scaled(&o.text)) {
            if let Some((x, y, s)) = align(a, b) {
                if let Some(r) = x.checked_add(y) {
                    return Some(from_scaled(r, s));
                }
            }
        }
        Decimal::from_f64(self.to_f64() + o.to_f64())
    }

    pub fn sub(&self, o: &Decimal) -> Option<Decimal> {
        self.add(&o.negated())
    }

    pub fn mul(&self, o: &Decimal) -> Option<Decimal> {
        if let (Some(a), Some(b)) = (scaled(&self.text), scaled(&o.text)) {
            if let Some(r) = a.0.checked_mul(b.0) {
                if a.1 + b.1 <= 30 {
                    return Some(from_scaled(r, a.1 + b.1));
                }
            }
        }
        Decimal::from_f64(self.to_f64() * o.to_f64())
    }

    pub fn negated(&self) -> Decimal {
        Decimal {
            text: negate_text(&self.text),
        }
    }

    pub fn is_zero(&self) -> bool {
        scaled(&self.text).map_or(self.to_f64() == 0.0, |(m, _)| m == 0)
    }

    pub fn cmp_value(&self, o: &Decimal) -> Option<Ordering> {
        if let (Some(a), Some(b)) = (scaled(&self.text), scaled(&o.text)) {
            if let Some((x, y, _)) = align(a, b) {
                return Some(x.cmp(&y));
            }
        }
        self.to_f64().partial_cmp(&o.to_f64())
    }

    /// Rounded to `digits` places, half away from zero.
    pub fn round(&self, digits: u32) -> Option<Decimal> {
        if let Some((m, s)) = scaled(&self.text) {
            if s <= digits {
                return Some(self.clone());
            }
            let p = 10i128.checked_pow(s - digits)?;
            let q = m / p;
            let r = m % p;
            let q = if r.abs() * 2 >= p { q + m.signum() } else { q };
            return Some(from_scaled(q, digits));
        }
        let p = 10f64.powi(digits as i32);
        Decimal::from_f64((self.to_f64() * p).round() / p)
    }

    /// Equal after rounding both to the lesser precision (the `~` rule).
    pub fn equivalent(&self, o: &Decimal) -> bool {
        let s = self.scale().min(o.scale());
        match (self.round(s), o.round(s)) {
            (Some(a), Some(b)) => a.cmp_value(&b) == Some(Ordering::Equal),
            _ => false,
        }
    }
}
