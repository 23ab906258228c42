//! SMART Health Cards: a verifiable credential carrying a minified FHIR bundle,
//! signed as a compact JWS (ES256, `zip: DEF`, kid = RFC 7638 thumbprint), payload
//! raw DEFLATE, and the `shc:/` numeric QR form.

use crate::error::{CertError, Result};
use crate::identity::SigningIdentity;
use crate::jws;
use serde_json::{json, Map, Value};
use std::io::Write;

pub const VC_TYPES: [&str; 3] = [
    "https://smarthealth.cards#health-card",
    "https://smarthealth.cards#immunization",
    "https://smarthealth.cards#covid19",
];
/// The largest JWS the SHC spec allows in a single (non-chunked) QR.
pub const MAX_SINGLE_QR_JWS: usize = 1195;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShcResult {
    /// Compact JWS (the content of a `.smart-health-card` file's `verifiableCredential`).
    pub jws: String,
    /// `shc:/` + two digits per JWS character.
    pub qr_numeric: String,
}

/// `shc:/` numeric form: each character becomes `ord(c) - 45` as two digits.
pub fn numeric_encode(jws: &str) -> Result<String> {
    let mut out = String::with_capacity(5 + jws.len() * 2);
    out.push_str("shc:/");
    for b in jws.bytes() {
        if !(45..=122).contains(&b) {
            return Err(CertError::InvalidInput(
                "JWS has characters outside base64url/'.'".into(),
            ));
        }
        let v = b - 45;
        out.push(char::from(b'0' + v / 10));
        out.push(char::from(b'0' + v % 10));
    }
    Ok(out)
}

/// Inverse of [`numeric_encode`].
pub fn numeric_decode(qr: &str) -> Result<String> {
    let digits = qr
        .strip_prefix("shc:/")
        .ok_or_else(|| CertError::InvalidInput("missing shc:/ prefix".into()))?;
    let bytes = digits.as_bytes();
    if bytes.len() % 2 != 0 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(CertError::InvalidInput(
            "shc:/ body must be pairs of digits".into(),
        ));
    }
    Ok(bytes
        .chunks(2)
        .map(|p| char::from((p[0] - b'0') * 10 + (p[1] - b'0') + 45))
        .collect())
}

/// Shrink a FHIR bundle as the SHC spec asks: `fullUrl` becomes `resource:N`,
/// references are rewritten to match, and `Resource.id`, `meta`, narrative `text`,
/// `Coding.display` and `CodeableConcept.text` are dropped.
pub fn minify_bundle(bundle: &Value) -> Result<Value> {
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| CertError::InvalidInput("bundle has no entry array".into()))?;
    // Map every way an entry can be referenced to its short URI.
    let mut aliases: Vec<(String, String)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let short = format!("resource:{i}");
        if let Some(u) = e.get("fullUrl").and_then(Value::as_str) {
            aliases.push((u.to_string(), short.clone()));
        }
        let r = e.get("resource");
        if let (Some(t), Some(id)) = (
            r.and_then(|r| r.get("resourceType"))
                .and_then(Value::as_str),
            r.and_then(|r| r.get("id")).and_then(Value::as_str),
        ) {
            aliases.push((format!("{t}/{id}"), short));
        }
    }
    let mut out_entries = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let mut resource = e.get("resource").cloned().unwrap_or(Value::Null);
        if let Value::Object(m) = &mut resource {
            m.remove("id");
            m.remove("meta");
            m.remove("text");
        }
        scrub(&mut resource, &aliases, 0)?;
        out_entries.push(json!({"fullUrl": format!("resource:{i}"), "resource": resource}));
    }
    Ok(json!({"resourceType": "Bundle", "type": "collection", "entry": out_entries}))
}

