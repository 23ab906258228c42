//! Command line. Other modules add their subcommands (`keys …`, `gateway …`) as
//! variants of [`Command`] and a match arm in [`run`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "ddcc-mediator",
    version,
    about = "OpenHIM mediator and FHIR integration hub issuing WHO DDCC certificates"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP service (standalone, or registered with an OpenHIM core).
    Serve(ServeArgs),
    /// The document signer certificate (DSC): create it in Vault transit, or show it.
    #[command(subcommand)]
    Keys(crate::keys::KeysCommand),
    /// Probe a running instance's `/health` (exit 0 when it answers 200); for
    /// container health checks, where the image has no curl.
    Healthcheck(HealthcheckArgs),
    /// The WHO Trust Network Gateway: publish trusted references to our artefacts.
    #[command(subcommand)]
    Gateway(GatewayCommand),
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Publish trusted references for the served ValueSets, PlanDefinitions and the
    /// Libraries they use.
    Publish {
        /// Print the references that would be sent, as a JSON array on stdout, without
        /// contacting the gateway.
        #[arg(long)]
        dry_run: bool,
    },
    /// Outbox rows, last sync, published references (JSON).
    Status,
    /// Download the trust lists, verify them against the trust anchor, store them.
    Sync {
        /// DSCs only, checked against the CSCA/UPLOAD entries of the last full sync.
        #[arg(long)]
        delta: bool,
    },
    /// Upload our DSC (`POST /signerCertificate`, or `/trustedCertificate` when
    /// DDCC_GATEWAY_DSC_DOMAIN is set).
    UploadDsc {
        /// PEM file of the DSC; default: the DSC in Vault (VAULT_ADDR) or the local
        /// development key store.
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Defaults to http://127.0.0.1:$SERVER_PORT/health (4321).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Seconds before giving up.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file; environment variables override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    #[error("health check failed: {0}")]
    Unhealthy(String),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysError),
    #[error(transparent)]
    Artefacts(#[from] crate::artefacts::ArtefactError),
    #[error("{count} trusted reference(s) cannot be built:\n{list}")]
    References { count: usize, list: String },
    #[error("gateway publish needs DDCC_GATEWAY_URL (the gateway client is not configured); use --dry-run to see the references")]
    GatewayNotConfigured,
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error("the gateway refused at least one upload (see \"failed\" above)")]
    GatewayRefused,
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => {
            let (config, provenance) = Config::load(args.config.as_deref())?;
            crate::telemetry::init(&config.log);
            crate::server::serve(config, provenance).await?;
            Ok(())
        }
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Keys(cmd) => {
            let (config, _) = Config::load(None)?;
            crate::keys::run(cmd, &config).await?;
            Ok(())
        }
        Command::Gateway(GatewayCommand::Publish { dry_run: true }) => {
            let (config, _) = Config::load(None)?;
            if config.server.public_base_url.is_none() {
                eprintln!(
                    "ddcc-mediator: warning: DDCC_PUBLIC_BASE_URL is unset; the references point at the local listener {}",
                    crate::artefacts::public_fhir_base(&config)
                );
            }
            let refs = dry_run_references(&config, |k| std::env::var(k).ok())?;
            let mut out = serde_json::to_string_pretty(&refs).unwrap_or_else(|_| "[]".into());
            out.push('\n');
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(out.as_bytes())
                .map_err(CliError::Stdout)
        }
        Command::Gateway(cmd) => {
            let (config, _) = Config::load(None)?;
            let (g, _) = crate::gateway::ops::client_from_env(&config)
                .await?
                .ok_or(CliError::GatewayNotConfigured)?;
            let out = match cmd {
                GatewayCommand::Publish { .. } => {
                    let artefacts = crate::services::load_artefacts(&config)?;
                    let publisher = crate::gateway::ops::publisher(&config)?;
                    crate::gateway::ops::publish(&g, &publisher, &artefacts).await?
                }
                GatewayCommand::Status => g.status().await?,
                GatewayCommand::Sync { delta } => crate::gateway::ops::sync(&g, delta).await?,
                GatewayCommand::UploadDsc { cert } => {
                    let der = dsc_der(&config, cert.as_deref()).await?;
                    crate::gateway::ops::upload_dsc(&g, &der).await?
                }
            };
            let mut text = serde_json::to_string_pretty(&out).unwrap_or_else(|_| "null".into());
            text.push('\n');
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(CliError::Stdout)?;
            // Refusals are in the output; the exit status tells scripts about them.
            let failed = out["delivery"]["failed"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if failed {
                return Err(CliError::GatewayRefused);
            }
            Ok(())
        }
    }
}

