//! Load generator for the crash-safety test (and a quick manual load): performs `count`
//! ITI-65-like transactions and prints `ACK <i> <DocumentReference id>` after each one the
//! store has committed, flushing stdout so a killer sees exactly what was acknowledged.
//!
//! Usage: `ddcc-store-load sqlite <data-dir> <count> <run-id> [start]`
//!        `ddcc-store-load postgres <url> <count> <run-id> [start]`

#[path = "../../tests/common/iti65.rs"]
mod iti65;

use std::io::Write;
use std::process::ExitCode;

use ddcc_store::{PostgresStore, SqliteStore, Store};

async fn run(args: &[String]) -> Result<(), String> {
    let [backend, target, count, run_id, rest @ ..] = args else {
        return Err(
            "usage: ddcc-store-load sqlite|postgres <data-dir|url> <count> <run-id> [start]".into(),
        );
    };
    let count: usize = count.parse().map_err(|e| format!("count: {e}"))?;
    let start: usize = rest
        .first()
        .map_or(Ok(0), |s| s.parse())
        .map_err(|e| format!("start: {e}"))?;
    let store: Box<dyn Store> = match backend.as_str() {
        "sqlite" => Box::new(SqliteStore::open(target).map_err(|e| e.to_string())?),
        "postgres" => Box::new(
            PostgresStore::connect(target, 4)
                .await
                .map_err(|e| e.to_string())?,
        ),
        other => return Err(format!("unknown backend {other}")),
    };
    let mut out = std::io::stdout().lock();
    for i in start..start + count {
        let res = store
            .transaction(iti65::iti65_request(run_id, i, 50))
            .await
            .map_err(|e| format!("tx {i}: {e}"))?;
        writeln!(out, "ACK {i} {}", res[2].id)
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
