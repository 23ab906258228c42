//! The served knowledge artefacts, read-only and public (`crate::artefacts`):
//! `GET /fhir/{type}/{id}` answers the exact bytes loaded at start-up with an `ETag`
//! (`If-None-Match` → 304), `GET /fhir/{type}?url=&version=` a searchset Bundle,
//! `GET /fhir/ValueSet/$expand?url=` and `GET /fhir/ValueSet/{id}/$expand` the local
//! expansion. StructureMaps are answered through the mapping module's routes (which
//! also serve run-time uploads) with [`respond`].
//!
//! Registered before the registry module, whose `/fhir/{type}` patterns would
//! otherwise take these types to the store.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::artefacts::{Artefacts, Served, SERVED_TYPES};
use crate::error::{ApiError, Issue, FHIR_JSON};
use crate::routes::fhir_json;
use crate::state::AppState;

/// The artefact types this module routes (StructureMap goes through `routes::mapping`).
const ROUTED: &str =
    "ValueSet|CodeSystem|ConceptMap|PlanDefinition|Library|Questionnaire|StructureDefinition";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/fhir/ValueSet/$expand")
            .route(web::get().to(expand_by_url))
            .default_service(web::to(read_only)),
    )
    .service(
        web::resource("/fhir/ValueSet/{id}/$expand")
            .route(web::get().to(expand_by_id))
            .default_service(web::to(read_only)),
    )
    .service(
        web::resource(format!("/fhir/{{type:{ROUTED}}}"))
            .route(web::get().to(search))
            .default_service(web::to(read_only)),
    )
    .service(
        web::resource(format!("/fhir/{{type:{ROUTED}}}/{{id}}"))
            .route(web::get().to(read))
            // A verifier may check the ETag (the SHA-256) before downloading.
            .route(web::head().to(read))
            .default_service(web::to(read_only)),
    );
}

fn artefacts(state: &AppState) -> Result<std::sync::Arc<Artefacts>, ApiError> {
    state.require::<Artefacts>("artefacts")
}

/// The artefacts are published, signed references point at their bytes: no writes.
async fn read_only(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_string(),
    })
}

/// Does `If-None-Match` name this entity? Weak comparison (RFC 9110 §13.1.2).
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == ours)
}

/// The answer for one served artefact: its exact bytes, or 304.
pub fn respond(req: &HttpRequest, served: &Served) -> HttpResponse {
    if not_modified(req, &served.etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, served.etag.clone()))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, FHIR_JSON))
        .insert_header((header::ETAG, served.etag.clone()))
        .body(served.body())
}

async fn read(
    state: AppState,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    let a = artefacts(&state)?;
    let served = a.get(&t, &id).ok_or_else(|| {
        // Never echo a long hostile id back whole.
        let shown: String = id.chars().take(64).collect();
        ApiError::not_found(format!("{t}/{shown} is not served here"))
    })?;
    Ok(respond(&req, served))
}

