//! The in-process service harness shared by the service tests: the real app, built
//! the way `serve` builds it (catalogue from `fhir-profiles/`, local development
//! signer, embedded store in a fresh data directory), and the conformance corpus
//! when `../shared` is present.
#![allow(dead_code)] // each test file uses a different subset

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::test;
use ddcc_cert::SigningIdentity;
use ddcc_mediator::config::{Config, DdccConfig};
use ddcc_mediator::registry::Registry;
use ddcc_mediator::server;
use ddcc_mediator::services::Services;
use serde_json::Value;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` (or `DDCC_SHARED`), or `None` after saying the test skips.
pub fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    if p.is_dir() {
        Some(p)
    } else {
        println!("SKIP: {} is absent", p.display());
        None
    }
}

/// The IG's English example QuestionnaireResponse.
pub fn english_response() -> Option<Value> {
    let p = shared()?.join(
        "conformance/ddcc-ig/examples/QuestionnaireResponse-DDCCVSQuestionnaireResponseExample.json",
    );
    Some(serde_json::from_slice(&std::fs::read(p).expect("example")).expect("json"))
}

/// Standalone, the repository's artefacts, a fresh data directory named after `tag`.
pub fn config(tag: &str) -> Config {
    Config {
        standalone: Some(true),
        data_dir: std::env::temp_dir().join(format!(
            "ddcc-{tag}-test-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        )),
        ddcc: DdccConfig {
            profiles_dir: root().join("fhir-profiles"),
            cql_dir: root().join("cql"),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// What tests check behind the HTTP surface.
pub struct Handles {
    pub identity: SigningIdentity,
    pub registry: Arc<Registry>,
}

/// The app for `cfg` (no Vault: the local development signer).
pub async fn start(
    cfg: Config,
) -> (
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    Handles,
) {
    let services = Services::build_with_env(&cfg, |_| None)
        .await
        .expect("services");
    let handles = Handles {
        identity: services.signing.get().expect("local signer").identity,
        registry: services.registry.clone(),
    };
    let state = server::build_state(cfg, |b| services.install(b)).expect("state");
    (
        test::init_service(server::build_app(state, |_| {})).await,
        handles,
    )
}

/// [`start`] without the handles.
pub async fn app(
    cfg: Config,
) -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
    Error = actix_web::Error,
> {
    start(cfg).await.0
}
