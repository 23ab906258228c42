//! Store logic shared by both back ends, over [`Db`]. Every function here runs inside a
//! database transaction opened by the back end, so a sequence of statements is atomic.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::crypto::{DataKeys, BLIND_PREFIX};
use crate::ids::{check_id, check_type, new_id};
use crate::index::{self, IndexRow};
use crate::sql::{int, opt_blob, text, Db, Row, SqlVal};
use crate::time::{format_instant, now_ms};
use crate::{
    codec, refs, search, Claim, ClaimToken, Completed, FolderUpsert, PendingRevocation, Result,
    Revocation, RevocationLookup, SearchQuery, StoreError, Stored, TxOp, TxRequest, TxResult,
};

/// Versioned schema. `{INT}`, `{BLOB}` and `{SERIAL}` are filled per dialect. Never edit
/// a released step: add a new one, so existing databases migrate forward.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
    "CREATE TABLE res (rtype TEXT NOT NULL, id TEXT NOT NULL, version {INT} NOT NULL, lu TEXT NOT NULL, \
       lu_ms {INT} NOT NULL, deleted {INT} NOT NULL, body {BLOB}, PRIMARY KEY (rtype, id, version));
     CREATE TABLE cur (rtype TEXT NOT NULL, id TEXT NOT NULL, version {INT} NOT NULL, deleted {INT} NOT NULL, \
       lu_ms {INT} NOT NULL, PRIMARY KEY (rtype, id));
     CREATE INDEX cur_lu ON cur (rtype, lu_ms);
     CREATE TABLE idx (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, sys TEXT NOT NULL, \
       val TEXT NOT NULL, lo {INT}, hi {INT});
     CREATE INDEX idx_val ON idx (rtype, param, val, sys);
     CREATE INDEX idx_date ON idx (rtype, param, lo);
     CREATE INDEX idx_res ON idx (rtype, id, param);
     CREATE TABLE folders (hcid TEXT PRIMARY KEY, list_id TEXT NOT NULL);
     CREATE TABLE idem (k TEXT PRIMARY KEY, state TEXT NOT NULL, token TEXT NOT NULL, expires_ms {INT} NOT NULL, \
       result {BLOB});
     CREATE TABLE revocations (seq {SERIAL} PRIMARY KEY, uvci_hash TEXT NOT NULL, signature_hash TEXT NOT NULL, \
       country_code_uvci_hash TEXT NOT NULL, kid TEXT NOT NULL, revoked_at TEXT NOT NULL, document_id TEXT NOT NULL, \
       published_at TEXT, UNIQUE (uvci_hash, signature_hash));
     CREATE INDEX revocations_pending ON revocations (published_at, seq);",
    ),
    (
        // Trust network gateway: the upload outbox, the verified trust list, sync state
        // (crate::gateway).
        10,
        "CREATE TABLE gw_outbox (id {SERIAL} PRIMARY KEY, kind TEXT NOT NULL, dedup TEXT NOT NULL, payload TEXT NOT NULL, \
       state TEXT NOT NULL, attempts {INT} NOT NULL, next_ms {INT} NOT NULL, created_ms {INT} NOT NULL, \
       updated_ms {INT} NOT NULL, last_error TEXT);
     CREATE INDEX gw_outbox_due ON gw_outbox (state, next_ms, id);
     CREATE UNIQUE INDEX gw_outbox_pending ON gw_outbox (dedup) WHERE state = 'pending';
     CREATE TABLE gw_trust (grp TEXT NOT NULL, country TEXT NOT NULL, domain TEXT NOT NULL, thumbprint TEXT NOT NULL, \
       kid TEXT NOT NULL, der {BLOB} NOT NULL, PRIMARY KEY (grp, thumbprint));
     CREATE TABLE gw_state (k TEXT PRIMARY KEY, v TEXT NOT NULL);
     CREATE TABLE gw_revoked (batch_id TEXT NOT NULL, country TEXT NOT NULL, kid TEXT NOT NULL, \
       hash_type TEXT NOT NULL, hash TEXT NOT NULL);
     CREATE INDEX gw_revoked_batch ON gw_revoked (batch_id);",
    ),
    (
        20,
        // Encryption at rest: the data key that sealed each body (NULL = clear, written
        // before encryption existed), so a rotation pass finds what to re-seal.
        "ALTER TABLE res ADD COLUMN kid TEXT;
     CREATE INDEX res_kid ON res (kid);
     ALTER TABLE idem ADD COLUMN kid TEXT;",
    ),
];

/// Scope of the blind HCID in the `folders` table.
const FOLDER_SCOPE: &str = "folders.hcid";

/// Idempotency keys are event identifiers chosen by the caller; stored blind like any
/// other identifier.
fn idem_key(keys: &DataKeys, key: &str) -> String {
    keys.blind("idem.k", key)
}

fn idem_aad(blind_key: &str) -> Vec<u8> {
    format!("idem/{blind_key}").into_bytes()
}

