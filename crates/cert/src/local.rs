//! The embedded default signer: a P-256 key on disk with a self-signed development
//! SCA and a DSC signed by it. NOT FOR PRODUCTION — the private key sits in a file.
//!
//! Layout of the key directory (created 0700; the key file 0600):
//! - `dsc-key.p8`   PKCS#8 DER of the DSC private key (written last: its presence
//!   marks a complete store, so a crash half-way is redone on the next start)
//! - `dsc-cert.pem` the DSC certificate
//! - `sca-cert.pem` the development SCA certificate (trust anchor for verifiers)
//!
//! The SCA private key is used once to sign the DSC and then dropped: a dev store
//! never needs to issue a second DSC from the same SCA.

use crate::error::{CertError, Result};
use crate::identity::SigningIdentity;
use crate::signer::{Algorithm, BoxFuture, SignError, Signer};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const KEY_FILE: &str = "dsc-key.p8";
pub const DSC_FILE: &str = "dsc-cert.pem";
pub const SCA_FILE: &str = "sca-cert.pem";
pub const DSC_COMMON_NAME: &str = "DDCC dev DSC — NOT FOR PRODUCTION";
pub const SCA_COMMON_NAME: &str = "DDCC dev SCA — NOT FOR PRODUCTION";

/// EU DCC extended key usages: the DSC may sign test, vaccination and recovery
/// certificates.
pub const EKU_OIDS: [&[u64]; 3] = [
    &[1, 3, 6, 1, 4, 1, 1847, 2021, 1, 1],
    &[1, 3, 6, 1, 4, 1, 1847, 2021, 1, 2],
    &[1, 3, 6, 1, 4, 1, 1847, 2021, 1, 3],
];

/// ES256 with a key held in memory (ring).
pub struct LocalSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl LocalSigner {
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| CertError::KeyStore(format!("PKCS#8 key rejected: {e}")))?;
        Ok(Self { key, rng })
    }

    /// Uncompressed public point.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// Load the store in `dir`, creating key, SCA and DSC on first use. `country`
    /// is the issuer country (alpha-2 or alpha-3), used as the DSC subject `C`.
    pub fn load_or_create(dir: &Path, country: &str) -> Result<SigningIdentity> {
        Ok(open(dir, country)?.identity)
    }
}

impl Signer for LocalSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Es256
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        let result = self
            .key
            .sign(&self.rng, message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| SignError::Refused("local ECDSA signing failed".into()));
        Box::pin(std::future::ready(result))
    }
}

/// What [`open`] found or made.
pub struct OpenedStore {
    pub identity: SigningIdentity,
    pub sca_pem: String,
    /// True when this call generated the key (callers log the not-for-production
    /// warning loudly then).
    pub created: bool,
    pub dir: PathBuf,
}

pub fn open(dir: &Path, country: &str) -> Result<OpenedStore> {
    let alpha2 = crate::country::to_alpha2(country)
        .ok_or_else(|| CertError::InvalidInput(format!("unknown issuer country {country:?}")))?;
    let io = |what: &str, e: std::io::Error| CertError::KeyStore(format!("{what}: {e}"));
    let key_path = dir.join(KEY_FILE);
    let created = !key_path.exists();
    if created {
        create_store(dir, alpha2)?;
    }
    let pkcs8 = std::fs::read(&key_path).map_err(|e| io("read key", e))?;
    let dsc_pem = std::fs::read_to_string(dir.join(DSC_FILE)).map_err(|e| io("read DSC", e))?;
    let sca_pem = std::fs::read_to_string(dir.join(SCA_FILE)).map_err(|e| io("read SCA", e))?;
    let dsc_der = crate::x509::pem_decode("CERTIFICATE", &dsc_pem)?;
    let signer = LocalSigner::from_pkcs8(&pkcs8)?;
    let cert_key = crate::x509::p256_public_key(&dsc_der)?;
    if cert_key != signer.public_key() {
        return Err(CertError::KeyStore(
            "the DSC certificate does not belong to the stored key".into(),
        ));
    }
    let identity = SigningIdentity::new(Arc::new(signer), dsc_der, country)?;
    Ok(OpenedStore {
        identity,
        sca_pem,
        created,
        dir: dir.to_path_buf(),
    })
}

