//! The gateway's tables as the contract describes them: trusted parties
//! (onboarding rows, §2), trusted references (§5), signer information (§6),
//! trusted issuers (§8), revocation batches (§7).

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// §9: the first 8 bytes of SHA-256 over the DER, standard base64 with padding.
pub fn kid(der: &[u8]) -> String {
    b64(&Sha256::digest(der)[..8])
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A random version-4 UUID in the lowercase form the gateway produces.
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    b.iter_mut().for_each(|x| *x = fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The lowercase `8-4-4-4-12` pattern the gateway checks uuids against (§5.1, §5.3).
pub fn is_lower_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

/// `yyyy-MM-dd'T'HH:mm:ssXXX` (§1); UTC renders as `Z`.
pub fn timestamp(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Trusted-party types (`trusted_party.certificate_type`, §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartyType {
    Authentication,
    Upload,
    Csca,
    TrustAnchor,
    Deca,
    AuthenticationFederation,
}

impl PartyType {
    pub const ALL: [PartyType; 6] = [
        PartyType::Authentication,
        PartyType::Upload,
        PartyType::Csca,
        PartyType::TrustAnchor,
        PartyType::Deca,
        PartyType::AuthenticationFederation,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PartyType::Authentication => "AUTHENTICATION",
            PartyType::Upload => "UPLOAD",
            PartyType::Csca => "CSCA",
            PartyType::TrustAnchor => "TRUSTANCHOR",
            PartyType::Deca => "DECA",
            PartyType::AuthenticationFederation => "AUTHENTICATION_FEDERATION",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

/// One onboarding row (§2).
#[derive(Debug, Clone)]
pub struct TrustedParty {
    pub uuid: String,
    pub country: String,
    pub kind: PartyType,
    pub thumbprint: String,
    pub raw_der: Vec<u8>,
    /// Base64 detached CMS over `raw_der` by the trust anchor.
    pub signature: String,
    pub domain: String,
    pub roles: Vec<String>,
    pub source_gateway: Option<String>,
    pub created: OffsetDateTime,
}

impl TrustedParty {
    pub fn kid(&self) -> String {
        kid(&self.raw_der)
    }
}

/// A trusted reference (§5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedReference {
    pub uuid: String,
    pub url: String,
    pub country: String,
    pub kind: String,
    pub service: String,
    pub thumbprint: String,
    pub name: String,
    pub ssl_public_key: String,
    pub content_type: String,
    pub signature_type: String,
    pub reference_version: String,
    pub domain: String,
    pub version: i64,
    pub source_gateway: Option<String>,
}

impl TrustedReference {
    /// The list/read shape of §5.4: no creation time, no signature.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "uuid": self.uuid,
            "url": self.url,
            "country": self.country,
            "type": self.kind,
            "service": self.service,
            "thumbprint": self.thumbprint,
            "name": self.name,
            "sslPublicKey": self.ssl_public_key,
            "contentType": self.content_type,
            "signatureType": self.signature_type,
            "referenceVersion": self.reference_version,
            "domain": self.domain,
            "version": self.version,
        });
        if let (Some(sg), Some(o)) = (&self.source_gateway, v.as_object_mut()) {
            o.insert("sourceGateway".into(), Value::String(sg.clone()));
        }
        v
    }
}

/// Signer information (§6): DSCs and the other `/trustedCertificate` groups.
#[derive(Debug, Clone)]
pub struct SignerCertificate {
    pub uuid: String,
    pub kid: String,
    pub country: String,
    /// Stored group: `DSC` or `DESC` (§6.2).
    pub group: String,
    pub raw_der: Vec<u8>,
    pub thumbprint: String,
    /// Base64 CMS: detached for `/signerCertificate`, the uploaded attached one for
    /// `/trustedCertificate`.
    pub signature: String,
    pub properties: Option<Map<String, Value>>,
    pub domain: String,
    pub created: OffsetDateTime,
    pub source_gateway: Option<String>,
}

/// A trusted issuer (§8), onboarded by the operator.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub uuid: String,
    pub url: String,
    pub kind: String,
    pub country: String,
    pub thumbprint: String,
    pub ssl_public_key: String,
    pub key_storage_type: String,
    /// Base64 detached CMS by the trust anchor over `country;name;url;type`.
    pub signature: String,
    pub name: String,
    pub domain: String,
    pub created: OffsetDateTime,
    pub source_gateway: Option<String>,
}

impl TrustedIssuer {
    pub fn signed_string(&self) -> String {
        format!("{};{};{};{}", self.country, self.name, self.url, self.kind)
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "url": self.url,
            "type": self.kind,
            "country": self.country,
            "thumbprint": self.thumbprint,
            "sslPublicKey": self.ssl_public_key,
            "keyStorageType": self.key_storage_type,
            "signature": self.signature,
            "timestamp": timestamp(self.created),
            "name": self.name,
            "domain": self.domain,
            "uuid": self.uuid,
        });
        if let (Some(sg), Some(o)) = (&self.source_gateway, v.as_object_mut()) {
            o.insert("sourceGateway".into(), Value::String(sg.clone()));
        }
        v
    }
}