pub struct Dialect {
    pub int: &'static str,
    pub blob: &'static str,
    pub serial: &'static str,
}

/// Applies missing migrations. The caller holds the back end's migration lock.
pub async fn migrate<D: Db>(db: &mut D, dialect: &Dialect) -> Result<()> {
    db.exec(
        &format!("CREATE TABLE IF NOT EXISTS schema_migrations (version {} PRIMARY KEY, applied_at TEXT NOT NULL)", dialect.int),
        &[],
    )
    .await?;
    let applied: HashSet<i64> = db
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| int(r, 0))
        .collect::<Result<_>>()?;
    for (version, script) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let script = script
            .replace("{INT}", dialect.int)
            .replace("{BLOB}", dialect.blob)
            .replace("{SERIAL}", dialect.serial);
        for stmt in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            db.exec(stmt, &[]).await?;
        }
        db.exec(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[
                SqlVal::Int(*version),
                SqlVal::Text(format_instant(now_ms())),
            ],
        )
        .await?;
    }
    Ok(())
}

fn stored_from(keys: &DataKeys, resource_type: &str, id: &str, row: &Row) -> Result<Stored> {
    // Columns: version, lu, deleted, body.
    let version_id = int(row, 0)?;
    let last_updated = text(row, 1)?;
    if int(row, 2)? != 0 {
        return Err(StoreError::Gone {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            version_id,
        });
    }
    let body = opt_blob(row, 3)?
        .ok_or_else(|| StoreError::Corrupt(format!("{resource_type}/{id} has no body")))?;
    Ok(Stored {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        version_id,
        last_updated,
        resource: codec::decode(
            keys,
            &codec::resource_aad(resource_type, id, version_id),
            body,
        )?,
    })
}

fn not_found(resource_type: &str, id: &str) -> StoreError {
    StoreError::NotFound {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
    }
}

pub async fn read<D: Db>(db: &mut D, resource_type: &str, id: &str) -> Result<Stored> {
    check_type(resource_type)?;
    check_id(id)?;
    let rows = db
        .query(
            "SELECT r.version, r.lu, r.deleted, r.body FROM cur c JOIN res r \
             ON r.rtype = c.rtype AND r.id = c.id AND r.version = c.version WHERE c.rtype = $1 AND c.id = $2",
            &[SqlVal::Text(resource_type.to_owned()), SqlVal::Text(id.to_owned())],
        )
        .await?;
    let row = rows.first().ok_or_else(|| not_found(resource_type, id))?;
    stored_from(db.keys(), resource_type, id, row)
}

pub async fn vread<D: Db>(
    db: &mut D,
    resource_type: &str,
    id: &str,
    version: i64,
) -> Result<Stored> {
    check_type(resource_type)?;
    check_id(id)?;
    let rows = db
        .query(
            "SELECT version, lu, deleted, body FROM res WHERE rtype = $1 AND id = $2 AND version = $3",
            &[SqlVal::Text(resource_type.to_owned()), SqlVal::Text(id.to_owned()), SqlVal::Int(version)],
        )
        .await?;
    let row = rows.first().ok_or_else(|| not_found(resource_type, id))?;
    stored_from(db.keys(), resource_type, id, row)
}

pub async fn history<D: Db>(db: &mut D, resource_type: &str, id: &str) -> Result<Vec<Stored>> {
    check_type(resource_type)?;
    check_id(id)?;
    let rows = db
        .query(
            "SELECT version, lu, deleted, body FROM res WHERE rtype = $1 AND id = $2 ORDER BY version DESC",
            &[SqlVal::Text(resource_type.to_owned()), SqlVal::Text(id.to_owned())],
        )
        .await?;
    if rows.is_empty() {
        return Err(not_found(resource_type, id));
    }
    rows.iter()
        .map(|row| match stored_from(db.keys(), resource_type, id, row) {
            Err(StoreError::Gone { version_id, .. }) => Ok(Stored {
                resource_type: resource_type.to_owned(),
                id: id.to_owned(),
                version_id,
                last_updated: text(row, 1)?,
                resource: Value::Null,
            }),
            other => other,
        })
        .collect()
}

pub async fn search<D: Db>(
    db: &mut D,
    resource_type: &str,
    query: &SearchQuery,
) -> Result<Vec<Stored>> {
    let mut parsed = search::parse(resource_type, query)?;
    // Personal values are indexed blind; the query must look for the same blind value.
    let keys = db.keys();
    search::blind_values(&mut parsed, &|rt, param, v| {
        index::is_personal(rt, param).then(|| keys.blind(&index::blind_scope(rt, param), v))
    });
    if parsed.count == 0 {
        return Ok(Vec::new());
    }
    let sql = search::compile(&parsed, db.per_resource_index_hint());
    let rows = db.query_dynamic(&sql.text, &sql.params).await?;
    rows.iter()
        .map(|row| {
            let id = text(row, 0)?;
            stored_from(db.keys(), resource_type, &id, &row[1..].to_vec())
        })
        .collect()
}

