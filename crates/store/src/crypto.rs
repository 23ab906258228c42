//! Encryption at rest. Every resource body and every stored idempotency answer is
//! sealed with AES-256-GCM before it reaches a back end; search-index values that
//! identify a person (identifiers, HCIDs, audit entity names) are stored as keyed
//! HMAC-SHA-256 "blind" values instead of clear text. A copied database file or dump
//! therefore holds no patient name, birth date or HCID.
//!
//! Sealed format: `DE1` ‖ key-id length (1 byte) ‖ key id ‖ 96-bit random nonce ‖
//! ciphertext+tag. The associated data binds the record to its place (type, id,
//! version), so a sealed body copied onto another row fails to open.
//!
//! Keys: data keys are named (`k1`, `k2`, …); one is current and seals, all open. The
//! blind-index key is separate and never rotates with data keys: rotating it would
//! mean rebuilding every index row at once, while data-key rotation re-encrypts lazily.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::StoreError;

const MAGIC: &[u8; 3] = b"DE1";
const NONCE_LEN: usize = 12;
/// Prefix of blind index values, so a value can never be mistaken for clear text.
pub const BLIND_PREFIX: &str = "hmac:";

/// File name of the embedded default's key file inside the data directory.
pub const KEY_FILE: &str = "data-keys.json";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("key file {path} is readable by others (mode {mode:o}); it must be 0600")]
    Mode { path: String, mode: u32 },
    #[error("no data key named {0}")]
    Unknown(String),
    #[error("record sealed with data key {0}, which is not configured")]
    Missing(String),
    #[error(
        "a sealed record failed authentication (wrong key, or the record was altered or moved)"
    )]
    Authentication,
    #[error("sealed record is truncated or malformed")]
    Malformed,
}

impl From<KeyError> for StoreError {
    fn from(e: KeyError) -> Self {
        StoreError::Crypto(e.to_string())
    }
}

/// The keys a store seals and blinds with. Key material never appears in `Debug`.
pub struct DataKeys {
    current: String,
    keys: BTreeMap<String, Aes256Gcm>,
    blind_key: [u8; 32],
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// On-disk form of the embedded default's key file.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: String,
    /// base64 of the 32-byte blind-index key.
    blind: String,
    /// key id → base64 of the 32-byte AES key.
    keys: BTreeMap<String, String>,
}

fn random_key() -> Result<[u8; 32], KeyError> {
    let mut k = [0u8; 32];
    getrandom::getrandom(&mut k).map_err(|e| KeyError::File {
        path: "<random>".into(),
        reason: e.to_string(),
    })?;
    Ok(k)
}

