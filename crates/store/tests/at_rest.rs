//! Encryption at rest, judged from outside: the bytes a copier of the SQLite files or a
//! `pg_dump` of the database would get hold no patient name, birth date or HCID, while
//! searches by those identifiers still answer; data-key rotation re-seals old records
//! so the retired key can go; clear records from before encryption are sealed and
//! re-indexed by the same pass.

mod common;

use std::path::Path;
use std::sync::Arc;

use ddcc_store::{
    ClaimToken, DataKeys, FolderUpsert, KeyCompletion, PostgresStore, SearchQuery, SqliteStore,
    Store, Synchronous, TxEntry, TxOp, TxRequest,
};
use serde_json::{json, Value};

const NAME: &str = "Zyxwvutsrq";
const GIVEN: &str = "Qponmlkjih";
const BIRTH: &str = "1961-07-23";
const HCID: &str = "HCID-9F3K2L7Q";
const PATIENT_ID: &str = "PASSPORT-X83Y2Z1";

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{"family": NAME, "given": [GIVEN]}],
        "birthDate": BIRTH,
        "identifier": [{"system": "urn:test:passport", "value": PATIENT_ID}]
    })
}

fn document() -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "document",
        "identifier": {"system": "urn:test:hcid", "value": HCID},
        "entry": [{"fullUrl": "urn:uuid:5c7e8f2a-1111-4222-8333-944455556666", "resource": patient()}]
    })
}

fn q(params: &[(&str, &str)]) -> SearchQuery {
    SearchQuery {
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Writes every kind of record that can carry personal data: a Patient, a document
/// Bundle, an HCID Folder, a DocumentReference, and a completed idempotency key whose
/// stored answer repeats the certificate.
async fn write_personal_records(store: &dyn Store) {
    let p = store.create(patient()).await.expect("patient");
    store.create(document()).await.expect("bundle");
    let claim = match store.claim_key("event-1", 60_000).await.expect("claim") {
        ddcc_store::Claim::Claimed(c) => c,
        other => panic!("expected a fresh claim, got {other:?}"),
    };
    let docref = json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "masterIdentifier": {"system": "urn:test:hcid", "value": HCID},
        "subject": {"reference": format!("Patient/{}", p.id)},
        "content": [{"attachment": {"contentType": "application/fhir+json", "title": NAME}}]
    });
    store
        .transaction(TxRequest {
            entries: vec![
                TxEntry {
                    full_url: Some("urn:uuid:0e3d5a84-2f5b-4a39-9c8f-2b7f0d1c4e55".into()),
                    op: TxOp::Create { resource: docref },
                },
                TxEntry {
                    full_url: None,
                    op: TxOp::Folder(FolderUpsert {
                        hcid: HCID.into(),
                        template: json!({
                            "resourceType": "List",
                            "status": "current",
                            "mode": "working",
                            "identifier": [{"system": "urn:test:hcid", "value": HCID}],
                            "subject": {"reference": format!("Patient/{}", p.id)},
                            "title": format!("Folder of {NAME}")
                        }),
                        add: vec!["urn:uuid:0e3d5a84-2f5b-4a39-9c8f-2b7f0d1c4e55".into()],
                        remove: vec![],
                    }),
                },
            ],
            complete_key: Some(KeyCompletion {
                claim,
                value: json!({"certificate": document()}),
            }),
            revocations: vec![],
        })
        .await
        .expect("register");
}

/// Searches by each personal identifier still find the records.
async fn searches_still_answer(store: &dyn Store) {
    let by = |rt: &'static str, params: Vec<(&'static str, String)>| {
        let query = SearchQuery {
            params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        async move { store.search(rt, &query).await.expect("search").len() }
    };
    assert_eq!(
        by("Patient", vec![("identifier", PATIENT_ID.into())]).await,
        1
    );
    assert_eq!(
        by(
            "Patient",
            vec![("identifier", format!("urn:test:passport|{PATIENT_ID}"))]
        )
        .await,
        1
    );
    assert_eq!(by("Bundle", vec![("identifier", HCID.into())]).await, 1);
    assert_eq!(
        by(
            "List",
            vec![("identifier", format!("urn:test:hcid|{HCID}"))]
        )
        .await,
        1
    );
    assert_eq!(
        by("DocumentReference", vec![("identifier", HCID.into())]).await,
        1
    );
    assert_eq!(
        by(
            "DocumentReference",
            vec![("patient.identifier", PATIENT_ID.into())]
        )
        .await,
        1
    );
    // A wrong value still finds nothing (blind values are not a wildcard).
    assert_eq!(by("List", vec![("identifier", "HCID-0".into())]).await, 0);
    // The idempotent answer opens again.
    match store.claim_key("event-1", 60_000).await.expect("reclaim") {
        ddcc_store::Claim::Existing(c) => {
            assert_eq!(c.value["certificate"]["identifier"]["value"], HCID)
        }
        other => panic!("expected the stored answer, got {other:?}"),
    }
}

