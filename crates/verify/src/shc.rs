//! `shc:/` (SMART Health Card) verification: numeric decoding, JWS compact form,
//! header (`alg: ES256`, `zip: DEF`, `kid` = RFC 7638 thumbprint), raw DEFLATE within
//! a cap, the issuer key from the trust source (a JWKS, or a trusted DSC's key), the
//! `iss` binding, `nbf`/`exp`, and the verifiable-credential structure.

use base64::Engine as _;
use serde_json::Value as Json;

use crate::trust::{JwkKey, TrustSource};
use crate::{CheckKind, Format, SignerInfo, Verification};

pub(crate) const PREFIX: &str = "shc:/";

/// Largest inflated payload. A single-QR card is under 1 195 JWS characters; even a
/// chunked one inflates to tens of KiB, while DEFLATE could expand ~1000×.
pub const MAX_SHC_INFLATED: usize = 128 * 1024;

const HEALTH_CARD_TYPE: &str = "https://smarthealth.cards#health-card";

/// Verify a `shc:/` numeric card against `trust` at `validation_time_unix`.
pub fn verify_shc<T: TrustSource + ?Sized>(
    text: &str,
    trust: &T,
    validation_time_unix: i64,
) -> Verification {
    let mut v = Verification::new(Some(Format::Shc));
    run(text, trust, validation_time_unix, &mut v);
    v.finish()
}

/// `shc:/` digits → the compact JWS; `Err` names the fault.
pub fn numeric_decode(body: &str) -> Result<String, String> {
    let bytes = body.as_bytes();
    if bytes.is_empty() {
        return Err("no digits after shc:/".into());
    }
    if !bytes.len().is_multiple_of(2) {
        return Err(format!("odd number of digits ({})", bytes.len()));
    }
    let mut out = String::with_capacity(bytes.len() / 2);
    for (i, pair) in bytes.chunks(2).enumerate() {
        let (Some(a), Some(b)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(format!("non-digit at position {}", i * 2));
        };
        let value = a * 10 + b;
        // 45 + 77 = 'z', the last base64url/'.' character.
        if value > 77 {
            return Err(format!("pair {value} at position {} exceeds 77", i * 2));
        }
        out.push(char::from(value + 45));
    }
    Ok(out)
}

fn digit(c: u8) -> Option<u8> {
    c.is_ascii_digit().then(|| c - b'0')
}

fn b64url(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| e.to_string())
}

fn run<T: TrustSource + ?Sized>(text: &str, trust: &T, now: i64, v: &mut Verification) {
    let Some(body) = text.strip_prefix(PREFIX) else {
        let shown: String = text.chars().take(5).collect();
        v.fail(
            CheckKind::Prefix,
            format!("expected prefix shc:/, found {shown:?}"),
        );
        return;
    };
    if body.contains('/') {
        v.fail(
            CheckKind::Numeric,
            "a chunk of a multi-QR card (shc:/n/m/…); reassemble the chunks into one shc:/ text",
        );
        return;
    }
    let jws = match numeric_decode(body) {
        Ok(jws) => jws,
        Err(e) => {
            v.fail(CheckKind::Numeric, format!("shc:/ numeric: {e}"));
            return;
        }
    };
    let mut parts = jws.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        v.fail(
            CheckKind::Jws,
            format!(
                "not a JWS compact serialisation ({} parts, not 3)",
                jws.split('.').count()
            ),
        );
        return;
    };
    let header = match b64url(h64).map(|h| serde_json::from_slice::<Json>(&h)) {
        Ok(Ok(h @ Json::Object(_))) => h,
        Ok(Ok(_)) => {
            v.fail(CheckKind::Jws, "JWS header is not a JSON object");
            return;
        }
        Ok(Err(e)) => {
            v.fail(CheckKind::Jws, format!("JWS header JSON: {e}"));
            return;
        }
        Err(e) => {
            v.fail(CheckKind::Jws, format!("JWS header base64url: {e}"));
            return;
        }
    };
    let compressed = match b64url(p64) {
        Ok(p) => p,
        Err(e) => {
            v.fail(CheckKind::Jws, format!("JWS payload base64url: {e}"));
            return;
        }
    };
    let signature = match b64url(s64) {
        Ok(s) => s,
        Err(e) => {
            v.fail(CheckKind::Jws, format!("JWS signature base64url: {e}"));
            return;
        }
    };
    if header.get("alg").and_then(Json::as_str) != Some("ES256") {
        v.fail(
            CheckKind::Jws,
            format!(
                "JWS alg must be ES256, is {}",
                header.get("alg").unwrap_or(&Json::Null)
            ),
        );
    }
    let zip_def = header.get("zip").and_then(Json::as_str) == Some("DEF");
    if !zip_def {
        v.fail(
            CheckKind::Jws,
            format!(
                "JWS zip must be DEF, is {}",
                header.get("zip").unwrap_or(&Json::Null)
            ),
        );
    }
    match header.get("kid").and_then(Json::as_str) {
        Some(kid) if !kid.is_empty() => v.jws_kid = Some(kid.to_string()),
        _ => v.fail(CheckKind::Kid, "JWS header has no kid"),
    }

    // The payload decodes independently of the signature, so report it either way.
    let payload = if zip_def {
        match crate::inflate_capped(
            flate2::read::DeflateDecoder::new(&compressed[..]),
            MAX_SHC_INFLATED,
        ) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                v.fail(CheckKind::Decompression, format!("raw DEFLATE: {e}"));
                None
            }
        }
    } else {
        Some(compressed)
    };
    let claims = payload.and_then(|bytes| match serde_json::from_slice::<Json>(&bytes) {
        Ok(c @ Json::Object(_)) => Some(c),
        Ok(_) => {
            v.fail(CheckKind::Json, "JWS payload is not a JSON object");
            None
        }
        Err(e) => {
            v.fail(CheckKind::Json, format!("JWS payload JSON: {e}"));
            None
        }
    });
    if let Some(claims) = &claims {
        check_claims(claims, now, v);
    }

    let signing_input = format!("{h64}.{p64}");
    check_signature(trust, &signing_input, &signature, now, v);
    v.payload = claims;
}

