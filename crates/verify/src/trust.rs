//! Document Signer Certificates (and SMART Health Card issuer keys) a verifier
//! trusts, indexed by the HCERT kid and by the JWK thumbprint, plus the revocation
//! hashes it knows; and [`TrustSource`], the interface verification reads them through.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use x509_parser::extensions::ParsedExtension;

/// Why a certificate could not be added to a [`TrustList`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("certificate is neither PEM nor base64 DER")]
    Encoding,
    #[error("certificate does not parse as X.509: {0}")]
    X509(String),
    #[error("unsupported public key algorithm {0} (only EC P-256 and RSA)")]
    KeyAlgorithm(String),
    #[error("JWKS: {0}")]
    Jwks(String),
}

/// The verification key of a DSC, in the form `ring` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed SEC1 point of a P-256 key.
    P256(Vec<u8>),
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
}

/// What the verifier needs from one DSC, extracted once when the list is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsc {
    pub der: Vec<u8>,
    pub kid: [u8; 8],
    pub subject: String,
    pub country: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub key: PublicKey,
    /// Dotted OIDs of the extendedKeyUsage extension; empty when absent.
    pub extended_key_usage: Vec<String>,
    /// DER of the subject and issuer names, to find issuers when building a chain.
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    /// DER SubjectPublicKeyInfo, to check certificates this one issued.
    pub spki_der: Vec<u8>,
}

/// A SMART Health Card issuer key (EC P-256), from a JWKS or from a trusted DSC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkKey {
    /// RFC 7638 thumbprint, the SHC `kid`.
    pub thumbprint: String,
    /// Uncompressed SEC1 point.
    pub point: Vec<u8>,
    /// The issuer URL (`iss`) the key was published for; `None` binds no issuer.
    pub issuer: Option<String>,
    /// Subject and country of the DSC the key came from, if any.
    pub subject: Option<String>,
    pub country: Option<String>,
    /// Validity of that DSC (Unix seconds); unbounded for a bare JWK.
    pub not_before: i64,
    pub not_after: i64,
}

/// RFC 7638 thumbprint of an uncompressed P-256 point; `None` for anything else.
pub fn jwk_thumbprint(point: &[u8]) -> Option<String> {
    if point.len() != 65 || point[0] != 4 {
        return None;
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    // The required members in lexicographic order, no whitespace (RFC 7638 §3.2).
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        b64(&point[1..33]),
        b64(&point[33..])
    );
    Some(b64(&Sha256::digest(canonical.as_bytes())))
}

/// Where verification finds trusted keys and revocations. [`TrustList`] is the
/// in-memory implementation; a synced trust network store implements the same.
pub trait TrustSource {
    /// DSCs registered under an 8-byte HCERT kid (empty when unknown).
    fn dscs_for_kid(&self, kid: &[u8]) -> &[Dsc];
    /// SHC issuer keys with this RFC 7638 thumbprint.
    fn keys_for_thumbprint(&self, thumbprint: &str) -> &[JwkKey];
    /// Trusted certificates whose subject is `subject_der` (issuers, for a chain).
    fn certificates_with_subject(&self, subject_der: &[u8]) -> Vec<&Dsc>;
    /// True when any of the hashes is on a revocation list.
    fn is_revoked(&self, hashes: &crate::RevocationHashes) -> bool;
}

/// HCERT kid: the first 8 bytes of SHA-256 over the DER certificate.
pub fn kid_of(der: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest[..8]);
    kid
}