/// A canonical URL parameter: absolute (`scheme:`), no whitespace or controls.
fn check_canonical(name: &str, v: &str) -> Result<(), ApiError> {
    let scheme_ok = v.split_once(':').is_some_and(|(s, rest)| {
        !rest.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if v.len() > 4096 || !scheme_ok || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let shown: String = v.chars().take(100).collect();
        return Err(ApiError::Invalid {
            status: 400,
            issues: vec![Issue::error(
                "value",
                format!("parameter {name} must be an absolute canonical URL, got {shown:?}"),
            )],
        });
    }
    Ok(())
}

fn unsupported(name: &str, allowed: &[&str]) -> ApiError {
    let shown: String = name.chars().take(64).collect();
    ApiError::Invalid {
        status: 400,
        issues: vec![Issue::error(
            "not-supported",
            format!(
                "parameter {shown:?} is not supported here (supported: {})",
                allowed.join(", ")
            ),
        )],
    }
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut it = pairs.iter().filter(|(k, _)| k == name);
    let first = it.next().map(|(_, v)| v.as_str());
    if it.next().is_some() {
        return Err(ApiError::bad_request(format!(
            "parameter {name} is given more than once"
        )));
    }
    Ok(first)
}

const SEARCH_PARAMS: [&str; 5] = ["url", "version", "_id", "name", "_format"];

async fn search(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let t = path.into_inner();
    let a = artefacts(&state)?;
    let bundle = search_bundle(&a, &t, &query.into_inner(), req.query_string())?;
    Ok(fhir_json(StatusCode::OK, &bundle))
}

/// `GET /fhir/{t}?…` over the served artefacts of type `t`. Also used by the mapping
/// module for StructureMaps.
pub fn search_bundle(
    a: &Artefacts,
    t: &str,
    pairs: &[(String, String)],
    query_string: &str,
) -> Result<Value, ApiError> {
    if let Some((k, _)) = pairs
        .iter()
        .find(|(k, _)| !SEARCH_PARAMS.contains(&k.as_str()))
    {
        return Err(unsupported(k, &SEARCH_PARAMS));
    }
    let url = single(pairs, "url")?;
    if let Some(u) = url {
        check_canonical("url", u)?;
    }
    let version = single(pairs, "version")?;
    let id = single(pairs, "_id")?;
    let name = single(pairs, "name")?;
    let by_url: Option<Vec<&Served>> = url.map(|u| a.by_url(t, u, None));
    let found: Vec<&Served> = a
        .of_type(t)
        .filter(|s| {
            by_url
                .as_ref()
                .is_none_or(|m| m.iter().any(|m| m.id == s.id))
        })
        .filter(|s| version.is_none_or(|v| s.version.as_deref() == Some(v)))
        .filter(|s| id.is_none_or(|i| s.id == i))
        // FHIR string search: case-insensitive prefix.
        .filter(|s| {
            name.is_none_or(|n| {
                s.name
                    .as_deref()
                    .is_some_and(|sn| sn.to_lowercase().starts_with(&n.to_lowercase()))
            })
        })
        .collect();
    let base = a.public_base();
    let self_url = if query_string.is_empty() {
        format!("{base}/{t}")
    } else {
        format!("{base}/{t}?{query_string}")
    };
    Ok(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": found.len(),
        "link": [{"relation": "self", "url": self_url}],
        "entry": found.iter().map(|s| json!({
            "fullUrl": s.public_url,
            "resource": s.resource(),
            "search": {"mode": "match"},
        })).collect::<Vec<_>>(),
    }))
}

const EXPAND_PARAMS: [&str; 6] = [
    "url",
    "valueSetVersion",
    "filter",
    "offset",
    "count",
    "_format",
];

async fn expand_by_url(
    state: AppState,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let a = artefacts(&state)?;
    let pairs = query.into_inner();
    check_expand_params(&pairs)?;
    let url = single(&pairs, "url")?.ok_or_else(|| {
        ApiError::bad_request("parameter url (the ValueSet canonical) is required")
    })?;
    check_canonical("url", url)?;
    let version = single(&pairs, "valueSetVersion")?;
    let matches = a.by_url("ValueSet", url, version);
    let vs = match matches.as_slice() {
        [one] => *one,
        [] => {
            let shown: String = url.chars().take(200).collect();
            return Err(ApiError::not_found(format!(
                "no served ValueSet has url {shown}{}",
                version
                    .map(|v| format!(" and version {v}"))
                    .unwrap_or_default()
            )));
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "{} ValueSets have url {url}; give valueSetVersion",
                matches.len()
            )))
        }
    };
    expand(&a, vs, &pairs)
}

async fn expand_by_id(
    state: AppState,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let a = artefacts(&state)?;
    let id = path.into_inner();
    let pairs = query.into_inner();
    check_expand_params(&pairs)?;
    if pairs
        .iter()
        .any(|(k, _)| k == "url" || k == "valueSetVersion")
    {
        return Err(ApiError::bad_request(
            "url and valueSetVersion name the ValueSet on the type-level $expand; here the id does",
        ));
    }
    let vs = a.get("ValueSet", &id).ok_or_else(|| {
        let shown: String = id.chars().take(64).collect();
        ApiError::not_found(format!("ValueSet/{shown} is not served here"))
    })?;
    expand(&a, vs, &pairs)
}

fn check_expand_params(pairs: &[(String, String)]) -> Result<(), ApiError> {
    match pairs
        .iter()
        .find(|(k, _)| !EXPAND_PARAMS.contains(&k.as_str()))
    {
        Some((k, _)) => Err(unsupported(k, &EXPAND_PARAMS)),
        None => Ok(()),
    }
}

