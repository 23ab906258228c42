//! The DDCC registry and repository over the store: FHIR create/read/vread/search,
//! `POST /fhir` (ITI-65 transaction, or a Submit Health Event batch), ITI-68
//! `GET /fhir/Binary/{id}`, `$getQRCode`, and the CapabilityStatement. Registered after
//! every other module so `{type}` never shadows a named route or a `$` operation.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use ddcc_store::{bundle, ids, SearchQuery, Stored};
use fhir_validator::{Severity, Validator};
use serde_json::{json, Value};

use crate::audit::{Action, Audit};
use crate::error::{ApiError, Issue};
use crate::openhim::Recorder;
use crate::registry::{store_error, Registry, MHD_LIST_TYPES};
use crate::routes::{fhir_json, json_body};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/fhir/metadata").route(web::get().to(metadata)))
        .service(web::resource(["/fhir", "/fhir/"]).route(web::post().to(post_root)))
        .service(
            web::resource("/fhir/DocumentReference/$docref")
                .route(web::get().to(docref))
                .route(web::post().to(docref)),
        )
        .service(
            web::resource("/fhir/DocumentReference/{id}/$getQRCode").route(web::get().to(qr_code)),
        )
        .service(web::resource("/fhir/Binary/{id}").route(web::get().to(binary)))
        .service(
            web::resource("/fhir/Bundle/$revokeHealthCertificate").route(web::post().to(revoke)),
        )
        .service(
            web::resource("/fhir/Bundle/{id}/$revokeHealthCertificate")
                .route(web::post().to(revoke_instance)),
        )
        .service(
            web::resource("/fhir/{type}")
                .route(web::get().to(search))
                .route(web::post().to(create)),
        )
        .service(
            web::resource("/fhir/{type}/{id}")
                .route(web::get().to(read))
                .route(web::post().to(post_instance)),
        )
        .service(web::resource("/fhir/{type}/{id}/_history/{vid}").route(web::get().to(vread)));
}

fn registry(state: &AppState) -> Result<std::sync::Arc<Registry>, ApiError> {
    state.require::<Registry>("store")
}

/// `$operation` segments are never resource types or ids here: an operation this
/// service does not serve is a 404, not a read of a resource called `$x`.
fn check_type(t: &str) -> Result<(), ApiError> {
    if t.starts_with('$') {
        return Err(ApiError::not_found(format!(
            "operation {t} is not supported"
        )));
    }
    ids::check_type(t).map_err(store_error)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.starts_with('$') {
        return Err(ApiError::not_found(format!(
            "operation {id} is not supported"
        )));
    }
    ids::check_id(id).map_err(store_error)
}

/// The FHIR base clients reach us at: the configured public base, else what the request
/// was addressed to.
pub fn public_base(state: &AppState, req: &HttpRequest) -> String {
    match &state.config.server.public_base_url {
        Some(b) => format!("{}/fhir", b.trim_end_matches('/').trim_end_matches("/fhir")),
        None => {
            let ci = req.connection_info();
            format!("{}://{}/fhir", ci.scheme(), ci.host())
        }
    }
}

fn with_version_headers(
    mut resp: HttpResponse,
    stored: &Stored,
    location: Option<String>,
) -> HttpResponse {
    let h = resp.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&stored.etag()) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = header::HeaderValue::from_str(&stored.last_updated) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Some(l) = location.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, l);
    }
    resp
}

fn errors_of(issues: &[fhir_validator::Issue]) -> Vec<Issue> {
    issues
        .iter()
        .filter(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
        .map(|i| {
            Issue::error("invalid", format!("{}: {}", i.message_id, i.message))
                .at(i.location.clone())
        })
        .collect()
}

/// 404 for a body of no FHIR type (as for an unknown endpoint), 400 for a body whose
/// type differs from the path.
fn body_type<'a>(body: &'a Value, path_type: Option<&str>) -> Result<&'a str, ApiError> {
    let t = body
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("the body has no resourceType"))?;
    ids::check_type(t).map_err(store_error)?;
    if let Some(p) = path_type {
        if p != t {
            return Err(ApiError::bad_request(format!(
                "the body is a {t}, the URL names {p}"
            )));
        }
    }
    Ok(t)
}

/// FHIR R4 core elements with minimum cardinality 1 for the types a registry stores.
/// The profile validator knows the DDCC and MHD profiles but not every core
/// StructureDefinition, so these basic rules are checked here to tell a malformed
/// resource (400) from one that violates its profile (422).
const CORE_REQUIRED: &[(&str, &[&str])] = &[
    ("Bundle", &["type"]),
    ("Binary", &["contentType"]),
    ("DocumentReference", &["status", "content"]),
    ("List", &["status", "mode"]),
    (
        "Composition",
        &["status", "type", "date", "author", "title"],
    ),
    ("AuditEvent", &["type", "recorded", "agent", "source"]),
    ("Immunization", &["status", "vaccineCode", "patient"]),
];

