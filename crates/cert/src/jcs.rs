//! RFC 8785 JSON Canonicalization Scheme.
//!
//! Implemented here because the canonical form must match any other JCS verifier
//! byte for byte: keys sorted by UTF-16 code units, strings escaped as ECMAScript
//! `JSON.stringify` does, numbers serialised as ECMAScript `Number.prototype.toString`
//! of the IEEE-754 double (RFC 8785 §3.2.2.3).

use crate::error::{CertError, Result};
use serde_json::Value;

pub fn canonicalize(value: &Value) -> Result<String> {
    let mut out = String::new();
    write_value(value, &mut out, 0)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String, depth: usize) -> Result<()> {
    if depth > crate::cbor::MAX_DEPTH * 2 {
        return Err(CertError::InvalidInput("JSON nested too deeply".into()));
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)?),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(Vec<u16>, &String, &Value)> = map
                .iter()
                .map(|(k, v)| (k.encode_utf16().collect(), k, v))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (_, k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(v, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn number(n: &serde_json::Number) -> Result<String> {
    // JCS numbers are doubles: a u64/i64 beyond 2^53 is rounded like JavaScript
    // would, which keeps our bytes equal to any other implementation's.
    let f = if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= (1u64 << 53) {
            return Ok(i.to_string());
        }
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64()
            .ok_or_else(|| CertError::InvalidInput("unrepresentable number".into()))?
    };
    es_number_to_string(f)
}

/// ECMAScript Number::toString(10) for a finite double.
///
/// `ryu-js` is used rather than re-laying-out Rust's `{:e}` digits: when two
/// shortest digit strings are equally near the double, ECMAScript takes the even
/// one (RFC 8785 vector `1424953923781206.2`) and Rust's formatter does not.
pub fn es_number_to_string(f: f64) -> Result<String> {
    if !f.is_finite() {
        return Err(CertError::InvalidInput("NaN/Infinity are not JSON".into()));
    }
    if f == 0.0 {
        return Ok("0".into());
    }
    Ok(ryu_js::Buffer::new().format_finite(f).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Number vectors from RFC 8785 Appendix B (IEEE-754 bit patterns → expected text).
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        let mut diffs = Vec::new();
        for (bits, expected) in cases {
            let got = es_number_to_string(f64::from_bits(*bits)).unwrap();
            if got != *expected {
                diffs.push(format!("{bits:016x}: got {got}, want {expected}"));
            }
        }
        assert!(diffs.is_empty(), "{diffs:#?}");
        assert!(es_number_to_string(f64::NAN).is_err());
        assert!(es_number_to_string(f64::INFINITY).is_err());
    }

    /// RFC 8785 §3.2.2 sample ("values" input) and §3.2.3 sorting sample.
    #[test]
    fn rfc8785_examples() {
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            canonicalize(&v).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );

        let sorting = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
        let v: Value = serde_json::from_str(sorting).unwrap();
        let keys: Vec<String> = {
            let c = canonicalize(&v).unwrap();
            let back: serde_json::Map<String, Value> = serde_json::from_str(&c).unwrap();
            back.values()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            keys,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
    }
}
