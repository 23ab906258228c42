//! Vault transit signer.
