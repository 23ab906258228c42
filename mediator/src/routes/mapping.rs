//! Matchbox-compatible mapping endpoints under `/fhir`:
//! `POST /fhir/StructureMap/$transform?source=<map canonical>`,
//! `POST /fhir/StructureMap` (FML text or StructureMap JSON), `GET /fhir/StructureMap?url=`,
//! `GET /fhir/StructureMap/{id}`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::artefacts::Artefacts;
use crate::error::{ApiError, Issue};
use crate::mapping::{MappingError, MappingService};
use crate::now_unix;
use crate::routes::artefacts;
use crate::routes::{fhir_json, json_body};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/fhir/StructureMap/$transform").route(web::post().to(transform)))
        .service(
            web::resource("/fhir/StructureMap")
                .route(web::post().to(create))
                .route(web::get().to(search)),
        )
        .service(
            web::resource("/fhir/StructureMap/{id}")
                .route(web::get().to(read))
                .route(web::head().to(read)),
        );
}

fn service(state: &AppState) -> Result<std::sync::Arc<MappingService>, ApiError> {
    state.require::<MappingService>("mapping")
}

fn mapping_error(e: MappingError) -> ApiError {
    let status = match e {
        MappingError::Persist(_) => return ApiError::internal(e.to_string()),
        MappingError::Protected(_) => 409,
        MappingError::Syntax { .. } => 400,
        _ => 422,
    };
    let code = match e {
        MappingError::Syntax { .. } => "structure",
        MappingError::Protected(_) => "conflict",
        _ => "processing",
    };
    ApiError::Invalid {
        status,
        issues: vec![Issue::error(code, e.to_string())],
    }
}

#[derive(Deserialize)]
struct TransformQuery {
    source: Option<String>,
}

async fn transform(
    state: AppState,
    query: web::Query<TransformQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let svc = service(&state)?;
    let map = query
        .source
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "query parameter 'source' (the StructureMap canonical) is required",
            )
        })?;
    let input = json_body(&body)?;
    let out = svc
        .transform(map, &input, now_unix())
        .map_err(|e| mapping_error(e.into()))?;
    Ok(fhir_json(actix_web::http::StatusCode::OK, &out))
}

async fn create(
    state: AppState,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let svc = service(&state)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let sm = if content_type.starts_with("text/fhir-mapping") {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("FML text must be UTF-8"))?;
        svc.add_fml(text, true).map_err(mapping_error)?
    } else if content_type.contains("json") {
        let v = json_body(&body)?;
        if v.get("resourceType").and_then(Value::as_str) != Some("StructureMap") {
            return Err(ApiError::bad_request("expected a StructureMap resource"));
        }
        svc.add(v, None, false).map_err(mapping_error)?
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "POST /fhir/StructureMap takes text/fhir-mapping (FML) or application/fhir+json".into(),
        ));
    };
    let mut resp = fhir_json(actix_web::http::StatusCode::CREATED, &sm);
    if let Some(id) = sm.get("id").and_then(Value::as_str) {
        if let Ok(v) = header::HeaderValue::from_str(&format!("StructureMap/{id}")) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct SearchQuery {
    url: Option<String>,
}

async fn search(
    state: AppState,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    // A map loaded from fhir-profiles/ is a served artefact: its fixed bytes.
    if let (Some(a), Some(url)) = (state.service::<Artefacts>(), &query.url) {
        if !a.by_url("StructureMap", url, None).is_empty() {
            let pairs = vec![("url".to_string(), url.clone())];
            let bundle = artefacts::search_bundle(&a, "StructureMap", &pairs, req.query_string())?;
            return Ok(fhir_json(actix_web::http::StatusCode::OK, &bundle));
        }
    }
    let svc = service(&state)?;
    let found: Vec<Value> = match &query.url {
        Some(url) => svc.by_url(url).into_iter().collect(),
        None => svc.all(),
    };
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": found.len(),
        "entry": found.iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    });
    Ok(fhir_json(actix_web::http::StatusCode::OK, &bundle))
}

async fn read(
    state: AppState,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // A map loaded from fhir-profiles/ is a served artefact: its fixed bytes, ETag.
    if let Some(a) = state.service::<Artefacts>() {
        if let Some(served) = a.get("StructureMap", &id) {
            return Ok(artefacts::respond(&req, served));
        }
    }
    let svc = service(&state)?;
    let sm = svc
        .by_id(&id)
        .ok_or_else(|| ApiError::not_found(format!("StructureMap/{id} is not known")))?;
    Ok(fhir_json(actix_web::http::StatusCode::OK, &sm))
}
