//! Issuing: `$generateHealthCertificate` (one QuestionnaireResponse -> one signed
//! DDCC document) and Submit Health Event (a batch of them, each entry answered on
//! its own), with the reference mediator's `/ddcc/...` paths as aliases; the DSC
//! for verifiers at `GET /ddcc/dsc`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use ddcc_issuing::input::{self, InputError};
use ddcc_issuing::issue::{IssueError, Issued, Issuer};
use serde_json::{json, Value};

use crate::auth::{signing_for, Caller};
use crate::error::{ApiError, Issue};
use crate::now_unix;
use crate::openhim::{Orchestration, Recorder};
use crate::routes::{fhir_json, json_body};
use crate::services::{Signing, SigningSlot};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in [
        "/fhir/QuestionnaireResponse/$generateHealthCertificate",
        "/fhir/Bundle/$generateHealthCertificate",
        "/ddcc/generateHealthCertificate",
    ] {
        cfg.service(web::resource(path).route(web::post().to(generate)));
    }
    for path in ["/fhir/submitHealthEvent", "/ddcc/submitHealthEvent"] {
        cfg.service(web::resource(path).route(web::post().to(submit_health_event)));
    }
    cfg.service(web::resource("/ddcc/dsc").route(web::get().to(dsc)))
        .service(web::resource("/.well-known/jwks.json").route(web::get().to(jwks)));
}

/// The HTTP face of an issuing failure: one place decides statuses and issues.
pub fn issue_error(e: IssueError) -> ApiError {
    match e {
        IssueError::Invalid(issues) => ApiError::Invalid {
            status: 422,
            issues: issues
                .into_iter()
                .map(|i| {
                    let mut issue = Issue::error(i.code.as_fhir(), i.message).at(i.location);
                    if let Some(link) = i.link_id {
                        issue.diagnostics =
                            issue.diagnostics.map(|d| format!("{d} (linkId '{link}')"));
                    }
                    issue
                })
                .collect(),
        },
        e @ (IssueError::NoQuestionnaire | IssueError::UnknownQuestionnaire(_)) => {
            ApiError::Invalid {
                status: 422,
                issues: vec![Issue::error("not-supported", e.to_string())
                    .at("QuestionnaireResponse.questionnaire")],
            }
        }
        e @ (IssueError::Mapping(_) | IssueError::Unencodable(_)) => ApiError::Invalid {
            status: 422,
            issues: vec![Issue::error("processing", e.to_string())],
        },
        IssueError::SignerUnavailable(m) => ApiError::Unavailable {
            service: "signer".into(),
            message: m,
        },
        e @ IssueError::SelfCheck { .. } => ApiError::internal(e.to_string()),
        IssueError::Internal(m) => ApiError::internal(m),
    }
}

pub fn input_error(e: InputError) -> ApiError {
    let status = match e {
        InputError::NoResourceType => 400,
        _ => 422,
    };
    let mut issue = Issue::error(
        if status == 400 {
            "structure"
        } else {
            "invalid"
        },
        e.to_string(),
    );
    if let Some(loc) = e.location() {
        issue = issue.at(loc);
    }
    ApiError::Invalid {
        status,
        issues: vec![issue],
    }
}

/// The connected signer, or 503 saying why there is none (Vault down or sealed).
fn signing(state: &AppState) -> Result<(Signing, std::sync::Arc<SigningSlot>), ApiError> {
    let slot = state.require::<SigningSlot>("signer")?;
    let signing = slot.get().map_err(|message| ApiError::Unavailable {
        service: "signer".into(),
        message,
    })?;
    Ok((signing, slot))
}

/// Issue one certificate. Signing through Vault is a downstream call: it is recorded
/// as an orchestration (the local development signer is not).
async fn issue_one(
    state: &AppState,
    issuer: &Issuer,
    endpoint: Option<&str>,
    response: &Value,
    recorder: &Recorder,
) -> Result<Issued, ApiError> {
    let now = now_unix();
    let prepared = issuer.prepare(response, now).map_err(issue_error)?;
    let hcid = prepared
        .core_data_set
        .pointer("/certificate/hcid/value")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty());
    let earlier = match (state.service::<crate::registry::Registry>(), hcid) {
        (Some(registry), Some(hcid)) => {
            crate::registry::earlier_doses(registry.store.as_ref(), hcid).await?
        }
        _ => Vec::new(),
    };
    let pending =
        endpoint.map(|url| Orchestration::begin("Vault transit: sign certificates", "POST", url));
    let result = issuer.sign_with_earlier_doses(prepared, now, earlier).await;
    if let Err(IssueError::SelfCheck { .. }) = &result {
        state.metrics.self_check_failed();
    }
    if let Some(p) = pending {
        recorder.orchestration(match &result {
            Ok(_) => p.complete(200, Default::default(), None),
            Err(e) => p.fail(e.to_string()),
        });
    }
    result.map_err(issue_error)
}

