//! The signing boundary. The certificate core never holds a key: it asks a
//! [`Signer`] for an ES256 signature over bytes it built (a COSE Sig_structure, a
//! JWS signing input, CMS signed attributes). Implementations: a local P-256 key
//! for the embedded default, Vault transit for production.

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256; signatures are raw `r || s` (64 bytes).
    Es256,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The signing service cannot be reached or is sealed: retry later (503).
    #[error("signer unavailable: {0}")]
    Unavailable(String),
    /// The signing service refused (permissions, missing key): not retryable.
    #[error("signer refused: {0}")]
    Refused(String),
    #[error("signer returned an invalid signature: {0}")]
    Invalid(String),
}

pub trait Signer: Send + Sync {
    fn algorithm(&self) -> Algorithm;
    /// Sign `message` (the signer hashes it with SHA-256; a remote signer sends only
    /// the digest). Returns the raw signature (`r || s` for ES256).
    fn sign<'a>(&'a self, message: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>>;
}