fn core_structure(resource: &Value, t: &str) -> Vec<Issue> {
    let mut out: Vec<Issue> = CORE_REQUIRED
        .iter()
        .filter(|(rt, _)| *rt == t)
        .flat_map(|(_, els)| els.iter())
        .filter(|el| resource.get(**el).is_none_or(Value::is_null))
        .map(|el| {
            Issue::error(
                "required",
                format!("{t}.{el} is required (minimum cardinality 1)"),
            )
            .at(format!("{t}.{el}"))
        })
        .collect();
    if let Some(entries) = resource.get("entry") {
        match entries.as_array() {
            None => out.push(
                Issue::error("structure", format!("{t}.entry must be an array"))
                    .at(format!("{t}.entry")),
            ),
            Some(a) => {
                for (i, e) in a.iter().enumerate() {
                    if let Some(r) = e.get("resource") {
                        let ok = r
                            .get("resourceType")
                            .and_then(Value::as_str)
                            .is_some_and(ids::is_resource_type);
                        if !ok {
                            out.push(
                                Issue::error("structure", "entry.resource is not a FHIR resource")
                                    .at(format!("{t}.entry[{i}].resource")),
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

/// Base FHIR structure first (400: not a well-formed resource of its type), then the
/// profiles the resource claims in `meta.profile` (422: a well-formed resource that
/// violates its profile).
fn check_resource(state: &AppState, resource: &Value, t: &str) -> Result<(), ApiError> {
    let validator = state.require::<Validator>("validator")?;
    // The validator also applies `meta.profile`; without it only the core rules remain.
    let mut core_only = resource.clone();
    if let Some(meta) = core_only.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("profile");
    }
    let mut errors = core_structure(resource, t);
    errors.extend(errors_of(&validator.validate(&core_only, None)));
    if !errors.is_empty() {
        return Err(ApiError::Invalid {
            status: 400,
            issues: errors,
        });
    }
    let profiles: Vec<&str> = resource
        .pointer("/meta/profile")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut errors = Vec::new();
    for p in profiles {
        errors.extend(errors_of(&validator.validate(resource, Some(p))));
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid {
            status: 422,
            issues: errors,
        });
    }
    Ok(())
}

async fn create(
    state: AppState,
    req: HttpRequest,
    recorder: Recorder,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let audit = Audit::interaction(&state, &req, "create", Action::Create);
    let result = create_inner(&state, &req, &recorder, path.into_inner(), &body, &audit).await;
    audit.record_result(&state, &[], &result, true).await;
    result
}

async fn create_inner(
    state: &AppState,
    req: &HttpRequest,
    recorder: &Recorder,
    t: String,
    body: &web::Bytes,
    audit: &Audit,
) -> Result<HttpResponse, ApiError> {
    let state = state.clone();
    check_type(&t)?;
    let reg = registry(&state)?;
    let resource = json_body(body)?;
    body_type(&resource, Some(&t))?;
    check_resource(&state, &resource, &t)?;
    // Audit (added for BALP): the resource and its AuditEvent commit together; the
    // event names the resource by the entry's fullUrl, which the store resolves.
    let full_url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let tx = ddcc_store::TxRequest::new(vec![
        ddcc_store::TxEntry {
            full_url: Some(full_url.clone()),
            op: ddcc_store::TxOp::Create { resource },
        },
        audit.tx_entry(&[full_url], 201),
    ]);
    let results = reg.store.transaction(tx).await.map_err(store_error)?;
    let created = results
        .first()
        .ok_or_else(|| ApiError::internal("the store answered a create with no result"))?;
    let stored = reg
        .store
        .read(&created.resource_type, &created.id)
        .await
        .map_err(store_error)?;
    recorder.property("registry-location", stored.location());
    let location = format!("{}/{}", public_base(&state, req), stored.location());
    Ok(with_version_headers(
        fhir_json(StatusCode::CREATED, &stored.resource),
        &stored,
        Some(location),
    ))
}

/// Audit (added for BALP): a read-like request is recorded after its answer is decided.
async fn audited_read(
    state: &AppState,
    audit: Audit,
    entity: Option<String>,
    result: Result<HttpResponse, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let entities: Vec<String> = entity.into_iter().collect();
    audit.record_result(state, &entities, &result, false).await;
    result
}

/// The `Type/id` a read names, only when both are valid: whatever else a client put in
/// the path is not copied into the audit record.
fn audit_entity(t: &str, id: &str) -> Option<String> {
    (ids::check_type(t).is_ok() && ids::check_id(id).is_ok()).then(|| format!("{t}/{id}"))
}

async fn read(
    state: AppState,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    let audit = Audit::interaction(&state, &req, "read", Action::Read);
    let entity = audit_entity(&t, &id);
    let result = read_inner(&state, t, id).await;
    audited_read(&state, audit, entity, result).await
}

async fn read_inner(state: &AppState, t: String, id: String) -> Result<HttpResponse, ApiError> {
    check_type(&t)?;
    check_id(&id)?;
    let stored = registry(state)?
        .store
        .read(&t, &id)
        .await
        .map_err(store_error)?;
    Ok(with_version_headers(
        fhir_json(StatusCode::OK, &stored.resource),
        &stored,
        None,
    ))
}

/// `POST /fhir/{type}/$op` for an operation not served here is an unknown endpoint
/// (404); a POST on a resource instance is a method this server does not allow.
async fn post_instance(
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    check_type(&t)?;
    check_id(&id)?;
    Err(ApiError::MethodNotAllowed {
        method: "POST".into(),
        path: req.path().to_string(),
    })
}

async fn vread(
    state: AppState,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, id, vid) = path.into_inner();
    let audit = Audit::interaction(&state, &req, "vread", Action::Read);
    let entity = audit_entity(&t, &id).filter(|_| vid.bytes().all(|b| b.is_ascii_digit()));
    let entity = entity.map(|e| format!("{e}/_history/{vid}"));
    let result = vread_inner(&state, t, id, vid).await;
    audited_read(&state, audit, entity, result).await
}

async fn vread_inner(
    state: &AppState,
    t: String,
    id: String,
    vid: String,
) -> Result<HttpResponse, ApiError> {
    check_type(&t)?;
    check_id(&id)?;
    let v: i64 = vid.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::bad_request(format!("version id `{vid}` is not a positive integer"))
    })?;
    let stored = registry(state)?
        .store
        .vread(&t, &id, v)
        .await
        .map_err(store_error)?;
    Ok(with_version_headers(
        fhir_json(StatusCode::OK, &stored.resource),
        &stored,
        None,
    ))
}

async fn search(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let t = path.into_inner();
    let audit = Audit::interaction(&state, &req, "search-type", Action::Execute)
        .with_query(req.query_string());
    let result = search_inner(state.clone(), req, t, query).await;
    // Audit (added for BALP): the entity is the redacted query, never the matches.
    audit.record_result(&state, &[], &result, false).await;
    result
}

async fn search_inner(
    state: AppState,
    req: HttpRequest,
    t: String,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    check_type(&t)?;
    let reg = registry(&state)?;
    let base = public_base(&state, &req);
    let bundle = paged_search(&state, &reg, &base, &t, &t, query.into_inner(), None).await?;
    Ok(fhir_json(StatusCode::OK, &bundle))
}

/// One page of a search: `_count` (default and maximum configured) and `_offset` are
/// taken off the query, the store is asked for one result more than the page to learn
/// whether another follows, and `self`/`next`/`previous` links repeat the other
/// parameters with the page's offsets (the store's order is total, so an offset names
/// the same position while the data is unchanged). `total` is given when this page
/// shows where the results end, which costs no count query. `path` is what the links
/// name after the base (`DocumentReference`, `DocumentReference/$docref`); `link_pairs`
/// replaces the search parameters in the links when the request named them otherwise
/// (an operation's parameters, translated into a search).
async fn paged_search(
    state: &AppState,
    reg: &Registry,
    base: &str,
    t: &str,
    path: &str,
    pairs: Vec<(String, String)>,
    link_pairs: Option<Vec<(String, String)>>,
) -> Result<Value, ApiError> {
    let cfg = &state.config.registry;
    let max = cfg.search_max_count.clamp(1, ddcc_store::MAX_COUNT);
    let mut count = cfg.search_default_count.clamp(1, max);
    let mut offset = 0usize;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match k.as_str() {
            "_count" => {
                count = v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| ApiError::Invalid {
                        status: 400,
                        issues: vec![Issue::error(
                            "invalid",
                            "_count must be a non-negative integer",
                        )],
                    })?
                    .min(max);
            }
            "_offset" => {
                offset = v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|o| *o <= ddcc_store::MAX_OFFSET)
                    .ok_or_else(|| ApiError::Invalid {
                        status: 400,
                        issues: vec![Issue::error(
                            "invalid",
                            format!(
                                "_offset must be an integer from 0 to {}",
                                ddcc_store::MAX_OFFSET
                            ),
                        )],
                    })?;
            }
            _ => rest.push((k, v)),
        }
    }
    let mut q = SearchQuery::from_pairs(rest.clone());
    let rest = link_pairs.unwrap_or(rest);
    // `_count=0` asks for no entries: no extra row, so no `next` that would repeat it.
    let ask = if count == 0 { 0 } else { count + 1 };
    q.params.push(("_count".into(), ask.to_string()));
    q.params.push(("_offset".into(), offset.to_string()));
    let mut found = reg.store.search(t, &q).await.map_err(store_error)?;
    let has_next = found.len() > count;
    found.truncate(count);
    let link = |relation: &str, at: usize| -> Result<Value, ApiError> {
        let mut url = reqwest::Url::parse(&format!("{base}/{path}"))
            .map_err(|e| ApiError::internal(format!("search link: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(rest.iter())
            .append_pair("_count", &count.to_string())
            .append_pair("_offset", &at.to_string());
        Ok(json!({"relation": relation, "url": url.as_str()}))
    };
    let mut links = vec![link("self", offset)?];
    if has_next {
        links.push(link("next", offset + count)?);
    }
    if offset > 0 && count > 0 {
        links.push(link("previous", offset.saturating_sub(count))?);
    }
    let entries: Vec<Value> = found
        .iter()
        .map(|s| {
            json!({
                "fullUrl": format!("{base}/{}/{}", s.resource_type, s.id),
                "resource": s.resource,
                "search": {"mode": "match"},
            })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    // Past the end of the results a page cannot tell how many there were.
    if !has_next && count > 0 && (offset == 0 || !found.is_empty()) {
        bundle["total"] = json!(offset + found.len());
    }
    Ok(bundle)
}

/// The IPA `$docref` parameters this service answers.
const DOCREF_PARAMS: &[&str] = &["patient", "start", "end", "type", "on-demand"];

/// IPA `DocumentReference/$docref`: the patient's current DocumentReferences as a
/// searchset, from the query string (GET, POST) and a `Parameters` body (POST).
/// `start`/`end` bound `DocumentReference.date`; `on-demand` is accepted, and since
/// every document here is stored, it changes nothing.
async fn docref(
    state: AppState,
    req: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let audit =
        Audit::operation(&state, &req, "docref", Action::Execute).with_query(req.query_string());
    let result = docref_inner(&state, &req, query.into_inner(), &body).await;
    audit.record_result(&state, &[], &result, false).await;
    result
}

fn docref_params(
    mut pairs: Vec<(String, String)>,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let b = json_body(body)?;
        if b.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(ApiError::bad_request(
                "$docref takes its parameters in the URL or in a Parameters resource",
            ));
        }
        for p in b
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let value = if let Some(c) = p.get("valueCoding") {
                let sys = c.get("system").and_then(Value::as_str).unwrap_or_default();
                let code = c.get("code").and_then(Value::as_str).unwrap_or_default();
                Some(if sys.is_empty() {
                    code.to_string()
                } else {
                    format!("{sys}|{code}")
                })
            } else if let Some(b) = p.get("valueBoolean").and_then(Value::as_bool) {
                Some(b.to_string())
            } else {
                [
                    "valueId",
                    "valueString",
                    "valueDate",
                    "valueDateTime",
                    "valueCode",
                    "valueUri",
                ]
                .iter()
                .find_map(|k| p.get(*k).and_then(Value::as_str))
                .map(str::to_string)
                .or_else(|| {
                    p.pointer("/valueReference/reference")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
            };
            let value = value.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "$docref parameter `{}` has no value of a supported type",
                    name.chars().take(40).collect::<String>()
                ))
            })?;
            pairs.push((name.to_string(), value));
        }
    }
    Ok(pairs)
}