fn non_negative(pairs: &[(String, String)], name: &str) -> Result<Option<usize>, ApiError> {
    single(pairs, name)?
        .map(|v| {
            v.trim().parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!("parameter {name} must be a non-negative integer"))
            })
        })
        .transpose()
}

/// The `$expand` answer: the served ValueSet's metadata and an `expansion` listing
/// every code (compose order), narrowed by `filter` (case-insensitive substring of
/// code or display) and paged by `offset`/`count`.
fn expand(
    a: &Artefacts,
    vs: &Served,
    pairs: &[(String, String)],
) -> Result<HttpResponse, ApiError> {
    let url = vs.url.as_deref().ok_or_else(|| ApiError::Invalid {
        status: 422,
        issues: vec![Issue::error(
            "processing",
            format!("ValueSet/{} has no url to expand", vs.id),
        )],
    })?;
    let codes = a.terminology().expand(url).map_err(|e| match e {
        terminology::Error::UnknownValueSet(_) => ApiError::not_found(e.to_string()),
        _ => ApiError::Invalid {
            status: 422,
            issues: vec![Issue::error("too-costly", e.to_string())],
        },
    })?;
    let filter = single(pairs, "filter")?.map(str::to_lowercase);
    let offset = non_negative(pairs, "offset")?.unwrap_or(0);
    let count = non_negative(pairs, "count")?;
    let matching: Vec<&terminology::Code> = codes
        .iter()
        .filter(|c| {
            filter.as_deref().is_none_or(|f| {
                c.code.to_lowercase().contains(f)
                    || c.display
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(f))
            })
        })
        .collect();
    let total = matching.len();
    let contains: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(count.unwrap_or(usize::MAX))
        .map(|c| {
            let mut e = json!({"system": c.system, "code": c.code});
            if let Some(d) = &c.display {
                e["display"] = json!(d);
            }
            e
        })
        .collect();
    let r = vs.resource();
    let mut out = json!({"resourceType": "ValueSet", "id": vs.id});
    for k in ["url", "version", "name", "title", "status"] {
        if let Some(v) = r.get(k) {
            out[k] = v.clone();
        }
    }
    let mut expansion = json!({
        "timestamp": ddcc_cert::rfc3339_utc(crate::now_unix()),
        "total": total,
        "contains": contains,
    });
    let mut parameters = Vec::new();
    if let Some(f) = single(pairs, "filter")? {
        parameters.push(json!({"name": "filter", "valueString": f}));
    }
    if offset > 0 {
        expansion["offset"] = json!(offset);
        parameters.push(json!({"name": "offset", "valueInteger": offset}));
    }
    if let Some(c) = count {
        parameters.push(json!({"name": "count", "valueInteger": c}));
    }
    if !parameters.is_empty() {
        expansion["parameter"] = Value::Array(parameters);
    }
    out["expansion"] = expansion;
    Ok(fhir_json(StatusCode::OK, &out))
}

/// CapabilityStatement `rest.resource` entries for the served types (the registry's
/// metadata handler adds them).
pub fn capability_resources() -> Vec<Value> {
    let op = |name: &str, def: &str| json!({"name": name, "definition": def});
    SERVED_TYPES
        .iter()
        .map(|t| {
            let mut r = json!({
                "type": t,
                "versioning": "no-version",
                "readHistory": false,
                "conditionalRead": "not-match",
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [
                    {"name": "url", "type": "uri"},
                    {"name": "version", "type": "token"},
                    {"name": "_id", "type": "token"},
                    {"name": "name", "type": "string"},
                ],
            });
            match *t {
                "ValueSet" => {
                    r["operation"] = json!([op(
                        "expand",
                        "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"
                    )])
                }
                "StructureMap" => {
                    r["interaction"] =
                        json!([{"code": "read"}, {"code": "create"}, {"code": "search-type"}]);
                    r["operation"] = json!([op(
                        "transform",
                        "http://hl7.org/fhir/OperationDefinition/StructureMap-transform"
                    )]);
                }
                _ => {}
            }
            r
        })
        .collect()
}