/// The trusted references `gateway publish` would send for `config`: one per
/// published artefact, built from the same bytes the service serves. Every artefact
/// that cannot be referenced (a URL over the gateway's 100 characters, a missing
/// name or version) is reported, not skipped.
pub fn dry_run_references(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<trust_network::reference::TrustedReference>, CliError> {
    let publisher = crate::artefacts::publisher_from_env(config, env)?;
    let artefacts = crate::services::load_artefacts(config)?;
    let mut refs = Vec::new();
    let mut errors = Vec::new();
    for a in artefacts.published() {
        match trust_network::reference::reference_for(&a, &publisher) {
            Ok(r) => refs.push(r),
            Err(e) => errors.push(format!("  {} {}: {e}", a.resource_type, a.url)),
        }
    }
    if errors.is_empty() {
        Ok(refs)
    } else {
        Err(CliError::References {
            count: errors.len(),
            list: errors.join("\n"),
        })
    }
}

async fn healthcheck(args: HealthcheckArgs) -> Result<(), CliError> {
    let url = match args.url {
        Some(u) => u,
        None => {
            let port = std::env::var("SERVER_PORT")
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
                .unwrap_or(crate::config::DEFAULT_PORT);
            let tls = std::env::var("DDCC_TLS_CERT").is_ok_and(|v| !v.trim().is_empty());
            let server = crate::config::ServerConfig {
                port,
                admin_addr: std::env::var("DDCC_ADMIN_ADDR").ok(),
                ..Default::default()
            };
            match server.admin_listener() {
                // The public listener speaks TLS with a certificate this probe need not
                // trust; the admin listener answers /health in plain HTTP.
                Some(admin) if tls => {
                    format!("http://{}/health", admin.replace("0.0.0.0", "127.0.0.1"))
                }
                _ => format!("http://127.0.0.1:{port}/health"),
            }
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(args.timeout.max(1)))
        .build()
        .map_err(|e| CliError::Unhealthy(e.to_string()))?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| CliError::Unhealthy(format!("{url}: {}", e.without_url())))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(CliError::Unhealthy(format!(
            "{url}: HTTP {}",
            resp.status()
        )))
    }
}

/// The DSC to upload: a PEM file, the DSC in Vault, or the local development one.
async fn dsc_der(config: &Config, file: Option<&std::path::Path>) -> Result<Vec<u8>, CliError> {
    let bad = |m: String| CliError::Gateway(crate::gateway::GatewayError::Config(m));
    let pem = match file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| bad(format!("{}: {e}", p.display())))?,
        None if std::env::var("VAULT_ADDR").is_ok_and(|v| !v.trim().is_empty()) => {
            let vcfg = vault_transit::VaultConfig::from_env().map_err(|e| bad(e.to_string()))?;
            vault_transit::show_dsc(&vcfg)
                .await
                .map_err(|e| bad(e.to_string()))?
                .certificate_pem
        }
        None => ddcc_cert::local::LocalSigner::load_or_create(
            &config.data_dir.join("keys"),
            &config.ddcc.issuer_country,
        )
        .map_err(|e| bad(e.to_string()))?
        .dsc_pem(),
    };
    ddcc_cert::x509::pem_decode("CERTIFICATE", &pem).map_err(|e| bad(e.to_string()))
}
