//! `HC1:` (EU DCC / WHO DDCC:VS CWT) verification.

use base64::Engine as _;
use ciborium::value::Value as Cbor;
use serde_json::Value as Json;

use crate::revocation::{RevocationHashes, SignatureScheme};
use crate::trust::{Dsc, PublicKey, TrustSource};
use crate::{CheckKind, Format, SignerInfo, Verification};

/// Largest decompressed COSE we inflate. A genuine DCC is under 3 KiB; a QR code
/// holds under 3 KiB compressed, which zlib could inflate to megabytes.
pub const MAX_DECOMPRESSED: usize = 64 * 1024;

/// CBOR nesting we convert to JSON; DCC payloads are four levels deep.
const MAX_DEPTH: usize = 64;

const COSE_ALG: i128 = 1;
const COSE_KID: i128 = 4;
const ALG_ES256: i128 = -7;
const ALG_PS256: i128 = -37;
const TAG_COSE_SIGN1: u64 = 18;
const TAG_CWT: u64 = 61;
const CLAIM_ISS: i128 = 1;
const CLAIM_EXP: i128 = 4;
const CLAIM_IAT: i128 = 6;
const CLAIM_HCERT: i128 = -260;

/// Key-usage OIDs per certificate type: the correct arc and the mistyped one with
/// an extra `.0` that most 2021 DSCs carry.
const EKU_TEST: [&str; 2] = ["1.3.6.1.4.1.1847.2021.1.1", "1.3.6.1.4.1.0.1847.2021.1.1"];
const EKU_VACCINATION: [&str; 2] = ["1.3.6.1.4.1.1847.2021.1.2", "1.3.6.1.4.1.0.1847.2021.1.2"];
const EKU_RECOVERY: [&str; 2] = ["1.3.6.1.4.1.1847.2021.1.3", "1.3.6.1.4.1.0.1847.2021.1.3"];

/// Verify an `HC1:` text against `trust` at `validation_time_unix` (seconds).
pub fn verify_hc1<T: TrustSource + ?Sized>(
    text: &str,
    trust: &T,
    validation_time_unix: i64,
) -> Verification {
    let mut v = Verification::new(Some(Format::Hc1));
    run(text, trust, validation_time_unix, &mut v);
    v.finish()
}

fn fail(v: &mut Verification, check: CheckKind, message: impl Into<String>) {
    v.fail(check, message);
}

fn run<T: TrustSource + ?Sized>(text: &str, trust: &T, now: i64, v: &mut Verification) {
    // Scanners often append a newline; anything else before the prefix is wrong.
    let text = text.trim_end_matches(['\r', '\n']);
    let Some(body) = text.strip_prefix(crate::hc1::PREFIX) else {
        let shown: String = text.chars().take(4).collect();
        fail(
            v,
            CheckKind::Prefix,
            format!("expected prefix HC1:, found {shown:?}"),
        );
        return;
    };
    let raw = match base45::decode(body) {
        Ok(raw) => raw,
        Err(e) => {
            fail(v, CheckKind::Base45, format!("base45: {e}"));
            return;
        }
    };
    let cose_bytes = match inflate(&raw) {
        Ok(bytes) => bytes,
        Err(message) => {
            fail(v, CheckKind::Decompression, message);
            // Some issuers skipped compression; say so, but still decode what is
            // there so the other checks can report too.
            if raw.first() == Some(&0x78) {
                return;
            }
            raw
        }
    };
    let Some(sign1) = parse_sign1(&cose_bytes, v) else {
        return;
    };

    // The payload decodes independently of the signature, so report it either way.
    let claims = match ciborium::de::from_reader::<Cbor, _>(&sign1.payload[..]) {
        Ok(Cbor::Map(m)) => Some(m),
        Ok(_) => {
            fail(v, CheckKind::Cbor, "CWT payload is not a CBOR map");
            None
        }
        Err(e) => {
            fail(v, CheckKind::Cbor, format!("CWT payload: {e}"));
            None
        }
    };
    let mut cert_types = Vec::new();
    if let Some(claims) = &claims {
        v.cwt.iss = map_get(claims, CLAIM_ISS).and_then(|c| c.as_text().map(str::to_string));
        v.cwt.iat = map_get(claims, CLAIM_IAT).and_then(as_seconds);
        v.cwt.exp = map_get(claims, CLAIM_EXP).and_then(as_seconds);
        let hcert = map_get(claims, CLAIM_HCERT)
            .and_then(|h| h.as_map())
            .and_then(|h| map_get(h, 1));
        match hcert.map(|h| (h.is_map(), to_json(h, 0))) {
            Some((false, _)) => fail(v, CheckKind::Cbor, "HCERT payload is not a CBOR map"),
            Some((true, Some(json))) => {
                if let Some(obj) = json.as_object() {
                    cert_types = ["v", "t", "r"]
                        .into_iter()
                        .filter(|k| obj.contains_key(*k))
                        .collect();
                }
                v.payload = Some(json);
            }
            Some((true, None)) => fail(v, CheckKind::Cbor, "HCERT payload nests too deep"),
            None => fail(v, CheckKind::Cbor, "CWT has no HCERT claim (-260 → 1)"),
        }
    }

    check_signature(&sign1, trust, now, &cert_types, v);
    check_revocation(&sign1, trust, v);

    match v.cwt.iat {
        Some(iat) if iat > now => fail(
            v,
            CheckKind::NotYetValid,
            format!("issued at {iat}, after the validation time {now}"),
        ),
        Some(_) => {}
        None if claims.is_some() => fail(v, CheckKind::NotYetValid, "no iat claim (6)"),
        None => {}
    }
    match v.cwt.exp {
        Some(exp) if exp < now => fail(
            v,
            CheckKind::Expired,
            format!("expired at {exp}, before the validation time {now}"),
        ),
        Some(_) => {}
        None if claims.is_some() => fail(v, CheckKind::Expired, "no exp claim (4)"),
        None => {}
    }
}

