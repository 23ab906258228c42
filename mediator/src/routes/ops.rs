//! Operational endpoints: liveness, readiness, Prometheus metrics.

use actix_web::{http::StatusCode, web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/ready").route(web::get().to(ready)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// Liveness: the process serves HTTP. Dependencies are `/ready`'s business.
async fn health(state: AppState) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "pass",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().as_secs(),
    }))
}

async fn ready(state: AppState) -> HttpResponse {
    let report = state.readiness.run().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(json!({
        "ready": report.ready,
        "mode": if state.standalone { "standalone" } else { "openhim" },
        "openhim": state.openhim.state().as_str(),
        "checks": report.checks,
    }))
}

async fn metrics(state: AppState) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.openhim))
}
