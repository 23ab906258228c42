//! The gateway's upload envelope: a CMS `SignedData` with the payload encapsulated,
//! exactly one certificate (the TNP UP certificate) and exactly one `SignerInfo`,
//! sent as single-line base64 (contract §4).
//!
//! Built by hand from the `cms` crate's types rather than with its builder, because
//! the builder wants a synchronous signer holding the key, and ours is an async
//! [`Signer`] that may be Vault transit: we only hand it the DER of the signed
//! attributes.

use base64::Engine;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use ddcc_cert::{Algorithm, Signer};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, Sequence, Tag};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, AttributeValue};
use x509_cert::Certificate;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("the upload certificate is not a DER X.509 certificate: {0}")]
    Certificate(String),
    #[error("CMS encoding failed: {0}")]
    Encoding(String),
    #[error("only ES256 upload keys are supported")]
    Algorithm,
    #[error(transparent)]
    Sign(#[from] ddcc_cert::SignError),
    #[error("the signer returned {0} bytes, not a 64-byte ES256 signature")]
    SignatureShape(usize),
}

fn enc(e: der::Error) -> CmsError {
    CmsError::Encoding(e.to_string())
}

/// ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }: CMS carries ECDSA
/// signatures in DER, signers return raw `r || s`.
#[derive(Sequence)]
struct EcdsaSig<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

fn ecdsa_der(raw: &[u8]) -> Result<Vec<u8>, CmsError> {
    if raw.len() != 64 {
        return Err(CmsError::SignatureShape(raw.len()));
    }
    let sig = EcdsaSig {
        r: der::asn1::UintRef::new(&raw[..32]).map_err(enc)?,
        s: der::asn1::UintRef::new(&raw[32..]).map_err(enc)?,
    };
    sig.to_der().map_err(enc)
}

fn attribute(oid: ObjectIdentifier, value: AttributeValue) -> Result<Attribute, CmsError> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(enc)?;
    Ok(Attribute { oid, values })
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

/// Sign `payload` as an attached CMS SignedData; returns the DER `ContentInfo`.
/// `signing_time_unix` goes into the signing-time attribute (the gateway's verifier
/// checks it against the certificate's validity); `None` leaves the attribute out.
pub async fn sign_attached(
    payload: &[u8],
    upload_cert_der: &[u8],
    signer: &dyn Signer,
    signing_time_unix: Option<u64>,
) -> Result<Vec<u8>, CmsError> {
    sign(payload, upload_cert_der, signer, signing_time_unix, true).await
}

/// As [`sign_attached`], but the content is left out (a detached signature, the form
/// the trust anchor's signatures on onboarded certificates take).
pub async fn sign_detached(
    payload: &[u8],
    cert_der: &[u8],
    signer: &dyn Signer,
    signing_time_unix: Option<u64>,
) -> Result<Vec<u8>, CmsError> {
    sign(payload, cert_der, signer, signing_time_unix, false).await
}

async fn sign(
    payload: &[u8],
    upload_cert_der: &[u8],
    signer: &dyn Signer,
    signing_time_unix: Option<u64>,
    attach: bool,
) -> Result<Vec<u8>, CmsError> {
    if signer.algorithm() != Algorithm::Es256 {
        return Err(CmsError::Algorithm);
    }
    let cert =
        Certificate::from_der(upload_cert_der).map_err(|e| CmsError::Certificate(e.to_string()))?;

    let digest = Sha256::digest(payload);
    let mut attrs = SetOfVec::new();
    attrs
        .insert(attribute(
            ID_CONTENT_TYPE,
            Any::encode_from(&ID_DATA).map_err(enc)?,
        )?)
        .map_err(enc)?;
    attrs
        .insert(attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec()).map_err(enc)?).map_err(enc)?,
        )?)
        .map_err(enc)?;
    if let Some(t) = signing_time_unix {
        let time = UtcTime::from_unix_duration(std::time::Duration::from_secs(t)).map_err(enc)?;
        attrs
            .insert(attribute(
                ID_SIGNING_TIME,
                Any::encode_from(&time).map_err(enc)?,
            )?)
            .map_err(enc)?;
    }
    // RFC 5652 §5.4: the signature covers the DER of the attributes as an explicit
    // SET OF, not with the [0] IMPLICIT tag they carry inside SignerInfo.
    let to_sign = attrs.to_der().map_err(enc)?;
    let raw = signer.sign(&to_sign).await?;
    let signature = OctetString::new(ecdsa_der(&raw)?).map_err(enc)?;

    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(sha256_alg()).map_err(enc)?;
    let mut certs = SetOfVec::new();
    certs
        .insert(CertificateChoices::Certificate(cert))
        .map_err(enc)?;
    let mut infos = SetOfVec::new();
    infos.insert(signer_info).map_err(enc)?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: if attach {
                Some(Any::new(Tag::OctetString, payload.to_vec()).map_err(enc)?)
            } else {
                None
            },
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(infos),
    };
    let info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(enc)?,
    };
    info.to_der().map_err(enc)
}

/// The body the gateway reads: standard base64 with padding, no line breaks.
pub fn to_body(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}
