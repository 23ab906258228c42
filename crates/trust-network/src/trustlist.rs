//! Verifying what the gateway lists (contract §8): every trusted-party row
//! (`AUTHENTICATION`, `UPLOAD`, `CSCA`, `TRUSTANCHOR`, `DECA`) carries a detached CMS
//! signature of its DER by the trust anchor (TNG TA); every DSC must be signed by a
//! verified CSCA of its country whose subject is the DSC's issuer, and uploaded in a
//! CMS (detached or attached) signed by a verified UPLOAD certificate of that country;
//! trusted issuers carry a TA signature over `country;name;url;type`.
//!
//! Nothing unverified is returned: a row that fails is reported in `rejected` and
//! left out, so the verifier never trusts what the trust anchor did not vouch for.

use base64::Engine;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const ID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const ID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const ID_SHA512: &str = "2.16.840.1.101.3.4.2.3";
const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ID_RSA: &str = "1.2.840.113549.1.1.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";

/// Groups whose rows the trust anchor signs.
pub const TA_SIGNED: [&str; 5] = ["AUTHENTICATION", "UPLOAD", "CSCA", "TRUSTANCHOR", "DECA"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not base64: {0}")]
    Base64(String),
    #[error("not a DER certificate: {0}")]
    Certificate(String),
    #[error("not a CMS SignedData: {0}")]
    Cms(String),
    #[error("the CMS content does not match the certificate")]
    ContentMismatch,
    #[error("the CMS message digest does not match its content")]
    Digest,
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    #[error("no trusted signer verifies the signature")]
    Signature,
    #[error("no CSCA of {0} issued it")]
    NoIssuer(String),
}

fn b64(s: &str) -> Result<Vec<u8>, VerifyError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| VerifyError::Base64(e.to_string()))
}

fn oid(s: &str) -> ObjectIdentifier {
    // Only called with the literal constants above.
    ObjectIdentifier::new_unwrap(s)
}

fn parse_cert(der: &[u8]) -> Result<Certificate, VerifyError> {
    Certificate::from_der(der).map_err(|e| VerifyError::Certificate(e.to_string()))
}