impl Dsc {
    /// Parse a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, TrustError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| TrustError::X509(e.to_string()))?;
        let spki = cert.public_key();
        let alg = spki.algorithm.algorithm.to_id_string();
        let bits = spki.subject_public_key.data.to_vec();
        let key = match alg.as_str() {
            "1.2.840.10045.2.1" => PublicKey::P256(bits),
            // rsaEncryption and id-RSASSA-PSS carry the same RSAPublicKey.
            "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => PublicKey::Rsa(bits),
            other => return Err(TrustError::KeyAlgorithm(other.to_string())),
        };
        let mut extended_key_usage = Vec::new();
        for ext in cert.extensions() {
            if let ParsedExtension::ExtendedKeyUsage(eku) = ext.parsed_extension() {
                extended_key_usage.extend(eku.other.iter().map(|o| o.to_id_string()));
            }
        }
        let subject_der = cert.subject().as_raw().to_vec();
        let issuer_der = cert.issuer().as_raw().to_vec();
        let spki_der = spki.raw.to_vec();
        let country = cert
            .subject()
            .iter_country()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string);
        Ok(Dsc {
            der: der.to_vec(),
            kid: kid_of(der),
            subject: cert.subject().to_string(),
            country,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            key,
            extended_key_usage,
            subject_der,
            issuer_der,
            spki_der,
        })
    }

    /// True when `child` (DER) carries a signature this certificate's key verifies.
    pub fn signed(&self, child_der: &[u8]) -> bool {
        use x509_parser::prelude::FromDer;
        let Ok((_, child)) = x509_parser::parse_x509_certificate(child_der) else {
            return false;
        };
        let Ok((_, spki)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&self.spki_der)
        else {
            return false;
        };
        child.issuer().as_raw() == self.subject_der.as_slice()
            && child.verify_signature(Some(&spki)).is_ok()
    }
}

/// Decode a certificate given as PEM (one `CERTIFICATE` block) or base64 DER.
pub fn decode_certificate_text(text: &str) -> Result<Vec<u8>, TrustError> {
    let text = text.trim();
    let body: String = if let Some(rest) = text.strip_prefix("-----BEGIN CERTIFICATE-----") {
        let end = rest
            .find("-----END CERTIFICATE-----")
            .ok_or(TrustError::Encoding)?;
        rest[..end].split_whitespace().collect()
    } else {
        text.split_whitespace().collect()
    };
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(body.as_bytes()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body.as_bytes()))
        .map_err(|_| TrustError::Encoding)
}

/// The DSCs a verification may rely on. Several certificates may share a kid (it is
/// only 64 bits, and real trust lists have had collisions), so each kid maps to a list.
#[derive(Debug, Clone, Default)]
pub struct TrustList {
    by_kid: HashMap<[u8; 8], Vec<Dsc>>,
    by_thumbprint: HashMap<String, Vec<JwkKey>>,
    revoked: HashSet<[u8; 16]>,
}

impl TrustList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a DER certificate; returns its kid.
    pub fn add_der(&mut self, der: &[u8]) -> Result<[u8; 8], TrustError> {
        let dsc = Dsc::from_der(der)?;
        let kid = dsc.kid;
        let slot = self.by_kid.entry(kid).or_default();
        if slot.iter().any(|d| d.der == dsc.der) {
            return Ok(kid);
        }
        // Our SHC key is the DSC key: a trusted DSC also vouches for its JWK.
        if let PublicKey::P256(point) = &dsc.key {
            if let Some(thumbprint) = jwk_thumbprint(point) {
                self.by_thumbprint
                    .entry(thumbprint.clone())
                    .or_default()
                    .push(JwkKey {
                        thumbprint,
                        point: point.clone(),
                        issuer: None,
                        subject: Some(dsc.subject.clone()),
                        country: dsc.country.clone(),
                        not_before: dsc.not_before,
                        not_after: dsc.not_after,
                    });
            }
        }
        slot.push(dsc);
        Ok(kid)
    }

    /// Add the EC P-256 keys of a JWKS (`{"keys": [...]}`) as SHC issuer keys,
    /// bound to `issuer` (the `iss` they are published under) when given. Keys of
    /// other types are skipped; returns how many were added.
    pub fn add_jwks(
        &mut self,
        issuer: Option<&str>,
        jwks: &serde_json::Value,
    ) -> Result<usize, TrustError> {
        let keys = jwks
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| TrustError::Jwks("no keys array".into()))?;
        let mut added = 0;
        for key in keys {
            let field = |name: &str| key.get(name).and_then(serde_json::Value::as_str);
            if field("kty") != Some("EC") || field("crv") != Some("P-256") {
                continue;
            }
            let coordinate = |name: &str| {
                field(name)
                    .and_then(|t| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(t)
                            .ok()
                    })
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| TrustError::Jwks(format!("{name} is not a 32-byte base64url")))
            };
            let mut point = vec![4u8];
            point.extend(coordinate("x")?);
            point.extend(coordinate("y")?);
            let thumbprint = jwk_thumbprint(&point)
                .ok_or_else(|| TrustError::Jwks("not a P-256 point".into()))?;
            let entry = JwkKey {
                thumbprint: thumbprint.clone(),
                point,
                issuer: issuer.map(|i| i.trim_end_matches('/').to_string()),
                subject: None,
                country: None,
                not_before: i64::MIN,
                not_after: i64::MAX,
            };
            let slot = self.by_thumbprint.entry(thumbprint).or_default();
            if !slot.contains(&entry) {
                slot.push(entry);
                added += 1;
            }
        }
        Ok(added)
    }

    /// Record a revoked certificate by one of its EU DCC revocation hashes (the
    /// first 16 bytes of the SHA-256, as the trust network publishes them).
    pub fn add_revoked_hash(&mut self, truncated: [u8; 16]) {
        self.revoked.insert(truncated);
    }

    /// Add a certificate given as PEM or base64 DER; returns its kid.
    pub fn add_text(&mut self, text: &str) -> Result<[u8; 8], TrustError> {
        let der = decode_certificate_text(text)?;
        self.add_der(&der)
    }

    /// The DSCs registered under `kid` (empty when unknown).
    pub fn get(&self, kid: &[u8]) -> &[Dsc] {
        self.dscs_for_kid(kid)
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.by_thumbprint.is_empty()
    }
}

