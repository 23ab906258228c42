//! `/admin/gateway/…`: the trust network operations of `ddcc-mediator gateway …`
//! over HTTP. Never public: the `security` layer wraps this module with
//! authentication, which is why it is a module of its own.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::sync::Arc;

use crate::error::ApiError;
use crate::gateway::{ops, Gateway};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/gateway/status").route(web::get().to(status)))
        .service(web::resource("/admin/gateway/publish").route(web::post().to(publish)))
        .service(web::resource("/admin/gateway/sync").route(web::post().to(sync)))
        .service(web::resource("/admin/gateway/upload-dsc").route(web::post().to(upload_dsc)));
}

fn client(state: &AppState) -> Result<Arc<Gateway>, ApiError> {
    state
        .service::<Gateway>()
        .ok_or_else(|| ApiError::Unavailable {
            service: "trust network gateway".into(),
            message: "the gateway client is not configured (DDCC_GATEWAY_URL)".into(),
        })
}

async fn status(state: AppState) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(client(&state)?.status().await?))
}

async fn publish(state: AppState) -> Result<HttpResponse, ApiError> {
    let g = client(&state)?;
    let artefacts = state
        .service::<crate::artefacts::Artefacts>()
        .ok_or_else(|| ApiError::internal("served artefacts are not loaded"))?;
    let publisher = ops::publisher(&state.config)?;
    Ok(HttpResponse::Ok().json(ops::publish(&g, &publisher, &artefacts).await?))
}

#[derive(Deserialize)]
struct SyncQuery {
    #[serde(default)]
    delta: bool,
}

async fn sync(state: AppState, q: web::Query<SyncQuery>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ops::sync(client(&state)?.as_ref(), q.delta).await?))
}

async fn upload_dsc(state: AppState) -> Result<HttpResponse, ApiError> {
    let g = client(&state)?;
    let signing = state
        .service::<crate::services::SigningSlot>()
        .ok_or_else(|| ApiError::internal("no signing slot"))?
        .get()
        .map_err(|message| ApiError::Unavailable {
            service: "signer".into(),
            message,
        })?;
    Ok(HttpResponse::Ok().json(ops::upload_dsc(&g, &signing.identity.dsc_der).await?))
}
