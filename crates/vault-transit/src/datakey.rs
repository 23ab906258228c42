//! Data keys for encryption at rest (the store's AES-256-GCM keys), generated and
//! wrapped by Vault transit: the mediator keeps only the wrapped form on disk and asks
//! Vault to unwrap it at start, so a copied data directory holds no usable key.
//!
//! The wrapping key is a transit `aes256-gcm96` key of its own (`key_name` of the
//! config passed here), never the DSC signing key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::VaultClient;
use crate::{VaultConfig, VaultError};

/// A fresh data key: the plaintext for this process, the wrapped form to keep.
pub struct DataKey {
    pub plaintext: [u8; 32],
    /// Vault ciphertext (`vault:v1:…`).
    pub wrapped: String,
}

fn key_bytes(b64: &str) -> Result<[u8; 32], VaultError> {
    B64.decode(b64)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
        .ok_or_else(|| VaultError::Protocol("data key is not 32 bytes of base64".into()))
}

/// Creates the wrapping key if absent (`aes256-gcm96`, not exportable) and returns a
/// new 256-bit data key with its wrapped form.
pub async fn generate_data_key(cfg: &VaultConfig) -> Result<DataKey, VaultError> {
    let client = VaultClient::new(cfg.clone()).map_err(|e| VaultError::Protocol(e.to_string()))?;
    let name = cfg.key_name.trim_matches('/');
    match client
        .call(
            Method::POST,
            &format!("{}/keys/{name}", cfg.mount()),
            Some(&json!({ "type": "aes256-gcm96", "exportable": false })),
        )
        .await
    {
        // An existing key answers 400 on some versions; the datakey call decides.
        Ok(_) | Err(VaultError::Rejected { status: 400, .. }) => {}
        Err(e) => return Err(e),
    }
    let r = client
        .call(
            Method::POST,
            &format!("{}/datakey/plaintext/{name}", cfg.mount()),
            Some(&json!({ "bits": 256 })),
        )
        .await?;
    let plaintext = r
        .pointer("/data/plaintext")
        .and_then(Value::as_str)
        .ok_or_else(|| VaultError::Protocol("datakey answer without plaintext".into()))?;
    let wrapped = r
        .pointer("/data/ciphertext")
        .and_then(Value::as_str)
        .ok_or_else(|| VaultError::Protocol("datakey answer without ciphertext".into()))?;
    Ok(DataKey {
        plaintext: key_bytes(plaintext)?,
        wrapped: wrapped.to_owned(),
    })
}

/// Unwraps a data key kept in its wrapped form.
pub async fn unwrap_data_key(cfg: &VaultConfig, wrapped: &str) -> Result<[u8; 32], VaultError> {
    let client = VaultClient::new(cfg.clone()).map_err(|e| VaultError::Protocol(e.to_string()))?;
    let r = client
        .call(
            Method::POST,
            &format!("{}/decrypt/{}", cfg.mount(), cfg.key_name.trim_matches('/')),
            Some(&json!({ "ciphertext": wrapped })),
        )
        .await?;
    let plaintext = r
        .pointer("/data/plaintext")
        .and_then(Value::as_str)
        .ok_or_else(|| VaultError::Protocol("decrypt answer without plaintext".into()))?;
    key_bytes(plaintext)
}
