//! RFC 8785 (JCS) canonical JSON, the bytes an ICAO VDS-NC signature covers.
//!
//! The verifier keeps its own implementation rather than calling the issuer's
//! (`ddcc-cert`) so the two are not one piece of code checking itself; the tests in
//! `tests/` cross-check them, and the Python oracle (`rfc8785`) checks the issuer.

use serde_json::Value;

/// Deeper than any VDS-NC (four levels); bounds recursion on hostile input.
const MAX_DEPTH: usize = 128;

/// Canonical form of `value`; `None` for a non-finite number or nesting deeper
/// than [`MAX_DEPTH`].
pub fn canonicalize(value: &Value) -> Option<String> {
    let mut out = String::new();
    write(value, &mut out, 0)?;
    Some(out)
}

fn write(value: &Value, out: &mut String, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)?),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // RFC 8785 §3.2.3: keys ordered by their UTF-16 code units.
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
                string(k, out);
                out.push(':');
                write(v, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Some(())
}

fn string(s: &str, out: &mut String) {
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

/// ECMAScript `Number.prototype.toString` of the value as an IEEE-754 double.
fn number(n: &serde_json::Number) -> Option<String> {
    let f = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) if i.unsigned_abs() <= 1 << 53 => return Some(i.to_string()),
        (Some(i), _) => i as f64,
        (None, Some(u)) => u as f64,
        (None, None) => n.as_f64()?,
    };
    if !f.is_finite() {
        return None;
    }
    if f == 0.0 {
        return Some("0".into());
    }
    Some(ryu_js::Buffer::new().format_finite(f).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8785 §3.2.2 example.
    #[test]
    fn rfc8785_example() {
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
    }

    #[test]
    fn keys_sort_by_utf16_and_depth_is_bounded() {
        let v: Value =
            serde_json::from_str(r#"{"\ud83d\ude00":1,"\ufb33":2,"b":3,"a":{}}"#).unwrap();
        assert_eq!(
            canonicalize(&v).unwrap(),
            "{\"a\":{},\"b\":3,\"\u{1F600}\":1,\"\u{fb33}\":2}"
        );
        let mut deep = Value::Null;
        for _ in 0..200 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(canonicalize(&deep), None);
    }
}
