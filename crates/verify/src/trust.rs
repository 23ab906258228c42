//! Document Signer Certificates a verifier trusts, indexed by the HCERT kid.

use std::collections::HashMap;

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
        })
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
        if !slot.iter().any(|d| d.der == dsc.der) {
            slot.push(dsc);
        }
        Ok(kid)
    }

    /// Add a certificate given as PEM or base64 DER; returns its kid.
    pub fn add_text(&mut self, text: &str) -> Result<[u8; 8], TrustError> {
        let der = decode_certificate_text(text)?;
        self.add_der(&der)
    }

    /// The DSCs registered under `kid` (empty when unknown).
    pub fn get(&self, kid: &[u8]) -> &[Dsc] {
        <[u8; 8]>::try_from(kid)
            .ok()
            .and_then(|k| self.by_kid.get(&k))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
}
