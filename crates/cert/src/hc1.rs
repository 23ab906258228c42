//! HCERT: CWT claims in a COSE_Sign1 (ES256), zlib, base45, `HC1:` prefix.
//! The same container carries the WHO DDCC core data set (`who`) and the EU DCC
//! (`dcc`); only the hcert claim's payload differs.

use crate::cbor::json_to_cbor;
use crate::error::{CertError, Result};
use crate::identity::SigningIdentity;
use ciborium::value::Value as Cbor;
use coset::{cwt, iana, CborSerializable, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use serde_json::Value;
use std::io::Write;

pub const PREFIX: &str = "HC1:";
/// The hcert claim (-260) holds a map; key 1 is the EU DCC / DDCC v1 payload.
const HCERT_PAYLOAD_KEY: i64 = 1;

/// The payload carried under the hcert claim.
#[derive(Debug, Clone, PartialEq)]
pub enum HcertPayload {
    /// WHO DDCC: the core data set JSON (logical model) as CBOR.
    Who(Value),
    /// EU DCC 1.3.0 JSON (from [`crate::eudcc::from_core_data_set`]).
    Dcc(Value),
}

impl HcertPayload {
    fn json(&self) -> &Value {
        match self {
            HcertPayload::Who(v) | HcertPayload::Dcc(v) => v,
        }
    }
}

/// CWT claims other than the payload. Times are Unix seconds, chosen by the caller
/// (the core has no clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwtClaims {
    /// Issuer country (ISO 3166-1 alpha-2 for EU verifiers).
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

/// Build the untagged-payload COSE_Sign1 bytes (tagged 18), signed by `signer`.
pub async fn sign_cose(
    payload: &HcertPayload,
    claims: &CwtClaims,
    signer: &SigningIdentity,
) -> Result<Vec<u8>> {
    if claims.exp <= claims.iat {
        return Err(CertError::InvalidInput("exp must be after iat".into()));
    }
    let hcert = Cbor::Map(vec![(
        Cbor::Integer(HCERT_PAYLOAD_KEY.into()),
        json_to_cbor(payload.json())?,
    )]);
    let cwt = cwt::ClaimsSetBuilder::new()
        .issuer(claims.iss.clone())
        .issued_at(cwt::Timestamp::WholeSeconds(claims.iat))
        .expiration_time(cwt::Timestamp::WholeSeconds(claims.exp))
        .claim(iana::CwtClaimName::Hcert, hcert)
        .build()
        .to_vec()
        .map_err(|e| CertError::Encoding(format!("CWT: {e}")))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(signer.kid.to_vec())
        .build();
    let mut sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(cwt)
        .build();
    let tbs = sign1.tbs_data(b"");
    sign1.signature = signer.sign(&tbs).await?;
    sign1
        .to_tagged_vec()
        .map_err(|e| CertError::Encoding(format!("COSE: {e}")))
}

/// Issue an `HC1:` string.
pub async fn issue(
    payload: &HcertPayload,
    claims: &CwtClaims,
    signer: &SigningIdentity,
) -> Result<String> {
    let cose = sign_cose(payload, claims, signer).await?;
    Ok(pack(&cose))
}

/// zlib (level 9: smaller QR codes are worth the microseconds) + base45 + prefix.
pub fn pack(cose: &[u8]) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let compressed = z
        .write_all(cose)
        .and_then(|_| z.finish())
        .unwrap_or_default();
    format!("{PREFIX}{}", base45::encode(&compressed))
}

/// Inverse of [`pack`]: strip the prefix, base45-decode, inflate when zlib-framed.
pub fn unpack(hc1: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let body = hc1
        .strip_prefix(PREFIX)
        .ok_or_else(|| CertError::InvalidInput("missing HC1: prefix".into()))?;
    let raw = base45::decode(body).map_err(|e| CertError::InvalidInput(format!("base45: {e}")))?;
    if raw.first() != Some(&0x78) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    // Bound the inflated size: a hostile QR must not expand without limit.
    flate2::read::ZlibDecoder::new(&raw[..])
        .take(1 << 20)
        .read_to_end(&mut out)
        .map_err(|e| CertError::InvalidInput(format!("zlib: {e}")))?;
    Ok(out)
}

/// A decoded, signature-checked HC1.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub kid: Vec<u8>,
    pub iss: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
    pub payload: Value,
}

/// Decode an HC1 and verify it with an uncompressed P-256 public key. Used by our
/// own tests and tools; the acceptance checks use independent Python verifiers.
pub fn verify(hc1: &str, public_key: &[u8]) -> Result<Decoded> {
    let cose = unpack(hc1)?;
    let sign1 = coset::CoseSign1::from_tagged_slice(&cose)
        .or_else(|_| coset::CoseSign1::from_slice(&cose))
        .map_err(|e| CertError::InvalidInput(format!("COSE: {e}")))?;
    sign1
        .verify_signature(b"", |sig, data| {
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                public_key,
            )
            .verify(data, sig)
        })
        .map_err(|_| CertError::InvalidInput("signature does not verify".into()))?;
    let payload = sign1
        .payload
        .as_deref()
        .ok_or_else(|| CertError::InvalidInput("COSE payload missing".into()))?;
    let claims = cwt::ClaimsSet::from_slice(payload)
        .map_err(|e| CertError::InvalidInput(format!("CWT: {e}")))?;
    let ts = |t: &Option<cwt::Timestamp>| match t {
        Some(cwt::Timestamp::WholeSeconds(s)) => Some(*s),
        _ => None,
    };
    let hcert = claims
        .rest
        .iter()
        .find(|(name, _)| {
            *name == coset::RegisteredLabelWithPrivate::Assigned(iana::CwtClaimName::Hcert)
        })
        .map(|(_, v)| v)
        .ok_or_else(|| CertError::InvalidInput("hcert claim missing".into()))?;
    let inner = match hcert {
        Cbor::Map(m) => m
            .iter()
            .find(|(k, _)| *k == Cbor::Integer(HCERT_PAYLOAD_KEY.into()))
            .map(|(_, v)| v)
            .ok_or_else(|| CertError::InvalidInput("hcert key 1 missing".into()))?,
        _ => return Err(CertError::InvalidInput("hcert is not a map".into())),
    };
    Ok(Decoded {
        kid: sign1.protected.header.key_id.clone(),
        iss: claims.issuer.clone(),
        iat: ts(&claims.issued_at),
        exp: ts(&claims.expiration_time),
        payload: crate::cbor::cbor_to_json(inner)?,
    })
}
