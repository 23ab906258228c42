//! DSC lifecycle: the transit key, its certificate signing request, signing by
//! the Signer CA (a Vault PKI mount or an offline key used only here), and the
//! chain stored beside the key with transit `set-certificate`.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::client::VaultClient;
use crate::config::{is_path_segment_safe, ConfigError, Secret, VaultConfig};
use crate::error::VaultError;

/// EU DCC extended key usages: the DSC may sign test, vaccination and recovery
/// certificates respectively. A DSC without any of them may sign all types.
pub const EKU_TEST: &str = "1.3.6.1.4.1.1847.2021.1.1";
pub const EKU_VACCINATION: &str = "1.3.6.1.4.1.1847.2021.1.2";
pub const EKU_RECOVERY: &str = "1.3.6.1.4.1.1847.2021.1.3";

/// Who signs the DSC.
#[derive(Debug, Clone)]
pub enum SignerCaSource {
    /// A Vault PKI mount. Without `role` the CSR is signed with `sign-verbatim`
    /// and the requested EKU OIDs are passed as `ext_key_usage_oids`; with a role,
    /// `sign/<role>` is used and the role itself must carry the EKU OIDs (checked).
    /// The mount's max lease TTL caps the validity (`secrets tune -max-lease-ttl`).
    VaultPki {
        mount: String,
        role: Option<String>,
        issuer_ref: Option<String>,
    },
    /// An SCA key (PKCS#8 PEM, P-256) and certificate (PEM, may be followed by its
    /// own chain) held offline and used only by `init_dsc`.
    Offline { key_pem: Secret, cert_pem: String },
}

