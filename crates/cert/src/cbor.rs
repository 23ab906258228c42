//! JSON ⇄ CBOR for HCERT payloads. Integers stay integers (the EU schema needs
//! `dn`/`sd` as CBOR unsigned ints); non-integral numbers become floats.

use crate::error::{CertError, Result};
use ciborium::value::{Integer, Value as Cbor};
use serde_json::Value as Json;

/// Deeper input is rejected rather than recursed into (stack safety on hostile input).
pub const MAX_DEPTH: usize = 64;

pub fn json_to_cbor(json: &Json) -> Result<Cbor> {
    to_cbor(json, 0)
}

fn to_cbor(json: &Json, depth: usize) -> Result<Cbor> {
    if depth > MAX_DEPTH {
        return Err(CertError::InvalidInput("JSON nested too deeply".into()));
    }
    Ok(match json {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Cbor::Integer(Integer::from(u))
            } else if let Some(i) = n.as_i64() {
                Cbor::Integer(Integer::from(i))
            } else {
                Cbor::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Cbor::Text(s.clone()),
        Json::Array(items) => Cbor::Array(
            items
                .iter()
                .map(|v| to_cbor(v, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Json::Object(map) => Cbor::Map(
            map.iter()
                .map(|(k, v)| Ok((Cbor::Text(k.clone()), to_cbor(v, depth + 1)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// CBOR back to JSON, for decoding our own certificates in tests and tools. Map keys
/// that are integers become decimal strings; byte strings become base64url.
pub fn cbor_to_json(cbor: &Cbor) -> Result<Json> {
    to_json(cbor, 0)
}

fn to_json(cbor: &Cbor, depth: usize) -> Result<Json> {
    use base64::Engine;
    if depth > MAX_DEPTH {
        return Err(CertError::InvalidInput("CBOR nested too deeply".into()));
    }
    Ok(match cbor {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(*b),
        Cbor::Integer(i) => {
            let v = i128::from(*i);
            if let Ok(u) = u64::try_from(v) {
                Json::from(u)
            } else if let Ok(s) = i64::try_from(v) {
                Json::from(s)
            } else {
                return Err(CertError::InvalidInput("CBOR integer out of range".into()));
            }
        }
        Cbor::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| CertError::InvalidInput("non-finite float".into()))?,
        Cbor::Text(s) => Json::String(s.clone()),
        Cbor::Bytes(b) => Json::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)),
        Cbor::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| to_json(v, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Cbor::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                let key = match k {
                    Cbor::Text(s) => s.clone(),
                    Cbor::Integer(i) => i128::from(*i).to_string(),
                    _ => return Err(CertError::InvalidInput("unsupported CBOR map key".into())),
                };
                map.insert(key, to_json(v, depth + 1)?);
            }
            Json::Object(map)
        }
        Cbor::Tag(_, inner) => to_json(inner, depth + 1)?,
        _ => return Err(CertError::InvalidInput("unsupported CBOR value".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_integers_and_order() {
        let j = json!({"b": 1, "a": [1.5, -3, "x", null, true], "dn": 2});
        let c = json_to_cbor(&j).unwrap();
        if let Cbor::Map(m) = &c {
            assert_eq!(m[2].1, Cbor::Integer(2.into()));
        } else {
            panic!("not a map");
        }
        assert_eq!(cbor_to_json(&c).unwrap(), j);
    }

    #[test]
    fn depth_is_guarded() {
        let mut j = json!(1);
        for _ in 0..(MAX_DEPTH + 2) {
            j = json!([j]);
        }
        assert!(json_to_cbor(&j).is_err());
    }
}