fn scrub(v: &mut Value, aliases: &[(String, String)], depth: usize) -> Result<()> {
    if depth > crate::cbor::MAX_DEPTH {
        return Err(CertError::InvalidInput("bundle nested too deeply".into()));
    }
    match v {
        Value::Object(m) => {
            if m.get("coding").is_some_and(Value::is_array) {
                m.remove("text");
            }
            if let Some(Value::Array(codings)) = m.get_mut("coding") {
                for c in codings.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("display");
                }
            }
            if let Some(Value::String(r)) = m.get_mut("reference") {
                if let Some((_, short)) = aliases.iter().find(|(k, _)| k == r) {
                    *r = short.clone();
                }
            }
            for child in m.values_mut() {
                scrub(child, aliases, depth + 1)?;
            }
        }
        Value::Array(items) => {
            for child in items {
                scrub(child, aliases, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The VC payload (before compression).
pub fn credential(bundle: &Value, issuer_url: &str, nbf: i64) -> Result<Value> {
    Ok(json!({
        "iss": issuer_url.trim_end_matches('/'),
        "nbf": nbf,
        "vc": {
            "type": VC_TYPES,
            "credentialSubject": {
                "fhirVersion": "4.0.1",
                "fhirBundle": minify_bundle(bundle)?,
            }
        }
    }))
}

/// Issue a SMART Health Card for `bundle` (the output of the DDCCtoSHC map).
/// `nbf` is the issuance time in Unix seconds.
pub async fn issue(
    bundle: &Value,
    issuer_url: &str,
    nbf: i64,
    signer: &SigningIdentity,
) -> Result<ShcResult> {
    let vc = credential(bundle, issuer_url, nbf)?;
    let minified = serde_json::to_vec(&vc).map_err(|e| CertError::Encoding(e.to_string()))?;
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let payload = deflate
        .write_all(&minified)
        .and_then(|_| deflate.finish())
        .map_err(|e| CertError::Encoding(format!("deflate: {e}")))?;
    let kid = jwk(signer)?["kid"].as_str().unwrap_or_default().to_string();
    let header = json!({"alg": "ES256", "zip": "DEF", "kid": kid});
    let (h, p, s) = jws::sign_compact(&header, &payload, signer).await?;
    let jws = format!("{h}.{p}.{s}");
    let qr_numeric = numeric_encode(&jws)?;
    Ok(ShcResult { jws, qr_numeric })
}

/// Verify a card (`shc:/…` or compact JWS) with an uncompressed P-256 key and
/// return the VC payload. The inflated size is bounded against hostile input.
pub fn verify(card: &str, public_key: &[u8]) -> Result<Value> {
    use std::io::Read;
    let bad = |m: &str| CertError::InvalidInput(m.to_string());
    let compact = if card.starts_with("shc:/") {
        numeric_decode(card)?
    } else {
        card.to_string()
    };
    let mut parts = compact.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a compact JWS"));
    };
    let header: Value = serde_json::from_slice(&jws::b64url_decode(h)?)
        .map_err(|e| bad(&format!("JWS header: {e}")))?;
    if header["alg"] != "ES256" || header["zip"] != "DEF" {
        return Err(bad("SHC header must be alg ES256, zip DEF"));
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public_key)
        .verify(format!("{h}.{p}").as_bytes(), &jws::b64url_decode(sig)?)
        .map_err(|_| bad("SHC signature does not verify"))?;
    let compressed = jws::b64url_decode(p)?;
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(&compressed[..])
        .take(1 << 20)
        .read_to_end(&mut inflated)
        .map_err(|e| bad(&format!("inflate: {e}")))?;
    serde_json::from_slice(&inflated).map_err(|e| bad(&format!("VC JSON: {e}")))
}

/// The issuer's public JWK.
pub fn jwk(signer: &SigningIdentity) -> Result<Value> {
    jws::ec_public_jwk(&signer.public_key)
}

/// The JWKS served at `<issuer>/.well-known/jwks.json`. Several identities (key
/// rotation) give several keys.
pub fn jwks(signers: &[&SigningIdentity]) -> Result<Value> {
    let keys = signers.iter().map(|s| jwk(s)).collect::<Result<Vec<_>>>()?;
    let mut m = Map::new();
    m.insert("keys".into(), Value::Array(keys));
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_encoding_spec_example() {
        // From the SMART Health Cards specification: "eyJ" → 56 76 29.
        assert_eq!(numeric_encode("eyJ").unwrap(), "shc:/567629");
        assert_eq!(numeric_encode("-.z").unwrap(), "shc:/000177");
        assert_eq!(numeric_decode("shc:/567629").unwrap(), "eyJ");
        assert!(numeric_encode("a b").is_err());
        assert!(numeric_decode("shc:/5").is_err());
        assert!(numeric_decode("567629").is_err());
    }

    #[test]
    fn minify_rewrites_references_and_drops_noise() {
        let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "meta": {"x": 1},
              "text": {"div": "<div/>"}, "name": [{"family": "A", "text": "A B"}]}},
            {"fullUrl": "http://x/Immunization/i1", "resource": {"resourceType": "Immunization", "id": "i1",
              "patient": {"reference": "urn:uuid:p1"},
              "vaccineCode": {"text": "Comirnaty", "coding": [{"system": "s", "code": "c", "display": "d"}]}}},
            {"resource": {"resourceType": "Immunization", "patient": {"reference": "Patient/p1"}}}
        ]});
        let m = minify_bundle(&b).unwrap();
        assert_eq!(m["entry"][0]["fullUrl"], "resource:0");
        assert!(m["entry"][0]["resource"].get("id").is_none());
        assert!(m["entry"][0]["resource"].get("text").is_none());
        assert_eq!(m["entry"][0]["resource"]["name"][0]["text"], "A B");
        assert_eq!(
            m["entry"][1]["resource"]["patient"]["reference"],
            "resource:0"
        );
        assert_eq!(
            m["entry"][2]["resource"]["patient"]["reference"],
            "resource:0"
        );
        assert!(m["entry"][1]["resource"]["vaccineCode"]
            .get("text")
            .is_none());
        assert!(m["entry"][1]["resource"]["vaccineCode"]["coding"][0]
            .get("display")
            .is_none());
        assert!(minify_bundle(&json!({"entry": 3})).is_err());
    }
}