async fn docref_inner(
    state: &AppState,
    req: &HttpRequest,
    pairs: Vec<(String, String)>,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let reg = registry(state)?;
    let pairs = docref_params(pairs, body)?;
    // The links repeat the operation's own parameters (a POST's body ones included).
    let link_pairs: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_count" | "_offset"))
        .cloned()
        .collect();
    let invalid = |msg: String| ApiError::Invalid {
        status: 400,
        issues: vec![Issue::error("invalid", msg)],
    };
    let mut patient = None;
    let mut search: Vec<(String, String)> = vec![("status".into(), "current".into())];
    let mut types = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "patient" if patient.is_some() => {
                return Err(invalid("$docref takes one `patient`".into()))
            }
            "patient" => {
                let id = v.strip_prefix("Patient/").unwrap_or(&v);
                ids::check_id(id).map_err(|_| {
                    invalid("`patient` must be a Patient id or Patient/{id}".into())
                })?;
                patient = Some(format!("Patient/{id}"));
            }
            "start" => search.push(("date".into(), format!("ge{v}"))),
            "end" => search.push(("date".into(), format!("le{v}"))),
            "type" => {
                if v.is_empty() {
                    return Err(invalid("`type` must not be empty".into()));
                }
                types.push(v.replace(',', "\\,"));
            }
            "on-demand" => {
                if v != "true" && v != "false" {
                    return Err(invalid("`on-demand` must be true or false".into()));
                }
            }
            // Response-format parameters select nothing.
            "_format" | "_pretty" => {}
            // Paging, as the searchset's own `next` links carry it.
            "_count" | "_offset" => search.push((k, v)),
            other => {
                return Err(ApiError::Invalid {
                    status: 400,
                    issues: vec![Issue::error(
                        "not-supported",
                        format!(
                            "$docref parameter `{}` is not supported (supported: {})",
                            other.chars().take(40).collect::<String>(),
                            DOCREF_PARAMS.join(", ")
                        ),
                    )],
                })
            }
        }
    }
    let patient = patient.ok_or_else(|| ApiError::Invalid {
        status: 400,
        issues: vec![Issue::error("required", "$docref needs `patient`")],
    })?;
    search.push(("patient".into(), patient));
    if !types.is_empty() {
        search.push(("type".into(), types.join(",")));
    }
    let base = public_base(state, req);
    let bundle = paged_search(
        state,
        &reg,
        &base,
        "DocumentReference",
        "DocumentReference/$docref",
        search,
        Some(link_pairs),
    )
    .await?;
    Ok(fhir_json(StatusCode::OK, &bundle))
}