/// Two trust sources read as one, so a large list built once (e.g. the synced trust
/// network list) is shared across verifications instead of copied into each
/// request's list. Per kid or thumbprint the first source that knows it answers
/// (kids are SHA-256 prefixes of the certificate, so both sources holding one kid
/// means both hold the same certificate); issuers and revocations come from both.
pub struct Layered<'a, A: TrustSource + ?Sized, B: TrustSource + ?Sized> {
    pub first: &'a A,
    pub second: &'a B,
}

impl<A: TrustSource + ?Sized, B: TrustSource + ?Sized> TrustSource for Layered<'_, A, B> {
    fn dscs_for_kid(&self, kid: &[u8]) -> &[Dsc] {
        match self.first.dscs_for_kid(kid) {
            [] => self.second.dscs_for_kid(kid),
            found => found,
        }
    }

    fn keys_for_thumbprint(&self, thumbprint: &str) -> &[JwkKey] {
        match self.first.keys_for_thumbprint(thumbprint) {
            [] => self.second.keys_for_thumbprint(thumbprint),
            found => found,
        }
    }

    fn certificates_with_subject(&self, subject_der: &[u8]) -> Vec<&Dsc> {
        let mut all = self.first.certificates_with_subject(subject_der);
        all.extend(self.second.certificates_with_subject(subject_der));
        all
    }

    fn is_revoked(&self, hashes: &crate::RevocationHashes) -> bool {
        self.first.is_revoked(hashes) || self.second.is_revoked(hashes)
    }
}

impl TrustSource for TrustList {
    fn dscs_for_kid(&self, kid: &[u8]) -> &[Dsc] {
        <[u8; 8]>::try_from(kid)
            .ok()
            .and_then(|k| self.by_kid.get(&k))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn keys_for_thumbprint(&self, thumbprint: &str) -> &[JwkKey] {
        self.by_thumbprint
            .get(thumbprint)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn certificates_with_subject(&self, subject_der: &[u8]) -> Vec<&Dsc> {
        // Issuer look-ups happen only for ICAO chains; a scan keeps the list simple.
        self.by_kid
            .values()
            .flatten()
            .filter(|d| d.subject_der == subject_der)
            .collect()
    }

    fn is_revoked(&self, hashes: &crate::RevocationHashes) -> bool {
        !self.revoked.is_empty() && hashes.truncated().iter().any(|h| self.revoked.contains(h))
    }
}
