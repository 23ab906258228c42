//! Vault/OpenBao transit signer and DSC lifecycle.
//!
//! The private key of the Document Signer Certificate (DSC) lives in a transit key
//! (`ecdsa-p256`, not exportable). [`VaultTransitSigner`] implements the
//! certificate core's [`ddcc_cert::signer::Signer`]: it hashes each message with
//! SHA-256 locally and sends only the digest (`prehashed=true`,
//! `marshaling_algorithm=jws`, so transit answers raw `r || s`). Concurrent
//! requests are coalesced into `batch_input` calls so throughput is not bound by
//! one HTTP round trip per signature.
//!
//! Typical use in the mediator (pin the signer to the key version the DSC
//! certifies, so a key rotation in Vault cannot produce signatures under a kid
//! that no certificate matches):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ddcc_cert::signer::Signer;
//! let mut cfg = vault_transit::VaultConfig::from_env()?;
//! let dsc = vault_transit::show_dsc(&cfg).await?;
//! cfg.key_version = Some(dsc.key_version);
//! let signer = vault_transit::VaultTransitSigner::new(cfg)?;
//! let sig = signer.sign(b"COSE Sig_structure").await?; // 64 bytes r||s
//! let ready = signer.health().await.is_ready(); // for /ready
//! # let _ = (sig, ready, dsc.kid); Ok(()) }
//! ```
//!
//! The transit HTTP API is called with `reqwest` directly rather than `vaultrs`:
//! vaultrs 0.8 models `sign` with a single `input` (no `batch_input`) and has no
//! endpoints for transit `keys/<k>/csr` and `keys/<k>/set-certificate`, which are
//! the two things this crate exists for.

mod client;
mod config;
mod datakey;
mod dsc;
mod error;
mod health;
mod signer;

pub use config::{Auth, ConfigError, Secret, VaultConfig};
pub use datakey::{generate_data_key, unwrap_data_key, DataKey};
pub use dsc::{
    init_dsc, kid_of, show_dsc, DscError, DscInfo, DscRequest, SignerCaSource, EKU_RECOVERY,
    EKU_TEST, EKU_VACCINATION,
};
pub use error::VaultError;
pub use health::Health;
pub use signer::{Stats, VaultTransitSigner};