/// `POST /fhir`: a `transaction` is an ITI-65 Provide Document Bundle; a `batch` is a
/// Submit Health Event.
async fn post_root(
    state: AppState,
    req: HttpRequest,
    caller: crate::auth::Caller,
    recorder: Recorder,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // A batch is a Submit Health Event, audited per entry there; decided before the
    // transaction path so each kind of request gets its own events.
    let is_batch = json_body(&body).ok().is_some_and(|b| {
        b.get("resourceType").and_then(Value::as_str) == Some("Bundle")
            && b.get("type").and_then(Value::as_str) == Some("batch")
    });
    if is_batch {
        if state.config.registry.mode == crate::config::Mode::Store {
            return Err(ApiError::bad_request(
                "this instance runs in store mode (DDCC_MODE=store) and issues nothing: a batch Submit Health Event goes to an issuing instance",
            ));
        }
        // The path said `register`; the body says issuing.
        crate::auth::require(&state, &caller, crate::auth::RouteGroup::Issue)?;
        return crate::routes::issuing::submit_health_event(state, req, caller, recorder, body)
            .await;
    }
    // Audit (added for BALP): an ITI-65 commits with its event; failures are recorded here.
    let audit = Audit::interaction(&state, &req, "transaction", Action::Create);
    let result = post_root_inner(state.clone(), recorder, body, Some(&audit)).await;
    audit.record_result(&state, &[], &result, true).await;
    result
}

