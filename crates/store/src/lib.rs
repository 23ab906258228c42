//! Versioned FHIR resource store for the DDCC registry and repository.
//!
//! One [`Store`] trait, two back ends: [`SqliteStore`] (embedded default, one file in
//! `DDCC_DATA_DIR`) and [`PostgresStore`] (`DATABASE_URL`, shared by several mediator
//! instances). The store logic itself ([`core`]) is written once over a small SQL
//! interface ([`sql::Db`]) so both back ends behave identically; the same behavioural test
//! suite runs against each.
//!
//! Resources are kept as JSON bodies (through [`codec`], the single point where
//! encryption at rest will go), one row per version, with a `cur` pointer per resource and
//! index rows ([`index`]) that searches match without reading JSON.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod bundle;
pub mod codec;
mod core;
pub mod crypto;
mod error;
pub mod gateway;
pub mod ids;
pub mod index;
mod postgres;
pub mod refs;
pub mod revocation;
mod search;
mod sql;
mod sqlite;
pub mod time;

pub use crypto::{DataKeys, KeyError};
pub use error::StoreError;
pub use gateway::{GatewayStore, OutboxItem, RevokedHash, TrustEntry};
pub use postgres::PostgresStore;
pub use revocation::{PendingRevocation, Revocation, RevocationLookup, SignatureAlg};
pub use search::{check_query, SearchQuery, DEFAULT_COUNT, MAX_COUNT, MAX_OFFSET};
pub use sqlite::{SqliteStore, Synchronous, DB_FILE as SQLITE_DB_FILE};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One stored version of a resource. `resource` carries `id`, `meta.versionId` and
/// `meta.lastUpdated` matching the other fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    /// FHIR instant (UTC, milliseconds).
    pub last_updated: String,
    pub resource: Value,
}

impl Stored {
    /// `W/"<version>"`, the FHIR ETag.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version_id)
    }

    /// `Type/id/_history/version`.
    pub fn location(&self) -> String {
        format!(
            "{}/{}/_history/{}",
            self.resource_type, self.id, self.version_id
        )
    }
}

/// One entry of an all-or-nothing transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TxEntry {
    /// The entry's `fullUrl`. A `urn:uuid:` here is what other entries' references may
    /// name; it is rewritten to the assigned `Type/id` everywhere before storing.
    pub full_url: Option<String>,
    pub op: TxOp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    /// POST: the server assigns the id (any `id` in the resource is replaced, as FHIR
    /// create prescribes).
    Create { resource: Value },
    /// PUT `Type/id`: creates the resource with that id when absent. `if_match` is the
    /// version the client last saw.
    Update {
        resource_type: String,
        id: String,
        resource: Value,
        if_match: Option<i64>,
    },
    /// DELETE `Type/id`: writes a tombstone version.
    Delete { resource_type: String, id: String },
    /// Create-or-update the one DDCC Folder (a `List`) whose identifier is `hcid`.
    Folder(FolderUpsert),
}

/// Keeps exactly one Folder per HCID under concurrency: the `folders` table maps each
/// HCID to its List id under a unique key, and the List is rewritten while that mapping
/// row is locked, so concurrent writers append one after another instead of racing.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderUpsert {
    pub hcid: String,
    /// The List to create when the HCID has no folder yet (its `id` is assigned; existing
    /// `entry` items are kept). Ignored when the folder exists, except that `add` and
    /// `remove` apply.
    pub template: Value,
    /// References (`DocumentReference/…` or an entry's `urn:uuid:` fullUrl) to append to
    /// `entry` if not already present.
    pub add: Vec<String>,
    /// References to drop from `entry` (revocation).
    pub remove: Vec<String>,
}

/// Per-entry outcome, in request order, as a `transaction-response` needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxResult {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    /// `Type/id/_history/version` (`Type/id` for a delete).
    pub location: String,
    /// 201 created, 200 updated, 204 deleted.
    pub status: u16,
    /// `W/"version"`.
    pub etag: String,
    pub last_updated: String,
}

/// A whole transaction: resource entries, plus the bookkeeping that must commit or fail
/// with them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TxRequest {
    pub entries: Vec<TxEntry>,
    /// Completes an idempotency claim in the same database transaction, so "certificate
    /// stored" and "key answered" can never disagree.
    pub complete_key: Option<KeyCompletion>,
    /// Revocations recorded atomically with the entries (Folder update, DocumentReference
    /// `entered-in-error`, document delete).
    pub revocations: Vec<Revocation>,
}

impl TxRequest {
    pub fn new(entries: Vec<TxEntry>) -> Self {
        TxRequest {
            entries,
            ..Default::default()
        }
    }
}