/// Checks that `resource` is a JSON object of `resource_type` and returns its map.
fn resource_object<'v>(
    resource: &'v mut Value,
    expected_type: Option<&str>,
) -> Result<(String, &'v mut Map<String, Value>)> {
    refs::check_depth(resource)?;
    let obj = resource
        .as_object_mut()
        .ok_or_else(|| StoreError::InvalidResource("a resource must be a JSON object".into()))?;
    let rt = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::InvalidResource("missing resourceType".into()))?
        .to_owned();
    check_type(&rt)?;
    if let Some(t) = expected_type {
        if t != rt {
            return Err(StoreError::InvalidResource(format!(
                "resourceType {rt} does not match {t}"
            )));
        }
    }
    Ok((rt, obj))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Update { if_match: Option<i64> },
}

struct Current {
    version: i64,
    deleted: bool,
    lu_ms: i64,
}

async fn current<D: Db>(db: &mut D, resource_type: &str, id: &str) -> Result<Option<Current>> {
    let sql = format!(
        "SELECT version, deleted, lu_ms FROM cur WHERE rtype = $1 AND id = $2{}",
        db.for_update()
    );
    let rows = db
        .query(
            &sql,
            &[
                SqlVal::Text(resource_type.to_owned()),
                SqlVal::Text(id.to_owned()),
            ],
        )
        .await?;
    rows.first()
        .map(|r| {
            Ok(Current {
                version: int(r, 0)?,
                deleted: int(r, 1)? != 0,
                lu_ms: int(r, 2)?,
            })
        })
        .transpose()
}

async fn replace_index<D: Db>(
    db: &mut D,
    resource_type: &str,
    id: &str,
    rows: &[IndexRow],
) -> Result<()> {
    let key = [
        SqlVal::Text(resource_type.to_owned()),
        SqlVal::Text(id.to_owned()),
    ];
    db.exec("DELETE FROM idx WHERE rtype = $1 AND id = $2", &key)
        .await?;
    let keys = db.keys();
    let rows: Vec<IndexRow> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if index::is_personal(resource_type, r.param) {
                r.val = keys.blind(&index::blind_scope(resource_type, r.param), &r.val);
            }
            r
        })
        .collect();
    // Multi-row INSERTs in chunks: one round trip per chunk instead of per row, and well
    // under both databases' parameter limits.
    for chunk in rows.chunks(100) {
        let mut params = Vec::with_capacity(chunk.len() * 7);
        let mut values = Vec::with_capacity(chunk.len());
        for r in chunk {
            let b = params.len();
            values.push(format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
            params.extend([
                key[0].clone(),
                key[1].clone(),
                SqlVal::Text(r.param.to_owned()),
                SqlVal::Text(r.sys.clone()),
                SqlVal::Text(r.val.clone()),
                SqlVal::opt_int(r.lo),
                SqlVal::opt_int(r.hi),
            ]);
        }
        let sql = format!(
            "INSERT INTO idx (rtype, id, param, sys, val, lo, hi) VALUES {}",
            values.join(", ")
        );
        db.exec(&sql, &params).await?;
    }
    Ok(())
}

/// Writes a new version of `resource_type/id`, setting `id` and `meta` in the body.
async fn write_version<D: Db>(
    db: &mut D,
    resource_type: &str,
    id: &str,
    mut resource: Value,
    mode: Mode,
) -> Result<(Stored, u16)> {
    check_id(id)?;
    let cur = current(db, resource_type, id).await?;
    match (mode, &cur) {
        (Mode::Create, Some(_)) => {
            return Err(StoreError::AlreadyExists {
                resource_type: resource_type.to_owned(),
                id: id.to_owned(),
            })
        }
        (
            Mode::Update {
                if_match: Some(expected),
            },
            c,
        ) => {
            let actual = c.as_ref().filter(|c| !c.deleted).map(|c| c.version);
            if actual != Some(expected) {
                return Err(StoreError::VersionConflict {
                    resource_type: resource_type.to_owned(),
                    id: id.to_owned(),
                    expected,
                    actual,
                });
            }
        }
        _ => {}
    }
    let version = cur.as_ref().map_or(1, |c| c.version + 1);
    // lastUpdated never goes backwards for one resource, even if instances' clocks differ.
    let lu_ms = now_ms().max(cur.as_ref().map_or(i64::MIN, |c| c.lu_ms + 1));
    let lu = format_instant(lu_ms);
    {
        let (_, obj) = resource_object(&mut resource, Some(resource_type))?;
        obj.insert("id".into(), Value::String(id.to_owned()));
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(m) = meta {
            m.insert("versionId".into(), Value::String(version.to_string()));
            m.insert("lastUpdated".into(), Value::String(lu.clone()));
        }
    }
    let body = codec::encode(
        db.keys(),
        &codec::resource_aad(resource_type, id, version),
        &resource,
    )?;
    let kid = db.keys().current_id().to_owned();
    db.exec(
        "INSERT INTO res (rtype, id, version, lu, lu_ms, deleted, body, kid) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        &[
            SqlVal::Text(resource_type.to_owned()),
            SqlVal::Text(id.to_owned()),
            SqlVal::Int(version),
            SqlVal::Text(lu.clone()),
            SqlVal::Int(lu_ms),
            SqlVal::Blob(body),
            SqlVal::Text(kid),
        ],
    )
    .await?;
    db.exec(
        "INSERT INTO cur (rtype, id, version, deleted, lu_ms) VALUES ($1, $2, $3, 0, $4) \
         ON CONFLICT (rtype, id) DO UPDATE SET version = excluded.version, deleted = 0, lu_ms = excluded.lu_ms",
        &[SqlVal::Text(resource_type.to_owned()), SqlVal::Text(id.to_owned()), SqlVal::Int(version), SqlVal::Int(lu_ms)],
    )
    .await?;
    let mut rows = index::extract(resource_type, &resource);
    rows.push(IndexRow {
        param: "_lastUpdated",
        sys: String::new(),
        val: String::new(),
        lo: Some(lu_ms),
        hi: Some(lu_ms),
    });
    replace_index(db, resource_type, id, &rows).await?;
    let status = if cur.as_ref().is_some_and(|c| !c.deleted) {
        200
    } else {
        201
    };
    Ok((
        Stored {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            version_id: version,
            last_updated: lu,
            resource,
        },
        status,
    ))
}

