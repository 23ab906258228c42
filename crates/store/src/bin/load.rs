//! Load generator for the crash-safety test (and a quick manual load): performs `count`
//! ITI-65-like transactions and prints `ACK <i> <DocumentReference id>` after each one the
//! store has committed, flushing stdout so a killer sees exactly what was acknowledged.
//! Documents are claimed by identifier first (idempotent issuing), so rerunning from an
//! index that was committed but not acknowledged answers from the stored result.
//!
//! Usage: `ddcc-store-load sqlite <data-dir> <count> <run-id> [start]`
//!        `ddcc-store-load postgres <url> <count> <run-id> [start]`

#[path = "../../tests/common/iti65.rs"]
mod iti65;

use std::io::Write;
use std::process::ExitCode;

use std::time::Duration;

use std::sync::Arc;

use ddcc_store::{Claim, DataKeys, KeyCompletion, PostgresStore, SqliteStore, Store};
use serde_json::json;

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
        "postgres" => {
            // Whoever reads what this loader wrote needs the same data keys.
            let key_file = std::env::var_os("DDCC_STORE_KEY_FILE")
                .ok_or("postgres needs DDCC_STORE_KEY_FILE: the data-key file readers share")?;
            let keys = DataKeys::from_key_file(std::path::Path::new(&key_file))
                .map_err(|e| e.to_string())?;
            Box::new(
                PostgresStore::connect(target, 4, Arc::new(keys))
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("unknown backend {other}")),
    };
    let mut out = std::io::stdout().lock();
    for i in start..start + count {
        // Each document is claimed under its identifier, as the issuing flow does, so a
        // restarted loader that redoes unacknowledged work never stores a duplicate.
        let key = iti65::doc_identifier(run_id, i);
        let doc_id = loop {
            match store
                .claim_key(&key, 1000)
                .await
                .map_err(|e| format!("claim {i}: {e}"))?
            {
                Claim::Claimed(claim) => {
                    let mut req = iti65::iti65_request(run_id, i, 50);
                    req.complete_key = Some(KeyCompletion {
                        claim,
                        value: json!({}),
                    });
                    let res = store
                        .transaction(req)
                        .await
                        .map_err(|e| format!("tx {i}: {e}"))?;
                    break res[2].id.clone();
                }
                Claim::Existing(done) => {
                    break done
                        .results
                        .get(2)
                        .map(|r| r.id.clone())
                        .unwrap_or_default()
                }
                // A claim left by the killed predecessor: wait for it to expire.
                Claim::InProgress => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        writeln!(out, "ACK {i} {doc_id}")
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