pub(crate) const PREFIX: &str = "HC1:";

fn inflate(raw: &[u8]) -> Result<Vec<u8>, String> {
    // 0x78 is the zlib CMF byte for deflate with a 32 KiB window, the only one used.
    if raw.first() != Some(&0x78) {
        return Err("input is not zlib-compressed".into());
    }
    crate::inflate_capped(flate2::read::ZlibDecoder::new(raw), MAX_DECOMPRESSED)
        .map_err(|e| format!("zlib: {e}"))
}

/// The UVCI of a DCC payload: `ci` of its first vaccination, test or recovery entry.
fn dcc_uvci(payload: &Json) -> Option<&str> {
    ["v", "t", "r"]
        .iter()
        .find_map(|k| payload.get(*k)?.get(0)?.get("ci")?.as_str())
}

fn check_revocation<T: TrustSource + ?Sized>(sign1: &Sign1, trust: &T, v: &mut Verification) {
    let Some(uvci) = v.payload.as_ref().and_then(dcc_uvci) else {
        return;
    };
    let Some(country) = v
        .cwt
        .iss
        .clone()
        .or_else(|| v.signer.as_ref().and_then(|s| s.country.clone()))
    else {
        return;
    };
    let scheme = match sign1.alg {
        Some(ALG_PS256) => SignatureScheme::Rsa,
        _ => SignatureScheme::Ecdsa,
    };
    let hashes = RevocationHashes::new(&country, uvci, &sign1.signature, scheme);
    if trust.is_revoked(&hashes) {
        fail(
            v,
            CheckKind::Revocation,
            format!("certificate {uvci} is on the revocation list"),
        );
    }
    v.revocation = Some(hashes);
}