pub async fn create<D: Db>(db: &mut D, mut resource: Value) -> Result<Stored> {
    let (rt, _) = resource_object(&mut resource, None)?;
    Ok(write_version(db, &rt, &new_id(), resource, Mode::Create)
        .await?
        .0)
}

pub async fn update<D: Db>(
    db: &mut D,
    resource_type: &str,
    id: &str,
    mut resource: Value,
    if_match: Option<i64>,
) -> Result<Stored> {
    check_type(resource_type)?;
    check_id(id)?;
    resource_object(&mut resource, Some(resource_type))?;
    if let Some(body_id) = resource.get("id") {
        if body_id.as_str() != Some(id) {
            return Err(StoreError::InvalidResource(format!(
                "resource id does not match the URL id {id}"
            )));
        }
    }
    Ok(
        write_version(db, resource_type, id, resource, Mode::Update { if_match })
            .await?
            .0,
    )
}

pub async fn delete<D: Db>(db: &mut D, resource_type: &str, id: &str) -> Result<(i64, String)> {
    check_type(resource_type)?;
    check_id(id)?;
    let cur = current(db, resource_type, id)
        .await?
        .ok_or_else(|| not_found(resource_type, id))?;
    if cur.deleted {
        let rows = db
            .query(
                "SELECT lu FROM res WHERE rtype = $1 AND id = $2 AND version = $3",
                &[
                    SqlVal::Text(resource_type.to_owned()),
                    SqlVal::Text(id.to_owned()),
                    SqlVal::Int(cur.version),
                ],
            )
            .await?;
        let lu = rows
            .first()
            .map(|r| text(r, 0))
            .transpose()?
            .unwrap_or_default();
        return Ok((cur.version, lu));
    }
    let version = cur.version + 1;
    let lu_ms = now_ms().max(cur.lu_ms + 1);
    let lu = format_instant(lu_ms);
    let key = [
        SqlVal::Text(resource_type.to_owned()),
        SqlVal::Text(id.to_owned()),
    ];
    db.exec(
        "INSERT INTO res (rtype, id, version, lu, lu_ms, deleted, body) VALUES ($1, $2, $3, $4, $5, 1, $6)",
        &[key[0].clone(), key[1].clone(), SqlVal::Int(version), SqlVal::Text(lu.clone()), SqlVal::Int(lu_ms), SqlVal::NullBlob],
    )
    .await?;
    db.exec(
        "UPDATE cur SET version = $3, deleted = 1, lu_ms = $4 WHERE rtype = $1 AND id = $2",
        &[
            key[0].clone(),
            key[1].clone(),
            SqlVal::Int(version),
            SqlVal::Int(lu_ms),
        ],
    )
    .await?;
    db.exec("DELETE FROM idx WHERE rtype = $1 AND id = $2", &key)
        .await?;
    Ok((version, lu))
}

fn tx_result(s: &Stored, status: u16) -> TxResult {
    TxResult {
        resource_type: s.resource_type.clone(),
        id: s.id.clone(),
        version_id: s.version_id,
        location: s.location(),
        status,
        etag: s.etag(),
        last_updated: s.last_updated.clone(),
    }
}