async fn post_root_inner(
    state: AppState,
    recorder: Recorder,
    body: web::Bytes,
    audit: Option<&Audit>,
) -> Result<HttpResponse, ApiError> {
    let bundle_json = json_body(&body)?;
    if body_type(&bundle_json, None)? != "Bundle" {
        return Err(ApiError::bad_request(
            "POST /fhir takes a transaction or batch Bundle",
        ));
    }
    match bundle_json.get("type").and_then(Value::as_str) {
        Some("batch") => Err(ApiError::internal(
            "a batch is routed to Submit Health Event before the transaction path",
        )),
        Some("transaction") => provide_document_bundle(state, recorder, bundle_json, audit).await,
        Some(other) => Err(ApiError::bad_request(format!(
            "POST /fhir takes a transaction or batch Bundle, not {other}"
        ))),
        None => Err(ApiError::Invalid {
            status: 400,
            issues: vec![Issue::error("required", "Bundle.type is required").at("Bundle.type")],
        }),
    }
}

fn has_code(resource: &Value, system: &str, code: &str) -> bool {
    resource
        .pointer("/code/coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("code").and_then(Value::as_str) == Some(code)
                && c.get("system").and_then(Value::as_str).is_some_and(|s| {
                    s.trim_start_matches("https://")
                        .trim_start_matches("http://")
                        == system.trim_start_matches("https://")
                })
        })
}

