//! The request pipeline wrapped around every route: request id and tracing span
//! (with the OpenHIM transaction id), the body-size pre-check, one recorder per
//! request, turning every error response into an OperationOutcome, metrics, and
//! finally the OpenHIM envelope when running behind OpenHIM.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use actix_web::body::{to_bytes, BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use tracing::Instrument;

use crate::error::{ApiError, FHIR_JSON};
use crate::openhim::envelope;
use crate::openhim::Recorder;
use crate::state::AppState;

/// Operational endpoints are probed and scraped directly, not through OpenHIM,
/// so they keep their plain formats.
pub const OPS_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

pub const REQUEST_ID: &str = "x-request-id";
pub const OPENHIM_TX: &str = "x-openhim-transactionid";
pub const OPENHIM_CLIENT: &str = "x-openhim-clientid";

pub struct Pipeline {
    state: AppState,
}

impl Pipeline {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Pipeline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = PipelineService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(PipelineService {
            service: Rc::new(service),
            state: self.state.clone(),
        }))
    }
}

pub struct PipelineService<S> {
    service: Rc<S>,
    state: AppState,
}

/// Header values from clients end up in logs: keep them short and plain.
fn header_token(req: &ServiceRequest, name: &str) -> Option<String> {
    let v = req.headers().get(name)?.to_str().ok()?.trim();
    (!v.is_empty()
        && v.len() <= 128
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c)))
    .then(|| v.to_string())
}

fn new_request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn content_length(req: &ServiceRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Any 4xx/5xx that is not already a FHIR/JSON body (actix's own 405, payload
/// errors, …) becomes an OperationOutcome with the same status.
fn normalise_error(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json {
        return res;
    }
    let detail = res.response().error().map(|e| e.to_string());
    let err = match status {
        StatusCode::NOT_FOUND => {
            ApiError::NotFound(format!("no route for {}", res.request().path()))
        }
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            method: res.request().method().to_string(),
            path: res.request().path().to_string(),
        },
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: res
                .request()
                .app_data::<AppState>()
                .map_or(0, |s| s.config.server.max_body_bytes),
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
            detail.unwrap_or_else(|| "unsupported media type".into()),
        ),
        s if s.is_server_error() => ApiError::Internal(detail.unwrap_or_else(|| s.to_string())),
        s => ApiError::Invalid {
            status: s.as_u16(),
            issues: vec![crate::error::Issue::error(
                "invalid",
                detail.unwrap_or_else(|| s.canonical_reason().unwrap_or("bad request").to_string()),
            )],
        },
    };
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, err.error_response())
}

impl<S, B> Service<ServiceRequest> for PipelineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let state = self.state.clone();
        let request_id = header_token(&req, REQUEST_ID).unwrap_or_else(new_request_id);
        let tx = header_token(&req, OPENHIM_TX);
        let client = header_token(&req, OPENHIM_CLIENT);
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %req.method(),
            path = %req.path(),
            openhim_tx = tx.as_deref().unwrap_or(""),
            openhim_client = client.as_deref().unwrap_or(""),
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let method = req.method().to_string();
                let ops = OPS_PATHS.contains(&req.path());
                let recorder = Recorder::default();
                req.extensions_mut().insert(recorder.clone());
                let limit = state.config.server.max_body_bytes;

                let res: ServiceResponse<BoxBody> =
                    if content_length(&req).is_some_and(|n| n > limit as u64) {
                        req.into_response(ApiError::PayloadTooLarge { limit }.error_response())
                    } else {
                        // Handlers and extractors turn their errors into responses (Ok);
                        // an Err can only come from a layer between us and the router,
                        // and actix answers it with the error's own response. The
                        // request cannot be cloned beforehand (the router needs it unique).
                        // A panicking handler becomes a 500 OperationOutcome instead of
                        // a dropped connection.
                        let outcome = CatchUnwind(Box::pin(service.call(req))).await;
                        let err = match outcome {
                            Ok(Ok(r)) => Some(r.map_into_boxed_body()),
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "inner service failed");
                                return Err(e);
                            }
                            Err(()) => None,
                        };
                        match err {
                            Some(r) => r,
                            None => {
                                tracing::error!("handler panicked");
                                state
                                    .metrics
                                    .observe("panic", &method, 500, started.elapsed());
                                return Err(ApiError::internal("handler panicked").into());
                            }
                        }
                    };
                let res = normalise_error(res);

                let route = res
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string());
                let status = res.status();
                state
                    .metrics
                    .observe(&route, &method, status.as_u16(), started.elapsed());
                tracing::info!(
                    status = status.as_u16(),
                    route = %route,
                    latency_ms = started.elapsed().as_millis() as u64,
                    "request completed"
                );

                let mut res = if state.standalone || ops {
                    res
                } else {
                    wrap_in_envelope(res, &state, &recorder, tx.as_deref()).await
                };
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    res.headers_mut()
                        .insert(HeaderName::from_static(REQUEST_ID), v);
                }
                Ok(res)
            }
            .instrument(span),
        )
    }
}

/// Polls the inner future inside `catch_unwind`, so a panic surfaces as `Err(())`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

async fn wrap_in_envelope(
    res: ServiceResponse<BoxBody>,
    state: &AppState,
    recorder: &Recorder,
    tx: Option<&str>,
) -> ServiceResponse<BoxBody> {
    let (req, resp) = res.into_parts();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match to_bytes(resp.into_body()).await {
        Ok(b) => b,
        Err(e) => {
            let err = ApiError::internal(format!("cannot read response body: {e}"));
            let oo = err.outcome().to_string();
            let mut h = header::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            return envelope_or_plain(req, state, recorder, tx, err.status_code(), h, oo.into());
        }
    };
    envelope_or_plain(req, state, recorder, tx, status, headers, body)
}

fn envelope_or_plain(
    req: actix_web::HttpRequest,
    state: &AppState,
    recorder: &Recorder,
    tx: Option<&str>,
    status: StatusCode,
    headers: header::HeaderMap,
    body: actix_web::web::Bytes,
) -> ServiceResponse<BoxBody> {
    let recorded = recorder.snapshot();
    match envelope::build(
        state.urn(),
        status,
        &headers,
        &body,
        &recorded,
        SystemTime::now(),
    ) {
        Some(env) => ServiceResponse::new(req, envelope::response(&env, tx)),
        None => {
            tracing::debug!("binary response passed through without envelope");
            let mut r = HttpResponse::with_body(status, body).map_into_boxed_body();
            *r.headers_mut() = headers;
            ServiceResponse::new(req, r)
        }
    }
}
