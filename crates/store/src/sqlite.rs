//! Embedded back end: one SQLite file in WAL mode.
//!
//! Concurrency: one writer connection (SQLite allows one writer at a time anyway) and a
//! few reader connections, which WAL lets run alongside the writer on a committed
//! snapshot. Every write is a `BEGIN IMMEDIATE` transaction, which takes the database
//! write lock up front: two store handles (or processes) on the same file therefore
//! serialise their read-modify-write sequences, and `busy_timeout` makes the second wait
//! instead of failing. All SQLite calls run on tokio's blocking pool so the actix
//! workers never block on disk.
//!
//! Durability: `synchronous=FULL` by default. With WAL, NORMAL is already safe against a
//! killed *process* (the WAL is in the OS page cache), but a power loss or kernel crash
//! can lose the last transactions that were acknowledged. An issued certificate whose
//! registration vanished would be a registry lying to verifiers, so FULL (one fsync of
//! the WAL per commit) is the default; [`Synchronous::Normal`] is available for bulk
//! loads where the caller can redo work.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use serde_json::Value;

use crate::core::{self, Dialect};
use crate::crypto::{DataKeys, KEY_FILE};
use crate::sql::{Db, Row, SqlVal};
use crate::{
    BoxFuture, Claim, ClaimToken, PendingRevocation, Result, Revocation, RevocationLookup,
    SearchQuery, Store, StoreError, Stored, TxRequest, TxResult,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync the WAL on every commit: acknowledged writes survive power loss.
    Full,
    /// Survives process crashes; may lose the newest commits on power loss.
    Normal,
}

/// File name inside the data directory.
pub const DB_FILE: &str = "ddcc-store.sqlite3";

const DIALECT: Dialect = Dialect {
    int: "INTEGER",
    blob: "BLOB",
    serial: "INTEGER",
};

struct Inner {
    path: PathBuf,
    keys: Arc<DataKeys>,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

/// SQLite-backed [`Store`]. Cheap to clone (shared connections).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl ToSql for SqlVal {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlVal::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlVal::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            SqlVal::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            SqlVal::NullInt | SqlVal::NullText | SqlVal::NullBlob => {
                ToSqlOutput::Borrowed(ValueRef::Null)
            }
        })
    }
}

struct SqliteDb<'c> {
    conn: &'c Connection,
    keys: &'c DataKeys,
}

/// `$n` → `?n`: the same numbered-parameter semantics in SQLite syntax.
fn dialect_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl Db for SqliteDb<'_> {
    fn keys(&self) -> &DataKeys {
        self.keys
    }

    fn for_update(&self) -> &'static str {
        ""
    }

    fn per_resource_index_hint(&self) -> &'static str {
        " INDEXED BY idx_res"
    }

    async fn query(&mut self, sql: &str, params: &[SqlVal]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(&dialect_sql(sql))?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut r = Vec::with_capacity(n);
            for i in 0..n {
                r.push(match row.get_ref(i)? {
                    ValueRef::Null => SqlVal::NullInt,
                    ValueRef::Integer(v) => SqlVal::Int(v),
                    ValueRef::Real(v) => SqlVal::Int(v as i64),
                    ValueRef::Text(t) => SqlVal::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => SqlVal::Blob(b.to_vec()),
                });
            }
            out.push(r);
        }
        Ok(out)
    }

    async fn exec(&mut self, sql: &str, params: &[SqlVal]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(&dialect_sql(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }
}

/// Drives a future built only from [`SqliteDb`] calls, which never suspend.
fn ready<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => Err(StoreError::Backend(
            "internal: SQLite operation suspended".into(),
        )),
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection cannot leave a transaction open past the
    // rollback in `run`, so the connection itself is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_conn(path: &Path, sync: Synchronous, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.set_prepared_statement_cache_capacity(64);
    if !read_only {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "could not enable WAL (journal_mode={mode})"
            )));
        }
    }
    conn.execute_batch(match sync {
        Synchronous::Full => "PRAGMA synchronous=FULL;",
        Synchronous::Normal => "PRAGMA synchronous=NORMAL;",
    })?;
    Ok(conn)
}