fn decode_key(b64: &str, what: &str, path: &str) -> Result<[u8; 32], KeyError> {
    B64.decode(b64.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
        .ok_or_else(|| KeyError::File {
            path: path.to_owned(),
            reason: format!("{what} is not 32 bytes of base64"),
        })
}

impl DataKeys {
    /// Keys from raw material: `keys` are (id, 32-byte key); `current` seals.
    pub fn from_parts(
        current: &str,
        keys: impl IntoIterator<Item = (String, [u8; 32])>,
        blind_key: [u8; 32],
    ) -> Result<Self, KeyError> {
        let keys: BTreeMap<String, Aes256Gcm> = keys
            .into_iter()
            .map(|(id, k)| (id, Aes256Gcm::new(&k.into())))
            .collect();
        if !keys.contains_key(current) {
            return Err(KeyError::Unknown(current.to_owned()));
        }
        Ok(DataKeys {
            current: current.to_owned(),
            keys,
            blind_key,
        })
    }

    /// Fresh random keys (one data key `k1`), e.g. for a throwaway test store.
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_parts("k1", [("k1".to_owned(), random_key()?)], random_key()?)
    }

    /// The embedded default: the key file at `path`, created (mode 0600) with a first
    /// data key and a blind-index key when absent. Refuses a file others can read.
    pub fn from_key_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::File {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
            }
            let file = KeyFile {
                current: "k1".into(),
                blind: B64.encode(random_key()?),
                keys: [("k1".to_owned(), B64.encode(random_key()?))].into(),
            };
            write_key_file(path, &file)?;
        }
        check_mode(path)?;
        let file = read_key_file(path)?;
        let blind = decode_key(&file.blind, "blind", &shown)?;
        let mut keys = Vec::new();
        for (id, k) in &file.keys {
            keys.push((id.clone(), decode_key(k, id, &shown)?));
        }
        Self::from_parts(&file.current, keys, blind)
    }

    /// Adds a new data key to the key file and makes it current; returns its id. Records
    /// sealed with older keys stay readable until [`crate::Store::reencrypt`] has
    /// re-sealed them; only then may an old key be removed ([`Self::remove_from_key_file`]).
    pub fn rotate_key_file(path: &Path) -> Result<String, KeyError> {
        check_mode(path)?;
        let mut file = read_key_file(path)?;
        let next = (1..)
            .map(|n| format!("k{n}"))
            .find(|id| !file.keys.contains_key(id))
            .unwrap_or_else(|| "k0".into());
        file.keys.insert(next.clone(), B64.encode(random_key()?));
        file.current = next.clone();
        write_key_file(path, &file)?;
        Ok(next)
    }

    /// Drops a retired data key from the key file (never the current one).
    pub fn remove_from_key_file(path: &Path, id: &str) -> Result<(), KeyError> {
        let mut file = read_key_file(path)?;
        if file.current == id {
            return Err(KeyError::File {
                path: path.display().to_string(),
                reason: format!("{id} is the current key"),
            });
        }
        if file.keys.remove(id).is_none() {
            return Err(KeyError::Unknown(id.to_owned()));
        }
        write_key_file(path, &file)
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Seals `plain` under the current key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let cipher = self
            .keys
            .get(&self.current)
            .ok_or_else(|| KeyError::Unknown(self.current.clone()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|_| KeyError::Malformed)?;
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| KeyError::Authentication)?;
        let id = self.current.as_bytes();
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + id.len() + NONCE_LEN + ct.len());
        out.extend_from_slice(MAGIC);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Self::seal`] made. Bytes that do not start with the sealed-format
    /// marker are returned as they are: clear records written before encryption existed
    /// stay readable until the re-encryption pass seals them.
    pub fn open(&self, aad: &[u8], bytes: &[u8]) -> Result<Vec<u8>, KeyError> {
        let Some(id) = sealed_key_id(bytes) else {
            return Ok(bytes.to_vec());
        };
        let rest = &bytes[MAGIC.len() + 1 + id.len()..];
        if rest.len() < NONCE_LEN + 16 {
            return Err(KeyError::Malformed);
        }
        let cipher = self
            .keys
            .get(id)
            .ok_or_else(|| KeyError::Missing(id.to_owned()))?;
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| KeyError::Authentication)
    }

    /// The keyed blind value stored in place of a personal search value. `scope`
    /// separates namespaces (e.g. `List.identifier`), so equal values under different
    /// parameters do not link.
    pub fn blind(&self, scope: &str, value: &str) -> String {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail for 32 bytes.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.blind_key)
            .expect("HMAC takes a 32-byte key");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        format!(
            "{BLIND_PREFIX}{}",
            B64URL.encode(mac.finalize().into_bytes())
        )
    }
}

/// The key id a sealed record names, or `None` for a clear (legacy) record.
pub fn sealed_key_id(bytes: &[u8]) -> Option<&str> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (&len, rest) = rest.split_first()?;
    let id = rest.get(..len as usize)?;
    std::str::from_utf8(id).ok()
}

fn read_key_file(path: &Path) -> Result<KeyFile, KeyError> {
    let err = |reason: String| KeyError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

fn write_key_file(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    let shown = path.display().to_string();
    let err = |e: std::io::Error| KeyError::File {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let body = serde_json::to_vec_pretty(file).map_err(|e| KeyError::File {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    // Written beside the target with 0600 from creation, then renamed over it, so the
    // key is never readable by others and never half-written.
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(&body).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

fn check_mode(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| KeyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Mode {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let k = DataKeys::generate().unwrap();
        let sealed = k.seal(b"Patient/1/1", b"{\"name\":\"Jane\"}").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"Jane"));
        assert_eq!(sealed_key_id(&sealed), Some("k1"));
        assert_eq!(
            k.open(b"Patient/1/1", &sealed).unwrap(),
            b"{\"name\":\"Jane\"}"
        );
        // Moved to another row: authentication fails.
        assert!(matches!(
            k.open(b"Patient/2/1", &sealed),
            Err(KeyError::Authentication)
        ));
        // One flipped byte: fails.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(k.open(b"Patient/1/1", &bad).is_err());
        // Truncated: malformed, not a panic.
        assert!(k.open(b"Patient/1/1", &sealed[..8]).is_err());
    }

    #[test]
    fn clear_legacy_records_pass_through() {
        let k = DataKeys::generate().unwrap();
        assert_eq!(k.open(b"x", b"{\"a\":1}").unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn blind_values_are_keyed_and_scoped() {
        let a = DataKeys::generate().unwrap();
        let b = DataKeys::generate().unwrap();
        assert_eq!(
            a.blind("List.identifier", "X"),
            a.blind("List.identifier", "X")
        );
        assert_ne!(
            a.blind("List.identifier", "X"),
            b.blind("List.identifier", "X")
        );
        assert_ne!(
            a.blind("List.identifier", "X"),
            a.blind("Bundle.identifier", "X")
        );
        assert!(a.blind("s", "X").starts_with(BLIND_PREFIX));
    }

    #[test]
    fn key_file_created_0600_rotated_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let k1 = DataKeys::from_key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let sealed = k1.seal(b"a", b"secret").unwrap();
        let next = DataKeys::rotate_key_file(&path).unwrap();
        assert_eq!(next, "k2");
        let k2 = DataKeys::from_key_file(&path).unwrap();
        assert_eq!(k2.current_id(), "k2");
        assert_eq!(k2.open(b"a", &sealed).unwrap(), b"secret");
        // Blind values survive data-key rotation.
        assert_eq!(k1.blind("s", "v"), k2.blind("s", "v"));
        assert!(DataKeys::remove_from_key_file(&path, "k2").is_err());
        DataKeys::remove_from_key_file(&path, "k1").unwrap();
        let k3 = DataKeys::from_key_file(&path).unwrap();
        assert!(matches!(k3.open(b"a", &sealed), Err(KeyError::Missing(_))));
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        DataKeys::from_key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                DataKeys::from_key_file(&path),
                Err(KeyError::Mode { .. })
            ));
        }
    }
}