/// ITI-65. A transaction is refused (422) only for what it cannot be processed without:
/// a SubmissionSet List and at least one DocumentReference. Full profile conformance
/// (`meta.profile`, e.g. DDCCProvideDocumentBundle) is reported as warnings: the DDCC
/// compliance framework's own valid example does not conform to it fully (inline-data
/// contents, the Patient in the SubmissionSet) and must be accepted.
async fn provide_document_bundle(
    state: AppState,
    recorder: Recorder,
    bundle_json: Value,
    audit: Option<&Audit>,
) -> Result<HttpResponse, ApiError> {
    let reg = registry(&state)?;
    let mut tx = bundle::tx_request_from_bundle(&bundle_json).map_err(store_error)?;
    let resources: Vec<&Value> = bundle_json
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .collect();
    let mut malformed = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let t = body_type(r, None)?;
        malformed.extend(core_structure(r, t).into_iter().map(|mut issue| {
            issue.expression = vec![format!("Bundle.entry[{i}].resource")];
            issue
        }));
    }
    if !malformed.is_empty() {
        return Err(ApiError::Invalid {
            status: 400,
            issues: malformed,
        });
    }
    // Only a submission (a transaction that creates) is an ITI-65 Provide Document
    // Bundle; updates and deletes alone (a revocation forwarded by an instance using this
    // one as its FHIR server) are a plain FHIR transaction.
    let submits = tx.entries.is_empty()
        || tx
            .entries
            .iter()
            .any(|e| matches!(e.op, ddcc_store::TxOp::Create { .. }));
    let mut missing = Vec::new();
    if submits
        && !resources.iter().any(|r| {
            r.get("resourceType").and_then(Value::as_str) == Some("List")
                && has_code(r, MHD_LIST_TYPES, "submissionset")
        })
    {
        missing.push(
            Issue::error(
                "required",
                "ITI-65 needs a SubmissionSet List (List.code = MHDlistTypes#submissionset)",
            )
            .at("Bundle.entry"),
        );
    }
    if submits
        && !resources
            .iter()
            .any(|r| r.get("resourceType").and_then(Value::as_str) == Some("DocumentReference"))
    {
        missing.push(
            Issue::error("required", "ITI-65 needs at least one DocumentReference")
                .at("Bundle.entry"),
        );
    }
    if !missing.is_empty() {
        return Err(ApiError::Invalid {
            status: 422,
            issues: missing,
        });
    }
    if let Some(validator) = state.service::<Validator>() {
        let warnings: usize = bundle_json
            .pointer("/meta/profile")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|p| errors_of(&validator.validate(&bundle_json, Some(p))).len())
            .sum();
        if warnings > 0 {
            recorder.property("profile-warnings", warnings.to_string());
        }
    }
    // Audit (added for BALP): the event rides in the transaction, naming each entry by
    // its fullUrl; its own result is not part of the client's response.
    let requested = tx.entries.len();
    if let Some(a) = audit {
        let touched: Vec<String> = tx
            .entries
            .iter()
            .filter_map(|e| e.full_url.clone())
            .collect();
        tx.entries.push(a.tx_entry(&touched, 200));
    }
    let mut results = reg.store.transaction(tx).await.map_err(store_error)?;
    results.truncate(requested);
    let mut response = bundle::transaction_response(&results);
    // Locations are `Type/id` (what the DDCC framework follows); the version is in etag.
    if let Some(entries) = response.get_mut("entry").and_then(Value::as_array_mut) {
        for (e, r) in entries.iter_mut().zip(&results) {
            e["response"]["location"] = Value::String(format!("{}/{}", r.resource_type, r.id));
        }
    }
    response["id"] = Value::String(uuid::Uuid::new_v4().to_string());
    recorder.property("registered", results.len().to_string());
    Ok(fhir_json(StatusCode::OK, &response))
}

fn attachment_data(attachment: &Value) -> Result<Vec<u8>, ApiError> {
    let data = attachment
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::not_found("the attachment carries no inline data"))?;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| ApiError::internal(format!("stored attachment is not base64: {e}")))
}

/// ITI-68 for Binary: the raw bytes in their own content type, unless the client asks
/// for the FHIR resource.
async fn binary(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::interaction(&state, &req, "read", Action::Read);
    let entity = audit_entity("Binary", &id);
    let result = binary_inner(&state, &req, id).await;
    audited_read(&state, audit, entity, result).await
}

async fn binary_inner(
    state: &AppState,
    req: &HttpRequest,
    id: String,
) -> Result<HttpResponse, ApiError> {
    check_id(&id)?;
    let reg = registry(state)?;
    let stored = match reg.store.read("Binary", &id).await {
        Ok(s) => s,
        // An issued document is stored as its Bundle; `Binary/{id}` is the
        // repository's byte view of it, which its DocumentReference names.
        Err(ddcc_store::StoreError::NotFound { .. }) => {
            return document_bytes(&reg, req, &id).await;
        }
        Err(e) => return Err(store_error(e)),
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("json") || accept.contains("fhir") {
        return Ok(with_version_headers(
            fhir_json(StatusCode::OK, &stored.resource),
            &stored,
            None,
        ));
    }
    let ct = stored
        .resource
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    let bytes = attachment_data(&stored.resource)?;
    Ok(with_version_headers(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, ct))
            .body(bytes),
        &stored,
        None,
    ))
}

/// `Binary/{id}` for the document Bundle `id`: the signed document's bytes, or with a
/// FHIR `Accept` the Binary resource holding them. Any other Bundle is not a document
/// the repository serves as bytes, so it stays a 404.
async fn document_bytes(
    reg: &Registry,
    req: &HttpRequest,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let stored = match reg.store.read("Bundle", id).await {
        Ok(s) => s,
        Err(ddcc_store::StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!("Binary/{id} not found")))
        }
        Err(e) => return Err(store_error(e)),
    };
    if stored.resource.get("type").and_then(Value::as_str) != Some("document") {
        return Err(ApiError::not_found(format!("Binary/{id} not found")));
    }
    let bytes = crate::registry::document_as_issued(&stored.resource).to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let resp = if accept.contains("json") || accept.contains("fhir") {
        let mut binary = json!({
            "resourceType": "Binary",
            "id": id,
            "contentType": "application/fhir+json",
            "data": base64::engine::general_purpose::STANDARD.encode(bytes.as_bytes()),
        });
        if let Some(meta) = stored.resource.get("meta") {
            binary["meta"] = json!({
                "versionId": meta.get("versionId"),
                "lastUpdated": meta.get("lastUpdated"),
            });
        }
        fhir_json(StatusCode::OK, &binary)
    } else {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/fhir+json"))
            .body(bytes)
    };
    Ok(with_version_headers(resp, &stored, None))
}

