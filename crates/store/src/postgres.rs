//! PostgreSQL back end for several mediator instances sharing one database.
//!
//! Transactions run at READ COMMITTED. Correctness under concurrency comes from row locks
//! (`SELECT … FOR UPDATE` on the `cur` pointer row before writing a new version, and on
//! the `folders` row before rewriting an HCID's Folder) and unique keys (versions,
//! idempotency keys, folder HCIDs), not from snapshot isolation. Deadlocks, serialization
//! failures and unique violations from racing creators are retried from the start of the
//! transaction a few times: the retry re-reads the state the winner committed.
//!
//! No TLS: the expected deployment is loopback or a private network; `DATABASE_URL` is a
//! `postgres://user:pass@host:port/db` URL or a libpq key/value string.

use std::error::Error as StdError;
use std::str::FromStr;
use std::sync::Arc;

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use serde_json::Value;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use crate::core::{self, Dialect};
use crate::crypto::DataKeys;
use crate::sql::{Db, Row, SqlVal};
use crate::{
    BoxFuture, Claim, ClaimToken, PendingRevocation, Result, Revocation, RevocationLookup,
    SearchQuery, Store, StoreError, Stored, TxRequest, TxResult,
};

const DIALECT: Dialect = Dialect {
    int: "BIGINT",
    blob: "BYTEA",
    serial: "BIGSERIAL",
};
const MAX_ATTEMPTS: u32 = 8;
/// Arbitrary constant naming the advisory lock that serialises migrations across
/// instances starting at the same time.
const MIGRATION_LOCK: i64 = 0x000d_dcc5_704e;

/// PostgreSQL-backed [`Store`]. Cheap to clone (shared pool).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    keys: Arc<DataKeys>,
}