/// Verifies `signature` over `message` with the certificate's public key.
/// `sig_alg` is the signature algorithm; `digest_alg` the digest to use when the
/// signature algorithm names only the key type (CMS allows `rsaEncryption` there).
fn verify_with(
    cert: &Certificate,
    sig_alg: &ObjectIdentifier,
    digest_alg: Option<&ObjectIdentifier>,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, VerifyError> {
    use ring::signature as rs;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.raw_bytes();
    let key_alg = spki.algorithm.oid;
    let digest = digest_alg.copied().unwrap_or_else(|| oid(ID_SHA256));
    let alg: &dyn rs::VerificationAlgorithm = if key_alg == oid(ID_EC_PUBLIC_KEY) {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(|| VerifyError::Algorithm("EC key without a named curve".into()))?;
        let hash = if *sig_alg == oid(ECDSA_SHA256) {
            oid(ID_SHA256)
        } else if *sig_alg == oid(ECDSA_SHA384) {
            oid(ID_SHA384)
        } else if *sig_alg == oid(ID_EC_PUBLIC_KEY) {
            digest
        } else {
            return Err(VerifyError::Algorithm(sig_alg.to_string()));
        };
        match (curve.to_string().as_str(), hash.to_string().as_str()) {
            (P256, ID_SHA256) => &rs::ECDSA_P256_SHA256_ASN1,
            (P256, ID_SHA384) => &rs::ECDSA_P256_SHA384_ASN1,
            (P384, ID_SHA256) => &rs::ECDSA_P384_SHA256_ASN1,
            (P384, ID_SHA384) => &rs::ECDSA_P384_SHA384_ASN1,
            (c, h) => return Err(VerifyError::Algorithm(format!("ECDSA {c} with {h}"))),
        }
    } else if key_alg == oid(ID_RSA) {
        let s = sig_alg.to_string();
        match s.as_str() {
            RSA_SHA256 => &rs::RSA_PKCS1_2048_8192_SHA256,
            RSA_SHA384 => &rs::RSA_PKCS1_2048_8192_SHA384,
            RSA_SHA512 => &rs::RSA_PKCS1_2048_8192_SHA512,
            ID_RSA => match digest.to_string().as_str() {
                ID_SHA256 => &rs::RSA_PKCS1_2048_8192_SHA256,
                ID_SHA384 => &rs::RSA_PKCS1_2048_8192_SHA384,
                ID_SHA512 => &rs::RSA_PKCS1_2048_8192_SHA512,
                d => return Err(VerifyError::Algorithm(format!("RSA with {d}"))),
            },
            // The profiles name SHA-256 for RSASSA-PSS; the parameters are not read.
            RSA_PSS => &rs::RSA_PSS_2048_8192_SHA256,
            other => return Err(VerifyError::Algorithm(other.to_string())),
        }
    } else {
        return Err(VerifyError::Algorithm(key_alg.to_string()));
    };
    Ok(rs::UnparsedPublicKey::new(alg, key)
        .verify(message, signature)
        .is_ok())
}

/// The signed data of a signer: its signed attributes (after checking their message
/// digest against `content`) or the content itself.
fn signed_bytes(si: &SignerInfo, content: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let Some(attrs) = &si.signed_attrs else {
        return Ok(content.to_vec());
    };
    let digest: Vec<u8> = match si.digest_alg.oid.to_string().as_str() {
        ID_SHA256 => Sha256::digest(content).to_vec(),
        ID_SHA384 => Sha384::digest(content).to_vec(),
        ID_SHA512 => Sha512::digest(content).to_vec(),
        other => return Err(VerifyError::Algorithm(other.to_string())),
    };
    let md = attrs
        .iter()
        .find(|a| a.oid == oid(ID_MESSAGE_DIGEST))
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
        .ok_or(VerifyError::Digest)?;
    if md.as_bytes() != digest.as_slice() {
        return Err(VerifyError::Digest);
    }
    // RFC 5652 §5.4: the signature covers the attributes as an explicit SET OF.
    attrs.to_der().map_err(|e| VerifyError::Cms(e.to_string()))
}

/// Verifies a CMS SignedData (base64) over `content`: attached content must equal it,
/// detached signatures are checked against it. Succeeds when a signer info verifies
/// with one of `signers` (DER certificates); returns the index of that signer.
pub fn verify_cms(cms_b64: &str, content: &[u8], signers: &[&[u8]]) -> Result<usize, VerifyError> {
    verify_inner(cms_b64, Some(content), signers).map(|(_, i)| i)
}

/// Verifies a CMS SignedData with attached content (e.g. a revocation batch) and
/// returns that content with the index of the signer that verified it.
pub fn verify_attached(cms_b64: &str, signers: &[&[u8]]) -> Result<(Vec<u8>, usize), VerifyError> {
    verify_inner(cms_b64, None, signers)
}

fn verify_inner(
    cms_b64: &str,
    expected: Option<&[u8]>,
    signers: &[&[u8]],
) -> Result<(Vec<u8>, usize), VerifyError> {
    let der = b64(cms_b64)?;
    let info = ContentInfo::from_der(&der).map_err(|e| VerifyError::Cms(e.to_string()))?;
    if info.content_type != oid(ID_SIGNED_DATA) {
        return Err(VerifyError::Cms(format!(
            "content type {} is not signedData",
            info.content_type
        )));
    }
    let sd: SignedData = info
        .content
        .decode_as()
        .map_err(|e| VerifyError::Cms(e.to_string()))?;
    let content: Vec<u8> = match (&sd.encap_content_info.econtent, expected) {
        (Some(attached), expected) => {
            let bytes = attached
                .decode_as::<der::asn1::OctetString>()
                .map_err(|e| VerifyError::Cms(e.to_string()))?;
            if expected.is_some_and(|c| c != bytes.as_bytes()) {
                return Err(VerifyError::ContentMismatch);
            }
            bytes.as_bytes().to_vec()
        }
        (None, Some(c)) => c.to_vec(),
        (None, None) => return Err(VerifyError::Cms("no content: detached signature".into())),
    };
    let content = content.as_slice();
    let certs: Vec<(usize, Certificate)> = signers
        .iter()
        .enumerate()
        .filter_map(|(i, d)| Certificate::from_der(d).ok().map(|c| (i, c)))
        .collect();
    let mut last = VerifyError::Signature;
    for si in sd.signer_infos.0.iter() {
        let msg = match signed_bytes(si, content) {
            Ok(m) => m,
            Err(e) => {
                last = e;
                continue;
            }
        };
        for (i, cert) in &certs {
            match verify_with(
                cert,
                &si.signature_algorithm.oid,
                Some(&si.digest_alg.oid),
                &msg,
                si.signature.as_bytes(),
            ) {
                Ok(true) => return Ok((content.to_vec(), *i)),
                Ok(false) => {}
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// True when `issuer` issued `child`: names chain and the signature verifies.
pub fn issued_by(child_der: &[u8], issuer_der: &[u8]) -> Result<bool, VerifyError> {
    let child = parse_cert(child_der)?;
    let issuer = parse_cert(issuer_der)?;
    if child.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Ok(false);
    }
    let tbs = child
        .tbs_certificate
        .to_der()
        .map_err(|e| VerifyError::Certificate(e.to_string()))?;
    verify_with(
        &issuer,
        &child.signature_algorithm.oid,
        None,
        &tbs,
        child.signature.raw_bytes(),
    )
}

/// One item of `GET /trustList/certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRow {
    #[serde(default)]
    pub kid: String,
    pub group: String,
    pub country: String,
    /// base64 DER.
    pub certificate: String,
    /// base64 CMS.
    #[serde(default)]
    pub signature: String,
    #[serde(default)]
    pub domain: Option<String>,
}

/// One item of `GET /trustList/issuers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRow {
    pub url: String,
    #[serde(rename = "type")]
    pub issuer_type: String,
    pub country: String,
    pub name: String,
    #[serde(default)]
    pub thumbprint: Option<String>,
    #[serde(default)]
    pub signature: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
}

/// A row that passed verification, with its decoded certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCert {
    pub group: String,
    pub country: String,
    pub domain: String,
    pub kid: String,
    /// Lowercase hex SHA-256 of `der`.
    pub thumbprint: String,
    pub der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub group: String,
    pub country: String,
    pub kid: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedList {
    pub accepted: Vec<VerifiedCert>,
    pub rejected: Vec<Rejection>,
}

fn reject(row: &CertificateRow, e: impl std::fmt::Display) -> Rejection {
    Rejection {
        group: row.group.clone(),
        country: row.country.clone(),
        kid: row.kid.clone(),
        reason: e.to_string(),
    }
}

fn accepted(row: &CertificateRow, der: Vec<u8>) -> VerifiedCert {
    VerifiedCert {
        group: row.group.to_ascii_uppercase(),
        country: row.country.clone(),
        domain: row.domain.clone().unwrap_or_else(|| "DCC".into()),
        kid: row.kid.clone(),
        thumbprint: crate::reference::thumbprint(&der),
        der,
    }
}

/// Verifies a downloaded certificate list against the trust anchor.
/// `known` are already verified entries (e.g. the CSCA and UPLOAD rows of the last
/// full sync), used as issuers and uploaders when `rows` holds only DSCs.
pub fn verify_certificates(
    rows: &[CertificateRow],
    trust_anchor_der: &[u8],
    known: &[VerifiedCert],
) -> VerifiedList {
    let mut out = VerifiedList::default();
    let mut trusted: Vec<VerifiedCert> = known.to_vec();
    // Trust-anchor-signed rows first: DSCs are checked against them.
    for row in rows
        .iter()
        .filter(|r| TA_SIGNED.contains(&r.group.to_ascii_uppercase().as_str()))
    {
        let res = b64(&row.certificate).and_then(|der| {
            parse_cert(&der)?;
            verify_cms(&row.signature, &der, &[trust_anchor_der])?;
            Ok(der)
        });
        match res {
            Ok(der) => {
                let v = accepted(row, der);
                trusted.retain(|t| !(t.group == v.group && t.thumbprint == v.thumbprint));
                trusted.push(v.clone());
                out.accepted.push(v);
            }
            Err(e) => out.rejected.push(reject(row, e)),
        }
    }
    for row in rows
        .iter()
        .filter(|r| !TA_SIGNED.contains(&r.group.to_ascii_uppercase().as_str()))
    {
        let group = row.group.to_ascii_uppercase();
        let ca_group = if group == "DESC" { "DECA" } else { "CSCA" };
        let res = b64(&row.certificate).and_then(|der| {
            parse_cert(&der)?;
            let issued = trusted
                .iter()
                .filter(|t| t.group == ca_group && t.country == row.country)
                .any(|ca| issued_by(&der, &ca.der).unwrap_or(false));
            if !issued {
                return Err(VerifyError::NoIssuer(row.country.clone()));
            }
            let uploaders: Vec<&[u8]> = trusted
                .iter()
                .filter(|t| t.group == "UPLOAD" && t.country == row.country)
                .map(|t| t.der.as_slice())
                .collect();
            verify_cms(&row.signature, &der, &uploaders)?;
            Ok(der)
        });
        match res {
            Ok(der) => out.accepted.push(accepted(row, der)),
            Err(e) => out.rejected.push(reject(row, e)),
        }
    }
    out
}

/// Verifies trusted issuers: a detached CMS by the trust anchor over
/// `country;name;url;type`. Returns the verified rows and the rejections.
pub fn verify_issuers(
    rows: &[IssuerRow],
    trust_anchor_der: &[u8],
) -> (Vec<IssuerRow>, Vec<Rejection>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for r in rows {
        let content = format!("{};{};{};{}", r.country, r.name, r.url, r.issuer_type);
        match verify_cms(&r.signature, content.as_bytes(), &[trust_anchor_der]) {
            Ok(_) => ok.push(r.clone()),
            Err(e) => bad.push(Rejection {
                group: "ISSUER".into(),
                country: r.country.clone(),
                kid: r.url.clone(),
                reason: e.to_string(),
            }),
        }
    }
    (ok, bad)
}

/// The gateway's kid: standard base64 of the first 8 bytes of SHA-256 of the DER.
pub fn kid(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(&Sha256::digest(der)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cms_sign::{sign_attached, sign_detached, to_body};
    use ddcc_cert::local::LocalSigner;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
    };

    struct Party {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    impl Party {
        fn der(&self) -> Vec<u8> {
            self.cert.der().to_vec()
        }
        fn signer(&self) -> LocalSigner {
            LocalSigner::from_pkcs8(&self.key.serialize_der()).unwrap()
        }
    }

    fn params(country: &str, cn: &str, ca: bool) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CountryName, country);
        p.distinguished_name.push(DnType::CommonName, cn);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        }
        p
    }

    fn self_signed(country: &str, cn: &str, ca: bool) -> Party {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params(country, cn, ca).self_signed(&key).unwrap();
        Party { cert, key }
    }

    fn issued(by: &Party, country: &str, cn: &str) -> Party {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params(country, cn, false)
            .signed_by(&key, &by.cert, &by.key)
            .unwrap();
        Party { cert, key }
    }

    fn b64e(d: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(d)
    }

    async fn row(
        group: &str,
        country: &str,
        cert: &[u8],
        by: &Party,
        detached: bool,
    ) -> CertificateRow {
        let der = if detached {
            sign_detached(cert, &by.der(), &by.signer(), None)
                .await
                .unwrap()
        } else {
            sign_attached(cert, &by.der(), &by.signer(), Some(1_700_000_000))
                .await
                .unwrap()
        };
        CertificateRow {
            kid: kid(cert),
            group: group.into(),
            country: country.into(),
            certificate: b64e(cert),
            signature: to_body(&der),
            domain: Some("DCC".into()),
        }
    }

    #[tokio::test]
    async fn verified_rows_pass_and_every_kind_of_tampering_is_rejected() {
        let ta = self_signed("XX", "TA", true);
        let other_ta = self_signed("XX", "not the TA", true);
        let csca = self_signed("XA", "XA SCA", true);
        let up = self_signed("XA", "XA UP", false);
        let dsc = issued(&csca, "XA", "XA DSC");
        let stray_dsc = issued(&self_signed("XA", "XA SCA", true), "XA", "XA DSC 2");
        let rows = vec![
            row("CSCA", "XA", &csca.der(), &ta, true).await,
            row("UPLOAD", "XA", &up.der(), &ta, true).await,
            // The gateway's /trustedCertificate rows carry the attached upload CMS.
            row("DSC", "XA", &dsc.der(), &up, false).await,
        ];
        let ok = verify_certificates(&rows, &ta.der(), &[]);
        assert!(ok.rejected.is_empty(), "{:?}", ok.rejected);
        assert_eq!(ok.accepted.len(), 3);
        assert_eq!(
            ok.accepted[2].thumbprint,
            crate::reference::thumbprint(&dsc.der())
        );

        let mut bad = rows.clone();
        // Signed by another key than the trust anchor.
        bad[1] = row("UPLOAD", "XA", &up.der(), &other_ta, true).await;
        // A DSC from an SCA that is not on the list (same subject name, other key).
        bad.push(row("DSC", "XA", &stray_dsc.der(), &up, true).await);
        // A DSC of XA claimed for XB: no CSCA of XB issued it.
        let mut wrong_country = rows[2].clone();
        wrong_country.country = "XB".into();
        bad.push(wrong_country);
        // Garbage everywhere must be reported, not panic.
        bad.push(CertificateRow {
            kid: String::new(),
            group: "CSCA".into(),
            country: "XA".into(),
            certificate: "%%%".into(),
            signature: "AAAA".into(),
            domain: None,
        });
        let out = verify_certificates(&bad, &ta.der(), &[]);
        let groups: Vec<&str> = out.rejected.iter().map(|r| r.group.as_str()).collect();
        // UPLOAD (wrong signer), the garbage CSCA, then the three DSCs: the good DSC
        // lost its uploader with the UPLOAD row.
        assert_eq!(
            groups,
            vec!["UPLOAD", "CSCA", "DSC", "DSC", "DSC"],
            "{:?}",
            out.rejected
        );
        assert_eq!(out.accepted.len(), 1, "only the CSCA");
    }

    #[tokio::test]
    async fn attached_content_must_be_the_certificate() {
        let up = self_signed("XA", "XA UP", false);
        let der = sign_attached(b"one", &up.der(), &up.signer(), None)
            .await
            .unwrap();
        assert_eq!(verify_cms(&to_body(&der), b"one", &[&up.der()]), Ok(0));
        assert_eq!(
            verify_cms(&to_body(&der), b"two", &[&up.der()]),
            Err(VerifyError::ContentMismatch)
        );
        let detached = sign_detached(b"one", &up.der(), &up.signer(), None)
            .await
            .unwrap();
        assert_eq!(
            verify_cms(&to_body(&detached), b"two", &[&up.der()]),
            Err(VerifyError::Digest)
        );
        let other = self_signed("XA", "other", false);
        assert_eq!(
            verify_cms(&to_body(&detached), b"one", &[&other.der(), &up.der()]),
            Ok(1)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..2000 {
            let len = rng.usize(0..200);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if i % 2 == 0 && !bytes.is_empty() {
                // Start like DER so the parsers get further in.
                bytes[0] = 0x30;
            }
            let text = b64e(&bytes);
            assert!(verify_cms(&text, b"x", &[&bytes]).is_err());
            let _ = issued_by(&bytes, &bytes);
        }
    }

    #[test]
    fn kid_is_the_first_eight_bytes_of_the_sha256() {
        // Contract §9: SHA-256 d919375f c1e7b6b2 … of the AT test DSC gives 2Rk3X8HntrI=.
        let digest_prefix = hex::decode("d919375fc1e7b6b2").unwrap();
        assert_eq!(b64e(&digest_prefix), "2Rk3X8HntrI=");
        assert_eq!(kid(b"abc"), b64e(&hex::decode("ba7816bf8f01cfea").unwrap()));
    }
}
