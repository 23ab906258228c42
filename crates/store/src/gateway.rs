//! Trust network gateway bookkeeping (migration 10): the persistent outbox of uploads
//! to the gateway, the verified trust list downloaded from it, and a small key/value
//! table for sync and publish state.
//!
//! The outbox is what makes uploads survive restarts: a row is written before anything
//! is sent, and only a definite answer from the gateway ends it. Several instances
//! (PostgreSQL) share the rows: a worker *leases* due rows by pushing their next
//! attempt into the future in the same transaction that reads them, so a crashed
//! worker's rows come back when the lease runs out instead of being lost or sent twice
//! at once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sql::{int, opt_blob, text, Db, Row, SqlVal};
use crate::{BoxFuture, Result, StoreError};

/// Outbox row states.
pub const PENDING: &str = "pending";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// One upload waiting for (or finished with) the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: i64,
    /// What to send, e.g. `reference`, `reference-delete`, `dsc`, `revocation`.
    pub kind: String,
    /// At most one pending row per key: enqueueing again replaces the payload.
    pub dedup: String,
    pub payload: Value,
    /// `pending`, `done` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// Unix ms of the next delivery attempt (or of the lease's end while delivering).
    pub next_ms: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub last_error: Option<String>,
}

/// A verified trust-list entry (a certificate of a group, e.g. `DSC`, `CSCA`, `UPLOAD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    pub group: String,
    pub country: String,
    pub domain: String,
    /// Lowercase hex SHA-256 of `der`.
    pub thumbprint: String,
    /// Base64 kid as the gateway lists it.
    pub kid: String,
    pub der: Vec<u8>,
}

/// One revoked-certificate hash from a verified revocation batch of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedHash {
    pub batch_id: String,
    pub country: String,
    pub kid: String,
    /// `SIGNATURE`, `UCI` or `COUNTRYCODEUCI`.
    pub hash_type: String,
    /// Base64 of the first 16 bytes of the hash, as the gateway publishes it.
    pub hash: String,
}

/// What the trust-network client keeps in the store. Implemented by both back ends;
/// reach it from a `dyn Store` through [`crate::Store::gateway`].
pub trait GatewayStore: Send + Sync {
    /// Adds an upload, or replaces the payload of the pending row with the same
    /// `dedup` key (and makes it due now). Returns the row id. A unique index keeps
    /// one pending row per key even when two instances enqueue at once.
    fn outbox_enqueue<'a>(
        &'a self,
        kind: &'a str,
        dedup: &'a str,
        payload: &'a Value,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64>>;

    /// Takes up to `limit` pending rows due at `now_ms`, oldest first, and leases them
    /// until `now_ms + lease_ms`.
    fn outbox_lease(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxItem>>>;

    /// Delivered (`done`) or refused for good (`failed`, with the reason).
    fn outbox_finish<'a>(
        &'a self,
        id: i64,
        state: &'a str,
        error: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<()>>;

    /// Not delivered this time: count the attempt, try again at `next_ms`.
    fn outbox_retry<'a>(
        &'a self,
        id: i64,
        next_ms: i64,
        error: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<()>>;

    /// Deletes delivered rows last touched before `before_ms` (failed and pending
    /// rows stay until an operator has seen them). Returns how many went.
    fn outbox_prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>>;

    /// Rows in `state` (all states when `None`), newest first.
    fn outbox_list<'a>(
        &'a self,
        state: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<OutboxItem>>>;

    /// Replaces the whole verified trust list (a full sync).
    fn trust_list_replace(&self, entries: Vec<TrustEntry>) -> BoxFuture<'_, Result<()>>;

    /// Replaces the entries of the given groups only (a delta sync of, e.g., DSCs).
    fn trust_list_replace_groups<'a>(
        &'a self,
        groups: &'a [&'a str],
        entries: Vec<TrustEntry>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Entries of one group (all when `None`).
    fn trust_list<'a>(&'a self, group: Option<&'a str>) -> BoxFuture<'a, Result<Vec<TrustEntry>>>;