impl ToSql for SqlVal {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            SqlVal::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            SqlVal::Int(i) => i.to_sql(ty, out),
            SqlVal::Text(s) => s.as_str().to_sql(ty, out),
            SqlVal::Blob(b) => b.as_slice().to_sql(ty, out),
            SqlVal::NullInt | SqlVal::NullText | SqlVal::NullBlob => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql`, where the wrapped Rust type's own check runs.
        true
    }

    to_sql_checked!();
}

struct PgDb<'t, 'c> {
    tx: &'t Transaction<'c>,
    keys: &'t DataKeys,
    /// Set when the failure is one a fresh attempt can succeed at.
    retry: bool,
}

fn retryable_code(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| matches!(c.code(), "40001" | "40P01" | "23505"))
}

impl PgDb<'_, '_> {
    fn err(&mut self, e: tokio_postgres::Error) -> StoreError {
        if retryable_code(&e) {
            self.retry = true;
        }
        e.into()
    }
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (i, c) in row.columns().iter().enumerate() {
        let t = c.type_();
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?
                .map_or(SqlVal::NullInt, SqlVal::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map_or(SqlVal::NullInt, |v| SqlVal::Int(v.into()))
        } else if *t == Type::TEXT || *t == Type::VARCHAR {
            row.try_get::<_, Option<String>>(i)?
                .map_or(SqlVal::NullText, SqlVal::Text)
        } else if *t == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?
                .map_or(SqlVal::NullBlob, SqlVal::Blob)
        } else {
            return Err(StoreError::Corrupt(format!("unexpected column type {t}")));
        };
        out.push(v);
    }
    Ok(out)
}

fn param_refs(params: &[SqlVal]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Db for PgDb<'_, '_> {
    fn keys(&self) -> &DataKeys {
        self.keys
    }

    fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }

    async fn query(&mut self, sql: &str, params: &[SqlVal]) -> Result<Vec<Row>> {
        let stmt = match self.tx.prepare_cached(sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.err(e)),
        };
        match self.tx.query(&stmt, &param_refs(params)).await {
            Ok(rows) => rows.iter().map(pg_row).collect(),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn query_dynamic(&mut self, sql: &str, params: &[SqlVal]) -> Result<Vec<Row>> {
        // Common query shapes (few parameters) are cached like any statement; rare long
        // ones (many ORed values) are prepared per call, bounding deadpool's per-
        // connection statement cache, which has no size limit of its own.
        if params.len() <= 16 {
            return self.query(sql, params).await;
        }
        match self.tx.query(sql, &param_refs(params)).await {
            Ok(rows) => rows.iter().map(pg_row).collect(),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn exec(&mut self, sql: &str, params: &[SqlVal]) -> Result<u64> {
        let stmt = match self.tx.prepare_cached(sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.err(e)),
        };
        match self.tx.execute(&stmt, &param_refs(params)).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.err(e)),
        }
    }
}

fn pool_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("connection pool: {e}"))
}

/// Runs `$body` (an expression using `$db: &mut PgDb`) in a transaction, retrying
/// transient conflicts. A macro rather than a function: the body borrows the
/// transaction, which a closure returning a future cannot express without boxing.
macro_rules! pg_tx {
    ($self:expr, |$db:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut client = $self.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await?;
            let mut $db = PgDb {
                tx: &tx,
                keys: &$self.keys,
                retry: false,
            };
            let result = $body.await;
            let retry = $db.retry;
            match result {
                Ok(v) => match tx.commit().await {
                    Ok(()) => break Ok(v),
                    Err(e) if attempt < MAX_ATTEMPTS && retryable_code(&e) => continue,
                    Err(e) => break Err(StoreError::from(e)),
                },
                Err(e) => {
                    // Ignored: a failed rollback means a dead connection, which the
                    // server rolls back itself and the pool discards.
                    let _ = tx.rollback().await;
                    if retry && attempt < MAX_ATTEMPTS {
                        continue;
                    }
                    break Err(e);
                }
            }
        }
    }};
}

impl PostgresStore {
    /// Connects a pool of at most `max_connections` to `url` and applies pending
    /// migrations (under an advisory lock, so instances may start together). Records
    /// are sealed with `keys`: every instance sharing the database needs the same keys.
    pub async fn connect(url: &str, max_connections: usize, keys: Arc<DataKeys>) -> Result<Self> {
        let cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("DATABASE_URL: {e}")))?;
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(max_connections.max(1))
            .build()
            .map_err(pool_err)?;
        let store = PostgresStore { pool, keys };
        pg_tx!(store, |db| async {
            db.exec(
                "SELECT pg_advisory_xact_lock($1)",
                &[SqlVal::Int(MIGRATION_LOCK)],
            )
            .await?;
            core::migrate(&mut db, &DIALECT).await
        })?;
        Ok(store)
    }
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn create(&self, resource: Value) -> BoxFuture<'_, Result<Stored>> {
        Box::pin(async move { pg_tx!(self, |db| core::create(&mut db, resource.clone())) })
    }

    fn read<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(async move { pg_tx!(self, |db| core::read(&mut db, resource_type, id)) })
    }

    fn vread<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        version_id: i64,
    ) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(async move {
            pg_tx!(self, |db| core::vread(
                &mut db,
                resource_type,
                id,
                version_id
            ))
        })
    }

    fn update<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        resource: Value,
        if_match: Option<i64>,
    ) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(async move {
            pg_tx!(self, |db| core::update(
                &mut db,
                resource_type,
                id,
                resource.clone(),
                if_match
            ))
        })
    }

    fn delete<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            pg_tx!(self, |db| core::delete(&mut db, resource_type, id)).map(|(v, _)| v)
        })
    }

    fn history<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Stored>>> {
        Box::pin(async move { pg_tx!(self, |db| core::history(&mut db, resource_type, id)) })
    }

    fn search<'a>(
        &'a self,
        resource_type: &'a str,
        query: &'a SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<Stored>>> {
        Box::pin(async move { pg_tx!(self, |db| core::search(&mut db, resource_type, query)) })
    }

    fn transaction(&self, request: TxRequest) -> BoxFuture<'_, Result<Vec<TxResult>>> {
        Box::pin(async move { pg_tx!(self, |db| core::transaction(&mut db, request.clone())) })
    }

    fn claim_key<'a>(&'a self, key: &'a str, ttl_ms: i64) -> BoxFuture<'a, Result<Claim>> {
        Box::pin(async move { pg_tx!(self, |db| core::claim_key(&mut db, key, ttl_ms)) })
    }

    fn release_key<'a>(&'a self, claim: &'a ClaimToken) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { pg_tx!(self, |db| core::release_key(&mut db, claim)) })
    }

    fn reencrypt(&self, limit: usize) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move { pg_tx!(self, |db| core::reencrypt(&mut db, limit)) })
    }

    fn pending_revocations(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingRevocation>>> {
        Box::pin(async move { pg_tx!(self, |db| core::pending_revocations(&mut db, limit)) })
    }

    fn find_revocation<'a>(
        &'a self,
        lookup: &'a RevocationLookup,
    ) -> BoxFuture<'a, Result<Option<Revocation>>> {
        Box::pin(async move { pg_tx!(self, |db| core::find_revocation(&mut db, lookup)) })
    }

    fn mark_published<'a>(
        &'a self,
        seqs: &'a [i64],
        published_at: &'a str,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(
            async move { pg_tx!(self, |db| core::mark_published(&mut db, seqs, published_at)) },
        )
    }

    fn gateway(&self) -> Option<&dyn crate::GatewayStore> {
        Some(self)
    }
}

impl crate::GatewayStore for PostgresStore {
    fn outbox_enqueue<'a>(
        &'a self,
        kind: &'a str,
        dedup: &'a str,
        payload: &'a Value,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::outbox_enqueue(
                &mut db, kind, dedup, payload, now_ms
            ))
        })
    }

    fn outbox_lease(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::OutboxItem>>> {
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::outbox_lease(
                &mut db, now_ms, lease_ms, limit
            ))
        })
    }

    fn outbox_finish<'a>(
        &'a self,
        id: i64,
        state: &'a str,
        error: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::outbox_finish(
                &mut db, id, state, error, now_ms
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
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::outbox_retry(
                &mut db, id, next_ms, error, now_ms
            ))
        })
    }

    fn outbox_prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move { pg_tx!(self, |db| crate::gateway::outbox_prune(&mut db, before_ms)) })
    }

    fn outbox_list<'a>(
        &'a self,
        state: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<crate::OutboxItem>>> {
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::outbox_list(
                &mut db, state, limit
            ))
        })
    }

    fn trust_list_replace(&self, entries: Vec<crate::TrustEntry>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::trust_list_replace(
                &mut db, &entries
            ))
        })
    }

    fn trust_list_replace_groups<'a>(
        &'a self,
        groups: &'a [&'a str],
        entries: Vec<crate::TrustEntry>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::trust_list_replace_groups(
                &mut db, groups, &entries
            ))
        })
    }

    fn trust_list<'a>(
        &'a self,
        group: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<crate::TrustEntry>>> {
        Box::pin(async move { pg_tx!(self, |db| crate::gateway::trust_list(&mut db, group)) })
    }

    fn revoked_replace<'a>(
        &'a self,
        batch_ids: &'a [String],
        hashes: Vec<crate::RevokedHash>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            pg_tx!(self, |db| crate::gateway::revoked_replace(
                &mut db, batch_ids, &hashes
            ))
        })
    }

    fn revoked_hashes(&self) -> BoxFuture<'_, Result<Vec<crate::RevokedHash>>> {
        Box::pin(async move { pg_tx!(self, |db| crate::gateway::revoked_hashes(&mut db)) })
    }

    fn gateway_state<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move { pg_tx!(self, |db| crate::gateway::get_state(&mut db, key)) })
    }

    fn set_gateway_state<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { pg_tx!(self, |db| crate::gateway::set_state(&mut db, key, value)) })
    }
}
