//! `Bundle.signature` for the DDCC document: a JWS (ES256) with detached payload
//! over the RFC 8785 canonical JSON of the Bundle without its `signature`.
//!
//! The payload is base64url-encoded in the signing input as in ordinary JWS (no
//! RFC 7797 `b64: false`), then left out of the serialisation (`header..signature`).
//! A verifier removes `signature`, canonicalises, base64url-encodes, and re-inserts
//! it between the dots.

use crate::error::{CertError, Result};
use crate::identity::SigningIdentity;
use crate::{jcs, jws};
use base64::Engine;
use serde_json::{json, Value};

/// ASTM E1762-95 "Verification Signature".
pub const SIGNATURE_TYPE_SYSTEM: &str = "urn:iso-astm:E1762-95:2013";
pub const SIGNATURE_TYPE_CODE: &str = "1.2.840.10065.1.12.1.5";

/// The bytes a signature covers: JCS of the bundle minus `signature`.
pub fn signing_payload(bundle: &Value) -> Result<String> {
    let mut b = bundle.clone();
    match &mut b {
        Value::Object(m) => {
            m.remove("signature");
        }
        _ => {
            return Err(CertError::InvalidInput(
                "bundle is not a JSON object".into(),
            ))
        }
    }
    jcs::canonicalize(&b)
}

/// Produce the FHIR `Signature` for `bundle`. `who_reference` is the issuer
/// Organization reference (e.g. `Organization/abc` or the entry's fullUrl); `when`
/// is the signing time in Unix seconds.
pub async fn sign(
    bundle: &Value,
    signer: &SigningIdentity,
    who_reference: &str,
    when: i64,
) -> Result<Value> {
    let payload = signing_payload(bundle)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let header = json!({
        "alg": "ES256",
        "kid": signer.kid_b64(),
        "x5c": [b64.encode(&signer.dsc_der)],
    });
    let (h, _p, s) = jws::sign_compact(&header, payload.as_bytes(), signer).await?;
    let detached = format!("{h}..{s}");
    Ok(json!({
        "type": [{"system": SIGNATURE_TYPE_SYSTEM, "code": SIGNATURE_TYPE_CODE, "display": "Verification Signature"}],
        "when": crate::rfc3339_utc(when),
        "who": {"reference": who_reference},
        "targetFormat": "application/fhir+json",
        "sigFormat": "application/jose",
        "data": b64.encode(detached.as_bytes()),
    }))
}

/// Verify `bundle.signature` with an uncompressed P-256 public key.
pub fn verify(bundle: &Value, public_key: &[u8]) -> Result<()> {
    let bad = |m: &str| CertError::InvalidInput(m.to_string());
    let data = bundle
        .pointer("/signature/data")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("bundle has no signature.data"))?;
    let jws_bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| bad(&format!("signature.data base64: {e}")))?;
    let jws = String::from_utf8(jws_bytes).map_err(|_| bad("signature.data is not text"))?;
    let (h, rest) = jws
        .split_once("..")
        .ok_or_else(|| bad("JWS is not detached"))?;
    let sig = jws::b64url_decode(rest)?;
    let input = format!("{h}.{}", jws::b64url(signing_payload(bundle)?.as_bytes()));
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public_key)
        .verify(input.as_bytes(), &sig)
        .map_err(|_| bad("bundle signature does not verify"))
}