    /// The DER of every verified DSC, for the verifier.
    fn trusted_dscs(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>>> {
        Box::pin(async move {
            Ok(self
                .trust_list(Some("DSC"))
                .await?
                .into_iter()
                .map(|e| e.der)
                .collect())
        })
    }

    /// Replaces the hashes of the batches named in `batch_ids` by `hashes` (a deleted
    /// batch is named with no hashes).
    fn revoked_replace<'a>(
        &'a self,
        batch_ids: &'a [String],
        hashes: Vec<RevokedHash>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Every synced revocation hash, for the verifier.
    fn revoked_hashes(&self) -> BoxFuture<'_, Result<Vec<RevokedHash>>>;

    fn gateway_state<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// Changes (to a fresh value) in the same transaction as every change of the
    /// trust list or the revocation hashes, so a verifier can keep what it built from
    /// them until this differs. `None` until the first sync.
    fn trust_generation(&self) -> BoxFuture<'_, Result<Option<String>>> {
        self.gateway_state(TRUST_GENERATION)
    }

    fn set_gateway_state<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<()>>;
}

fn opt_text(row: &Row, i: usize) -> Result<Option<String>> {
    match row.get(i) {
        Some(SqlVal::Text(s)) => Ok(Some(s.clone())),
        Some(SqlVal::NullInt | SqlVal::NullText | SqlVal::NullBlob) => Ok(None),
        other => Err(StoreError::Corrupt(format!(
            "column {i}: expected text or null, got {other:?}"
        ))),
    }
}

const OUTBOX_COLS: &str =
    "id, kind, dedup, payload, state, attempts, next_ms, created_ms, updated_ms, last_error";

fn outbox_item(row: &Row) -> Result<OutboxItem> {
    let payload = text(row, 3)?;
    Ok(OutboxItem {
        id: int(row, 0)?,
        kind: text(row, 1)?,
        dedup: text(row, 2)?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
        state: text(row, 4)?,
        attempts: int(row, 5)?,
        next_ms: int(row, 6)?,
        created_ms: int(row, 7)?,
        updated_ms: int(row, 8)?,
        last_error: opt_text(row, 9)?,
    })
}

pub(crate) async fn outbox_enqueue<D: Db>(
    db: &mut D,
    kind: &str,
    dedup: &str,
    payload: &Value,
    now_ms: i64,
) -> Result<i64> {
    let body = payload.to_string();
    let existing = db
        .query(
            &format!(
                "SELECT id FROM gw_outbox WHERE dedup = $1 AND state = 'pending'{}",
                db.for_update()
            ),
            &[SqlVal::Text(dedup.to_owned())],
        )
        .await?;
    if let Some(row) = existing.first() {
        let id = int(row, 0)?;
        db.exec(
            "UPDATE gw_outbox SET kind = $1, payload = $2, next_ms = $3, updated_ms = $3 WHERE id = $4",
            &[
                SqlVal::Text(kind.to_owned()),
                SqlVal::Text(body),
                SqlVal::Int(now_ms),
                SqlVal::Int(id),
            ],
        )
        .await?;
        return Ok(id);
    }
    let rows = db
        .query(
            "INSERT INTO gw_outbox (kind, dedup, payload, state, attempts, next_ms, created_ms, updated_ms) \
             VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4) RETURNING id",
            &[
                SqlVal::Text(kind.to_owned()),
                SqlVal::Text(dedup.to_owned()),
                SqlVal::Text(body),
                SqlVal::Int(now_ms),
            ],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Backend("INSERT … RETURNING gave no row".into()))?;
    int(row, 0)
}

