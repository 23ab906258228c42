//! Test key material made with rcgen, following the certificate profiles of
//! contract §2 (EC P-256, subject `C` + `CN`, the participant template's CNs).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

/// A certificate with its private key, both as PEM, plus the DER.
pub struct Credentials {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Credentials {
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }
    /// Certificate then key, the form `reqwest::Identity::from_pem` takes.
    pub fn identity_pem(&self) -> String {
        format!("{}{}", self.cert_pem(), self.key_pem())
    }
    /// Lowercase hex SHA-256 of the DER: the thumbprint of contract §2.
    pub fn thumbprint(&self) -> String {
        crate::model::sha256_hex(self.cert.der())
    }
}

impl std::fmt::Debug for Credentials {
    // The key never goes into debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

/// Kinds of certificate the profiles of §2 describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Tls,
    Upload,
    Sca,
    TrustAnchor,
}

fn dn(country: Option<&str>, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(c) = country {
        dn.push(DnType::CountryName, c);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn params(country: Option<&str>, cn: &str, days_valid: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(country, cn);
    // Backdated a minute so a signing-time taken "now" is inside the validity even
    // with second rounding.
    p.not_before = OffsetDateTime::now_utc() - Duration::minutes(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(days_valid);
    p
}

fn finish(p: CertificateParams) -> Result<Credentials, rcgen::Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = p.self_signed(&key)?;
    Ok(Credentials { cert, key })
}

/// A self-signed certificate of `profile` for `country` (CN as the participant
/// template names them, e.g. `NationXA_TNP_TLS`).
pub fn generate(profile: Profile, country: &str) -> Result<Credentials, rcgen::Error> {
    generate_with_validity(
        profile,
        country,
        OffsetDateTime::now_utc() - Duration::minutes(1),
        OffsetDateTime::now_utc() + Duration::days(365),
    )
}

/// As [`generate`] with an explicit validity (expired upload certificates).
pub fn generate_with_validity(
    profile: Profile,
    country: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Credentials, rcgen::Error> {
    let (cn, country) = match profile {
        Profile::Tls => (format!("Nation{country}_TNP_TLS"), Some(country)),
        Profile::Upload => (format!("Nation{country}_TNP_UP"), Some(country)),
        Profile::Sca => (format!("Nation{country}_TNP_SCA"), Some(country)),
        Profile::TrustAnchor => ("TNG_TA test trust anchor".to_string(), None),
    };
    let mut p = params(country, &cn, 365);
    p.not_before = not_before;
    p.not_after = not_after;
    match profile {
        Profile::Tls => {
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        Profile::Upload => p.key_usages = vec![KeyUsagePurpose::DigitalSignature],
        Profile::Sca | Profile::TrustAnchor => {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
    }
    finish(p)
}

/// A DSC for `country` issued by `sca` (AKI = the SCA's SKI, §2).
pub fn dsc(sca: &Credentials, country: &str, cn: &str) -> Result<Credentials, rcgen::Error> {
    let mut p = params(Some(country), cn, 365);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = p.signed_by(&key, &sca.cert, &sca.key)?;
    Ok(Credentials { cert, key })
}

/// The double's own TLS server: a CA and a leaf for `localhost`/`127.0.0.1`. The
/// CA PEM is what a client configures as its server trust bundle.
pub struct ServerPki {
    pub ca: Credentials,
    pub leaf: Credentials,
}

pub fn server_pki() -> Result<ServerPki, rcgen::Error> {
    let mut ca = params(None, "gateway-double test server CA", 3650);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = finish(ca)?;
    let mut leaf = params(None, "localhost", 3650);
    leaf.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
    ];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = leaf.signed_by(&key, &ca.cert, &ca.key)?;
    Ok(ServerPki {
        ca,
        leaf: Credentials { cert, key },
    })
}

/// The three credentials a participant needs (contract §2): TLS, UP, SCA.
#[derive(Debug)]
pub struct ParticipantKeys {
    pub country: String,
    pub tls: Credentials,
    pub up: Credentials,
    pub sca: Credentials,
}

impl ParticipantKeys {
    pub fn generate(country: &str) -> Result<Self, rcgen::Error> {
        Ok(Self {
            country: country.to_string(),
            tls: generate(Profile::Tls, country)?,
            up: generate(Profile::Upload, country)?,
            sca: generate(Profile::Sca, country)?,
        })
    }
}
