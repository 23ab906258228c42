//! Fills a registry store quickly to a given number of ITI-65-like registrations, so the
//! HTTP benchmark (`bench/registry_http.py`) can measure at 10⁵ and 10⁶ stored
//! documents without spending hours in the measured path.
//!
//!   cargo run --release -p ddcc-store --example prefill -- sqlite <data-dir> <from> <to> [batch]
//!   cargo run --release -p ddcc-store --example prefill -- postgres <url> <from> <to> [batch] [concurrency]
//!
//! Document `i` is the same `iti65_request(RUN, i, HOLDERS)` the store tests use
//! (Patient, Binary, DocumentReference, SubmissionSet, the holder's Folder), so a fill
//! can be resumed with `from` = the previous `to`. Several documents share one database
//! transaction (`batch`) and SQLite runs with `synchronous=NORMAL`: the fill is not
//! what is measured, only its result is. Every 500th document's patient id is appended
//! to `<samples>` (`$PREFILL_SAMPLES`, default `prefill-samples.txt`) as `i patient-id`,
//! the queries the benchmark then sends.

#[path = "../tests/common/iti65.rs"]
mod iti65;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use ddcc_store::{PostgresStore, SqliteStore, Store, Synchronous, TxRequest};

/// The fixed run id of benchmark data sets, so identifiers are predictable.
pub const RUN: &str = "bench";
/// Entries per document in `iti65_request`.
const PER_DOC: usize = 5;
const SAMPLE_EVERY: usize = 500;

/// Two documents (doses) per holder at 10⁶, so Folders stay small as in real use. Fixed
/// regardless of the fill's target so a resumed fill keeps the same holders.
const HOLDERS: usize = 500_000;

fn batch_request(from: usize, to: usize) -> TxRequest {
    let mut entries = Vec::with_capacity((to - from) * PER_DOC);
    for i in from..to {
        entries.extend(iti65::iti65_request(RUN, i, HOLDERS).entries);
    }
    TxRequest::new(entries)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, target, from, to, rest @ ..] = args.as_slice() else {
        eprintln!("usage: prefill sqlite <dir> <from> <to> [batch] | postgres <url> <from> <to> [batch] [concurrency]");
        std::process::exit(2);
    };
    let from: usize = from.parse().expect("from");
    let to: usize = to.parse().expect("to");
    let batch: usize = rest.first().and_then(|b| b.parse().ok()).unwrap_or(50);
    let (store, conc): (Arc<dyn Store>, usize) = match backend.as_str() {
        "sqlite" => {
            std::fs::create_dir_all(target).expect("dir");
            let s = SqliteStore::open_file(
                std::path::Path::new(target).join(ddcc_store::SQLITE_DB_FILE),
                Synchronous::Normal,
                1,
            )
            .expect("open sqlite");
            (Arc::new(s), 1)
        }
        "postgres" => {
            let conc: usize = rest.get(1).and_then(|c| c.parse().ok()).unwrap_or(4);
            // The service that later reads these rows needs the same data keys: both
            // take them from DDCC_DATA_KEY_FILE (bench/registry_scale.sh sets it).
            let key_file = std::env::var_os("DDCC_DATA_KEY_FILE").expect(
                "postgres needs DDCC_DATA_KEY_FILE, the data-key file the service reads too",
            );
            let keys = ddcc_store::DataKeys::from_key_file(std::path::Path::new(&key_file))
                .expect("data keys");
            let s = PostgresStore::connect(target, conc, Arc::new(keys))
                .await
                .expect("connect postgres");
            (Arc::new(s), conc)
        }
        other => panic!("unknown backend {other}"),
    };
    let samples_path =
        std::env::var("PREFILL_SAMPLES").unwrap_or_else(|_| "prefill-samples.txt".into());
    let mut samples = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&samples_path)
        .expect("samples file");
    let t0 = Instant::now();
    let mut next = from;
    let mut last_report = Instant::now();
    while next < to {
        // `conc` batches in flight at once (PostgreSQL); SQLite has one writer anyway.
        let mut tasks = Vec::new();
        for _ in 0..conc {
            if next >= to {
                break;
            }
            let end = (next + batch).min(to);
            let s = store.clone();
            let start = next;
            tasks.push(tokio::spawn(async move {
                let r = s.transaction(batch_request(start, end)).await;
                (start, end, r)
            }));
            next = end;
        }
        for t in tasks {
            let (start, end, r) = t.await.expect("task");
            let results = r.unwrap_or_else(|e| panic!("batch {start}..{end}: {e}"));
            for i in start..end {
                if i % SAMPLE_EVERY == 0 {
                    let patient = &results[(i - start) * PER_DOC].id;
                    writeln!(samples, "{i} {patient}").expect("write sample");
                }
            }
        }
        if last_report.elapsed().as_secs() >= 30 {
            last_report = Instant::now();
            let done = next - from;
            eprintln!(
                "{next} documents ({:.0}/s)",
                done as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "filled {from}..{to} in {secs:.0}s ({:.0} documents/s)",
        (to - from) as f64 / secs
    );
}
