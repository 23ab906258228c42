//! Minimal JWS (RFC 7515) for ES256 with an external signer, and JWK helpers.

use crate::error::{CertError, Result};
use crate::identity::SigningIdentity;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| CertError::InvalidInput(format!("base64url: {e}")))
}

/// Sign `header` + `payload` and return the three compact parts
/// (`protected`, `payload`, `signature`), each base64url.
pub async fn sign_compact(
    header: &Value,
    payload: &[u8],
    signer: &SigningIdentity,
) -> Result<(String, String, String)> {
    let protected = b64url(
        serde_json::to_string(header)
            .map_err(|e| CertError::Encoding(e.to_string()))?
            .as_bytes(),
    );
    let payload_b64 = b64url(payload);
    let signing_input = format!("{protected}.{payload_b64}");
    let sig = signer.sign(signing_input.as_bytes()).await?;
    Ok((protected, payload_b64, b64url(&sig)))
}

/// The public JWK (EC P-256) of an uncompressed point, with `kid`, `use`, `alg`.
pub fn ec_public_jwk(point: &[u8]) -> Result<Value> {
    if point.len() != 65 || point[0] != 4 {
        return Err(CertError::InvalidInput(
            "not an uncompressed P-256 point".into(),
        ));
    }
    let x = b64url(&point[1..33]);
    let y = b64url(&point[33..]);
    let kid = jwk_thumbprint(&x, &y);
    Ok(
        json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": x, "y": y}),
    )
}

/// RFC 7638 thumbprint of an EC key: SHA-256 over the required members in
/// lexicographic order with no whitespace, base64url.
pub fn jwk_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64url(&Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thumbprint layout is the RFC 7638 §3.1 member order; checked against an
    /// independent computation over the JCS form of the same members.
    #[test]
    fn thumbprint_matches_jcs_of_required_members() {
        let x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        let y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        let members = serde_json::json!({"y": y, "x": x, "kty": "EC", "crv": "P-256"});
        let jcs = crate::jcs::canonicalize(&members).unwrap();
        assert_eq!(
            jwk_thumbprint(x, y),
            b64url(&Sha256::digest(jcs.as_bytes()))
        );
        assert!(ec_public_jwk(&[4u8; 10]).is_err());
    }
}