fn check_claims(claims: &Json, now: i64, v: &mut Verification) {
    match claims.get("iss").and_then(Json::as_str) {
        Some(iss) if !iss.is_empty() => v.cwt.iss = Some(iss.to_string()),
        _ => v.fail(CheckKind::Structure, "no iss (issuer URL)"),
    }
    let seconds = |name: &str| {
        claims.get(name).and_then(|n| {
            n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
        })
    };
    match seconds("nbf") {
        Some(nbf) => {
            v.cwt.iat = Some(nbf);
            if nbf > now {
                v.fail(
                    CheckKind::NotYetValid,
                    format!("not before {nbf}, after the validation time {now}"),
                );
            }
        }
        None => v.fail(CheckKind::Structure, "no numeric nbf"),
    }
    if claims.get("exp").is_some() {
        match seconds("exp") {
            Some(exp) => {
                v.cwt.exp = Some(exp);
                if exp < now {
                    v.fail(
                        CheckKind::Expired,
                        format!("expired at {exp}, before the validation time {now}"),
                    );
                }
            }
            None => v.fail(CheckKind::Structure, "exp is not a number"),
        }
    }
    let vc = claims.get("vc");
    let types = vc.and_then(|vc| vc.get("type")).and_then(Json::as_array);
    if !types.is_some_and(|t| t.iter().any(|x| x.as_str() == Some(HEALTH_CARD_TYPE))) {
        v.fail(
            CheckKind::Structure,
            format!("vc.type does not include {HEALTH_CARD_TYPE}"),
        );
    }
    let subject = vc.and_then(|vc| vc.get("credentialSubject"));
    if subject
        .and_then(|s| s.get("fhirVersion"))
        .and_then(Json::as_str)
        .is_none()
    {
        v.fail(CheckKind::Structure, "no vc.credentialSubject.fhirVersion");
    }
    let bundle = subject.and_then(|s| s.get("fhirBundle"));
    let is_bundle = bundle
        .and_then(|b| b.get("resourceType"))
        .and_then(Json::as_str)
        == Some("Bundle");
    let has_entries = bundle
        .and_then(|b| b.get("entry"))
        .is_some_and(Json::is_array);
    if !(is_bundle && has_entries) {
        v.fail(
            CheckKind::Structure,
            "vc.credentialSubject.fhirBundle is not a Bundle with entries",
        );
    }
}

fn check_signature<T: TrustSource + ?Sized>(
    trust: &T,
    signing_input: &str,
    signature: &[u8],
    now: i64,
    v: &mut Verification,
) {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    let Some(kid) = v.jws_kid.clone() else {
        return;
    };
    let iss = v.cwt.iss.as_deref().map(|i| i.trim_end_matches('/'));
    let candidates = trust.keys_for_thumbprint(&kid);
    if candidates.is_empty() {
        v.fail(
            CheckKind::UnknownSigner,
            format!("no trusted issuer key has kid {kid}"),
        );
        return;
    }
    // A JWKS vouches for its keys only under the issuer it was published for.
    let bound: Vec<&JwkKey> = candidates
        .iter()
        .filter(|k| k.issuer.is_none() || k.issuer.as_deref() == iss)
        .collect();
    if bound.is_empty() {
        v.fail(
            CheckKind::UnknownSigner,
            format!(
                "key {kid} is trusted for issuer {:?}, but the card names {:?}",
                candidates[0].issuer.as_deref().unwrap_or_default(),
                iss.unwrap_or_default()
            ),
        );
        return;
    }
    let key = bound.into_iter().find(|k| {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &k.point)
            .verify(signing_input.as_bytes(), signature)
            .is_ok()
    });
    let Some(key) = key else {
        v.fail(
            CheckKind::Signature,
            "signature does not verify with the issuer key",
        );
        return;
    };
    v.signer = Some(SignerInfo {
        country: key.country.clone(),
        subject: key
            .subject
            .clone()
            .or_else(|| key.issuer.clone())
            .unwrap_or_else(|| kid.clone()),
    });
    if now < key.not_before || now > key.not_after {
        v.fail(
            CheckKind::DscValidity,
            format!(
                "signing certificate valid from {} to {}, not at {now}",
                key.not_before, key.not_after
            ),
        );
    }
}