#[derive(serde::Deserialize)]
struct QrQuery {
    format: Option<String>,
}

/// The image, PDF or payload of a stored QR DocumentReference, as bytes.
async fn qr_code(
    state: AppState,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<QrQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::operation(&state, &req, "getQRCode", Action::Execute);
    let entity = audit_entity("DocumentReference", &id);
    let result = qr_code_inner(&state, id, query).await;
    audited_read(&state, audit, entity, result).await
}

async fn qr_code_inner(
    state: &AppState,
    id: String,
    query: web::Query<QrQuery>,
) -> Result<HttpResponse, ApiError> {
    check_id(&id)?;
    let format = query.format.as_deref().unwrap_or("png");
    let pick = |c: &Value| -> bool {
        let ct = c.pointer("/attachment/contentType").and_then(Value::as_str);
        let code = c.pointer("/format/code").and_then(Value::as_str);
        match format {
            "png" => ct == Some("image/png"),
            "svg" => ct == Some("image/svg+xml"),
            "pdf" => ct == Some("application/pdf"),
            _ => code == Some("serialized"),
        }
    };
    if !matches!(format, "png" | "svg" | "pdf" | "payload") {
        return Err(ApiError::bad_request(format!(
            "format must be png, svg, pdf or payload, not `{format}`"
        )));
    }
    let stored = registry(state)?
        .store
        .read("DocumentReference", &id)
        .await
        .map_err(store_error)?;
    let content = stored
        .resource
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| pick(c))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "DocumentReference/{id} has no {format} content (not a QR DocumentReference?)"
            ))
        })?;
    let attachment = &content["attachment"];
    let bytes = attachment_data(attachment)?;
    let ct = attachment
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, ct))
        .body(bytes))
}

/// `Parameters{id}`: the certificate to revoke.
fn revoke_target(body: &Value) -> Result<String, ApiError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_request(
            "$revokeHealthCertificate takes a Parameters resource with `id`",
        ));
    }
    body.get("parameter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("id"))
        .and_then(|p| {
            ["valueId", "valueString", "valueUri", "valueCode"]
                .iter()
                .find_map(|k| p.get(*k).and_then(Value::as_str))
        })
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::Invalid {
            status: 400,
            issues: vec![
                Issue::error("required", "parameter `id` is required").at("Parameters.parameter")
            ],
        })
}

async fn run_revoke(
    state: &AppState,
    caller: &crate::auth::Caller,
    recorder: &Recorder,
    id: &str,
    audit: &Audit,
) -> Result<HttpResponse, ApiError> {
    let reg = registry(state)?;
    check_revoke_scope(state, caller, reg.store.as_ref(), id).await?;
    let revoked = crate::registry::revoke_audited(
        reg.store.as_ref(),
        id,
        &state.config.ddcc.issuer_country,
        Some(audit),
    )
    .await?;
    if !revoked {
        // Nothing changed, so no transaction carried the event.
        audit.record(reg.store.as_ref(), &[], 200).await;
    }
    recorder.property("revoked", revoked.to_string());
    Ok(fhir_json(
        StatusCode::OK,
        &json!({
            "resourceType": "Parameters",
            "parameter": [{"name": "return", "valueBoolean": revoked}],
        }),
    ))
}

/// With an issuers file, a caller of one issuer revokes only what that issuer signed:
/// the document's `Bundle.signature` must verify with that issuer's DSC key. (A caller
/// granted `register` without being an issuer's, e.g. an operator's tool, is not
/// restricted.)
async fn check_revoke_scope(
    state: &AppState,
    caller: &crate::auth::Caller,
    store: &dyn ddcc_store::Store,
    id: &str,
) -> Result<(), ApiError> {
    let Some(issuer) = crate::auth::issuer_of(state, caller) else {
        return Ok(());
    };
    let Some(slot) = state
        .service::<crate::auth::IssuerSlots>()
        .and_then(|slots| {
            slots
                .0
                .iter()
                .find(|(i, _)| *i == issuer)
                .map(|(_, s)| s.clone())
        })
    else {
        return Ok(());
    };
    let identity = slot
        .get()
        .map_err(|message| ApiError::Unavailable {
            service: "signer".into(),
            message,
        })?
        .identity;
    // Unknown ids fall through to the revocation's own 404.
    let Some(document) = crate::registry::document_to_revoke(store, id).await? else {
        return Ok(());
    };
    if ddcc_cert::bundle_sig::verify(&document, &identity.public_key).is_ok() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "certificate {id} was not signed by issuer {issuer}: only its issuer may revoke it"
        )))
    }
}

