//! The narrow SQL interface the shared store logic ([`crate::core`]) runs on. Both back
//! ends implement it: SQLite synchronously (its futures are always ready), PostgreSQL
//! asynchronously. The SQL text is the common subset of both dialects, with `$n`
//! placeholders.

use crate::StoreError;

/// A bound parameter or a column value. Nulls are typed because PostgreSQL checks a
/// parameter's Rust type against the column type even when the value is NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlVal {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    NullInt,
    NullText,
    NullBlob,
}

impl SqlVal {
    pub fn opt_int(v: Option<i64>) -> SqlVal {
        v.map_or(SqlVal::NullInt, SqlVal::Int)
    }
}

pub type Row = Vec<SqlVal>;

fn col(row: &Row, i: usize) -> Result<&SqlVal, StoreError> {
    row.get(i)
        .ok_or_else(|| StoreError::Corrupt(format!("missing column {i}")))
}

pub fn int(row: &Row, i: usize) -> Result<i64, StoreError> {
    match col(row, i)? {
        SqlVal::Int(v) => Ok(*v),
        other => Err(StoreError::Corrupt(format!(
            "column {i}: expected integer, got {other:?}"
        ))),
    }
}

pub fn text(row: &Row, i: usize) -> Result<String, StoreError> {
    match col(row, i)? {
        SqlVal::Text(v) => Ok(v.clone()),
        other => Err(StoreError::Corrupt(format!(
            "column {i}: expected text, got {other:?}"
        ))),
    }
}

pub fn opt_blob(row: &Row, i: usize) -> Result<Option<&[u8]>, StoreError> {
    match col(row, i)? {
        SqlVal::Blob(v) => Ok(Some(v)),
        SqlVal::NullInt | SqlVal::NullText | SqlVal::NullBlob => Ok(None),
        other => Err(StoreError::Corrupt(format!(
            "column {i}: expected bytes, got {other:?}"
        ))),
    }
}

pub trait Db {
    /// The keys bodies are sealed with and personal index values blinded with.
    fn keys(&self) -> &crate::crypto::DataKeys;

    /// `SELECT … FOR UPDATE` row locking where the database has it (PostgreSQL). SQLite
    /// needs none: its write transactions are `BEGIN IMMEDIATE`, which serialises all
    /// writers on the database file.
    fn for_update(&self) -> &'static str;

    /// Index hint for lookups of one resource's index rows. SQLite without statistics
    /// prefers `idx_val` when more of its columns are constrained, scanning every row with
    /// a common value (all `status=current`) instead of the few rows of one resource.
    fn per_resource_index_hint(&self) -> &'static str {
        ""
    }

    async fn query(&mut self, sql: &str, params: &[SqlVal]) -> Result<Vec<Row>, StoreError>;

    /// For SQL built from client input (search): the back end may decline to cache the
    /// prepared statement, so the variety of client queries cannot grow a cache forever.
    async fn query_dynamic(
        &mut self,
        sql: &str,
        params: &[SqlVal],
    ) -> Result<Vec<Row>, StoreError> {
        self.query(sql, params).await
    }

    async fn exec(&mut self, sql: &str, params: &[SqlVal]) -> Result<u64, StoreError>;
}