/// Proof of holding an idempotency key, returned by [`Store::claim_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    pub key: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyCompletion {
    pub claim: ClaimToken,
    /// What a resubmission of the same event gets back (e.g. the issued certificate and
    /// its locations). Strings equal to a transaction entry's `urn:uuid:` fullUrl are
    /// replaced by the assigned `Type/id`.
    pub value: Value,
}

/// The stored answer of a completed key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completed {
    pub value: Value,
    pub results: Vec<TxResult>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This caller now holds the key until it completes, releases, or the claim expires.
    Claimed(ClaimToken),
    /// The event was already processed: answer with this, issue nothing.
    Existing(Completed),
    /// Another caller holds an unexpired claim; retry later (HTTP 409/429).
    InProgress,
}

/// The store used by the HTTP handlers. Dyn-compatible: hold it as `Arc<dyn Store>`.
pub trait Store: Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// FHIR create: assigns a new id (ignoring any in the resource), version 1.
    fn create(&self, resource: Value) -> BoxFuture<'_, Result<Stored>>;

    /// Current version; [`StoreError::Gone`] after delete, [`StoreError::NotFound`] if never.
    fn read<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<Stored>>;

    /// A specific version; a deleted version gives [`StoreError::Gone`].
    fn vread<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        version_id: i64,
    ) -> BoxFuture<'a, Result<Stored>>;

    /// FHIR update (create-on-update when absent and `if_match` is `None`).
    fn update<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        resource: Value,
        if_match: Option<i64>,
    ) -> BoxFuture<'a, Result<Stored>>;

    /// Writes a tombstone version and returns its version id; deleting a deleted resource
    /// returns the existing tombstone's version.
    fn delete<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<i64>>;

    /// All versions, newest first (tombstones have `resource` = `null`).
    fn history<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Stored>>>;

    /// Current, non-deleted resources matching `query`; unsupported parameters give
    /// [`StoreError::UnsupportedSearchParam`] (HTTP 400).
    fn search<'a>(
        &'a self,
        resource_type: &'a str,
        query: &'a SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<Stored>>>;

    /// All-or-nothing: either every entry, the key completion and the revocations are
    /// committed, or nothing is.
    fn transaction(&self, request: TxRequest) -> BoxFuture<'_, Result<Vec<TxResult>>>;

    /// Claims an idempotency key for `ttl_ms`. A claim that is neither completed nor
    /// released within that time can be taken over, so a crashed issuer never blocks
    /// the key for good; the late original then fails with [`StoreError::ClaimLost`]
    /// at completion instead of issuing a second certificate.
    fn claim_key<'a>(&'a self, key: &'a str, ttl_ms: i64) -> BoxFuture<'a, Result<Claim>>;

    /// Gives up a claim after a failure, so a retry need not wait for expiry.
    fn release_key<'a>(&'a self, claim: &'a ClaimToken) -> BoxFuture<'a, Result<()>>;

    /// Unpublished revocations, oldest first, at most `limit`.
    fn pending_revocations(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingRevocation>>>;

    /// Marks revocations as published at `published_at` (FHIR instant).
    fn mark_published<'a>(
        &'a self,
        seqs: &'a [i64],
        published_at: &'a str,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Re-seals up to `limit` records not sealed with the current data key (clear
    /// records from before encryption, or older keys after a rotation) and returns how
    /// many changed; repeat until 0, then retired keys may be removed.
    fn reencrypt(&self, limit: usize) -> BoxFuture<'_, Result<usize>>;

    /// The recorded revocation matching any hash of `lookup`, published or not.
    fn find_revocation<'a>(
        &'a self,
        lookup: &'a RevocationLookup,
    ) -> BoxFuture<'a, Result<Option<Revocation>>>;

    /// Records a revocation on its own (idempotent on the UVCI and signature hashes).
    fn record_revocation(&self, revocation: Revocation) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.transaction(TxRequest {
                revocations: vec![revocation],
                ..Default::default()
            })
            .await?;
            Ok(())
        })
    }

    /// The trust network bookkeeping (outbox, verified trust list), where the back
    /// end keeps it; wrappers that do not forward it have none.
    fn gateway(&self) -> Option<&dyn GatewayStore> {
        None
    }

    /// One-entry transaction updating the HCID's Folder; see [`FolderUpsert`].
    fn upsert_folder_for_hcid(&self, folder: FolderUpsert) -> BoxFuture<'_, Result<TxResult>> {
        Box::pin(async move {
            let mut r = self
                .transaction(TxRequest::new(vec![TxEntry {
                    full_url: None,
                    op: TxOp::Folder(folder),
                }]))
                .await?;
            r.pop()
                .ok_or_else(|| StoreError::Backend("empty transaction result".into()))
        })
    }
}