async fn generate(
    state: AppState,
    req: actix_web::HttpRequest,
    caller: Caller,
    recorder: Recorder,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Audit (added for BALP): success commits with the registration; failures here.
    let audit = crate::audit::Audit::operation(
        &state,
        &req,
        "generateHealthCertificate",
        crate::audit::Action::Create,
    );
    let result = generate_inner(&state, &caller, &recorder, &audit, body).await;
    audit.record_result(&state, &[], &result, true).await;
    result
}

async fn generate_inner(
    state: &AppState,
    caller: &Caller,
    recorder: &Recorder,
    audit: &crate::audit::Audit,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The caller's identity alone picks the issuer and its key.
    let (signing, slot) = signing_for(state, caller)?;
    let body = json_body(&body)?;
    let response = input::questionnaire_response(&body).map_err(input_error)?;
    let issuer = crate::auth::issuer_of(state, caller);
    let document = crate::registry::issue_once_in(
        state,
        issuer.as_deref(),
        response,
        recorder,
        Some(audit),
        || {
            issue_one(
                state,
                &signing.issuer,
                slot.endpoint.as_deref(),
                response,
                recorder,
            )
        },
    )
    .await?;
    Ok(fhir_json(StatusCode::OK, &document))
}

/// Submit Health Event: one response entry per request entry, in order, each with
/// its own status; a bad entry never sinks the others.
pub(crate) async fn submit_health_event(
    state: AppState,
    req: actix_web::HttpRequest,
    caller: Caller,
    recorder: Recorder,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Audit (added for BALP): each registered entry commits with its own event, each
    // refused entry and a refused batch are recorded here.
    let audit = crate::audit::Audit::operation(
        &state,
        &req,
        "submitHealthEvent",
        crate::audit::Action::Create,
    );
    let result = submit_health_event_inner(state.clone(), &caller, recorder, body, &audit).await;
    audit.record_result(&state, &[], &result, true).await;
    result
}

async fn submit_health_event_inner(
    state: AppState,
    caller: &Caller,
    recorder: Recorder,
    body: web::Bytes,
    audit: &crate::audit::Audit,
) -> Result<HttpResponse, ApiError> {
    let (signing, slot) = signing_for(&state, caller)?;
    let issuer = crate::auth::issuer_of(&state, caller);
    let body = json_body(&body)?;
    let entries = input::batch_entries(&body).map_err(input_error)?;
    let mut out = Vec::with_capacity(entries.len());
    let (mut ok, mut failed) = (0, 0);
    for entry in entries {
        let result = match entry {
            Ok(response) => {
                crate::registry::issue_once_in(
                    &state,
                    issuer.as_deref(),
                    response,
                    &recorder,
                    Some(audit),
                    || {
                        issue_one(
                            &state,
                            &signing.issuer,
                            slot.endpoint.as_deref(),
                            response,
                            &recorder,
                        )
                    },
                )
                .await
            }
            Err(e) => Err(input_error(e)),
        };
        out.push(match result {
            Ok(document) => {
                ok += 1;
                json!({
                    "resource": document,
                    "response": {"status": "201 Created"},
                })
            }
            Err(e) => {
                failed += 1;
                let status = actix_web::ResponseError::status_code(&e);
                audit.record_status(&state, &[], status.as_u16()).await;
                json!({
                    "response": {
                        "status": format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
                        "outcome": e.outcome(),
                    }
                })
            }
        });
    }
    recorder.property("entries", format!("{ok} issued, {failed} refused"));
    let bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", uuid::Uuid::new_v4())},
        "type": "batch-response",
        "timestamp": ddcc_cert::rfc3339_utc(now_unix()),
        "entry": out,
    });
    Ok(fhir_json(StatusCode::CREATED, &bundle))
}

/// The active DSC, so a verifier can be pointed at it.
async fn dsc(state: AppState) -> Result<HttpResponse, ApiError> {
    let identity = signing(&state)?.0.identity;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-pem-file"))
        .insert_header(("x-ddcc-kid", identity.kid_b64()))
        .body(identity.dsc_pem()))
}

/// The SMART Health Card issuer key set, at `<iss>/.well-known/jwks.json`: every
/// issuer's key when an issuers file configures several.
async fn jwks(state: AppState) -> Result<HttpResponse, ApiError> {
    let identities = match state.service::<crate::auth::IssuerSlots>() {
        Some(slots) => slots
            .0
            .iter()
            .filter_map(|(_, slot)| slot.get().ok().map(|s| s.identity))
            .collect::<Vec<_>>(),
        None => vec![signing(&state)?.0.identity],
    };
    if identities.is_empty() {
        return Err(ApiError::Unavailable {
            service: "signer".into(),
            message: "no issuer's signer is connected".into(),
        });
    }
    let refs: Vec<_> = identities.iter().collect();
    let set = ddcc_cert::shc::jwks(&refs).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        // Verifiers fetch this from browsers and apps on other origins.
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(set.to_string()))
}
