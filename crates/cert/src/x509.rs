//! Just enough DER to read a DSC: the P-256 public key from its
//! SubjectPublicKeyInfo, and PEM armour. A full X.509 parser is not needed because
//! the certificate is produced by our own key ceremony or Vault; we only need the
//! public point for the JWKS and for self-checks.

use crate::error::{CertError, Result};
use base64::Engine;

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn bad(msg: &str) -> CertError {
    CertError::InvalidCertificate(msg.to_string())
}

/// One DER TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first().ok_or_else(|| bad("truncated tag"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| bad("truncated length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("unsupported length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad("truncated content"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8])> {
    let (t, content, rest) = tlv(input)?;
    if t != tag {
        return Err(bad("unexpected DER tag"));
    }
    Ok((content, rest))
}

/// The uncompressed P-256 point (`04 || x || y`, 65 bytes) of a certificate's key.
pub fn p256_public_key(cert_der: &[u8]) -> Result<Vec<u8>> {
    let (cert, _) = expect(cert_der, 0x30)?;
    let (tbs, _) = expect(cert, 0x30)?;
    let mut rest = tbs;
    // Optional explicit version [0].
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    // serial, signature algorithm, issuer, validity, subject
    for _ in 0..5 {
        rest = tlv(rest)?.2;
    }
    let (spki, _) = expect(rest, 0x30)?;
    let (alg, after_alg) = expect(spki, 0x30)?;
    let (oid, alg_rest) = expect(alg, 0x06)?;
    let (curve, _) = expect(alg_rest, 0x06)?;
    if oid != OID_EC_PUBLIC_KEY || curve != OID_PRIME256V1 {
        return Err(bad("DSC key is not an EC P-256 key"));
    }
    let (bits, _) = expect(after_alg, 0x03)?;
    match bits.split_first() {
        Some((0, point)) if point.len() == 65 && point[0] == 4 => Ok(point.to_vec()),
        _ => Err(bad("DSC public key is not an uncompressed P-256 point")),
    }
}

/// PEM-armour DER bytes with 64-column lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER of the first PEM block with the given label.
pub fn pem_decode(label: &str, pem: &str) -> Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| bad("PEM begin marker missing"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| bad("PEM end marker missing"))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| bad(&format!("PEM base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_panicking() {
        for input in [
            &b""[..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x02, 0x30, 0x05],
        ] {
            assert!(p256_public_key(input).is_err());
        }
    }

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem_decode("CERTIFICATE", &pem).unwrap(), der);
        assert!(pem_decode("PRIVATE KEY", &pem).is_err());
    }
}