fn revoke_audit(state: &AppState, req: &HttpRequest) -> Audit {
    Audit::operation(state, req, "revokeHealthCertificate", Action::Delete)
}

async fn revoke(
    state: AppState,
    req: HttpRequest,
    caller: crate::auth::Caller,
    recorder: Recorder,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let audit = revoke_audit(&state, &req);
    let result = match json_body(&body).and_then(|b| revoke_target(&b)) {
        Ok(id) => run_revoke(&state, &caller, &recorder, &id, &audit).await,
        Err(e) => Err(e),
    };
    audit.record_result(&state, &[], &result, true).await;
    result
}

async fn revoke_instance(
    state: AppState,
    req: HttpRequest,
    caller: crate::auth::Caller,
    recorder: Recorder,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = revoke_audit(&state, &req);
    let result = match check_id(&id) {
        Ok(()) => run_revoke(&state, &caller, &recorder, &id, &audit).await,
        Err(e) => Err(e),
    };
    audit.record_result(&state, &[], &result, true).await;
    result
}

/// What `GET /fhir/{T}?…` answers per type: the store's search parameters.
fn search_params(t: &str) -> Vec<Value> {
    let mut out: Vec<Value> = ddcc_store::index::PARAMS
        .iter()
        .filter(|p| p.resource_type == t)
        .map(|p| {
            let kind = match p.kind {
                ddcc_store::index::Kind::Token => "token",
                ddcc_store::index::Kind::Reference => "reference",
                ddcc_store::index::Kind::Date => "date",
                ddcc_store::index::Kind::String => "string",
            };
            json!({"name": p.name, "type": kind})
        })
        .collect();
    out.push(json!({"name": "_id", "type": "token"}));
    out.push(json!({"name": "_lastUpdated", "type": "date"}));
    out
}

/// A CapabilityStatement of exactly what this service serves.
async fn metadata(state: AppState, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let base = public_base(&state, &req);
    let has_store = state.service::<Registry>().is_some();
    let op = |name: &str, def: &str| json!({"name": name, "definition": def});
    let issuing = state.config.registry.mode != crate::config::Mode::Store;
    // The served artefact types (StructureMap among them, with `$transform`).
    let mut resources = crate::routes::artefacts::capability_resources();
    resources.extend([
        json!({
            "type": "QuestionnaireResponse",
            "operation": [op("generateHealthCertificate", "http://smart.who.int/ddcc/OperationDefinition/DDCC-QuestionnaireResponse-generateHealthCertificate")],
        }),
    ]);
    if !issuing {
        // Store mode serves neither artefacts nor issuing.
        resources.clear();
    }
    if has_store {
        let mut types: Vec<&str> = ddcc_store::index::PARAMS
            .iter()
            .map(|p| p.resource_type)
            .collect();
        types.extend(["Binary", "Composition", "Immunization", "Organization"]);
        types.sort_unstable();
        types.dedup();
        for t in types {
            let mut r = json!({
                "type": t,
                "versioning": "versioned",
                "readHistory": false,
                "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "create"}, {"code": "search-type"}],
                "searchParam": search_params(t),
            });
            if t == "DocumentReference" {
                r["operation"] = json!([
                    op(
                        "getQRCode",
                        &format!("{base}/OperationDefinition/getQRCode")
                    ),
                    op(
                        "docref",
                        "http://hl7.org/fhir/uv/ipa/OperationDefinition/docref"
                    ),
                ]);
            }
            if t == "Bundle" {
                r["operation"] = json!([op(
                    "revokeHealthCertificate",
                    &format!("{base}/OperationDefinition/revokeHealthCertificate")
                )]);
            }
            resources.push(r);
        }
    }
    let mut interaction = Vec::new();
    if issuing {
        interaction.push(json!({"code": "batch"}));
    }
    if has_store {
        interaction.push(json!({"code": "transaction"}));
    }
    let system_ops = if issuing {
        vec![
            op(
                "validate",
                "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            ),
            op(
                "submitHealthEvent",
                "http://smart.who.int/ddcc/OperationDefinition/DDCC-submitHealthEvent",
            ),
        ]
    } else {
        Vec::new()
    };
    let cs = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": ddcc_cert::rfc3339_utc(crate::now_unix()),
        "kind": "instance",
        "software": {"name": "ddcc-mediator", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "DDCC issuing, mapping, validation and registry", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": interaction,
            "operation": system_ops,
        }],
    });
    Ok(fhir_json(StatusCode::OK, &cs))
}