fn run<T>(
    conn: &Connection,
    keys: &DataKeys,
    begin: &str,
    f: impl FnOnce(&mut SqliteDb<'_>) -> Result<T>,
) -> Result<T> {
    conn.execute_batch(begin)?;
    let result = f(&mut SqliteDb { conn, keys }).and_then(|v| {
        conn.execute_batch("COMMIT")?;
        Ok(v)
    });
    if result.is_err() && !conn.is_autocommit() {
        // Best effort: if even ROLLBACK fails the connection is closed with the
        // transaction open, and SQLite discards it; nothing partial is ever visible.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/ddcc-store.sqlite3` with `synchronous=FULL`
    /// and four reader connections, and applies pending migrations. Records are sealed
    /// with the keys of `<data_dir>/data-keys.json` (created with mode 0600 if absent).
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = data_dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        Self::open_file(dir.join(DB_FILE), Synchronous::Full, 4)
    }

    /// Opens the database file `path`, with the key file beside it.
    pub fn open_file(path: impl Into<PathBuf>, sync: Synchronous, readers: usize) -> Result<Self> {
        let path = path.into();
        let keys = DataKeys::from_key_file(&path.with_file_name(KEY_FILE))?;
        Self::open_with_keys(path, sync, readers, Arc::new(keys))
    }

    /// Opens the database file `path`, sealing with `keys` (e.g. a Vault data key).
    pub fn open_with_keys(
        path: impl Into<PathBuf>,
        sync: Synchronous,
        readers: usize,
        keys: Arc<DataKeys>,
    ) -> Result<Self> {
        let path = path.into();
        let writer = open_conn(&path, sync, false)?;
        run(&writer, &keys, "BEGIN IMMEDIATE", |db| {
            ready(core::migrate(db, &DIALECT))
        })?;
        let readers = (0..readers.max(1))
            .map(|_| open_conn(&path, sync, true).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                keys,
                writer: Mutex::new(writer),
                readers,
                next: AtomicUsize::new(0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn write<T, F>(&self, f: F) -> BoxFuture<'static, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteDb<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                run(&lock(&inner.writer), &inner.keys, "BEGIN IMMEDIATE", f)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
        })
    }

    fn read_with<T, F>(&self, f: F) -> BoxFuture<'static, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteDb<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let n = inner.readers.len();
                let start = inner.next.fetch_add(1, Ordering::Relaxed);
                // Prefer an idle reader; otherwise queue on the round-robin one.
                let guard = (0..n)
                    .find_map(|i| inner.readers[(start + i) % n].try_lock().ok())
                    .unwrap_or_else(|| lock(&inner.readers[start % n]));
                // A read transaction gives multi-statement reads one snapshot.
                run(&guard, &inner.keys, "BEGIN", f)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
        })
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn create(&self, resource: Value) -> BoxFuture<'_, Result<Stored>> {
        self.write(move |db| ready(core::create(db, resource)))
    }

    fn read<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<Stored>> {
        let (t, i) = (resource_type.to_owned(), id.to_owned());
        self.read_with(move |db| ready(core::read(db, &t, &i)))
    }

    fn vread<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        version_id: i64,
    ) -> BoxFuture<'a, Result<Stored>> {
        let (t, i) = (resource_type.to_owned(), id.to_owned());
        self.read_with(move |db| ready(core::vread(db, &t, &i, version_id)))
    }

    fn update<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        resource: Value,
        if_match: Option<i64>,
    ) -> BoxFuture<'a, Result<Stored>> {
        let (t, i) = (resource_type.to_owned(), id.to_owned());
        self.write(move |db| ready(core::update(db, &t, &i, resource, if_match)))
    }

    fn delete<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        let (t, i) = (resource_type.to_owned(), id.to_owned());
        self.write(move |db| ready(core::delete(db, &t, &i)).map(|(v, _)| v))
    }

    fn history<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Stored>>> {
        let (t, i) = (resource_type.to_owned(), id.to_owned());
        self.read_with(move |db| ready(core::history(db, &t, &i)))
    }

    fn search<'a>(
        &'a self,
        resource_type: &'a str,
        query: &'a SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<Stored>>> {
        let (t, q) = (resource_type.to_owned(), query.clone());
        self.read_with(move |db| ready(core::search(db, &t, &q)))
    }

    fn transaction(&self, request: TxRequest) -> BoxFuture<'_, Result<Vec<TxResult>>> {
        self.write(move |db| ready(core::transaction(db, request)))
    }

    fn claim_key<'a>(&'a self, key: &'a str, ttl_ms: i64) -> BoxFuture<'a, Result<Claim>> {
        let k = key.to_owned();
        self.write(move |db| ready(core::claim_key(db, &k, ttl_ms)))
    }

    fn release_key<'a>(&'a self, claim: &'a ClaimToken) -> BoxFuture<'a, Result<()>> {
        let c = claim.clone();
        self.write(move |db| ready(core::release_key(db, &c)))
    }

    fn reencrypt(&self, limit: usize) -> BoxFuture<'_, Result<usize>> {
        self.write(move |db| ready(core::reencrypt(db, limit)))
    }

    fn pending_revocations(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingRevocation>>> {
        self.read_with(move |db| ready(core::pending_revocations(db, limit)))
    }

    fn find_revocation<'a>(
        &'a self,
        lookup: &'a RevocationLookup,
    ) -> BoxFuture<'a, Result<Option<Revocation>>> {
        let lookup = lookup.clone();
        self.read_with(move |db| ready(core::find_revocation(db, &lookup)))
    }

    fn mark_published<'a>(
        &'a self,
        seqs: &'a [i64],
        published_at: &'a str,
    ) -> BoxFuture<'a, Result<u64>> {
        let (s, at) = (seqs.to_vec(), published_at.to_owned());
        self.write(move |db| ready(core::mark_published(db, &s, &at)))
    }

    fn gateway(&self) -> Option<&dyn crate::GatewayStore> {
        Some(self)
    }
}