struct Sign1 {
    protected_bytes: Vec<u8>,
    alg: Option<i128>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn parse_sign1(bytes: &[u8], v: &mut Verification) -> Option<Sign1> {
    let mut value = match ciborium::de::from_reader::<Cbor, _>(bytes) {
        Ok(value) => value,
        Err(e) => {
            fail(v, CheckKind::Cbor, format!("COSE: {e}"));
            return None;
        }
    };
    // Tag 18 (COSE_Sign1), optionally inside tag 61 (CWT), or untagged.
    let mut seen_cwt = false;
    let mut seen_sign1 = false;
    while let Cbor::Tag(tag, inner) = value {
        match tag {
            TAG_CWT if !seen_cwt && !seen_sign1 => seen_cwt = true,
            TAG_COSE_SIGN1 if !seen_sign1 => seen_sign1 = true,
            other => {
                fail(v, CheckKind::Cose, format!("unexpected CBOR tag {other}"));
                return None;
            }
        }
        value = *inner;
    }
    let Cbor::Array(items) = value else {
        fail(v, CheckKind::Cose, "COSE_Sign1 is not a CBOR array");
        return None;
    };
    let [protected, unprotected, payload, signature] = <[Cbor; 4]>::try_from(items)
        .map_err(|items| format!("COSE_Sign1 has {} elements instead of 4", items.len()))
        .map_err(|m| fail(v, CheckKind::Cose, m))
        .ok()?;
    let Cbor::Bytes(protected_bytes) = protected else {
        fail(v, CheckKind::Cose, "protected header is not a byte string");
        return None;
    };
    let protected_map = if protected_bytes.is_empty() {
        Vec::new()
    } else {
        match ciborium::de::from_reader::<Cbor, _>(&protected_bytes[..]) {
            Ok(Cbor::Map(m)) => m,
            _ => {
                fail(v, CheckKind::Cose, "protected header is not a CBOR map");
                return None;
            }
        }
    };
    let Cbor::Map(unprotected_map) = unprotected else {
        fail(v, CheckKind::Cose, "unprotected header is not a map");
        return None;
    };
    let Cbor::Bytes(payload) = payload else {
        fail(v, CheckKind::Cose, "payload is not an embedded byte string");
        return None;
    };
    let Cbor::Bytes(signature) = signature else {
        fail(v, CheckKind::Cose, "signature is not a byte string");
        return None;
    };

    // The protected kid wins: an attacker can rewrite the unprotected header.
    let kid = match map_get(&protected_map, COSE_KID) {
        Some(k) => Some(k),
        None => map_get(&unprotected_map, COSE_KID),
    };
    match kid {
        Some(Cbor::Bytes(k)) => match <[u8; 8]>::try_from(k.as_slice()) {
            Ok(k) => v.kid = Some(k),
            Err(_) => fail(
                v,
                CheckKind::Kid,
                format!("kid has {} bytes, not 8", k.len()),
            ),
        },
        Some(_) => fail(v, CheckKind::Kid, "kid is not a byte string"),
        None => fail(
            v,
            CheckKind::Kid,
            "no kid in the protected or unprotected header",
        ),
    }
    let alg = map_get(&protected_map, COSE_ALG)
        .or_else(|| map_get(&unprotected_map, COSE_ALG))
        .and_then(|a| a.as_integer())
        .map(i128::from);
    Some(Sign1 {
        protected_bytes,
        alg,
        payload,
        signature,
    })
}

fn check_signature<T: TrustSource + ?Sized>(
    sign1: &Sign1,
    trust: &T,
    now: i64,
    cert_types: &[&str],
    v: &mut Verification,
) {
    let Some(kid) = v.kid else {
        return;
    };
    let candidates = trust.dscs_for_kid(&kid);
    if candidates.is_empty() {
        let kid_b64 = base64::engine::general_purpose::STANDARD.encode(kid);
        fail(
            v,
            CheckKind::UnknownSigner,
            format!("no trusted certificate has kid {kid_b64}"),
        );
        return;
    }
    let tbs = sig_structure(&sign1.protected_bytes, &sign1.payload);
    let mut last_error = String::from("signature does not verify");
    let mut signer: Option<&Dsc> = None;
    for dsc in candidates {
        match verify_with(dsc, sign1.alg, &tbs, &sign1.signature) {
            Ok(()) => {
                signer = Some(dsc);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let Some(dsc) = signer else {
        fail(v, CheckKind::Signature, last_error);
        return;
    };
    v.signer = Some(SignerInfo {
        country: dsc.country.clone(),
        subject: dsc.subject.clone(),
    });
    if now < dsc.not_before || now > dsc.not_after {
        fail(
            v,
            CheckKind::DscValidity,
            format!(
                "signing certificate valid from {} to {}, not at {now}",
                dsc.not_before, dsc.not_after
            ),
        );
    }
    if let Some(message) = key_usage_violation(&dsc.extended_key_usage, cert_types) {
        fail(v, CheckKind::KeyUsage, message);
    }
}

/// The harness semantics: no DCC key-usage OIDs at all (or no EKU) means the DSC
/// may sign every type; otherwise each type in the payload needs its OID.
fn key_usage_violation(eku: &[String], cert_types: &[&str]) -> Option<String> {
    if eku.is_empty() {
        return None;
    }
    for t in cert_types {
        let allowed = match *t {
            "t" => EKU_TEST,
            "v" => EKU_VACCINATION,
            _ => EKU_RECOVERY,
        };
        if !eku.iter().any(|o| allowed.contains(&o.as_str())) {
            return Some(format!(
                "signing certificate may not sign type {t:?} (extended key usage: {})",
                eku.join(", ")
            ));
        }
    }
    None
}

pub(crate) fn verify_with(
    dsc: &Dsc,
    alg: Option<i128>,
    tbs: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PSS_2048_8192_SHA256};
    let outcome = match (alg, &dsc.key) {
        (Some(ALG_ES256), PublicKey::P256(key)) => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key).verify(tbs, sig)
        }
        (Some(ALG_PS256), PublicKey::Rsa(key)) => {
            UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, key).verify(tbs, sig)
        }
        (Some(a @ (ALG_ES256 | ALG_PS256)), _) => {
            return Err(format!(
                "algorithm {a} does not match the signing certificate's key"
            ))
        }
        (Some(a), _) => return Err(format!("unsupported COSE algorithm {a}")),
        (None, _) => return Err("no alg in the COSE headers".into()),
    };
    outcome.map_err(|_| "signature does not verify with the signing certificate".into())
}

