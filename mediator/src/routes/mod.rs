//! All HTTP routes. Each module exposes `pub fn configure(cfg: &mut web::ServiceConfig)`
//! and is added to [`configure`] below. Handlers return `Result<_, ApiError>`
//! (see `crate::error`), take `AppState` and `Recorder` as extractors when they
//! need them, and never build OpenHIM envelopes (the pipeline does).

use actix_web::web;

pub mod issuing;
pub mod mapping;
pub mod ops;
pub mod registry;
pub mod validation;
pub mod verify;

/// Registers every route module of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(ops::configure);
    cfg.configure(mapping::configure);
    cfg.configure(issuing::configure);
    cfg.configure(validation::configure);
    cfg.configure(verify::configure);
    // Last: its `/fhir/{type}` patterns must not shadow the named routes above.
    cfg.configure(registry::configure);
    // Feature modules plug in here, one line each, e.g.:
    //   cfg.configure(ddcc::configure);   // /ddcc/...  (DDCC operations)
    //   cfg.configure(fhir::configure);   // /fhir/...  (FHIR API: metadata, mapping, store)
}
