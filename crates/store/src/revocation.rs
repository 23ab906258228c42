//! EU DCC revocation hashes (eHN "DCC revocation" technical specification): the trust
//! network publishes the first 128 bits of each; we keep the full SHA-256 so another
//! truncation or scheme can be derived later without the original data.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How the certificate was signed; ECDSA revocation hashes cover only `r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    /// ES256/384/512 with the raw `r‖s` signature of a COSE_Sign1.
    Ecdsa,
    /// RSA-PSS and anything else: the whole signature.
    Other,
}

/// One revoked certificate. Hashes are lowercase hex of the full SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub uvci_hash: String,
    pub signature_hash: String,
    pub country_code_uvci_hash: String,
    /// Key id of the signing certificate (base64, as in the COSE header).
    pub kid: String,
    /// FHIR instant.
    pub revoked_at: String,
    /// The repository document (e.g. `Bundle/…`) that was revoked.
    pub document_id: String,
}

/// The three full hashes (lowercase hex) of a certificate being verified: a stored
/// revocation matching any one of them revokes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationLookup {
    pub uvci_hash: String,
    pub country_code_uvci_hash: String,
    pub signature_hash: String,
}

/// A stored revocation with its sequence number, for publication bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRevocation {
    pub seq: i64,
    pub revocation: Revocation,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

impl Revocation {
    /// Computes the three hashes. `issuing_country` is the ISO 3166 alpha-2 code of the
    /// issuer (CWT `iss`); `cose_signature` the COSE_Sign1 signature bytes.
    pub fn new(
        issuing_country: &str,
        uvci: &str,
        cose_signature: &[u8],
        alg: SignatureAlg,
        kid: &str,
        revoked_at: &str,
        document_id: &str,
    ) -> Self {
        let signed_part = match alg {
            // For ECDSA the spec hashes only r, the first half of r‖s (32 bytes for P-256).
            SignatureAlg::Ecdsa => &cose_signature[..cose_signature.len() / 2],
            SignatureAlg::Other => cose_signature,
        };
        Revocation {
            uvci_hash: sha256_hex(uvci.as_bytes()),
            signature_hash: sha256_hex(signed_part),
            country_code_uvci_hash: sha256_hex(format!("{issuing_country}{uvci}").as_bytes()),
            kid: kid.to_owned(),
            revoked_at: revoked_at.to_owned(),
            document_id: document_id.to_owned(),
        }
    }

    /// A hash as published: the first 128 bits, hex.
    pub fn truncated(hash_hex: &str) -> &str {
        hash_hex.get(..32).unwrap_or(hash_hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_follow_the_scheme() {
        let sig: Vec<u8> = (0u8..64).collect();
        let r = Revocation::new(
            "AT",
            "URN:UVCI:01:AT:X#Y",
            &sig,
            SignatureAlg::Ecdsa,
            "kid",
            "2021-01-01T00:00:00Z",
            "Bundle/1",
        );
        // Independently known SHA-256 of the empty string guards the hex routine.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(r.signature_hash, sha256_hex(&sig[..32]));
        assert_eq!(
            r.country_code_uvci_hash,
            sha256_hex(b"ATURN:UVCI:01:AT:X#Y")
        );
        assert_eq!(r.uvci_hash, sha256_hex(b"URN:UVCI:01:AT:X#Y"));
        assert_eq!(Revocation::truncated(&r.uvci_hash).len(), 32);
        let rsa = Revocation::new("AT", "u", &sig, SignatureAlg::Other, "k", "t", "d");
        assert_eq!(rsa.signature_hash, sha256_hex(&sig));
    }
}
