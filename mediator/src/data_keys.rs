//! Where the store's encryption-at-rest keys come from.
//!
//! - Embedded default: `<data dir>/data-keys.json` (or `DDCC_DATA_KEY_FILE`), raw keys in
//!   a file created with mode 0600; the store refuses a file others can read.
//! - Vault: with `DDCC_DATA_KEY_VAULT_KEY=<transit key>` (and `VAULT_ADDR`), the keys are
//!   Vault transit data keys; only their wrapped forms are kept, in
//!   `<data dir>/data-keys.vault.json` (or `DDCC_DATA_KEY_FILE`), and unwrapped through
//!   Vault at start. Instances sharing a PostgreSQL store share that file.
//!
//! Rotation (`ddcc-mediator keys rotate-data-key`) adds a key and makes it current; the
//! service re-seals older records in the background at its next start, after which
//! `keys retire-data-key <id>` removes the old one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ddcc_store::crypto::KEY_FILE;
use ddcc_store::DataKeys;
use serde::{Deserialize, Serialize};
use vault_transit::VaultConfig;

/// File of wrapped keys in Vault mode.
pub const WRAPPED_KEY_FILE: &str = "data-keys.vault.json";

#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error(transparent)]
    Key(#[from] ddcc_store::KeyError),
    #[error("Vault data key: {0}")]
    Vault(String),
    #[error("wrapped key file {path}: {reason}")]
    File { path: String, reason: String },
}

/// Where the keys live, decided from the environment.
pub enum KeySource {
    File(PathBuf),
    Vault {
        file: PathBuf,
        cfg: Box<VaultConfig>,
    },
}

impl KeySource {
    pub fn from_env(
        data_dir: &Path,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, DataKeyError> {
        let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        match set("DDCC_DATA_KEY_VAULT_KEY") {
            Some(key) => {
                let mut cfg = VaultConfig::from_lookup(env)
                    .map_err(|e| DataKeyError::Vault(e.to_string()))?;
                cfg.key_name = key;
                cfg.key_version = None;
                let file = set("DDCC_DATA_KEY_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join(WRAPPED_KEY_FILE));
                Ok(KeySource::Vault {
                    file,
                    cfg: Box::new(cfg),
                })
            }
            None => Ok(KeySource::File(
                set("DDCC_DATA_KEY_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join(KEY_FILE)),
            )),
        }
    }

    pub async fn load(&self) -> Result<DataKeys, DataKeyError> {
        match self {
            KeySource::File(path) => Ok(DataKeys::from_key_file(path)?),
            KeySource::Vault { file, cfg } => load_wrapped(file, cfg).await,
        }
    }

    /// Adds a data key and makes it current; returns its id.
    pub async fn rotate(&self) -> Result<String, DataKeyError> {
        match self {
            KeySource::File(path) => Ok(DataKeys::rotate_key_file(path)?),
            KeySource::Vault { file, cfg } => {
                let mut w = read_wrapped(file)?;
                let id = next_id(&w.keys);
                let k = vault_transit::generate_data_key(cfg)
                    .await
                    .map_err(|e| DataKeyError::Vault(e.to_string()))?;
                w.keys.insert(id.clone(), k.wrapped);
                w.current = id.clone();
                write_wrapped(file, &w)?;
                Ok(id)
            }
        }
    }

    /// Removes a retired key (never the current one).
    pub fn retire(&self, id: &str) -> Result<(), DataKeyError> {
        match self {
            KeySource::File(path) => Ok(DataKeys::remove_from_key_file(path, id)?),
            KeySource::Vault { file, .. } => {
                let mut w = read_wrapped(file)?;
                if w.current == id || w.keys.remove(id).is_none() {
                    return Err(DataKeyError::File {
                        path: file.display().to_string(),
                        reason: format!("{id} is the current key or unknown"),
                    });
                }
                write_wrapped(file, &w)
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Wrapped {
    current: String,
    blind: String,
    keys: BTreeMap<String, String>,
}

fn next_id(keys: &BTreeMap<String, String>) -> String {
    (1..)
        .map(|n| format!("k{n}"))
        .find(|id| !keys.contains_key(id))
        .unwrap_or_else(|| "k0".into())
}

fn read_wrapped(file: &Path) -> Result<Wrapped, DataKeyError> {
    let err = |reason: String| DataKeyError::File {
        path: file.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

fn write_wrapped(file: &Path, w: &Wrapped) -> Result<(), DataKeyError> {
    let err = |e: std::io::Error| DataKeyError::File {
        path: file.display().to_string(),
        reason: e.to_string(),
    };
    let body = serde_json::to_vec_pretty(w).map_err(|e| DataKeyError::File {
        path: file.display().to_string(),
        reason: e.to_string(),
    })?;
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, body).map_err(err)?;
    std::fs::rename(&tmp, file).map_err(err)
}

async fn load_wrapped(file: &Path, cfg: &VaultConfig) -> Result<DataKeys, DataKeyError> {
    let vault = |e: vault_transit::VaultError| DataKeyError::Vault(e.to_string());
    if !file.exists() {
        let blind = vault_transit::generate_data_key(cfg).await.map_err(vault)?;
        let k1 = vault_transit::generate_data_key(cfg).await.map_err(vault)?;
        write_wrapped(
            file,
            &Wrapped {
                current: "k1".into(),
                blind: blind.wrapped,
                keys: [("k1".to_owned(), k1.wrapped)].into(),
            },
        )?;
        tracing::info!(file = %file.display(), "created Vault-wrapped data keys");
    }
    let w = read_wrapped(file)?;
    let blind = vault_transit::unwrap_data_key(cfg, &w.blind)
        .await
        .map_err(vault)?;
    let mut keys = Vec::with_capacity(w.keys.len());
    for (id, wrapped) in &w.keys {
        keys.push((
            id.clone(),
            vault_transit::unwrap_data_key(cfg, wrapped)
                .await
                .map_err(vault)?,
        ));
    }
    Ok(DataKeys::from_parts(&w.current, keys, blind)?)
}
