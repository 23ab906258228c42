//! The issuer's signing identity: a signer plus the DSC it signs for.

use crate::error::{CertError, Result};
use crate::signer::{Algorithm, Signer};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// kid = the first 8 bytes of SHA-256 over the DSC certificate DER (EU DCC and
/// WHO DDCC trust lists key their certificates this way).
pub fn kid_for_dsc(dsc_der: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(dsc_der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest[..8]);
    kid
}

/// Everything an issuing function needs to sign as this issuer. The same type is
/// built from a local key or from Vault transit, so issuing code has one path.
#[derive(Clone)]
pub struct SigningIdentity {
    pub signer: Arc<dyn Signer>,
    pub dsc_der: Vec<u8>,
    pub kid: [u8; 8],
    /// Uncompressed P-256 point of the DSC key (`04 || x || y`).
    pub public_key: Vec<u8>,
    /// ISO 3166-1 alpha-2 or alpha-3 country of the issuer, as configured.
    pub country: String,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("kid", &self.kid_b64())
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Bind a signer to its DSC. Fails when the DSC does not hold a P-256 key or the
    /// signer is not ES256, so a misconfiguration surfaces at start, not per request.
    pub fn new(signer: Arc<dyn Signer>, dsc_der: Vec<u8>, country: &str) -> Result<Self> {
        if signer.algorithm() != Algorithm::Es256 {
            return Err(CertError::InvalidInput("signer is not ES256".into()));
        }
        let public_key = crate::x509::p256_public_key(&dsc_der)?;
        Ok(Self {
            signer,
            kid: kid_for_dsc(&dsc_der),
            dsc_der,
            public_key,
            country: country.to_string(),
        })
    }

    pub fn dsc_pem(&self) -> String {
        crate::x509::pem_encode("CERTIFICATE", &self.dsc_der)
    }

    /// kid in standard base64, the form EU trust lists publish.
    pub fn kid_b64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.kid)
    }

    /// Sign and check the signature shape: a remote signer returning DER or a
    /// truncated value must not reach a certificate.
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self.signer.sign(message).await?;
        if sig.len() != 64 {
            return Err(CertError::Sign(crate::signer::SignError::Invalid(format!(
                "ES256 signature must be 64 bytes (r||s), got {}",
                sig.len()
            ))));
        }
        Ok(sig)
    }
}
