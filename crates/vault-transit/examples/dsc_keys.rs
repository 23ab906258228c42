//! What `ddcc-mediator keys init|show` does, as a stand-alone program.
//!
//! ```text
//! eval "$(tests/tools/openbao.sh start)"
//! cargo run -p vault-transit --example dsc_keys -- init   # Vault PKI at `pki`
//! DDCC_SCA_KEY=sca.key DDCC_SCA_CERT=sca.pem cargo run -p vault-transit --example dsc_keys -- init
//! cargo run -p vault-transit --example dsc_keys -- show
//! ```
//!
//! Settings: the `VAULT_*` variables of `VaultConfig::from_env`, plus
//! `DDCC_SCA_KEY`/`DDCC_SCA_CERT` (offline SCA) or `VAULT_PKI_MOUNT` (default
//! `pki`) and `VAULT_PKI_ROLE` (default: sign-verbatim), `DDCC_DSC_CN`,
//! `DDCC_DSC_COUNTRY`, `DDCC_DSC_ORG`, `DDCC_DSC_DAYS`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use vault_transit::{
    init_dsc, show_dsc, DscInfo, DscRequest, SignerCaSource, VaultConfig, EKU_RECOVERY, EKU_TEST,
    EKU_VACCINATION,
};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn print(info: &DscInfo) {
    println!("kid: {}", info.kid_base64());
    println!("transit key version: {}", info.key_version);
    print!("{}", info.certificate_pem);
}

async fn run(cmd: &str) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = VaultConfig::from_env()?;
    match cmd {
        "init" => {
            let sca = match (env("DDCC_SCA_KEY"), env("DDCC_SCA_CERT")) {
                (Some(k), Some(c)) => {
                    SignerCaSource::offline_from_files(Path::new(&k), Path::new(&c))?
                }
                _ => SignerCaSource::VaultPki {
                    mount: env("VAULT_PKI_MOUNT").unwrap_or_else(|| "pki".into()),
                    role: env("VAULT_PKI_ROLE"),
                    issuer_ref: None,
                },
            };
            let days: u64 = env("DDCC_DSC_DAYS")
                .map(|d| d.parse())
                .transpose()?
                .unwrap_or(365);
            let req = DscRequest {
                common_name: env("DDCC_DSC_CN").unwrap_or_else(|| "DDCC Document Signer".into()),
                country: env("DDCC_DSC_COUNTRY").unwrap_or_else(|| "XX".into()),
                organization: env("DDCC_DSC_ORG"),
                validity: Duration::from_secs(days * 86400),
                ext_key_usage_oids: vec![
                    EKU_TEST.into(),
                    EKU_VACCINATION.into(),
                    EKU_RECOVERY.into(),
                ],
            };
            print(&init_dsc(&cfg, &sca, &req).await?);
        }
        "show" => print(&show_dsc(&cfg).await?),
        _ => return Err("usage: dsc_keys init|show".into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
