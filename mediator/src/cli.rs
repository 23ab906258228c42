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