/// Finds, or reserves, the List id of the HCID's folder and locks the mapping row.
///
/// PostgreSQL: `INSERT … ON CONFLICT DO NOTHING` makes a concurrent second inserter wait
/// for the first transaction and then see its row; `SELECT … FOR UPDATE` then holds the
/// row lock until commit, so the read-modify-write of the List below is serialised per
/// HCID while different HCIDs proceed in parallel. SQLite: the whole transaction already
/// runs under `BEGIN IMMEDIATE`, the database-wide write lock.
async fn lock_folder<D: Db>(db: &mut D, hcid: &str) -> Result<(String, bool)> {
    let h = SqlVal::Text(db.keys().blind(FOLDER_SCOPE, hcid));
    let fresh = new_id();
    let inserted = db
        .query(
            "INSERT INTO folders (hcid, list_id) VALUES ($1, $2) ON CONFLICT (hcid) DO NOTHING RETURNING list_id",
            &[h.clone(), SqlVal::Text(fresh)],
        )
        .await?;
    if let Some(row) = inserted.first() {
        return Ok((text(row, 0)?, true));
    }
    let sql = format!(
        "SELECT list_id FROM folders WHERE hcid = $1{}",
        db.for_update()
    );
    let rows = db.query(&sql, &[h]).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Backend("folder row for an HCID vanished".into()))?;
    Ok((text(row, 0)?, false))
}

