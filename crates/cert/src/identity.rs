//! The issuer's signing identity: a signer plus the DSC it signs for.

use crate::error::{CertError, Result};
use crate::signer::{Algorithm, Signer};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// kid = the first 8 bytes of SHA-256 over the DSC certificate DER (EU DCC and
/// WHO DDCC trust lists key their certificates this way).
pub fn kid_for_dsc(dsc_der: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(dsc_der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest[..8]);
    kid
}

/// Everything an issuing function needs to sign as this issuer. The same type is
/// built from a local key or from Vault transit, so issuing code has one path.
#[derive(Clone)]
pub struct SigningIdentity {
    pub signer: Arc<dyn Signer>,
    pub dsc_der: Vec<u8>,
    pub kid: [u8; 8],
    /// Uncompressed P-256 point of the DSC key (`04 || x || y`).
    pub public_key: Vec<u8>,
    /// ISO 3166-1 alpha-2 or alpha-3 country of the issuer, as configured.
    pub country: String,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("kid", &self.kid_b64())
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Bind a signer to its DSC. Fails when the DSC does not hold a P-256 key or the
    /// signer is not ES256, so a misconfiguration surfaces at start, not per request.
    pub fn new(signer: Arc<dyn Signer>, dsc_der: Vec<u8>, country: &str) -> Result<Self> {
        if signer.algorithm() != Algorithm::Es256 {
            return Err(CertError::InvalidInput("signer is not ES256".into()));
        }
        let public_key = crate::x509::p256_public_key(&dsc_der)?;
        Ok(Self {
            signer,
            kid: kid_for_dsc(&dsc_der),
            dsc_der,
            public_key,
            country: country.to_string(),
        })
    }

    pub fn dsc_pem(&self) -> String {
        crate::x509::pem_encode("CERTIFICATE", &self.dsc_der)
    }

    /// kid in standard base64, the form EU trust lists publish.
    pub fn kid_b64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.kid)
    }

    /// Sign and check the signature shape: a remote signer returning DER or a
    /// truncated value must not reach a certificate.
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self.signer.sign(message).await?;
        if sig.len() != 64 {
            return Err(CertError::Sign(crate::signer::SignError::Invalid(format!(
                "ES256 signature must be 64 bytes (r||s), got {}",
                sig.len()
            ))));
        }
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{BoxFuture, SignError};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A remote-like signer: answers after one `Pending`, wraps a local key, and can
    /// be switched to fail or to return a malformed signature.
    struct Remote {
        inner: crate::local::LocalSigner,
        mode: AtomicUsize, // 0 ok, 1 unavailable, 2 DER-length signature
    }

    struct YieldOnce(bool);
    impl std::future::Future for YieldOnce {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                std::task::Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    impl Signer for Remote {
        fn algorithm(&self) -> Algorithm {
            Algorithm::Es256
        }
        fn sign<'a>(&'a self, message: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
            Box::pin(async move {
                YieldOnce(false).await;
                match self.mode.load(Ordering::SeqCst) {
                    0 => self.inner.sign(message).await,
                    1 => Err(SignError::Unavailable("sealed".into())),
                    _ => Ok(vec![0x30; 71]),
                }
            })
        }
    }

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
    fn remote_signer_errors_propagate_typed() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::local::open(dir.path(), "DE").unwrap();
        let pkcs8 = std::fs::read(dir.path().join(crate::local::KEY_FILE)).unwrap();
        let remote = Arc::new(Remote {
            inner: crate::local::LocalSigner::from_pkcs8(&pkcs8).unwrap(),
            mode: AtomicUsize::new(0),
        });
        let id =
            SigningIdentity::new(remote.clone(), store.identity.dsc_der.clone(), "DE").unwrap();
        let claims = crate::hc1::CwtClaims {
            iss: "DE".into(),
            iat: 1,
            exp: 2,
        };
        let payload = crate::hc1::HcertPayload::Who(serde_json::json!({"name": "X"}));
        let hc1 = block_on(crate::hc1::issue(&payload, &claims, &id)).unwrap();
        assert!(crate::hc1::verify(&hc1, &id.public_key).is_ok());

        remote.mode.store(1, Ordering::SeqCst);
        let err = block_on(crate::hc1::issue(&payload, &claims, &id)).unwrap_err();
        assert!(
            matches!(err, CertError::Sign(SignError::Unavailable(_))),
            "{err}"
        );

        remote.mode.store(2, Ordering::SeqCst);
        let err = block_on(crate::bundle_sig::sign(
            &serde_json::json!({}),
            &id,
            "Organization/x",
            0,
        ))
        .unwrap_err();
        assert!(
            matches!(err, CertError::Sign(SignError::Invalid(_))),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_non_p256_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::local::open(dir.path(), "DE").unwrap();
        let mut der = store.identity.dsc_der.clone();
        // Corrupt the curve OID (prime256v1 → something else).
        let oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let at = der.windows(oid.len()).position(|w| w == oid).unwrap();
        der[at + 7] = 0x22;
        assert!(SigningIdentity::new(store.identity.signer.clone(), der, "DE").is_err());
    }
}
