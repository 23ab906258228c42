use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = ddcc_mediator::cli::Cli::parse();
    match ddcc_mediator::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The subscriber may not be installed yet (config errors), so print too.
            eprintln!("ddcc-mediator: {e}");
            tracing::error!(error = %e, "exiting");
            std::process::ExitCode::FAILURE
        }
    }
}