impl SignerCaSource {
    pub fn offline_from_files(key_path: &Path, cert_path: &Path) -> Result<Self, DscError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| DscError::Io(format!("{}: {e}", p.display())))
        };
        Ok(SignerCaSource::Offline {
            key_pem: Secret::new(read(key_path)?),
            cert_pem: read(cert_path)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DscRequest {
    pub common_name: String,
    /// ISO 3166-1 alpha-2, the issuing country (EU DCC `co` of the issuer).
    pub country: String,
    pub organization: Option<String>,
    pub validity: Duration,
    /// Dotted OIDs, normally some of [`EKU_TEST`], [`EKU_VACCINATION`], [`EKU_RECOVERY`].
    pub ext_key_usage_oids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DscInfo {
    /// The DSC alone.
    pub certificate_pem: String,
    pub certificate_der: Vec<u8>,
    /// DSC followed by the SCA (and any further CAs), as stored in transit.
    pub chain_pem: String,
    /// First 8 bytes of SHA-256 over the DSC DER: the COSE `kid`.
    pub kid: [u8; 8],
    /// The transit key version the DSC certifies: pin the signer to it.
    pub key_version: u32,
}

impl DscInfo {
    /// The kid as the EU DCC trust lists and the `kid` header print it.
    pub fn kid_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.kid)
    }

    /// The DSC's SubjectPublicKeyInfo (DER): what a JWKS entry or a verifier
    /// needs, identical to the transit key's public key.
    pub fn public_key_spki_der(&self) -> Result<Vec<u8>, DscError> {
        let (_, cert) = X509Certificate::from_der(&self.certificate_der)
            .map_err(|e| DscError::Certificate(format!("DSC DER: {e}")))?;
        Ok(cert.public_key().raw.to_vec())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DscError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("invalid DSC request: {0}")]
    Request(String),
    #[error("transit key {key} version {version} has no certificate chain; run `keys init`")]
    NoCertificate { key: String, version: u32 },
    #[error("transit key unsuitable for a DSC: {0}")]
    Key(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("{0}")]
    Io(String),
}

pub fn kid_of(certificate_der: &[u8]) -> [u8; 8] {
    let d = ring::digest::digest(&ring::digest::SHA256, certificate_der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&d.as_ref()[..8]);
    kid
}

/// Creates the transit key if absent, gets a CSR for it from transit, has the
/// SCA sign it, checks the result (public key, EKU, issuer signature), stores the
/// chain with `set-certificate` and returns it. Running it again issues a new
/// DSC for the same key version (certificates issued under the old kid keep
/// verifying against the old DSC).
pub async fn init_dsc(
    cfg: &VaultConfig,
    sca: &SignerCaSource,
    req: &DscRequest,
) -> Result<DscInfo, DscError> {
    validate_request(req)?;
    let client = VaultClient::new(cfg.clone())?;
    let key_path = format!("{}/keys/{}", cfg.mount(), cfg.key_name.trim_matches('/'));

    match client
        .call(
            Method::POST,
            &key_path,
            Some(&json!({ "type": "ecdsa-p256", "exportable": false })),
        )
        .await
    {
        // An existing key answers 400 on some versions; the read below decides.
        Ok(_) | Err(VaultError::Rejected { status: 400, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let key = client.call(Method::GET, &key_path, None).await?;
    let (version, public_key_pem) = key_version_info(&key, cfg)?;
    if key.pointer("/data/exportable").and_then(Value::as_bool) == Some(true) {
        return Err(DscError::Key(format!(
            "{} is exportable: a DSC key must never leave Vault",
            cfg.key_name
        )));
    }

    let template = csr_template(req)?;
    let csr = client
        .call(
            Method::POST,
            &format!("{key_path}/csr"),
            Some(&json!({ "csr": template, "version": version })),
        )
        .await?;
    let csr_pem = csr
        .pointer("/data/csr")
        .and_then(Value::as_str)
        .ok_or_else(|| VaultError::Protocol("csr answer without data.csr".into()))?
        .to_owned();

    let chain_pem = match sca {
        SignerCaSource::VaultPki {
            mount,
            role,
            issuer_ref,
        } => {
            sign_with_vault_pki(
                &client,
                mount,
                role.as_deref(),
                issuer_ref.as_deref(),
                &csr_pem,
                req,
            )
            .await?
        }
        SignerCaSource::Offline { key_pem, cert_pem } => {
            sign_offline(key_pem, cert_pem, &csr_pem, req)?
        }
    };

    let info = parse_chain(&chain_pem, version)?;
    verify_dsc(&info, &public_key_pem, req)?;
    client
        .call(
            Method::POST,
            &format!("{key_path}/set-certificate"),
            Some(&json!({ "certificate_chain": info.chain_pem, "version": version })),
        )
        .await?;
    tracing::info!(key = %cfg.key_name, version, kid = %info.kid_base64(), "DSC stored in transit");
    Ok(info)
}

/// Reads the DSC chain stored with the transit key (the configured version, or
/// the latest).
pub async fn show_dsc(cfg: &VaultConfig) -> Result<DscInfo, DscError> {
    let client = VaultClient::new(cfg.clone())?;
    let key_path = format!("{}/keys/{}", cfg.mount(), cfg.key_name.trim_matches('/'));
    let key = client.call(Method::GET, &key_path, None).await?;
    let (version, _) = key_version_info(&key, cfg)?;
    let chain = key
        .pointer(&format!("/data/keys/{version}/certificate_chain"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if chain.trim().is_empty() {
        return Err(DscError::NoCertificate {
            key: cfg.key_name.clone(),
            version,
        });
    }
    parse_chain(chain, version)
}

fn validate_request(req: &DscRequest) -> Result<(), DscError> {
    if req.common_name.trim().is_empty() {
        return Err(DscError::Request("common name is empty".into()));
    }
    if req.country.len() != 2 || !req.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(DscError::Request(format!(
            "country {:?} is not an ISO 3166-1 alpha-2 code",
            req.country
        )));
    }
    if req.validity < Duration::from_secs(3600) {
        return Err(DscError::Request("validity under one hour".into()));
    }
    for oid in &req.ext_key_usage_oids {
        parse_oid(oid)?;
    }
    Ok(())
}

fn parse_oid(oid: &str) -> Result<Vec<u64>, DscError> {
    let arcs: Result<Vec<u64>, _> = oid.split('.').map(str::parse::<u64>).collect();
    match arcs {
        Ok(a) if a.len() >= 2 => Ok(a),
        _ => Err(DscError::Request(format!("{oid:?} is not a dotted OID"))),
    }
}

/// (version to certify, its public key PEM) from a `GET keys/<k>` answer.
fn key_version_info(key: &Value, cfg: &VaultConfig) -> Result<(u32, String), DscError> {
    let data = key
        .get("data")
        .ok_or_else(|| VaultError::Protocol("key answer without data".into()))?;
    let ty = data.get("type").and_then(Value::as_str).unwrap_or("");
    if ty != "ecdsa-p256" {
        return Err(DscError::Key(format!(
            "{} has type {ty:?}, ES256 needs ecdsa-p256",
            cfg.key_name
        )));
    }
    let version = match cfg.key_version {
        Some(v) => v,
        None => data
            .get("latest_version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| VaultError::Protocol("key answer without latest_version".into()))?,
    };
    let public_key = data
        .pointer(&format!("/keys/{version}/public_key"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            DscError::Key(format!(
                "{} has no version {version} (or it was trimmed)",
                cfg.key_name
            ))
        })?;
    Ok((version, public_key.to_owned()))
}

/// Transit builds the CSR from a template CSR's subject and signs it with the
/// transit key; the template's own key is a throwaway.
fn csr_template(req: &DscRequest) -> Result<String, DscError> {
    let cert_err = |e: rcgen::Error| DscError::Certificate(e.to_string());
    let throwaway =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = distinguished_name(req);
    params
        .serialize_request(&throwaway)
        .and_then(|csr| csr.pem())
        .map_err(cert_err)
}

fn distinguished_name(req: &DscRequest) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, req.country.as_str());
    if let Some(o) = &req.organization {
        dn.push(rcgen::DnType::OrganizationName, o.as_str());
    }
    dn.push(rcgen::DnType::CommonName, req.common_name.as_str());
    dn
}

async fn sign_with_vault_pki(
    client: &VaultClient,
    mount: &str,
    role: Option<&str>,
    issuer_ref: Option<&str>,
    csr_pem: &str,
    req: &DscRequest,
) -> Result<String, DscError> {
    let mount = mount.trim_matches('/');
    for part in [Some(mount), role, issuer_ref].into_iter().flatten() {
        if !is_path_segment_safe(part) {
            return Err(DscError::Request(format!("unsafe PKI path part {part:?}")));
        }
    }
    let prefix = match issuer_ref {
        Some(i) => format!("{mount}/issuer/{i}"),
        None => mount.to_owned(),
    };
    let ttl = format!("{}s", req.validity.as_secs());
    let (path, body) = match role {
        None => (
            format!("{prefix}/sign-verbatim"),
            json!({
                "csr": csr_pem,
                "ttl": ttl,
                "format": "pem",
                "key_usage": ["DigitalSignature"],
                "ext_key_usage": [],
                "ext_key_usage_oids": req.ext_key_usage_oids,
            }),
        ),
        Some(r) => (
            format!("{prefix}/sign/{r}"),
            json!({
                "csr": csr_pem,
                "common_name": req.common_name,
                "ttl": ttl,
                "format": "pem",
            }),
        ),
    };
    let v = client.call(Method::POST, &path, Some(&body)).await?;
    let data = v
        .get("data")
        .ok_or_else(|| VaultError::Protocol("pki sign answer without data".into()))?;
    let cert = data
        .get("certificate")
        .and_then(Value::as_str)
        .ok_or_else(|| VaultError::Protocol("pki sign answer without certificate".into()))?;
    let mut chain = vec![cert.trim().to_owned()];
    match data.get("ca_chain").and_then(Value::as_array) {
        Some(cas) if !cas.is_empty() => chain.extend(
            cas.iter()
                .filter_map(Value::as_str)
                .map(|c| c.trim().to_owned()),
        ),
        _ => {
            if let Some(ca) = data.get("issuing_ca").and_then(Value::as_str) {
                chain.push(ca.trim().to_owned());
            }
        }
    }
    Ok(chain.join("\n") + "\n")
}

fn sign_offline(
    key_pem: &Secret,
    cert_pem: &str,
    csr_pem: &str,
    req: &DscRequest,
) -> Result<String, DscError> {
    let cert_err = |what: &str, e: rcgen::Error| DscError::Certificate(format!("{what}: {e}"));
    let key = rcgen::KeyPair::from_pem(key_pem.expose()).map_err(|e| cert_err("SCA key", e))?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(cert_pem, key)
        .map_err(|e| cert_err("SCA certificate", e))?;
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| cert_err("transit CSR", e))?;
    let now = time::OffsetDateTime::now_utc();
    let validity = time::Duration::try_from(req.validity)
        .map_err(|_| DscError::Request("validity too large".into()))?;
    let sca_not_after = pem::parse(cert_pem)
        .ok()
        .and_then(|p| {
            X509Certificate::from_der(p.contents())
                .ok()
                .map(|(_, c)| c.validity().not_after.timestamp())
        })
        .ok_or_else(|| DscError::Certificate("SCA certificate does not parse".into()))?;
    let p = &mut csr.params;
    // Backdated a minute so verifiers with a slightly slow clock accept it at once.
    p.not_before = now - time::Duration::minutes(1);
    p.not_after = now
        .checked_add(validity)
        .ok_or_else(|| DscError::Request("validity too large".into()))?;
    // A DSC outliving its SCA fails chain validation in verifiers for the
    // remainder; Vault PKI refuses the same by default.
    if p.not_after.unix_timestamp() > sca_not_after {
        return Err(DscError::Request(
            "the requested validity ends after the SCA certificate expires".into(),
        ));
    }
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = req
        .ext_key_usage_oids
        .iter()
        .map(|o| parse_oid(o).map(rcgen::ExtendedKeyUsagePurpose::Other))
        .collect::<Result<_, _>>()?;
    p.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| DscError::Certificate("no randomness for the serial number".into()))?;
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let dsc = csr
        .signed_by(&issuer)
        .map_err(|e| cert_err("signing the DSC", e))?;
    let sca_chain: Vec<String> = pem::parse_many(cert_pem)
        .map_err(|e| DscError::Certificate(format!("SCA certificate PEM: {e}")))?
        .iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem_cert)
        .collect();
    Ok(std::iter::once(dsc.pem().trim().to_owned())
        .chain(sca_chain.into_iter().map(|c| c.trim().to_owned()))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

fn pem_cert(p: &pem::Pem) -> String {
    pem::encode_config(
        p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn parse_chain(chain_pem: &str, key_version: u32) -> Result<DscInfo, DscError> {
    let certs: Vec<pem::Pem> = pem::parse_many(chain_pem)
        .map_err(|e| DscError::Certificate(format!("chain PEM: {e}")))?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .collect();
    let first = certs
        .first()
        .ok_or_else(|| DscError::Certificate("chain holds no certificate".into()))?;
    X509Certificate::from_der(first.contents())
        .map_err(|e| DscError::Certificate(format!("DSC DER: {e}")))?;
    let certificate_der = first.contents().to_vec();
    Ok(DscInfo {
        certificate_pem: pem_cert(first),
        kid: kid_of(&certificate_der),
        certificate_der,
        chain_pem: certs.iter().map(pem_cert).collect(),
        key_version,
    })
}

/// Refuses to store a DSC that would not serve: another public key than the
/// transit key's, missing EKUs (a PKI role without `ext_key_usage_oids`), another
/// subject country, or an
/// issuer signature that does not verify against the next certificate.
fn verify_dsc(info: &DscInfo, transit_pub_pem: &str, req: &DscRequest) -> Result<(), DscError> {
    let oids = &req.ext_key_usage_oids;
    let bad = |m: String| DscError::Certificate(m);
    let (_, dsc) = X509Certificate::from_der(&info.certificate_der)
        .map_err(|e| bad(format!("DSC DER: {e}")))?;
    let transit_spki =
        pem::parse(transit_pub_pem).map_err(|e| bad(format!("transit public key PEM: {e}")))?;
    if dsc.public_key().raw != transit_spki.contents() {
        return Err(bad(
            "the signed DSC carries another public key than the transit key".into(),
        ));
    }
    let present: Vec<String> = match dsc.extended_key_usage() {
        Ok(Some(eku)) => eku.value.other.iter().map(|o| o.to_id_string()).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(bad(format!("DSC extended key usage: {e}"))),
    };
    let missing: Vec<&String> = oids.iter().filter(|o| !present.contains(o)).collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "the DSC lacks extended key usages {missing:?} (a PKI role must list them in ext_key_usage_oids)"
        )));
    }
    // Verifiers match the DSC's country against the issuer; a PKI role replaces
    // the CSR subject with its own `country` setting.
    let countries: Vec<&str> = dsc
        .subject()
        .iter_country()
        .filter_map(|c| c.as_str().ok())
        .collect();
    if countries != [req.country.as_str()] {
        return Err(bad(format!(
            "the DSC subject country is {countries:?}, expected {:?} (set `country` on the PKI role)",
            req.country
        )));
    }
    let chain = pem::parse_many(&info.chain_pem).map_err(|e| bad(format!("chain PEM: {e}")))?;
    if let Some(issuer_pem) = chain.get(1) {
        let (_, issuer) = X509Certificate::from_der(issuer_pem.contents())
            .map_err(|e| bad(format!("SCA DER: {e}")))?;
        dsc.verify_signature(Some(issuer.public_key()))
            .map_err(|e| {
                bad(format!(
                    "the DSC signature does not verify with the SCA key: {e}"
                ))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> DscRequest {
        DscRequest {
            common_name: "DSC".into(),
            country: "XX".into(),
            organization: None,
            validity: Duration::from_secs(86400),
            ext_key_usage_oids: vec![EKU_VACCINATION.into()],
        }
    }

    #[test]
    fn request_validation() {
        assert!(validate_request(&req()).is_ok());
        for bad in [
            DscRequest {
                country: "xx".into(),
                ..req()
            },
            DscRequest {
                country: "XXX".into(),
                ..req()
            },
            DscRequest {
                common_name: " ".into(),
                ..req()
            },
            DscRequest {
                validity: Duration::from_secs(5),
                ..req()
            },
            DscRequest {
                ext_key_usage_oids: vec!["1.3.x".into()],
                ..req()
            },
        ] {
            assert!(
                matches!(validate_request(&bad), Err(DscError::Request(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn template_csr_carries_the_subject() {
        let pem = csr_template(&req()).expect("template");
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).expect("parse");
        let cn = parsed
            .params
            .distinguished_name
            .get(&rcgen::DnType::CommonName)
            .cloned();
        assert_eq!(cn, Some(rcgen::DnValue::Utf8String("DSC".into())));
    }

    fn sca(days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let cert = params.self_signed(&key).expect("SCA");
        (key.serialize_pem(), cert.pem())
    }

    /// The offline path without Vault: a CSR as transit would produce (here
    /// from a local key), signed and checked like `init_dsc` does.
    #[test]
    fn offline_signing_yields_a_checked_dsc_and_respects_the_sca_expiry() {
        let dsc_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = distinguished_name(&req());
        let csr = params
            .serialize_request(&dsc_key)
            .and_then(|c| c.pem())
            .expect("CSR");
        let public_pem = dsc_key.public_key_pem();

        let (key_pem, cert_pem) = sca(3650);
        let chain = sign_offline(&Secret::new(key_pem), &cert_pem, &csr, &req()).expect("sign");
        let info = parse_chain(&chain, 1).expect("chain");
        verify_dsc(&info, &public_pem, &req()).expect("DSC passes its checks");

        // Another key than the CSR's, or an EKU the DSC lacks, are refused.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let other_pem = other.public_key_pem();
        assert!(matches!(
            verify_dsc(&info, &other_pem, &req()),
            Err(DscError::Certificate(_))
        ));
        let more = DscRequest {
            ext_key_usage_oids: vec![EKU_VACCINATION.into(), EKU_RECOVERY.into()],
            ..req()
        };
        assert!(matches!(
            verify_dsc(&info, &public_pem, &more),
            Err(DscError::Certificate(_))
        ));

        let (key_pem, short_sca) = sca(0);
        assert!(matches!(
            sign_offline(&Secret::new(key_pem), &short_sca, &csr, &req()),
            Err(DscError::Request(_))
        ));
    }

    #[test]
    fn kid_is_sha256_prefix() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(
            kid_of(b"abc"),
            [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]
        );
    }
}
