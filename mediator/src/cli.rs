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
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => {
            let (config, provenance) = Config::load(args.config.as_deref())?;
            crate::telemetry::init(&config.log);
            crate::server::serve(config, provenance).await?;
            Ok(())
        }
    }
}