/// A revocation batch (§7).
#[derive(Debug, Clone)]
pub struct RevocationBatch {
    pub batch_id: String,
    pub country: String,
    pub date: OffsetDateTime,
    pub deleted: bool,
    /// The uploaded CMS text, served back by `GET /revocation-list/{batchId}`.
    pub cms: String,
    pub payload: Value,
}

/// A request as the double saw it, for tests that check what a client sent.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    /// The authenticated country, if authentication succeeded.
    pub country: Option<String>,
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct State {
    pub parties: Vec<TrustedParty>,
    pub references: Vec<TrustedReference>,
    pub signers: Vec<SignerCertificate>,
    pub issuers: Vec<TrustedIssuer>,
    pub batches: Vec<RevocationBatch>,
    pub requests: Vec<RecordedRequest>,
    /// EU DCC value sets by id (`GET /valuesets[/{id}]`, §8); operator data.
    pub valuesets: std::collections::BTreeMap<String, Value>,
    /// EU business rules per country in the download shape of §8
    /// (`{"<rule id>": [{"version", "validFrom", "validTo", "cms"}]}`).
    pub rules: std::collections::BTreeMap<String, Value>,
    /// Results of TA-signature checks, keyed by SHA-256 of (content ‖ signature):
    /// §2 re-verifies on every lookup; the answer for the same bytes cannot change,
    /// and an openssl run per request would dominate test time.
    pub ta_checks: HashMap<String, bool>,
    /// `Some(status)`: every request is answered with that status (a gateway that
    /// is up but failing, e.g. 503 from its proxy).
    pub fail_status: Option<u16>,
}

impl State {
    pub fn signer_json(&self, s: &SignerCertificate) -> Value {
        let mut v = json!({
            "kid": s.kid,
            "group": s.group,
            "country": s.country,
            "certificate": b64(&s.raw_der),
            "signature": s.signature,
            "properties": s.properties.clone().map(Value::Object).unwrap_or(Value::Null),
            "uuid": s.uuid,
            "domain": s.domain,
            "version": 1,
        });
        if let (Some(sg), Some(o)) = (&s.source_gateway, v.as_object_mut()) {
            o.insert("sourceGateway".into(), Value::String(sg.clone()));
        }
        v
    }

    pub fn party_json(&self, p: &TrustedParty) -> Value {
        let mut v = json!({
            "kid": p.kid(),
            "group": p.kind.as_str(),
            "country": p.country,
            "certificate": b64(&p.raw_der),
            "signature": p.signature,
            "properties": Value::Null,
            "uuid": p.uuid,
            "domain": p.domain,
            "version": 1,
        });
        if let (Some(sg), Some(o)) = (&p.source_gateway, v.as_object_mut()) {
            o.insert("sourceGateway".into(), Value::String(sg.clone()));
        }
        v
    }
}

/// The legacy `/trustList` item shape (§8).
pub fn legacy_item(
    kid: &str,
    created: OffsetDateTime,
    country: &str,
    kind: &str,
    der: &[u8],
    signature: &str,
) -> Value {
    json!({
        "kid": kid,
        "timestamp": timestamp(created),
        "country": country,
        "certificateType": kind,
        "thumbprint": sha256_hex(der),
        "signature": signature,
        "rawData": b64(der),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_matches_contract_example() {
        // §9: the AT test DSC's SHA-256 begins d919375fc1e7b6b2 → kid 2Rk3X8HntrI=.
        let first8 = hex::decode("d919375fc1e7b6b2").unwrap();
        assert_eq!(b64(&first8), "2Rk3X8HntrI=");
    }

    #[test]
    fn uuids_are_lowercase_v4() {
        for _ in 0..100 {
            let u = random_uuid();
            assert!(is_lower_uuid(&u), "{u}");
            assert_eq!(&u[14..15], "4");
        }
        assert!(!is_lower_uuid("ABCDEF00-0000-4000-8000-000000000000"));
        assert!(!is_lower_uuid("abc"));
    }

    #[test]
    fn timestamps_have_the_contract_shape() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(timestamp(t), "2023-11-14T22:13:20Z");
    }
}
