//! Shared application state. Cheap to clone (one `Arc`); handlers take it as an
//! extractor (`state: AppState`). Modules that need their own long-lived service
//! (a Vault signer, the store) put it in with [`AppStateBuilder::with_service`] and
//! read it back with [`AppState::service`]; dependencies register a readiness check.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::{ready, Ready};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openhim::{MediatorDoc, OpenHimStatus, RegistrationState, RuntimeConfig};
use crate::readiness::{CheckFuture, ReadinessCheck, ReadinessRegistry};

pub struct Inner {
    pub config: Config,
    /// Behind OpenHIM (envelope responses) or standalone (plain FHIR).
    pub standalone: bool,
    /// The registration document (urn, version, configDefs).
    pub mediator: MediatorDoc,
    pub started: Instant,
    pub metrics: Arc<Metrics>,
    pub openhim: Arc<OpenHimStatus>,
    pub readiness: ReadinessRegistry,
    /// Run-time config from OpenHIM (configDefs-typed); updated by heartbeats.
    pub runtime: Arc<watch::Sender<RuntimeConfig>>,
    /// Shared client for downstream HTTP calls (FHIR server, …).
    pub http: reqwest::Client,
    services: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn builder(config: Config, mediator: MediatorDoc) -> AppStateBuilder {
        AppStateBuilder {
            config,
            mediator,
            readiness: ReadinessRegistry::default(),
            services: HashMap::new(),
            http: None,
        }
    }

    /// A service put in with [`AppStateBuilder::with_service`].
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.services
            .get(&TypeId::of::<T>())
            .and_then(|s| s.clone().downcast::<T>().ok())
    }

    /// As [`AppState::service`], as a 503 when missing (a module not configured).
    pub fn require<T: Send + Sync + 'static>(&self, what: &str) -> Result<Arc<T>, ApiError> {
        self.service::<T>().ok_or_else(|| ApiError::Unavailable {
            service: what.into(),
            message: "not configured".into(),
        })
    }

    /// A snapshot of the current run-time config.
    pub fn runtime_config(&self) -> RuntimeConfig {
        self.runtime.borrow().clone()
    }

    /// Watch run-time config changes.
    pub fn subscribe_runtime_config(&self) -> watch::Receiver<RuntimeConfig> {
        self.runtime.subscribe()
    }

    /// The urn sent in every envelope.
    pub fn urn(&self) -> &str {
        &self.mediator.urn
    }
}

pub struct AppStateBuilder {
    config: Config,
    mediator: MediatorDoc,
    readiness: ReadinessRegistry,
    services: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    http: Option<reqwest::Client>,
}

impl AppStateBuilder {
    pub fn with_service<T: Send + Sync + 'static>(mut self, service: Arc<T>) -> Self {
        self.services.insert(TypeId::of::<T>(), service);
        self
    }

    pub fn with_readiness(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.readiness.register(check);
        self
    }

    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    pub fn build(self) -> Result<AppState, reqwest::Error> {
        let standalone = self.config.is_standalone();
        let status = Arc::new(OpenHimStatus::default());
        status.set_state(if standalone {
            RegistrationState::Disabled
        } else {
            RegistrationState::Registering
        });
        let mut readiness = self.readiness;
        if !standalone {
            readiness.register(Arc::new(OpenHimCheck(status.clone())));
        }
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder().use_rustls_tls().build()?,
        };
        let runtime = RuntimeConfig::from_defaults(&self.mediator.defs, &self.mediator.defaults);
        let metrics = Arc::new(Metrics::default());
        metrics
            .clock
            .set_warn_threshold(self.config.server.clock_offset_warn_secs);
        Ok(AppState(Arc::new(Inner {
            standalone,
            mediator: self.mediator,
            started: Instant::now(),
            metrics,
            openhim: status,
            readiness,
            runtime: Arc::new(watch::Sender::new(runtime)),
            http,
            services: self.services,
            config: self.config,
        })))
    }
}

/// Registration is reported but not required: the service can answer while it
/// (re-)registers, and OpenHIM keeps routing to a known endpoint.
struct OpenHimCheck(Arc<OpenHimStatus>);

impl ReadinessCheck for OpenHimCheck {
    fn name(&self) -> &str {
        "openhim"
    }
    fn required(&self) -> bool {
        false
    }
    fn check(&self) -> CheckFuture<'_> {
        let state = self.0.state();
        Box::pin(async move {
            match state {
                RegistrationState::Registered => Ok(state.as_str().to_string()),
                other => Err(other.as_str().to_string()),
            }
        })
    }
}

impl FromRequest for AppState {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.app_data::<AppState>()
                .cloned()
                .ok_or_else(|| ApiError::internal("AppState is not registered in the App").into()),
        )
    }
}
