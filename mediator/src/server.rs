//! Builds the actix `App` (one function used by `serve` and by the tests) and
//! runs the server with the OpenHIM background task.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpRequest, HttpServer};

use crate::config::{Config, Provenance};
use crate::error::{self, ApiError};
use crate::openhim::{self, MediatorDoc, OpenHimClient, RunnerSettings};
use crate::pipeline::Pipeline;
use crate::readiness::DataDirCheck;
use crate::routes;
use crate::services::Services;
use crate::state::{AppState, AppStateBuilder};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    MediatorConfig(#[from] openhim::mediator_config::MediatorConfigError),
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    OpenHim(#[from] openhim::client::ClientError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Server(std::io::Error),
    #[error(transparent)]
    Services(#[from] crate::services::ServicesError),
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// The application: shared state, extractor limits, every route module, the 404
/// fallback, and the pipeline middleware. `extra` adds routes (tests use it; the
/// binary passes a no-op).
pub fn build_app<F>(
    state: AppState,
    extra: F,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
>
where
    F: FnOnce(&mut web::ServiceConfig),
{
    let limit = state.config.server.max_body_bytes;
    let store_only = state.config.registry.mode == crate::config::Mode::Store;
    App::new()
        .app_data(state.clone())
        .app_data(error::json_config(limit))
        .app_data(error::payload_config(limit))
        .configure(|c| {
            if store_only {
                routes::configure_store_only(c)
            } else {
                routes::configure(c)
            }
        })
        .configure(extra)
        .default_service(web::to(not_found))
        .wrap(Pipeline::new(state))
}

/// State for a config: the registration document, the data-dir check, and
/// whatever `customise` adds (services, readiness checks of other modules).
pub fn build_state(
    config: Config,
    customise: impl FnOnce(AppStateBuilder) -> AppStateBuilder,
) -> Result<AppState, ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let doc = MediatorDoc::for_config(&config)?;
    let data_dir = config.data_dir.clone();
    let builder = AppState::builder(config, doc).with_readiness(Arc::new(DataDirCheck(data_dir)));
    Ok(customise(builder).build()?)
}

/// Starts registration/heartbeats unless standalone.
pub fn start_openhim(state: &AppState) -> Result<Option<openhim::RunnerHandle>, ServeError> {
    if state.standalone {
        return Ok(None);
    }
    let cfg = &state.config;
    let client = OpenHimClient::new(&cfg.openhim, cfg.openhim_url())?;
    let settings = RunnerSettings {
        heartbeat_interval: cfg.openhim.heartbeat_interval(),
        register_initial: std::time::Duration::from_millis(cfg.openhim.register_initial_ms),
        register_max: std::time::Duration::from_millis(cfg.openhim.register_max_ms),
    };
    Ok(Some(openhim::spawn(
        client,
        state.mediator.clone(),
        settings,
        state.openhim.clone(),
        state.runtime.clone(),
        state.started,
    )))
}

/// `ddcc-mediator serve`: runs until SIGTERM/SIGINT, lets in-flight requests
/// finish (actix's graceful shutdown), then stops the heartbeats.
pub async fn serve(config: Config, provenance: Provenance) -> Result<(), ServeError> {
    tracing::info!("{}", config.summary(&provenance));
    let services = Services::build(&config).await?;
    let state = build_state(config, |b| services.install(b))?;
    let runner = start_openhim(&state)?;
    let addr = format!("{}:{}", state.config.server.host, state.config.server.port);
    let app_state = state.clone();
    let mut server = HttpServer::new(move || build_app(app_state.clone(), |_| {}))
        .shutdown_timeout(state.config.server.shutdown_timeout_secs);
    if state.config.server.workers > 0 {
        server = server.workers(state.config.server.workers);
    }
    let server = server
        .bind(&addr)
        .map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?
        .run();
    tracing::info!(%addr, urn = %state.urn(), "listening");
    let result = server.await.map_err(ServeError::Server);
    if let Some(r) = runner {
        r.stop().await;
    }
    tracing::info!("stopped");
    result
}