fn secrets() -> [&'static str; 5] {
    [NAME, GIVEN, BIRTH, HCID, PATIENT_ID]
}

fn find_clear(haystack: &[u8]) -> Vec<&'static str> {
    secrets()
        .into_iter()
        .filter(|s| haystack.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect()
}

/// Every file SQLite keeps for the database (main file, WAL, shared memory).
fn sqlite_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with(ddcc_store::SQLITE_DB_FILE) {
            all.extend(std::fs::read(&p).expect("read db file"));
        }
    }
    all
}

#[tokio::test]
async fn sqlite_files_hold_no_personal_data() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path()).expect("open");
    write_personal_records(&store).await;
    searches_still_answer(&store).await;
    let bytes = sqlite_bytes(dir.path());
    assert!(bytes.len() > 10_000, "the database files were read");
    let found = find_clear(&bytes);
    assert!(found.is_empty(), "clear text in SQLite files: {found:?}");
    // The check itself can see clear text: the key file is the one place with secrets,
    // and the patient's name is in what a read returns.
    let p = store
        .search("Patient", &q(&[]))
        .await
        .expect("all patients");
    assert_eq!(p[0].resource["name"][0]["family"], NAME);
}

#[tokio::test]
async fn postgres_dump_holds_no_personal_data() {
    let Some(url) = common::fresh_pg_db().await else {
        return;
    };
    let keys = Arc::new(DataKeys::generate().expect("keys"));
    let store = PostgresStore::connect(&url, 4, keys)
        .await
        .expect("connect");
    write_personal_records(&store).await;
    searches_still_answer(&store).await;
    let dump = std::process::Command::new(pg_dump())
        .args(["--data-only", "--inserts", &url])
        .output()
        .expect("run pg_dump");
    assert!(
        dump.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dump.stdout).contains("INSERT INTO public.res"),
        "the dump holds the resource rows"
    );
    let found = find_clear(&dump.stdout);
    assert!(found.is_empty(), "clear text in pg_dump: {found:?}");
}

fn pg_dump() -> String {
    // Debian installs the client per major version; the newest is the server's.
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pg_dump"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "pg_dump".into())
}