fn create_store(dir: &Path, alpha2: &str) -> Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let kerr = |e: rcgen::Error| CertError::KeyStore(format!("certificate generation: {e}"));
    let io = |what: &str, e: std::io::Error| CertError::KeyStore(format!("{what}: {e}"));
    create_dir_private(dir).map_err(|e| io("create key directory", e))?;

    let rng = SystemRandom::new();
    let new_key = || {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| CertError::KeyStore("key generation failed".into()))
    };
    let sca_pkcs8 = new_key()?;
    let dsc_pkcs8 = new_key()?;
    let sca_key = KeyPair::try_from(&sca_pkcs8[..]).map_err(kerr)?;
    let dsc_key = KeyPair::try_from(&dsc_pkcs8[..]).map_err(kerr)?;

    let now = time::OffsetDateTime::now_utc();
    let dn = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, alpha2);
        dn.push(DnType::CommonName, cn);
        dn
    };

    let mut sca = CertificateParams::default();
    sca.distinguished_name = dn(SCA_COMMON_NAME);
    sca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    sca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    sca.not_before = now - time::Duration::days(1);
    sca.not_after = now + time::Duration::days(3650);
    let sca_cert = sca.self_signed(&sca_key).map_err(kerr)?;

    let mut dsc = CertificateParams::default();
    dsc.distinguished_name = dn(DSC_COMMON_NAME);
    dsc.is_ca = IsCa::ExplicitNoCa;
    dsc.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    dsc.extended_key_usages = EKU_OIDS
        .iter()
        .map(|oid| ExtendedKeyUsagePurpose::Other(oid.to_vec()))
        .collect();
    dsc.not_before = now - time::Duration::days(1);
    dsc.not_after = now + time::Duration::days(730);
    let dsc_cert = dsc.signed_by(&dsc_key, &sca_cert, &sca_key).map_err(kerr)?;

    std::fs::write(dir.join(SCA_FILE), sca_cert.pem()).map_err(|e| io("write SCA", e))?;
    std::fs::write(dir.join(DSC_FILE), dsc_cert.pem()).map_err(|e| io("write DSC", e))?;
    let tmp = dir.join(format!("{KEY_FILE}.tmp"));
    write_private(&tmp, &dsc_pkcs8).map_err(|e| io("write key", e))?;
    std::fs::rename(&tmp, dir.join(KEY_FILE)).map_err(|e| io("commit key", e))?;
    Ok(())
}

#[cfg(unix)]
fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn creates_then_loads_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("keys");
        let first = open(&store, "USA").unwrap();
        assert!(first.created);
        let second = open(&store, "USA").unwrap();
        assert!(!second.created);
        assert_eq!(first.identity.dsc_der, second.identity.dsc_der);
        assert_eq!(
            first.identity.kid,
            crate::kid_for_dsc(&second.identity.dsc_der)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = block_on(second.identity.sign(b"hello")).unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &first.identity.public_key,
        )
        .verify(b"hello", &sig)
        .unwrap();
        // The DSC carries the three EU EKU OIDs (DER of 1.3.6.1.4.1.1847.2021.1.x).
        let der = &first.identity.dsc_der;
        for last in 1u8..=3 {
            let oid = [0x2b, 6, 1, 4, 1, 0x8e, 0x37, 0x8f, 0x65, 1, last];
            assert!(
                der.windows(oid.len()).any(|w| w == oid),
                "EKU .{last} missing"
            );
        }
    }

    #[test]
    fn rejects_unknown_country_and_foreign_certificate() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open(dir.path(), "ZZZ").is_err());
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        open(&a, "NL").unwrap();
        open(&b, "NL").unwrap();
        std::fs::copy(b.join(DSC_FILE), a.join(DSC_FILE)).unwrap();
        assert!(open(&a, "NL").is_err());
    }
}
