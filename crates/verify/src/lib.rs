//! Verification of scanned DDCC certificates. Pure: the caller supplies the text,
//! the trusted DSCs and the clock; nothing here reads files, the network or the
//! system time.
//!
//! Every check is reported on its own ([`Issue`]) so a verifier can say *why* a
//! certificate fails, and so test vectors that test one layer can be compared
//! layer by layer. Decoding stops at the first layer that cannot be parsed; the
//! independent checks after a successful decode (signature, DSC validity, key
//! usage, expiry) all run and all report.

pub mod clock;
#[doc(hidden)]
pub mod fuzzing;
pub mod hc1;
pub mod icao;
pub mod jcs;
pub mod revocation;
pub mod shc;
pub mod trust;

pub use clock::parse_iso8601;
pub use hc1::{verify_hc1, MAX_DECOMPRESSED};
pub use icao::verify_icao;
pub use revocation::{RevocationHashes, SignatureScheme};
pub use shc::{verify_shc, MAX_SHC_INFLATED};
pub use trust::{
    decode_certificate_text, jwk_thumbprint, kid_of, Dsc, JwkKey, Layered, PublicKey, TrustError,
    TrustList, TrustSource,
};

use serde::Serialize;

/// The layer or rule a failed check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CheckKind {
    Prefix,
    Base45,
    Decompression,
    Cbor,
    Cose,
    Kid,
    UnknownSigner,
    Signature,
    DscValidity,
    KeyUsage,
    NotYetValid,
    Expired,
    /// `shc:/` body: pairs of digits, each pair at most 77.
    Numeric,
    /// JWS compact serialisation and its protected header.
    Jws,
    /// JSON syntax (SHC payload, ICAO VDS-NC).
    Json,
    /// The credential's own structure: the SHC verifiable credential, the VDS-NC
    /// `data`/`sig` objects.
    Structure,
    /// The signer certificate carried in the credential (ICAO `sig.cer`).
    Certificate,
    /// The certificate is on a revocation list (EU DCC revocation hashes).
    Revocation,
}

impl CheckKind {
    /// Stable lower-case name, used in API responses.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Prefix => "prefix",
            CheckKind::Base45 => "base45",
            CheckKind::Decompression => "decompression",
            CheckKind::Cbor => "cbor",
            CheckKind::Cose => "cose",
            CheckKind::Kid => "kid",
            CheckKind::UnknownSigner => "unknown-signer",
            CheckKind::Signature => "signature",
            CheckKind::DscValidity => "dsc-validity",
            CheckKind::KeyUsage => "key-usage",
            CheckKind::NotYetValid => "not-yet-valid",
            CheckKind::Expired => "expired",
            CheckKind::Numeric => "numeric",
            CheckKind::Jws => "jws",
            CheckKind::Json => "json",
            CheckKind::Structure => "structure",
            CheckKind::Certificate => "certificate",
            CheckKind::Revocation => "revocation",
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub check: CheckKind,
    pub message: String,
}

/// Who signed, from the DSC that verified the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerInfo {
    pub country: Option<String>,
    pub subject: String,
}

/// Issuance claims, when present: CWT claims 1 (iss), 6 (iat) and 4 (exp); for a
/// SMART Health Card `iss` (the issuer URL), `nbf` (as `iat`) and `exp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CwtInfo {
    pub iss: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
}

/// Which encoding a scanned text was read as (by its prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Format {
    /// `HC1:` — EU DCC or WHO DDCC:VS CWT.
    Hc1,
    /// `shc:/` — SMART Health Card.
    Shc,
    /// A JSON object — ICAO VDS-NC.
    Icao,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Hc1 => "hc1",
            Format::Shc => "shc",
            Format::Icao => "icao-vds-nc",
        }
    }
}

/// The outcome of one verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// True only when every check passed.
    pub valid: bool,
    /// The encoding, when the prefix identified one.
    pub format: Option<Format>,
    /// The HCERT kid: named by the COSE headers (protected first, else unprotected);
    /// for ICAO the kid of the certificate in `sig.cer`.
    pub kid: Option<[u8; 8]>,
    /// The JWS `kid` of a SMART Health Card (an RFC 7638 thumbprint).
    pub jws_kid: Option<String>,
    /// Set when a trusted DSC verified the signature.
    pub signer: Option<SignerInfo>,
    /// The payload as JSON: the HCERT (CWT claim -260 → 1), the SHC verifiable
    /// credential (`vc`), or the VDS-NC `data`.
    pub payload: Option<serde_json::Value>,
    pub cwt: CwtInfo,
    /// The EU DCC revocation hashes, for an `HC1:` DCC with a UVCI.
    pub revocation: Option<RevocationHashes>,
    pub issues: Vec<Issue>,
}

impl Verification {
    pub(crate) fn new(format: Option<Format>) -> Self {
        Verification {
            valid: false,
            format,
            kid: None,
            jws_kid: None,
            signer: None,
            payload: None,
            cwt: CwtInfo::default(),
            revocation: None,
            issues: Vec::new(),
        }
    }

    pub(crate) fn fail(&mut self, check: CheckKind, message: impl Into<String>) {
        self.issues.push(Issue {
            check,
            message: message.into(),
        });
    }

    /// `valid` from the issues; called once every check has run.
    pub(crate) fn finish(mut self) -> Self {
        self.valid = self.issues.is_empty();
        self
    }

    /// True when no issue of `check` was reported.
    pub fn passed(&self, check: CheckKind) -> bool {
        !self.issues.iter().any(|i| i.check == check)
    }

    /// True when the signature was checked and verified by a DSC whose kid matches.
    pub fn signature_verified(&self) -> bool {
        self.signer.is_some()
    }
}

/// Verify any encoding we issue, dispatching on the prefix: `HC1:`, `shc:/`, or a
/// JSON object (ICAO VDS-NC). Anything else fails the `prefix` check.
pub fn verify_any<T: TrustSource + ?Sized>(
    text: &str,
    trust: &T,
    validation_time_unix: i64,
) -> Verification {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.starts_with(hc1::PREFIX) {
        verify_hc1(trimmed, trust, validation_time_unix)
    } else if trimmed.starts_with(shc::PREFIX) {
        verify_shc(trimmed, trust, validation_time_unix)
    } else if trimmed.starts_with('{') {
        verify_icao(trimmed, trust, validation_time_unix)
    } else {
        let mut v = Verification::new(None);
        let shown: String = trimmed.chars().take(5).collect();
        v.fail(
            CheckKind::Prefix,
            format!("expected HC1:, shc:/ or an ICAO VDS-NC JSON object, found {shown:?}"),
        );
        v.finish()
    }
}

/// Shared by the decoders: inflate at most `cap` bytes; `Err` names the cause.
pub(crate) fn inflate_capped<R: std::io::Read>(reader: R, cap: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut out = Vec::new();
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > cap {
        return Err(format!(
            "decompressed size exceeds {cap} bytes (decompression bomb?)"
        ));
    }
    Ok(out)
}
