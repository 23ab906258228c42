//! EU DCC revocation hashes ("DCC revocation" technical specification, eHealth
//! Network): SHA-256 of the UVCI, of the issuing country followed by the UVCI, and
//! of the COSE signature (for ECDSA only `r`, the first half of `r‖s`). Trust lists
//! publish the first 16 bytes of each. `ddcc-store` records the full hashes of what
//! `$revokeHealthCertificate` revoked in lowercase hex; [`RevocationHashes::hex`]
//! gives the same strings.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The three hashes of one certificate, full SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevocationHashes {
    pub uvci: [u8; 32],
    pub country_code_uvci: [u8; 32],
    pub signature: [u8; 32],
}

/// Which signature scheme made the COSE signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// ES256/384/512: raw `r‖s`; the hash covers `r`.
    Ecdsa,
    /// RSA-PSS: the whole signature.
    Rsa,
}

impl RevocationHashes {
    /// `country` is the CWT `iss` (ISO 3166-1 alpha-2), `uvci` the DCC's `ci`.
    pub fn new(country: &str, uvci: &str, signature: &[u8], scheme: SignatureScheme) -> Self {
        let signed = match scheme {
            SignatureScheme::Ecdsa => &signature[..signature.len() / 2],
            SignatureScheme::Rsa => signature,
        };
        let digest = |data: &[u8]| -> [u8; 32] { Sha256::digest(data).into() };
        RevocationHashes {
            uvci: digest(uvci.as_bytes()),
            country_code_uvci: digest(format!("{country}{uvci}").as_bytes()),
            signature: digest(signed),
        }
    }

    /// The published (first 128 bits) forms: UCI, COUNTRYCODEUCI, SIGNATURE.
    pub fn truncated(&self) -> [[u8; 16]; 3] {
        let cut = |h: &[u8; 32]| -> [u8; 16] {
            let mut out = [0u8; 16];
            out.copy_from_slice(&h[..16]);
            out
        };
        [
            cut(&self.uvci),
            cut(&self.country_code_uvci),
            cut(&self.signature),
        ]
    }

    /// Lowercase hex of the full hashes: (UCI, COUNTRYCODEUCI, SIGNATURE).
    pub fn hex(&self) -> (String, String, String) {
        (
            hex(&self.uvci),
            hex(&self.country_code_uvci),
            hex(&self.signature),
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_follow_the_scheme() {
        let sig: Vec<u8> = (0u8..64).collect();
        let h = RevocationHashes::new("AT", "URN:UVCI:01:AT:X#Y", &sig, SignatureScheme::Ecdsa);
        assert_eq!(
            h.uvci,
            <[u8; 32]>::from(Sha256::digest(b"URN:UVCI:01:AT:X#Y"))
        );
        assert_eq!(
            h.country_code_uvci,
            <[u8; 32]>::from(Sha256::digest(b"ATURN:UVCI:01:AT:X#Y"))
        );
        assert_eq!(h.signature, <[u8; 32]>::from(Sha256::digest(&sig[..32])));
        let rsa = RevocationHashes::new("AT", "u", &sig, SignatureScheme::Rsa);
        assert_eq!(rsa.signature, <[u8; 32]>::from(Sha256::digest(&sig)));
        // SHA-256("") is known independently; it guards the hex routine.
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(h.truncated()[0], h.uvci[..16]);
    }
}