pub(crate) async fn outbox_lease<D: Db>(
    db: &mut D,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<OutboxItem>> {
    let limit = limit.clamp(1, 1000);
    // SKIP LOCKED: another instance leasing at the same moment takes other rows
    // instead of waiting for ours.
    let lock = if db.for_update().is_empty() {
        String::new()
    } else {
        format!("{} SKIP LOCKED", db.for_update())
    };
    let rows = db
        .query(
            &format!(
                "SELECT {OUTBOX_COLS} FROM gw_outbox WHERE state = 'pending' AND next_ms <= $1 \
                 ORDER BY id LIMIT {limit}{lock}"
            ),
            &[SqlVal::Int(now_ms)],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut item = outbox_item(row)?;
        item.next_ms = now_ms + lease_ms;
        db.exec(
            "UPDATE gw_outbox SET next_ms = $1 WHERE id = $2",
            &[SqlVal::Int(item.next_ms), SqlVal::Int(item.id)],
        )
        .await?;
        out.push(item);
    }
    Ok(out)
}

pub(crate) async fn outbox_finish<D: Db>(
    db: &mut D,
    id: i64,
    state: &str,
    error: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    if state != DONE && state != FAILED {
        return Err(StoreError::Backend(format!(
            "outbox state must be done or failed, not {state}"
        )));
    }
    db.exec(
        "UPDATE gw_outbox SET state = $1, last_error = $2, updated_ms = $3, attempts = attempts + 1 WHERE id = $4",
        &[
            SqlVal::Text(state.to_owned()),
            error.map_or(SqlVal::NullText, |e| SqlVal::Text(e.to_owned())),
            SqlVal::Int(now_ms),
            SqlVal::Int(id),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn outbox_retry<D: Db>(
    db: &mut D,
    id: i64,
    next_ms: i64,
    error: &str,
    now_ms: i64,
) -> Result<()> {
    db.exec(
        "UPDATE gw_outbox SET attempts = attempts + 1, next_ms = $1, last_error = $2, updated_ms = $3 \
         WHERE id = $4 AND state = 'pending'",
        &[
            SqlVal::Int(next_ms),
            SqlVal::Text(error.to_owned()),
            SqlVal::Int(now_ms),
            SqlVal::Int(id),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn outbox_prune<D: Db>(db: &mut D, before_ms: i64) -> Result<u64> {
    db.exec(
        "DELETE FROM gw_outbox WHERE state = 'done' AND updated_ms < $1",
        &[SqlVal::Int(before_ms)],
    )
    .await
}

pub(crate) async fn outbox_list<D: Db>(
    db: &mut D,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<OutboxItem>> {
    let limit = limit.clamp(1, 10_000);
    let rows = match state {
        Some(s) => {
            db.query(
                &format!("SELECT {OUTBOX_COLS} FROM gw_outbox WHERE state = $1 ORDER BY id DESC LIMIT {limit}"),
                &[SqlVal::Text(s.to_owned())],
            )
            .await?
        }
        None => {
            db.query(
                &format!("SELECT {OUTBOX_COLS} FROM gw_outbox ORDER BY id DESC LIMIT {limit}"),
                &[],
            )
            .await?
        }
    };
    rows.iter().map(outbox_item).collect()
}

async fn insert_entries<D: Db>(db: &mut D, entries: &[TrustEntry]) -> Result<()> {
    for e in entries {
        // The same certificate may be listed twice (two domains): keep one row.
        db.exec(
            "DELETE FROM gw_trust WHERE grp = $1 AND thumbprint = $2",
            &[
                SqlVal::Text(e.group.clone()),
                SqlVal::Text(e.thumbprint.clone()),
            ],
        )
        .await?;
        db.exec(
            "INSERT INTO gw_trust (grp, country, domain, thumbprint, kid, der) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                SqlVal::Text(e.group.clone()),
                SqlVal::Text(e.country.clone()),
                SqlVal::Text(e.domain.clone()),
                SqlVal::Text(e.thumbprint.clone()),
                SqlVal::Text(e.kid.clone()),
                SqlVal::Blob(e.der.clone()),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The `gw_state` key of [`GatewayStore::trust_generation`].
pub const TRUST_GENERATION: &str = "trust_generation";

async fn bump_trust_generation<D: Db>(db: &mut D) -> Result<()> {
    set_state(db, TRUST_GENERATION, &crate::ids::new_id()).await
}

pub(crate) async fn trust_list_replace<D: Db>(db: &mut D, entries: &[TrustEntry]) -> Result<()> {
    db.exec("DELETE FROM gw_trust", &[]).await?;
    insert_entries(db, entries).await?;
    bump_trust_generation(db).await
}

pub(crate) async fn trust_list_replace_groups<D: Db>(
    db: &mut D,
    groups: &[&str],
    entries: &[TrustEntry],
) -> Result<()> {
    for g in groups {
        db.exec(
            "DELETE FROM gw_trust WHERE grp = $1",
            &[SqlVal::Text((*g).to_owned())],
        )
        .await?;
    }
    insert_entries(db, entries).await?;
    bump_trust_generation(db).await
}

pub(crate) async fn trust_list<D: Db>(db: &mut D, group: Option<&str>) -> Result<Vec<TrustEntry>> {
    const COLS: &str = "grp, country, domain, thumbprint, kid, der";
    let rows = match group {
        Some(g) => {
            db.query(
                &format!("SELECT {COLS} FROM gw_trust WHERE grp = $1 ORDER BY country, thumbprint"),
                &[SqlVal::Text(g.to_owned())],
            )
            .await?
        }
        None => {
            db.query(
                &format!("SELECT {COLS} FROM gw_trust ORDER BY grp, country, thumbprint"),
                &[],
            )
            .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(TrustEntry {
                group: text(r, 0)?,
                country: text(r, 1)?,
                domain: text(r, 2)?,
                thumbprint: text(r, 3)?,
                kid: text(r, 4)?,
                der: opt_blob(r, 5)?
                    .ok_or_else(|| StoreError::Corrupt("trust entry without DER".into()))?
                    .to_vec(),
            })
        })
        .collect()
}

pub(crate) async fn get_state<D: Db>(db: &mut D, key: &str) -> Result<Option<String>> {
    let rows = db
        .query(
            "SELECT v FROM gw_state WHERE k = $1",
            &[SqlVal::Text(key.to_owned())],
        )
        .await?;
    rows.first().map(|r| text(r, 0)).transpose()
}

pub(crate) async fn set_state<D: Db>(db: &mut D, key: &str, value: &str) -> Result<()> {
    db.exec(
        "DELETE FROM gw_state WHERE k = $1",
        &[SqlVal::Text(key.to_owned())],
    )
    .await?;
    db.exec(
        "INSERT INTO gw_state (k, v) VALUES ($1, $2)",
        &[SqlVal::Text(key.to_owned()), SqlVal::Text(value.to_owned())],
    )
    .await?;
    Ok(())
}

pub(crate) async fn revoked_replace<D: Db>(
    db: &mut D,
    batch_ids: &[String],
    hashes: &[RevokedHash],
) -> Result<()> {
    for b in batch_ids {
        db.exec(
            "DELETE FROM gw_revoked WHERE batch_id = $1",
            &[SqlVal::Text(b.clone())],
        )
        .await?;
    }
    for h in hashes {
        db.exec(
            "INSERT INTO gw_revoked (batch_id, country, kid, hash_type, hash) VALUES ($1, $2, $3, $4, $5)",
            &[
                SqlVal::Text(h.batch_id.clone()),
                SqlVal::Text(h.country.clone()),
                SqlVal::Text(h.kid.clone()),
                SqlVal::Text(h.hash_type.clone()),
                SqlVal::Text(h.hash.clone()),
            ],
        )
        .await?;
    }
    bump_trust_generation(db).await
}

pub(crate) async fn revoked_hashes<D: Db>(db: &mut D) -> Result<Vec<RevokedHash>> {
    let rows = db
        .query(
            "SELECT batch_id, country, kid, hash_type, hash FROM gw_revoked ORDER BY batch_id, hash",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RevokedHash {
                batch_id: text(r, 0)?,
                country: text(r, 1)?,
                kid: text(r, 2)?,
                hash_type: text(r, 3)?,
                hash: text(r, 4)?,
            })
        })
        .collect()
}
