//! ddcc-mediator: an OpenHIM mediator and FHIR integration hub issuing WHO DDCC
//! certificates. See `server::build_app` for how the pieces fit together.

pub mod artefacts;
pub mod audit;
pub mod auth;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod config;
pub mod data_keys;
pub mod error;
pub mod fhir_server;
pub mod gateway;
pub mod keys;
pub mod mapping;
pub mod metrics;
pub mod openhim;
pub mod pipeline;
pub mod readiness;
pub mod registry;
pub mod routes;
pub mod rules;
pub mod server;
pub mod services;
pub mod state;
pub mod telemetry;
pub mod validation;

pub use config::Config;
pub use error::{ApiError, Issue};
pub use openhim::{MediatorStatus, Orchestration, Recorder};
pub use state::AppState;

/// Seconds since the Unix epoch, the one clock reading the service takes.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