impl crate::GatewayStore for SqliteStore {
    fn outbox_enqueue<'a>(
        &'a self,
        kind: &'a str,
        dedup: &'a str,
        payload: &'a Value,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64>> {
        let (k, d, p) = (kind.to_owned(), dedup.to_owned(), payload.clone());
        self.write(move |db| ready(crate::gateway::outbox_enqueue(db, &k, &d, &p, now_ms)))
    }

    fn outbox_lease(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::OutboxItem>>> {
        self.write(move |db| ready(crate::gateway::outbox_lease(db, now_ms, lease_ms, limit)))
    }

    fn outbox_finish<'a>(
        &'a self,
        id: i64,
        state: &'a str,
        error: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<()>> {
        let (s, e) = (state.to_owned(), error.map(str::to_owned));
        self.write(move |db| {
            ready(crate::gateway::outbox_finish(
                db,
                id,
                &s,
                e.as_deref(),
                now_ms,
            ))
        })
    }

    fn outbox_retry<'a>(
        &'a self,
        id: i64,
        next_ms: i64,
        error: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<()>> {
        let e = error.to_owned();
        self.write(move |db| ready(crate::gateway::outbox_retry(db, id, next_ms, &e, now_ms)))
    }

    fn outbox_prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>> {
        self.write(move |db| ready(crate::gateway::outbox_prune(db, before_ms)))
    }

    fn outbox_list<'a>(
        &'a self,
        state: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<crate::OutboxItem>>> {
        let s = state.map(str::to_owned);
        self.read_with(move |db| ready(crate::gateway::outbox_list(db, s.as_deref(), limit)))
    }

    fn trust_list_replace(&self, entries: Vec<crate::TrustEntry>) -> BoxFuture<'_, Result<()>> {
        self.write(move |db| ready(crate::gateway::trust_list_replace(db, &entries)))
    }

    fn trust_list_replace_groups<'a>(
        &'a self,
        groups: &'a [&'a str],
        entries: Vec<crate::TrustEntry>,
    ) -> BoxFuture<'a, Result<()>> {
        let g: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        self.write(move |db| {
            let refs: Vec<&str> = g.iter().map(String::as_str).collect();
            ready(crate::gateway::trust_list_replace_groups(
                db, &refs, &entries,
            ))
        })
    }

    fn trust_list<'a>(
        &'a self,
        group: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<crate::TrustEntry>>> {
        let g = group.map(str::to_owned);
        self.read_with(move |db| ready(crate::gateway::trust_list(db, g.as_deref())))
    }

    fn revoked_replace<'a>(
        &'a self,
        batch_ids: &'a [String],
        hashes: Vec<crate::RevokedHash>,
    ) -> BoxFuture<'a, Result<()>> {
        let b = batch_ids.to_vec();
        self.write(move |db| ready(crate::gateway::revoked_replace(db, &b, &hashes)))
    }

    fn revoked_hashes(&self) -> BoxFuture<'_, Result<Vec<crate::RevokedHash>>> {
        self.read_with(move |db| ready(crate::gateway::revoked_hashes(db)))
    }

    fn gateway_state<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        let k = key.to_owned();
        self.read_with(move |db| ready(crate::gateway::get_state(db, &k)))
    }

    fn set_gateway_state<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<()>> {
        let (k, v) = (key.to_owned(), value.to_owned());
        self.write(move |db| ready(crate::gateway::set_state(db, &k, &v)))
    }
}
