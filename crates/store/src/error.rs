use thiserror::Error;

/// Everything the store can refuse or fail with. Client mistakes are distinct variants so
/// the HTTP layer maps them to 4xx OperationOutcomes ([`StoreError::http_status`]);
/// `Backend`/`Codec`/`Corrupt` are server faults.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("unknown resource type `{0}`")]
    UnknownResourceType(String),
    #[error("invalid resource id `{0}`")]
    InvalidId(String),
    #[error("invalid resource: {0}")]
    InvalidResource(String),
    #[error("{resource_type}/{id} not found")]
    NotFound { resource_type: String, id: String },
    #[error("{resource_type}/{id} was deleted (version {version_id})")]
    Gone {
        resource_type: String,
        id: String,
        version_id: i64,
    },
    #[error("version conflict on {resource_type}/{id}: If-Match {expected}, current {actual:?}")]
    VersionConflict {
        resource_type: String,
        id: String,
        expected: i64,
        actual: Option<i64>,
    },
    #[error("{resource_type}/{id} already exists")]
    AlreadyExists { resource_type: String, id: String },
    #[error("unsupported search parameter `{0}`")]
    UnsupportedSearchParam(String),
    #[error("invalid value for search parameter `{param}`: {reason}")]
    InvalidSearchValue { param: String, reason: String },
    #[error("reference `{0}` is not defined in the transaction")]
    BrokenReference(String),
    #[error("fullUrl `{0}` appears more than once in the transaction")]
    DuplicateFullUrl(String),
    #[error("idempotency key `{0}` is not held by this claim (expired and taken over, or never claimed)")]
    ClaimLost(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("body codec: {0}")]
    Codec(String),
    #[error("database: {0}")]
    Backend(String),
    #[error("encryption at rest: {0}")]
    Crypto(String),
    /// An external FHIR server behind the store answered with a server error (HTTP 502):
    /// unlike `Backend`, it was reachable, so waiting alone may not help.
    #[error("FHIR server: {0}")]
    Upstream(String),
}

impl StoreError {
    /// The HTTP status a FHIR server answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            // 404 as for an unknown endpoint `/fhir/Foo`: what FHIR servers answer, and
            // what the DDCC compliance suite expects for a body of an unknown type.
            StoreError::UnknownResourceType(_) => 404,
            StoreError::InvalidId(_)
            | StoreError::InvalidResource(_)
            | StoreError::UnsupportedSearchParam(_)
            | StoreError::InvalidSearchValue { .. }
            | StoreError::BrokenReference(_)
            | StoreError::DuplicateFullUrl(_) => 400,
            StoreError::NotFound { .. } => 404,
            StoreError::Gone { .. } => 410,
            StoreError::AlreadyExists { .. } | StoreError::ClaimLost(_) => 409,
            StoreError::VersionConflict { .. } => 412,
            StoreError::Corrupt(_)
            | StoreError::Codec(_)
            | StoreError::Backend(_)
            | StoreError::Crypto(_) => 500,
            StoreError::Upstream(_) => 502,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The bare Display of a server error is only "db error"; the source carries the
        // message an operator needs.
        match e.as_db_error() {
            Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
            None => StoreError::Backend(e.to_string()),
        }
    }
}
