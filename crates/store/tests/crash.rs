//! Crash safety: a loader process performing 1 000 ITI-65-like transactions is killed
//! with SIGKILL mid-run (twice); afterwards every acknowledged document is readable with
//! its Binary and Patient, is stored exactly once, sits in its holder's single Folder, and
//! nothing unacknowledged is half-stored.

mod common;
#[path = "common/iti65.rs"]
mod iti65;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ddcc_store::{PostgresStore, SearchQuery, SqliteStore, Store};

const HOLDERS: usize = 50;

/// The data-key file the PostgreSQL loader and the verifying reader share (one per
/// test process).
fn pg_key_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ddcc-crash-keys-{}.json", std::process::id()))
}

/// Runs the loader and SIGKILLs it after `kill_after` acknowledgements; returns every
/// acknowledgement it printed (including those still in the pipe when it died).
fn run_and_kill(args: &[&str], kill_after: usize) -> BTreeMap<usize, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ddcc-store-load"))
        .args(args)
        .env("DDCC_STORE_KEY_FILE", pg_key_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn loader");
    let stdout = child.stdout.take().expect("loader stdout");
    let mut acks = BTreeMap::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read loader output");
        let mut parts = line.split_whitespace();
        assert_eq!(
            parts.next(),
            Some("ACK"),
            "unexpected loader output: {line}"
        );
        let i: usize = parts
            .next()
            .and_then(|s| s.parse().ok())
            .expect("ack index");
        let id = parts.next().expect("ack id").to_owned();
        acks.insert(i, id);
        if !killed && acks.len() >= kill_after {
            child.kill().expect("SIGKILL loader");
            killed = true;
        }
    }
    let status = child.wait().expect("wait loader");
    assert!(
        killed,
        "loader finished before it could be killed ({} acks, {status})",
        acks.len()
    );
    assert!(!status.success(), "loader must have died from the signal");
    acks
}

fn q(pairs: &[(&str, &str)]) -> SearchQuery {
    SearchQuery::from_pairs(pairs.iter().copied())
}

async fn verify(store: &dyn Store, run: &str, acks: &BTreeMap<usize, String>, tried: usize) {
    let mut problems = Vec::new();
    let mut stored_per_holder: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut unacked_stored = Vec::new();
    for i in 0..tried {
        let ident = format!("{}|{}", iti65::DOC_ID_SYSTEM, iti65::doc_identifier(run, i));
        let found = store
            .search("DocumentReference", &q(&[("identifier", &ident)]))
            .await
            .expect("search");
        match (found.len(), acks.get(&i)) {
            (0, None) => continue,
            (0, Some(id)) => {
                problems.push(format!("ack {i} ({id}) lost"));
                continue;
            }
            (1, Some(id)) if &found[0].id != id => problems.push(format!(
                "ack {i}: stored {} but acknowledged {id}",
                found[0].id
            )),
            (1, None) => unacked_stored.push(i),
            (1, Some(_)) => {}
            (n, _) => problems.push(format!("document {i} stored {n} times")),
        }
        let doc = &found[0].resource;
        let binary = doc["content"][0]["attachment"]["url"]
            .as_str()
            .unwrap_or_default();
        let patient = doc["subject"]["reference"].as_str().unwrap_or_default();
        for (what, reference) in [("Binary", binary), ("Patient", patient)] {
            match reference.split_once('/') {
                Some((t, id)) if t == what => {
                    if let Err(e) = store.read(t, id).await {
                        problems.push(format!("document {i}: {what} {reference}: {e}"));
                    }
                }
                _ => problems.push(format!(
                    "document {i}: unresolved {what} reference `{reference}`"
                )),
            }
        }
        stored_per_holder
            .entry(iti65::hcid(run, i, HOLDERS))
            .or_default()
            .insert(format!("DocumentReference/{}", found[0].id));
    }
    // A transaction committed just before the kill, whose ACK line was never written,
    // is the only way a document can be stored unacknowledged: at most one per run.
    if unacked_stored.len() > 2 {
        problems.push(format!(
            "unacknowledged documents stored: {unacked_stored:?}"
        ));
    }
    for (hcid, docs) in &stored_per_holder {
        let folders = store
            .search("List", &q(&[("identifier", hcid), ("code", "folder")]))
            .await
            .expect("folder search");
        if folders.len() != 1 {
            problems.push(format!("{hcid}: {} folders", folders.len()));
            continue;
        }
        let entries: HashSet<String> = folders[0].resource["entry"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["item"]["reference"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if &entries != docs {
            problems.push(format!(
                "{hcid}: folder entries {} != stored documents {}",
                entries.len(),
                docs.len()
            ));
        }
    }
    for p in &problems {
        eprintln!("PROBLEM {p}");
    }
    assert!(
        problems.is_empty(),
        "{} problems after crash",
        problems.len()
    );
    eprintln!(
        "{} acknowledged, {} stored unacknowledged, all consistent",
        acks.len(),
        unacked_stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_load_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8 temp path");
    let run = "crash";
    let mut acks = run_and_kill(&["sqlite", d, "1000", run, "0"], 150);
    // Killed again while continuing from where it died.
    let next = acks.keys().next_back().map_or(0, |k| k + 1);
    acks.extend(run_and_kill(
        &["sqlite", d, "1000", run, &next.to_string()],
        100,
    ));
    let tried = acks.keys().next_back().map_or(0, |k| k + 2);

    let conn = rusqlite::Connection::open(dir.path().join(ddcc_store::SQLITE_DB_FILE))
        .expect("open for check");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(conn);

    let store = SqliteStore::open(dir.path()).expect("reopen");
    verify(&store, run, &acks, tried).await;
    // And it keeps working.
    store
        .transaction(iti65::iti65_request(run, 5000, HOLDERS))
        .await
        .expect("write after crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_load_postgres() {
    let Some(url) = common::fresh_pg_db().await else {
        return;
    };
    let run = "crashpg";
    let mut acks = run_and_kill(&["postgres", &url, "1000", run, "0"], 150);
    let next = acks.keys().next_back().map_or(0, |k| k + 1);
    acks.extend(run_and_kill(
        &["postgres", &url, "1000", run, &next.to_string()],
        100,
    ));
    let tried = acks.keys().next_back().map_or(0, |k| k + 2);
    let keys = ddcc_store::DataKeys::from_key_file(&pg_key_file()).expect("keys");
    let store = PostgresStore::connect(&url, 4, std::sync::Arc::new(keys))
        .await
        .expect("reconnect");
    verify(&store, run, &acks, tried).await;
    store
        .transaction(iti65::iti65_request(run, 5000, HOLDERS))
        .await
        .expect("write after crash");
}