fn entry_refs(list: &Value) -> Vec<String> {
    list.get("entry")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .filter_map(|e| {
                    e.pointer("/item/reference")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn folder_body<D: Db>(
    db: &mut D,
    list_id: &str,
    created: bool,
    f: &FolderUpsert,
) -> Result<Value> {
    let existing = if created {
        None
    } else {
        match read(db, "List", list_id).await {
            Ok(s) => Some(s.resource),
            // A deleted or missing List behind a folder row is recreated from the template.
            Err(StoreError::Gone { .. } | StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        }
    };
    let mut list = match existing {
        Some(l) => l,
        None => {
            let mut t = f.template.clone();
            resource_object(&mut t, Some("List"))?;
            // The Folder must be findable by its HCID (ITI-66 `identifier=`); a template
            // without it would create a folder that later lookups never find.
            let has_hcid = index::select(&t, "identifier")
                .iter()
                .any(|i| i.get("value").and_then(Value::as_str) == Some(f.hcid.as_str()));
            if !has_hcid {
                return Err(StoreError::InvalidResource(
                    "Folder template identifier must carry the HCID".into(),
                ));
            }
            t
        }
    };
    let mut refs = entry_refs(&list);
    let obj = list
        .as_object_mut()
        .ok_or_else(|| StoreError::InvalidResource("folder List must be an object".into()))?;
    let mut entries: Vec<Value> = match obj.remove("entry") {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let remove: HashSet<&str> = f.remove.iter().map(String::as_str).collect();
    entries.retain(|e| {
        !e.pointer("/item/reference")
            .and_then(Value::as_str)
            .is_some_and(|r| remove.contains(r))
    });
    refs.retain(|r| !remove.contains(r.as_str()));
    for r in &f.add {
        if !refs.contains(r) && !remove.contains(r.as_str()) {
            refs.push(r.clone());
            entries.push(serde_json::json!({ "item": { "reference": r } }));
        }
    }
    obj.insert("entry".into(), Value::Array(entries));
    Ok(list)
}

fn check_full_url(u: &str) -> Result<()> {
    if u.len() > 512 {
        return Err(StoreError::InvalidResource(
            "fullUrl longer than 512 characters".into(),
        ));
    }
    Ok(())
}

/// The strings that name an entry: its fullUrl, and for an absolute
/// `http(s)://base/Type/id` fullUrl also the relative `Type/id` that other entries use
/// (FHIR resolves relative references against the entry's base).
fn full_url_aliases(u: &str, rt: &str) -> Vec<String> {
    let mut keys = vec![u.to_owned()];
    if u.starts_with("http://") || u.starts_with("https://") {
        let (t, id) = index::split_reference(u);
        if t == rt && crate::ids::check_id(&id).is_ok() {
            keys.push(format!("{t}/{id}"));
        }
    }
    keys
}

pub async fn transaction<D: Db>(db: &mut D, req: TxRequest) -> Result<Vec<TxResult>> {
    // Pass 1, no I/O: validate entries and assign ids, so every fullUrl maps to its final
    // `Type/id` before any resource is rewritten.
    let mut map: HashMap<String, String> = HashMap::new();
    let mut planned: Vec<(String, String)> = Vec::with_capacity(req.entries.len());
    let mut entries = req.entries;
    for e in entries.iter_mut() {
        let (rt, id) = match &mut e.op {
            TxOp::Create { resource } => {
                let (rt, _) = resource_object(resource, None)?;
                (rt, new_id())
            }
            TxOp::Update {
                resource_type,
                id,
                resource,
                ..
            } => {
                check_type(resource_type)?;
                check_id(id)?;
                resource_object(resource, Some(resource_type))?;
                (resource_type.clone(), id.clone())
            }
            TxOp::Delete { resource_type, id } => {
                check_type(resource_type)?;
                check_id(id)?;
                (resource_type.clone(), id.clone())
            }
            TxOp::Folder(f) => {
                if f.hcid.is_empty() || f.hcid.len() > 256 {
                    return Err(StoreError::InvalidResource(
                        "HCID must be 1..=256 characters".into(),
                    ));
                }
                ("List".to_owned(), String::new())
            }
        };
        if let Some(u) = &e.full_url {
            check_full_url(u)?;
        }
        planned.push((rt, id));
    }
    // Pass 2: folder ids come from the database (locking the folder rows).
    for (e, (_, id)) in entries.iter().zip(planned.iter_mut()) {
        if let TxOp::Folder(f) = &e.op {
            let (list_id, created) = lock_folder(db, &f.hcid).await?;
            *id = format!("{}{list_id}", if created { "+" } else { "" });
        }
    }
    for (e, (rt, id)) in entries.iter().zip(planned.iter()) {
        if let Some(u) = &e.full_url {
            let target = format!("{rt}/{}", id.trim_start_matches('+'));
            for key in full_url_aliases(u, rt) {
                if map.insert(key, target.clone()).is_some() {
                    return Err(StoreError::DuplicateFullUrl(u.chars().take(80).collect()));
                }
            }
        }
    }
    // Pass 3: rewrite references and write, in request order.
    let mut results = Vec::with_capacity(entries.len());
    for (e, (rt, id)) in entries.into_iter().zip(planned) {
        let r = match e.op {
            TxOp::Create { mut resource } => {
                refs::rewrite(&mut resource, &map)?;
                let (s, _) = write_version(db, &rt, &id, resource, Mode::Create).await?;
                tx_result(&s, 201)
            }
            TxOp::Update {
                mut resource,
                if_match,
                ..
            } => {
                refs::rewrite(&mut resource, &map)?;
                if resource
                    .get("id")
                    .is_some_and(|v| v.as_str() != Some(id.as_str()))
                {
                    return Err(StoreError::InvalidResource(format!(
                        "resource id does not match {rt}/{id}"
                    )));
                }
                let (s, status) =
                    write_version(db, &rt, &id, resource, Mode::Update { if_match }).await?;
                tx_result(&s, status)
            }
            TxOp::Delete { .. } => {
                let (version, lu) = delete(db, &rt, &id).await?;
                TxResult {
                    location: format!("{rt}/{id}"),
                    resource_type: rt,
                    id,
                    version_id: version,
                    status: 204,
                    etag: format!("W/\"{version}\""),
                    last_updated: lu,
                }
            }
            TxOp::Folder(mut f) => {
                let created = id.starts_with('+');
                let list_id = id.trim_start_matches('+');
                for r in f.add.iter_mut().chain(f.remove.iter_mut()) {
                    if let Some(t) = map.get(r.as_str()) {
                        *r = t.clone();
                    } else if r.starts_with("urn:uuid:") {
                        return Err(StoreError::BrokenReference(r.chars().take(80).collect()));
                    }
                }
                let mut list = folder_body(db, list_id, created, &f).await?;
                refs::rewrite(&mut list, &map)?;
                let (s, status) =
                    write_version(db, "List", list_id, list, Mode::Update { if_match: None })
                        .await?;
                tx_result(&s, status)
            }
        };
        results.push(r);
    }
    for rev in &req.revocations {
        insert_revocation(db, rev).await?;
    }
    if let Some(kc) = req.complete_key {
        let mut value = kc.value;
        refs::rewrite_all_strings(&mut value, &map, 0);
        let completed = Completed {
            value,
            results: results.clone(),
        };
        let plain = serde_json::to_vec(&completed).map_err(|e| StoreError::Codec(e.to_string()))?;
        let k = idem_key(db.keys(), &kc.claim.key);
        let bytes = db.keys().seal(&idem_aad(&k), &plain)?;
        let kid = db.keys().current_id().to_owned();
        let n = db
            .exec(
                "UPDATE idem SET state = 'done', result = $3, expires_ms = 0, kid = $4 WHERE k = $1 AND token = $2 AND state = 'claimed'",
                &[SqlVal::Text(k), SqlVal::Text(kc.claim.token), SqlVal::Blob(bytes), SqlVal::Text(kid)],
            )
            .await?;
        if n != 1 {
            // Someone took the key over after our claim expired: committing would issue a
            // second certificate for the same event, so the whole transaction fails.
            return Err(StoreError::ClaimLost(kc.claim.key));
        }
    }
    Ok(results)
}

async fn insert_revocation<D: Db>(db: &mut D, r: &Revocation) -> Result<()> {
    db.exec(
        "INSERT INTO revocations (uvci_hash, signature_hash, country_code_uvci_hash, kid, revoked_at, document_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (uvci_hash, signature_hash) DO NOTHING",
        &[
            SqlVal::Text(r.uvci_hash.clone()),
            SqlVal::Text(r.signature_hash.clone()),
            SqlVal::Text(r.country_code_uvci_hash.clone()),
            SqlVal::Text(r.kid.clone()),
            SqlVal::Text(r.revoked_at.clone()),
            SqlVal::Text(r.document_id.clone()),
        ],
    )
    .await?;
    Ok(())
}

pub async fn claim_key<D: Db>(db: &mut D, key: &str, ttl_ms: i64) -> Result<Claim> {
    if key.is_empty() || key.len() > 512 {
        return Err(StoreError::InvalidResource(
            "idempotency key must be 1..=512 bytes".into(),
        ));
    }
    let now = now_ms();
    let token = new_id();
    let expires = now.saturating_add(ttl_ms.max(0));
    let k = SqlVal::Text(idem_key(db.keys(), key));
    // The primary key on `k` is what makes this safe across instances: exactly one
    // INSERT wins, whatever the interleaving.
    let n = db
        .exec(
            "INSERT INTO idem (k, state, token, expires_ms, result) VALUES ($1, 'claimed', $2, $3, $4) ON CONFLICT (k) DO NOTHING",
            &[k.clone(), SqlVal::Text(token.clone()), SqlVal::Int(expires), SqlVal::NullBlob],
        )
        .await?;
    if n == 1 {
        return Ok(Claim::Claimed(ClaimToken {
            key: key.to_owned(),
            token,
        }));
    }
    let rows = db
        .query(
            "SELECT state, result FROM idem WHERE k = $1",
            std::slice::from_ref(&k),
        )
        .await?;
    if let Some(row) = rows.first() {
        if text(row, 0)? == "done" {
            let bytes = opt_blob(row, 1)?
                .ok_or_else(|| StoreError::Corrupt(format!("key {key} done without result")))?;
            let aad = idem_aad(&idem_key(db.keys(), key));
            let plain = db.keys().open(&aad, bytes)?;
            let c: Completed =
                serde_json::from_slice(&plain).map_err(|e| StoreError::Codec(e.to_string()))?;
            return Ok(Claim::Existing(c));
        }
    }
    // Take over an expired claim; the condition makes the takeover itself race-free.
    let n = db
        .exec(
            "UPDATE idem SET token = $2, expires_ms = $3 WHERE k = $1 AND state = 'claimed' AND expires_ms < $4",
            &[k, SqlVal::Text(token.clone()), SqlVal::Int(expires), SqlVal::Int(now)],
        )
        .await?;
    if n == 1 {
        Ok(Claim::Claimed(ClaimToken {
            key: key.to_owned(),
            token,
        }))
    } else {
        Ok(Claim::InProgress)
    }
}

pub async fn release_key<D: Db>(db: &mut D, c: &ClaimToken) -> Result<()> {
    db.exec(
        "DELETE FROM idem WHERE k = $1 AND token = $2 AND state = 'claimed'",
        &[
            SqlVal::Text(idem_key(db.keys(), &c.key)),
            SqlVal::Text(c.token.clone()),
        ],
    )
    .await?;
    Ok(())
}

pub async fn pending_revocations<D: Db>(
    db: &mut D,
    limit: usize,
) -> Result<Vec<PendingRevocation>> {
    let limit = limit.min(100_000);
    let rows = db
        .query(
            &format!(
                "SELECT seq, uvci_hash, signature_hash, country_code_uvci_hash, kid, revoked_at, document_id \
                 FROM revocations WHERE published_at IS NULL ORDER BY seq LIMIT {limit}"
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingRevocation {
                seq: int(r, 0)?,
                revocation: Revocation {
                    uvci_hash: text(r, 1)?,
                    signature_hash: text(r, 2)?,
                    country_code_uvci_hash: text(r, 3)?,
                    kid: text(r, 4)?,
                    revoked_at: text(r, 5)?,
                    document_id: text(r, 6)?,
                },
            })
        })
        .collect()
}

pub async fn find_revocation<D: Db>(
    db: &mut D,
    lookup: &RevocationLookup,
) -> Result<Option<Revocation>> {
    // uvci_hash leads the UNIQUE index; the other two are rarely the only match.
    let rows = db
        .query(
            "SELECT uvci_hash, signature_hash, country_code_uvci_hash, kid, revoked_at, document_id \
             FROM revocations WHERE uvci_hash = $1 OR country_code_uvci_hash = $2 OR signature_hash = $3 \
             ORDER BY seq LIMIT 1",
            &[
                SqlVal::Text(lookup.uvci_hash.clone()),
                SqlVal::Text(lookup.country_code_uvci_hash.clone()),
                SqlVal::Text(lookup.signature_hash.clone()),
            ],
        )
        .await?;
    rows.first()
        .map(|r| {
            Ok(Revocation {
                uvci_hash: text(r, 0)?,
                signature_hash: text(r, 1)?,
                country_code_uvci_hash: text(r, 2)?,
                kid: text(r, 3)?,
                revoked_at: text(r, 4)?,
                document_id: text(r, 5)?,
            })
        })
        .transpose()
}

pub async fn mark_published<D: Db>(db: &mut D, seqs: &[i64], at: &str) -> Result<u64> {
    let mut total = 0;
    for chunk in seqs.chunks(500) {
        let mut params = vec![SqlVal::Text(at.to_owned())];
        let list: Vec<String> = chunk
            .iter()
            .map(|s| {
                params.push(SqlVal::Int(*s));
                format!("${}", params.len())
            })
            .collect();
        total += db
            .exec(
                &format!("UPDATE revocations SET published_at = $1 WHERE published_at IS NULL AND seq IN ({})", list.join(", ")),
                &params,
            )
            .await?;
    }
    Ok(total)
}

/// Re-seals up to `limit` records that are clear (written before encryption existed) or
/// sealed with a data key other than the current one; returns how many it changed, so a
/// caller repeats until 0. Clear records also get their personal index rows, folder
/// HCIDs and idempotency keys replaced by blind values. Runs in one transaction per
/// batch, so a crash mid-pass leaves every record readable under some configured key.
pub async fn reencrypt<D: Db>(db: &mut D, limit: usize) -> Result<usize> {
    let limit = limit.clamp(1, 10_000);
    let current = SqlVal::Text(db.keys().current_id().to_owned());
    let mut changed = 0;
    let rows = db
        .query(
            &format!(
                // `kid < $1 OR kid > $1` rather than `<>`: both databases answer
                // the ranges from the `res_kid` index, so a store with nothing to
                // re-seal is not scanned whole at every start-up.
                "SELECT rtype, id, version, body, kid FROM res WHERE body IS NOT NULL \
                 AND (kid IS NULL OR kid < $1 OR kid > $1) LIMIT {limit}"
            ),
            std::slice::from_ref(&current),
        )
        .await?;
    for row in &rows {
        let (rt, id, version) = (text(row, 0)?, text(row, 1)?, int(row, 2)?);
        let body = opt_blob(row, 3)?.unwrap_or_default();
        let was_clear = matches!(row.get(4), Some(SqlVal::NullInt | SqlVal::NullText));
        let aad = codec::resource_aad(&rt, &id, version);
        let resource = codec::decode(db.keys(), &aad, body)?;
        let sealed = codec::encode(db.keys(), &aad, &resource)?;
        db.exec(
            "UPDATE res SET body = $4, kid = $5 WHERE rtype = $1 AND id = $2 AND version = $3",
            &[
                SqlVal::Text(rt.clone()),
                SqlVal::Text(id.clone()),
                SqlVal::Int(version),
                SqlVal::Blob(sealed),
                current.clone(),
            ],
        )
        .await?;
        if was_clear {
            let is_current = current_version(db, &rt, &id).await? == Some(version);
            if is_current {
                replace_index(db, &rt, &id, &index::extract(&rt, &resource)).await?;
            }
        }
        changed += 1;
    }
    let like = SqlVal::Text(format!("{BLIND_PREFIX}%"));
    let idem = db
        .query(
            &format!(
                "SELECT k, result FROM idem WHERE k NOT LIKE $2 \
                 OR (result IS NOT NULL AND (kid IS NULL OR kid <> $1)) LIMIT {limit}"
            ),
            &[current.clone(), like.clone()],
        )
        .await?;
    for row in &idem {
        let k = text(row, 0)?;
        let (blind_k, plain) = if k.starts_with(BLIND_PREFIX) {
            let plain = match opt_blob(row, 1)? {
                Some(b) => Some(db.keys().open(&idem_aad(&k), b)?),
                None => None,
            };
            (k.clone(), plain)
        } else {
            // Clear key and clear result, from before encryption.
            (
                idem_key(db.keys(), &k),
                opt_blob(row, 1)?.map(<[u8]>::to_vec),
            )
        };
        let (result, kid) = match plain {
            Some(p) => (
                SqlVal::Blob(db.keys().seal(&idem_aad(&blind_k), &p)?),
                current.clone(),
            ),
            None => (SqlVal::NullBlob, SqlVal::NullText),
        };
        db.exec(
            "UPDATE idem SET k = $2, result = $3, kid = $4 WHERE k = $1",
            &[SqlVal::Text(k), SqlVal::Text(blind_k), result, kid],
        )
        .await?;
        changed += 1;
    }
    let folders = db
        .query(
            &format!("SELECT hcid FROM folders WHERE hcid NOT LIKE $1 LIMIT {limit}"),
            std::slice::from_ref(&like),
        )
        .await?;
    for row in &folders {
        let hcid = text(row, 0)?;
        let blind = db.keys().blind(FOLDER_SCOPE, &hcid);
        db.exec(
            "UPDATE folders SET hcid = $2 WHERE hcid = $1",
            &[SqlVal::Text(hcid), SqlVal::Text(blind)],
        )
        .await?;
        changed += 1;
    }
    Ok(changed)
}

async fn current_version<D: Db>(db: &mut D, resource_type: &str, id: &str) -> Result<Option<i64>> {
    let rows = db
        .query(
            "SELECT version FROM cur WHERE rtype = $1 AND id = $2",
            &[
                SqlVal::Text(resource_type.to_owned()),
                SqlVal::Text(id.to_owned()),
            ],
        )
        .await?;
    rows.first().map(|r| int(r, 0)).transpose()
}
