//! Back-end factories for the behavioural tests: every test body runs once on SQLite (in
//! a temp dir) and once on a real PostgreSQL (a fresh database per test, created in the
//! server named by `DDCC_TEST_DATABASE_URL`, e.g. from `tests/tools/postgres.sh start`).
#![allow(dead_code)]

use std::sync::Arc;

use ddcc_store::{PostgresStore, SqliteStore, Store, Synchronous};
use tempfile::TempDir;

/// Two handles on one store, as two mediator instances would have.
pub struct Pair {
    pub a: Arc<dyn Store>,
    pub b: Arc<dyn Store>,
    _dir: Option<TempDir>,
}

pub fn sqlite_pair() -> Pair {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = SqliteStore::open(dir.path()).expect("open sqlite");
    // A second, independent handle (own connections) on the same file.
    let b = SqliteStore::open_file(a.path().to_owned(), Synchronous::Full, 2)
        .expect("open sqlite twice");
    Pair {
        a: Arc::new(a),
        b: Arc::new(b),
        _dir: Some(dir),
    }
}

/// The server URL, or `None` (with a message) when PostgreSQL tests must be skipped.
/// With `DDCC_REQUIRE_ORACLES` set, a missing server is a failure, not a skip.
pub fn pg_url() -> Option<String> {
    match std::env::var("DDCC_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var_os("DDCC_REQUIRE_ORACLES").is_some() {
                panic!("DDCC_TEST_DATABASE_URL is not set and DDCC_REQUIRE_ORACLES is: run `export DDCC_TEST_DATABASE_URL=$(tests/tools/postgres.sh start)`");
            }
            eprintln!("SKIP PostgreSQL: DDCC_TEST_DATABASE_URL not set (start one with tests/tools/postgres.sh start)");
            None
        }
    }
}

/// `url` with its database name replaced by `db`.
pub fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(q) => format!("{host}/{db}?{q}"),
        None => format!("{host}/{db}"),
    }
}

/// Creates a fresh database and returns its URL.
pub async fn fresh_pg_db() -> Option<String> {
    let url = pg_url()?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to DDCC_TEST_DATABASE_URL");
    tokio::spawn(conn);
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    Some(with_db(&url, &name))
}

pub async fn pg_pair() -> Option<Pair> {
    let url = fresh_pg_db().await?;
    // Two instances of one deployment share the data keys.
    let keys = Arc::new(ddcc_store::DataKeys::generate().expect("keys"));
    let a = PostgresStore::connect(&url, 8, keys.clone())
        .await
        .expect("connect a");
    let b = PostgresStore::connect(&url, 8, keys)
        .await
        .expect("connect b");
    Some(Pair {
        a: Arc::new(a),
        b: Arc::new(b),
        _dir: None,
    })
}

/// Instantiates `async fn $name(p: Pair)` for both back ends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::common::sqlite_pair()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(p) = super::common::pg_pair().await {
                    super::$name(p).await;
                }
            }
        }
    )*};
}
