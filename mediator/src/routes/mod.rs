//! All HTTP routes. Each module exposes `pub fn configure(cfg: &mut web::ServiceConfig)`
//! and is added to [`configure`] below. Handlers return `Result<_, ApiError>`
//! (see `crate::error`), take `AppState` and `Recorder` as extractors when they
//! need them, and never build OpenHIM envelopes (the pipeline does).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde_json::Value;

use crate::error::{ApiError, FHIR_JSON};

pub mod artefacts;
pub mod gateway_admin;
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
    cfg.configure(gateway_admin::configure);
    // Before the registry: the artefact types are served read-only, not from the store.
    cfg.configure(artefacts::configure);
    // Last: its `/fhir/{type}` patterns must not shadow the named routes above.
    cfg.configure(registry::configure);
    // Feature modules plug in here, one line each, e.g.:
    //   cfg.configure(ddcc::configure);   // /ddcc/...  (DDCC operations)
    //   cfg.configure(fhir::configure);   // /fhir/...  (FHIR API: metadata, mapping, store)
}

/// `DDCC_MODE=store`: health and metrics, and the FHIR REST store/registry only.
pub fn configure_store_only(cfg: &mut web::ServiceConfig) {
    cfg.configure(ops::configure);
    cfg.configure(registry::configure);
}

// Shared by every route module: FHIR JSON in and out.

pub(crate) fn fhir_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, FHIR_JSON))
        .body(body.to_string())
}

/// A JSON body of any `json` content type, with parse errors as 400 OperationOutcomes.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "request body must be a JSON object (a FHIR resource)",
        ));
    }
    Ok(v)
}