/// `["Signature1", protected, h'', payload]` as CBOR: the bytes COSE signs.
fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let value = Cbor::Array(vec![
        Cbor::Text("Signature1".into()),
        Cbor::Bytes(protected.to_vec()),
        Cbor::Bytes(Vec::new()),
        Cbor::Bytes(payload.to_vec()),
    ]);
    let mut out = Vec::with_capacity(payload.len() + protected.len() + 32);
    // Serializing a Value into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(&value, &mut out);
    out
}

fn map_get(map: &[(Cbor, Cbor)], key: i128) -> Option<&Cbor> {
    map.iter().find_map(|(k, val)| match k {
        Cbor::Integer(i) if i128::from(*i) == key => Some(val),
        _ => None,
    })
}

fn as_seconds(value: &Cbor) -> Option<i64> {
    match value {
        Cbor::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        // Some issuers write NumericDate as a float.
        Cbor::Float(f) if f.is_finite() && f.abs() < 1e15 => Some(f.trunc() as i64),
        Cbor::Tag(1, inner) => as_seconds(inner),
        _ => None,
    }
}

/// CBOR → JSON for the payload. Byte strings become base64 (the DCC schema has
/// none); non-text map keys are written as text. `None` when nested too deep.
fn to_json(value: &Cbor, depth: usize) -> Option<Json> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match value {
        Cbor::Integer(i) => {
            let i = i128::from(*i);
            i64::try_from(i)
                .map(Json::from)
                .or_else(|_| u64::try_from(i).map(Json::from))
                .unwrap_or_else(|_| Json::String(i.to_string()))
        }
        Cbor::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Cbor::Text(s) => Json::String(s.clone()),
        Cbor::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Bool(b) => Json::Bool(*b),
        Cbor::Null => Json::Null,
        Cbor::Tag(_, inner) => to_json(inner, depth + 1)?,
        Cbor::Array(items) => Json::Array(
            items
                .iter()
                .map(|i| to_json(i, depth + 1))
                .collect::<Option<Vec<_>>>()?,
        ),
        Cbor::Map(entries) => {
            let mut obj = serde_json::Map::new();
            for (k, val) in entries {
                let key = match k {
                    Cbor::Text(s) => s.clone(),
                    other => match to_json(other, depth + 1)? {
                        Json::String(s) => s,
                        j => j.to_string(),
                    },
                };
                obj.insert(key, to_json(val, depth + 1)?);
            }
            Json::Object(obj)
        }
        _ => Json::Null,
    })
}
