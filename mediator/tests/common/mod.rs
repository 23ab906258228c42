//! Shared harness: runs the real mediator app (`server::build_app`, the same
//! function `serve` uses) on a random loopback port next to the OpenHIM double.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use ddcc_mediator::config::{Config, OpenHimAuth};
use ddcc_mediator::openhim::RunnerHandle;
use ddcc_mediator::server;
use ddcc_mediator::{ApiError, AppState, Orchestration, Recorder};
use serde_json::{json, Value};

pub const URN: &str = "urn:mediator:ddcc-mediator";

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ddcc-test-{tag}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A config pointing at the double with fast intervals.
pub fn openhim_config(api_url: &str, auth: OpenHimAuth) -> Config {
    let mut c = Config::default();
    c.server.host = "127.0.0.1".into();
    c.data_dir = temp_dir("data");
    c.standalone = Some(false);
    c.openhim.url = Some(api_url.to_string());
    c.openhim.password = openhim_double::ROOT_PASSWORD.into();
    c.openhim.auth = auth;
    c.openhim.mediator_host = Some("127.0.0.1".into());
    c.openhim.heartbeat_ms = 100;
    c.openhim.register_initial_ms = 50;
    c.openhim.register_max_ms = 400;
    c.openhim.request_timeout_ms = 2_000;
    c
}

/// Where the test routes make their downstream call.
pub struct Downstream(pub String);

pub struct Running {
    pub url: String,
    /// The admin listener (`/metrics`, `/admin/**`).
    pub admin_url: String,
    admin: actix_web::dev::ServerHandle,
    pub state: AppState,
    handle: actix_web::dev::ServerHandle,
    runner: Option<RunnerHandle>,
}

impl Running {
    /// Stops heartbeats (as on SIGTERM) but keeps serving.
    pub async fn stop_openhim(&mut self) {
        if let Some(r) = self.runner.take() {
            r.stop().await;
        }
    }
    pub async fn stop(mut self) {
        self.stop_openhim().await;
        self.handle.stop(true).await;
        self.admin.stop(true).await;
    }
}

/// Starts the mediator with the test routes, and its OpenHIM task unless standalone.
pub async fn start_mediator(mut cfg: Config, downstream: &str) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    cfg.server.port = port;
    let downstream = Arc::new(Downstream(downstream.to_string()));
    let state = server::build_state(cfg, |b| b.with_service(downstream)).expect("state");
    let app_state = state.clone();
    let srv = actix_web::HttpServer::new(move || server::build_app(app_state.clone(), test_routes))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let handle = srv.handle();
    actix_web::rt::spawn(srv);
    let admin_listener = TcpListener::bind("127.0.0.1:0").expect("bind admin");
    let admin_port = admin_listener.local_addr().expect("addr").port();
    let admin = server::run_listener(&state, server::Surface::Admin, admin_listener, None, false)
        .expect("admin listener");
    let admin_handle = admin.handle();
    actix_web::rt::spawn(admin);
    let runner = server::start_openhim(&state).expect("openhim task");
    Running {
        url: format!("http://127.0.0.1:{port}"),
        admin_url: format!("http://127.0.0.1:{admin_port}"),
        admin: admin_handle,
        state,
        handle,
        runner,
    }
}

/// Routes standing in for the feature modules: they use the public API the
/// real modules use (extractors, `ApiError`, `Recorder`, `Orchestration`).
pub fn test_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ddcc/echo").route(web::post().to(echo)))
        .service(web::resource("/ddcc/raw").route(web::post().to(raw)))
        .service(web::resource("/ddcc/fail").route(web::get().to(fail)))
        .service(web::resource("/ddcc/png").route(web::get().to(png)))
        .service(web::resource("/ddcc/slow").route(web::get().to(slow)));
}

async fn echo(
    req: HttpRequest,
    state: AppState,
    recorder: Recorder,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let downstream = state.require::<Downstream>("downstream")?;
    let pending = Orchestration::begin("Downstream heartbeat", "GET", &downstream.0);
    let orchestration = match state.http.get(&downstream.0).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            pending.complete(status, BTreeMap::new(), Some(text))
        }
        Err(e) => pending.fail(e.to_string()),
    };
    recorder.orchestration(orchestration);
    recorder.property("test", "yes");
    if let Some(tx) = req
        .headers()
        .get("x-openhim-transactionid")
        .and_then(|v| v.to_str().ok())
    {
        recorder.property("seenTransactionId", tx);
    }
    let out = json!({"resourceType": "Parameters", "parameter": [{"name": "echo", "valueString": body.to_string()}]});
    Ok(HttpResponse::Created()
        .content_type("application/fhir+json")
        .body(out.to_string()))
}

async fn raw(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body(format!("{} bytes", body.len()))
}

/// An in-flight request for the graceful-shutdown test.
async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_millis(400)).await;
    HttpResponse::Ok().content_type("text/plain").body("done")
}

/// Bytes that are not UTF-8 (a PNG signature and more).
pub const PNG_BYTES: [u8; 10] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0x00];

async fn png() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/png")
        .body(PNG_BYTES.to_vec())
}

/// A downstream call that cannot connect: the handler answers 502.
async fn fail(recorder: Recorder, state: AppState) -> Result<HttpResponse, ApiError> {
    let url = "http://127.0.0.1:1/unreachable";
    let pending = Orchestration::begin("Unreachable service", "GET", url);
    match state.http.get(url).send().await {
        Ok(r) => {
            recorder.orchestration(pending.complete(r.status().as_u16(), BTreeMap::new(), None));
            Ok(HttpResponse::Ok().finish())
        }
        Err(e) => {
            recorder.orchestration(pending.fail(e.to_string()));
            Err(ApiError::Upstream {
                service: "unreachable".into(),
                message: "connection refused".into(),
            })
        }
    }
}

/// Polls `cond` every 20 ms for up to `secs` seconds. Only a deadline for
/// giving up, never a speed assertion.
pub async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}
