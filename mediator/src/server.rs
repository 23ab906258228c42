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
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error("TLS listener: {0}")]
    Tls(String),
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Which listener an app serves. Admin paths (`/metrics`, `/admin/**`) answer 404
/// on the public listener when an admin listener is configured
/// (`server.admin_listener()`), and the admin listener serves only them and the
/// probes, so exposing the public port never exposes management.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Public,
    Admin,
}

/// Management paths, kept off the public listener.
pub fn is_admin_path(path: &str) -> bool {
    path == "/metrics" || path == "/admin" || path.starts_with("/admin/")
}

impl Surface {
    fn hides(self, state: &AppState, path: &str) -> bool {
        match self {
            Surface::Public => {
                is_admin_path(path) && state.config.server.admin_listener().is_some()
            }
            Surface::Admin => !(is_admin_path(path) || path == "/health" || path == "/ready"),
        }
    }
}

/// The public application: shared state, extractor limits, every route module,
/// the 404 fallback, authentication and the pipeline middleware. `extra` adds
/// routes (tests use it; the binary passes a no-op).
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
    build_app_for(state, Surface::Public, extra)
}

/// [`build_app`] for either listener.
pub fn build_app_for<F>(
    state: AppState,
    surface: Surface,
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
    let hide_state = state.clone();
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
        .wrap(crate::auth::Authenticate)
        // Outside authentication: a hidden path is a 404 whoever asks.
        .wrap_fn(move |req, srv| {
            use actix_web::dev::Service as _;
            type Fut = std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<ServiceResponse, actix_web::Error>>>,
            >;
            if surface.hides(&hide_state, req.path()) {
                let err =
                    ApiError::NotFound(format!("no route for {} {}", req.method(), req.path()));
                let resp = req.into_response(actix_web::ResponseError::error_response(&err));
                Box::pin(async move { Ok(resp) }) as Fut
            } else {
                let fut = srv.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_boxed_body) }) as Fut
            }
        })
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
    let client =
        OpenHimClient::new(&cfg.openhim, cfg.openhim_url())?.with_clock(state.metrics.clone());
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

/// Runs one listener of the service on `listener`: the public surface (over TLS
/// when `tls` is given; client certificates then reach the authentication
/// middleware) or the admin one. `serve` and the tests use it alike.
pub fn run_listener(
    state: &AppState,
    surface: Surface,
    listener: std::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
    handle_signals: bool,
) -> Result<actix_web::dev::Server, ServeError> {
    let app_state = state.clone();
    let mut server = HttpServer::new(move || build_app_for(app_state.clone(), surface, |_| {}))
        .on_connect(crate::auth::mtls::on_connect)
        .shutdown_timeout(state.config.server.shutdown_timeout_secs);
    if state.config.server.workers > 0 {
        server = server.workers(state.config.server.workers);
    }
    if !handle_signals {
        server = server.disable_signals();
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let bind = |source| ServeError::Bind {
        addr: addr.clone(),
        source,
    };
    let server = match tls {
        Some(cfg) => server.listen_rustls_0_23(listener, cfg).map_err(bind)?,
        None => server.listen(listener).map_err(bind)?,
    };
    Ok(server.run())
}

fn bind(addr: &str) -> Result<std::net::TcpListener, ServeError> {
    std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })
}

/// `ddcc-mediator serve`: runs until SIGTERM/SIGINT, lets in-flight requests
/// finish (actix's graceful shutdown), then stops the heartbeats. With an admin
/// listener (the default: loopback, public port + 1) both stop together.
pub async fn serve(config: Config, provenance: Provenance) -> Result<(), ServeError> {
    tracing::info!("{}", config.summary(&provenance));
    let tls = crate::auth::TlsSettings::from_lookup(&|k| std::env::var(k).ok())
        .and_then(|t| t.map(|t| crate::auth::mtls::server_config(&t)).transpose())
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let services = Services::build(&config).await?;
    let gateway = crate::gateway::start(&config, services.registry.store.clone())?;
    let state = build_state(config, |b| {
        let b = services.install(b);
        match gateway.clone() {
            Some(g) => b.with_service(g),
            None => b,
        }
    })?;
    if let Some(g) = &gateway {
        g.attach_clock(state.metrics.clone());
    }
    let runner = start_openhim(&state)?;
    let addr = format!("{}:{}", state.config.server.host, state.config.server.port);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public = run_listener(&state, Surface::Public, bind(&addr)?, tls, true)?;
    tracing::info!(%addr, scheme, urn = %state.urn(), "listening");
    let result = match state.config.server.admin_listener() {
        Some(admin_addr) => {
            let admin = run_listener(&state, Surface::Admin, bind(&admin_addr)?, None, true)?;
            tracing::info!(addr = %admin_addr, "admin listener (/metrics, /admin/**)");
            let (p, a) = tokio::join!(public, admin);
            p.and(a).map_err(ServeError::Server)
        }
        None => {
            tracing::warn!("admin routes (/metrics, /admin/**) are served on the public listener (DDCC_ADMIN_ADDR=public)");
            public.await.map_err(ServeError::Server)
        }
    };
    if let Some(r) = runner {
        r.stop().await;
    }
    tracing::info!("stopped");
    result
}
