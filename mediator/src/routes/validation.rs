//! Profile validation the way Matchbox answers it: `POST /fhir/$validate?profile=`
//! and `POST /fhir/{type}/$validate` always answer 200 with an OperationOutcome
//! whose issues carry the verdict (the DDCC compliance framework relies on this).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhir_validator::Validator;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::routes::{fhir_json, json_body};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/fhir/$validate").route(web::post().to(validate_any)))
        .service(web::resource("/fhir/{type}/$validate").route(web::post().to(validate_typed)));
}

#[derive(Deserialize)]
struct ValidateQuery {
    profile: Option<String>,
}

/// A `Parameters` body may carry the resource in `resource` and the profile in
/// `profile`, as the FHIR operation defines; a plain resource is the common case.
fn unwrap_parameters(body: Value, profile: Option<String>) -> (Value, Option<String>) {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return (body, profile);
    }
    let params = body.get("parameter").and_then(Value::as_array);
    let resource = params
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"))
        })
        .and_then(|p| p.get("resource"))
        .cloned();
    let param_profile = params
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some("profile"))
        })
        .and_then(|p| p.get("valueUri").or_else(|| p.get("valueCanonical")))
        .and_then(Value::as_str)
        .map(str::to_string);
    match resource {
        Some(r) => (r, profile.or(param_profile)),
        None => (body, profile),
    }
}

fn run(
    state: &AppState,
    body: &[u8],
    profile: Option<String>,
    expected_type: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let validator = state.require::<Validator>("validator")?;
    let (resource, profile) = unwrap_parameters(json_body(body)?, profile);
    if let Some(t) = expected_type {
        let actual = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if actual != t {
            return Err(ApiError::bad_request(format!(
                "POST /fhir/{t}/$validate got a {actual} resource"
            )));
        }
    }
    let outcome =
        validator.validate_to_outcome(&resource, profile.as_deref().filter(|p| !p.is_empty()));
    Ok(fhir_json(StatusCode::OK, &outcome))
}

async fn validate_any(
    state: AppState,
    query: web::Query<ValidateQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    run(&state, &body, query.into_inner().profile, None)
}

async fn validate_typed(
    state: AppState,
    path: web::Path<String>,
    query: web::Query<ValidateQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    run(
        &state,
        &body,
        query.into_inner().profile,
        Some(path.as_str()),
    )
}
