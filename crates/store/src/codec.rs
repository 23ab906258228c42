//! The one place resource bodies are turned into bytes and back: JSON, sealed with
//! the store's current data key ([`crate::crypto`]), so the back ends only ever see
//! opaque ciphertext.

use serde_json::Value;

use crate::crypto::DataKeys;
use crate::StoreError;

/// Associated data of a resource version: a sealed body only opens in its own row.
pub fn resource_aad(resource_type: &str, id: &str, version: i64) -> Vec<u8> {
    format!("res/{resource_type}/{id}/{version}").into_bytes()
}

pub fn encode(keys: &DataKeys, aad: &[u8], resource: &Value) -> Result<Vec<u8>, StoreError> {
    let plain = serde_json::to_vec(resource).map_err(|e| StoreError::Codec(e.to_string()))?;
    Ok(keys.seal(aad, &plain)?)
}

pub fn decode(keys: &DataKeys, aad: &[u8], bytes: &[u8]) -> Result<Value, StoreError> {
    let plain = keys.open(aad, bytes)?;
    serde_json::from_slice(&plain).map_err(|e| StoreError::Codec(e.to_string()))
}
