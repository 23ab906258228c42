//! `ddcc-mediator keys init|show`: the document signer certificate (DSC) lifecycle.
//!
//! `init` creates the transit key in Vault (never exportable), has Vault produce a
//! CSR for it, gets the CSR signed by the SCA (a Vault PKI mount, or an offline SCA
//! key and certificate given as files and used only here), stores the chain in
//! transit and prints the DSC and its kid. `show` prints the active DSC, from Vault
//! when `VAULT_ADDR` is set, else the local development key's.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use vault_transit::{
    init_dsc, show_dsc, DscRequest, SignerCaSource, VaultConfig, EKU_RECOVERY, EKU_TEST,
    EKU_VACCINATION,
};

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the transit key and its DSC, signed by the SCA; print the DSC and kid.
    Init(InitArgs),
    /// Print the active DSC (PEM) and its kid.
    Show,
    /// Add a data key for encryption at rest and make it current. The service re-seals
    /// older records in the background at its next start.
    RotateDataKey,
    /// Remove a retired data key once no record uses it (checked: refused otherwise).
    RetireDataKey {
        /// Key id, e.g. k1.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Offline SCA private key (PEM). With --sca-cert; otherwise Vault PKI signs.
    #[arg(long, env = "DDCC_SCA_KEY", requires = "sca_cert")]
    pub sca_key: Option<PathBuf>,
    /// Offline SCA certificate (PEM).
    #[arg(long, env = "DDCC_SCA_CERT", requires = "sca_key")]
    pub sca_cert: Option<PathBuf>,
    /// Vault PKI mount that signs the CSR when no offline SCA is given.
    #[arg(long, env = "VAULT_PKI_MOUNT", default_value = "pki")]
    pub pki_mount: String,
    /// PKI role; without it the CSR is signed verbatim with the EU EKU OIDs.
    #[arg(long, env = "VAULT_PKI_ROLE")]
    pub pki_role: Option<String>,
    /// Subject CN of the DSC.
    #[arg(long, env = "DDCC_DSC_CN", default_value = "DDCC Document Signer")]
    pub common_name: String,
    /// Subject O of the DSC.
    #[arg(long, env = "DDCC_DSC_ORG")]
    pub organization: Option<String>,
    /// Days of validity (the EU DCC framework allows at most two years).
    #[arg(long, env = "DDCC_DSC_DAYS", default_value_t = 365)]
    pub days: u64,
    /// Certificate types the DSC may sign: any of test, vaccination, recovery.
    #[arg(long, value_delimiter = ',', default_values_t = ["test".to_string(), "vaccination".to_string(), "recovery".to_string()])]
    pub types: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("Vault configuration: {0}")]
    Vault(String),
    #[error("unknown certificate type '{0}' (expected test, vaccination or recovery)")]
    Type(String),
    #[error("{0}")]
    Dsc(String),
    #[error("the DSC must be valid for 1 to 730 days, got {0}")]
    Validity(u64),
    #[error("data keys: {0}")]
    DataKeys(String),
}

fn vault_config() -> Result<VaultConfig, KeysError> {
    VaultConfig::from_env().map_err(|e| KeysError::Vault(e.to_string()))
}

fn print(pem: &str, kid_b64: &str, key_version: Option<u32>) {
    println!("kid: {kid_b64}");
    if let Some(v) = key_version {
        println!("transit key version: {v}");
    }
    print!("{pem}");
}

pub async fn run(cmd: KeysCommand, config: &Config) -> Result<(), KeysError> {
    match cmd {
        KeysCommand::Init(args) => {
            let vcfg = vault_config()?;
            let sca = match (&args.sca_key, &args.sca_cert) {
                (Some(k), Some(c)) => SignerCaSource::offline_from_files(k, c)
                    .map_err(|e| KeysError::Dsc(e.to_string()))?,
                _ => SignerCaSource::VaultPki {
                    mount: args.pki_mount.clone(),
                    role: args.pki_role.clone(),
                    issuer_ref: None,
                },
            };
            if !(1..=730).contains(&args.days) {
                return Err(KeysError::Validity(args.days));
            }
            let ext_key_usage_oids = args
                .types
                .iter()
                .map(|t| match t.trim() {
                    "test" => Ok(EKU_TEST.to_string()),
                    "vaccination" => Ok(EKU_VACCINATION.to_string()),
                    "recovery" => Ok(EKU_RECOVERY.to_string()),
                    other => Err(KeysError::Type(other.to_string())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let req = DscRequest {
                common_name: args.common_name,
                country: config.ddcc.issuer_country.clone(),
                organization: args.organization,
                validity: Duration::from_secs(args.days * 86_400),
                ext_key_usage_oids,
            };
            let info = init_dsc(&vcfg, &sca, &req)
                .await
                .map_err(|e| KeysError::Dsc(e.to_string()))?;
            print(
                &info.certificate_pem,
                &info.kid_base64(),
                Some(info.key_version),
            );
        }
        KeysCommand::Show => {
            if std::env::var("VAULT_ADDR").is_ok_and(|v| !v.trim().is_empty()) {
                let info = show_dsc(&vault_config()?)
                    .await
                    .map_err(|e| KeysError::Dsc(e.to_string()))?;
                print(
                    &info.certificate_pem,
                    &info.kid_base64(),
                    Some(info.key_version),
                );
            } else {
                let identity = ddcc_cert::local::LocalSigner::load_or_create(
                    &config.data_dir.join("keys"),
                    &config.ddcc.issuer_country,
                )
                .map_err(|e| KeysError::Dsc(e.to_string()))?;
                eprintln!(
                    "(local development key in {}: not for production)",
                    config.data_dir.join("keys").display()
                );
                print(&identity.dsc_pem(), &identity.kid_b64(), None);
            }
        }
        KeysCommand::RotateDataKey => {
            let env = |k: &str| std::env::var(k).ok();
            let source = crate::data_keys::KeySource::from_env(&config.data_dir, &env)
                .map_err(|e| KeysError::DataKeys(e.to_string()))?;
            // Loading first creates the key file (or wrapped keys) if this is the first use.
            source
                .load()
                .await
                .map_err(|e| KeysError::DataKeys(e.to_string()))?;
            let id = source
                .rotate()
                .await
                .map_err(|e| KeysError::DataKeys(e.to_string()))?;
            println!("current data key: {id}");
        }
        KeysCommand::RetireDataKey { id } => {
            let env = |k: &str| std::env::var(k).ok();
            // Every record is re-sealed under the current key before the old key goes,
            // so nothing can become unreadable.
            let registry = crate::services::open_store(config, &env)
                .await
                .map_err(|e| KeysError::DataKeys(e.to_string()))?;
            let mut total = 0;
            loop {
                let n = registry
                    .store
                    .reencrypt(500)
                    .await
                    .map_err(|e| KeysError::DataKeys(e.to_string()))?;
                if n == 0 {
                    break;
                }
                total += n;
            }
            crate::data_keys::KeySource::from_env(&config.data_dir, &env)
                .and_then(|s| s.retire(&id))
                .map_err(|e| KeysError::DataKeys(e.to_string()))?;
            println!("re-sealed {total} records; data key {id} removed");
        }
    }
    Ok(())
}