/// The `kid` column of every stored body.
fn sqlite_kids(dir: &Path) -> Vec<Option<String>> {
    let c = rusqlite::Connection::open(dir.join(ddcc_store::SQLITE_DB_FILE)).expect("open raw");
    let mut st = c
        .prepare("SELECT kid FROM res WHERE body IS NOT NULL")
        .expect("prepare");
    st.query_map([], |r| r.get::<_, Option<String>>(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[tokio::test]
async fn rotation_reseals_old_records_and_retires_the_old_key() {
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join(ddcc_store::crypto::KEY_FILE);
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        write_personal_records(&store).await;
    }
    assert!(sqlite_kids(dir.path())
        .iter()
        .all(|k| k.as_deref() == Some("k1")));

    let new = DataKeys::rotate_key_file(&key_file).expect("rotate");
    assert_eq!(new, "k2");
    let store = SqliteStore::open(dir.path()).expect("reopen with k1 and k2");
    // Old records read under k1, new ones are sealed under k2: lazily, nothing re-sealed yet.
    searches_still_answer(&store).await;
    let extra = store
        .create(json!({"resourceType": "Patient", "birthDate": "2001-01-01"}))
        .await
        .expect("write after rotation");
    let kids = sqlite_kids(dir.path());
    assert!(kids.contains(&Some("k1".into())) && kids.contains(&Some("k2".into())));

    let mut total = 0;
    loop {
        let n = store.reencrypt(2).await.expect("reencrypt batch");
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(total >= 5, "re-sealed {total} records");
    assert!(sqlite_kids(dir.path())
        .iter()
        .all(|k| k.as_deref() == Some("k2")));
    drop(store);

    DataKeys::remove_from_key_file(&key_file, "k1").expect("retire k1");
    let store = SqliteStore::open(dir.path()).expect("open with k2 only");
    searches_still_answer(&store).await;
    assert_eq!(
        store
            .read("Patient", &extra.id)
            .await
            .expect("read")
            .resource["birthDate"],
        "2001-01-01"
    );
    let found = find_clear(&sqlite_bytes(dir.path()));
    assert!(found.is_empty(), "clear text after rotation: {found:?}");
}

#[tokio::test]
async fn clear_records_from_before_encryption_are_sealed_and_reindexed() {
    let dir = tempfile::tempdir().expect("dir");
    let db_path = dir.path().join(ddcc_store::SQLITE_DB_FILE);
    // Schema first (migrations), then rows as a pre-encryption version wrote them:
    // clear JSON body, no key id, clear index value, clear folder HCID and idem key.
    drop(SqliteStore::open(dir.path()).expect("create schema"));
    {
        let c = rusqlite::Connection::open(&db_path).expect("raw");
        let body = serde_json::to_vec(&json!({
            "resourceType": "List", "id": "legacy1", "status": "current", "mode": "working",
            "identifier": [{"system": "urn:test:hcid", "value": HCID}],
            "title": format!("Folder of {NAME}"),
            "meta": {"versionId": "1", "lastUpdated": "2025-01-01T00:00:00.000Z"}
        }))
        .expect("json");
        c.execute(
            "INSERT INTO res (rtype, id, version, lu, lu_ms, deleted, body) VALUES ('List', 'legacy1', 1, '2025-01-01T00:00:00.000Z', 1735689600000, 0, ?1)",
            [body],
        )
        .expect("res");
        c.execute_batch(&format!(
            "INSERT INTO cur (rtype, id, version, deleted, lu_ms) VALUES ('List', 'legacy1', 1, 0, 1735689600000);
             INSERT INTO idx (rtype, id, param, sys, val) VALUES ('List', 'legacy1', 'identifier', 'urn:test:hcid', '{HCID}');
             INSERT INTO folders (hcid, list_id) VALUES ('{HCID}', 'legacy1');"
        ))
        .expect("legacy rows");
    }
    let store = SqliteStore::open_file(&db_path, Synchronous::Full, 1).expect("open");
    // Readable as it is; not yet found by a (blind) identifier search.
    assert_eq!(
        store
            .read("List", "legacy1")
            .await
            .expect("read legacy")
            .resource["title"],
        format!("Folder of {NAME}")
    );
    assert_eq!(
        store
            .search("List", &q(&[("identifier", HCID)]))
            .await
            .expect("search")
            .len(),
        0
    );
    while store.reencrypt(100).await.expect("pass") > 0 {}
    assert_eq!(
        store
            .search("List", &q(&[("identifier", HCID)]))
            .await
            .expect("search")
            .len(),
        1
    );
    // The folder mapping now finds the legacy folder by its blind HCID: a new dose lands
    // in the same List.
    let r = store
        .upsert_folder_for_hcid(FolderUpsert {
            hcid: HCID.into(),
            template: json!({"resourceType": "List", "status": "current", "mode": "working"}),
            add: vec!["DocumentReference/d2".into()],
            remove: vec![],
        })
        .await
        .expect("upsert");
    assert_eq!(r.id, "legacy1");
    let found = find_clear(&sqlite_bytes(dir.path()));
    // The old WAL/pages may still hold freed clear bytes until SQLite reuses them; a
    // VACUUM (what an operator runs after the pass) removes them.
    drop(store);
    let c = rusqlite::Connection::open(&db_path).expect("raw");
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
        .expect("vacuum");
    drop(c);
    let after = find_clear(&sqlite_bytes(dir.path()));
    assert!(
        after.is_empty(),
        "clear text after pass + VACUUM: {after:?} (before VACUUM: {found:?})"
    );
}

#[test]
fn claim_token_keys_are_not_stored_clear() {
    // The claim token handed to callers keeps the caller's key (they need it), while
    // the row holds only its blind form: checked through the raw table.
    let dir = tempfile::tempdir().expect("dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let store = SqliteStore::open(dir.path()).expect("open");
    let c: ClaimToken = match rt
        .block_on(store.claim_key("event-secret-77", 1000))
        .expect("claim")
    {
        ddcc_store::Claim::Claimed(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.key, "event-secret-77");
    let raw = rusqlite::Connection::open(dir.path().join(ddcc_store::SQLITE_DB_FILE)).expect("raw");
    let k: String = raw
        .query_row("SELECT k FROM idem", [], |r| r.get(0))
        .expect("row");
    assert!(k.starts_with(ddcc_store::crypto::BLIND_PREFIX), "{k}");
    rt.block_on(store.release_key(&c)).expect("release");
    let n: i64 = raw
        .query_row("SELECT count(*) FROM idem", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 0, "release finds the blind row");
}
