//! The built `ddcc-mediator serve` as a child process, for tests about what only a real
//! process shows: SIGKILL mid-load, two instances on one database. Also the PostgreSQL
//! test server (`DDCC_TEST_DATABASE_URL`, from `tests/tools/postgres.sh start`): each
//! test gets a fresh database in it.
#![allow(dead_code)] // each test file uses a different subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ddcc-{tag}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Where a spawned service keeps its state: the embedded store in a data directory, or a
/// PostgreSQL database.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

/// A running service; killed (SIGKILL) when dropped, so a failing test leaves nothing.
pub struct Service {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Service {
    /// Starts `ddcc-mediator serve` on a free port with embedded defaults (local
    /// development signer, no OpenHIM) over `backend`, and waits until it listens.
    pub async fn start(backend: &Backend, work: &Path) -> Service {
        let port = free_port();
        let log = work.join(format!("service-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"));
        cmd.arg("serve")
            .current_dir(work)
            .env_clear()
            .env("SERVER_PORT", port.to_string())
            .env("DDCC_PROFILES_DIR", root().join("fhir-profiles"))
            // The admin listener (default: port + 1) on any free port: tests run in parallel.
            .env("DDCC_ADMIN_ADDR", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        match backend {
            Backend::Sqlite(dir) => cmd.env("DDCC_DATA_DIR", dir),
            // The data directory still holds the local development key.
            Backend::Postgres(url) => cmd.env("DATABASE_URL", url).env("DDCC_DATA_DIR", work),
        };
        let child = cmd.spawn().expect("binary starts");
        let mut service = Service { child, port, log };
        service.wait_listening().await;
        service
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_listening(&mut self) {
        let url = format!("{}/health", self.base());
        for _ in 0..750 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the service exited ({status}) before listening:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        panic!("{url} never answered");
    }

    /// SIGKILL: no shutdown hook runs, whatever was in flight is cut off.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL test server's URL, or `None` after saying the test skips; with
/// `DDCC_REQUIRE_ORACLES` set a missing server is a failure.
pub fn pg_url() -> Option<String> {
    match std::env::var("DDCC_TEST_DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            let msg = "DDCC_TEST_DATABASE_URL is not set (export DDCC_TEST_DATABASE_URL=$(tests/tools/postgres.sh start))";
            assert!(
                std::env::var_os("DDCC_REQUIRE_ORACLES").is_none(),
                "{msg}, and DDCC_REQUIRE_ORACLES is set"
            );
            println!("SKIP PostgreSQL: {msg}");
            None
        }
    }
}

/// `url` with its database name replaced by `db`.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{db}?{q}"),
        None => format!("{host}/{db}"),
    }
}

/// A fresh database on the test server, so counts are this test's alone.
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

/// GET `url` as JSON: (status, body).
pub async fn get_json(http: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = http
        .get(url)
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// The resources of a searchset Bundle.
pub fn resources(searchset: &serde_json::Value) -> Vec<serde_json::Value> {
    searchset["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}
