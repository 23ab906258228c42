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
pub mod hc1;
pub mod trust;

pub use clock::parse_iso8601;
pub use hc1::{verify_hc1, MAX_DECOMPRESSED};
pub use trust::{decode_certificate_text, kid_of, Dsc, PublicKey, TrustError, TrustList};

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

/// CWT claims 1 (iss), 6 (iat) and 4 (exp), when present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CwtInfo {
    pub iss: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
}

/// The outcome of one verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// True only when every check passed.
    pub valid: bool,
    /// The kid the COSE headers name (protected first, else unprotected).
    pub kid: Option<[u8; 8]>,
    /// Set when a trusted DSC verified the signature.
    pub signer: Option<SignerInfo>,
    /// The HCERT payload (CWT claim -260 → 1) as JSON.
    pub payload: Option<serde_json::Value>,
    pub cwt: CwtInfo,
    pub issues: Vec<Issue>,
}

impl Verification {
    /// True when no issue of `check` was reported.
    pub fn passed(&self, check: CheckKind) -> bool {
        !self.issues.iter().any(|i| i.check == check)
    }

    /// True when the signature was checked and verified by a DSC whose kid matches.
    pub fn signature_verified(&self) -> bool {
        self.signer.is_some()
    }
}
