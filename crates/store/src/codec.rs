//! The one place resource bodies are turned into bytes and back. Encryption at rest
//! (AES-256-GCM over the body) slots in here without touching the back ends, which only
//! ever see opaque bytes.

use serde_json::Value;

use crate::StoreError;

pub fn encode(resource: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(resource).map_err(|e| StoreError::Codec(e.to_string()))
}

pub fn decode(bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec(e.to_string()))
}
