//! Bad input to any route gets a 4xx OperationOutcome, never a panic or a 500:
//! standalone as plain FHIR, behind OpenHIM inside the envelope. One table of
//! cases; every difference is printed before the single assertion.

mod common;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use ddcc_mediator::config::Config;
use ddcc_mediator::server;
use serde_json::Value;

const LIMIT: usize = 1024;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn cases() -> Vec<Case> {
    let big_json = format!("{{\"a\":\"{}\"}}", "x".repeat(2 * LIMIT)).into_bytes();
    let c = |name, method, path, content_type, body: &[u8], status, code| Case {
        name,
        method,
        path,
        content_type,
        body: body.to_vec(),
        status,
        code,
    };
    vec![
        c(
            "malformed JSON",
            "POST",
            "/ddcc/echo",
            Some("application/json"),
            b"{not json",
            400,
            "invalid",
        ),
        c(
            "truncated JSON",
            "POST",
            "/ddcc/echo",
            Some("application/fhir+json"),
            b"[1,2",
            400,
            "invalid",
        ),
        c(
            "empty JSON body",
            "POST",
            "/ddcc/echo",
            Some("application/json"),
            b"",
            400,
            "invalid",
        ),
        c(
            "invalid UTF-8",
            "POST",
            "/ddcc/echo",
            Some("application/json"),
            &[b'"', 0xff, 0xfe, b'"'],
            400,
            "invalid",
        ),
        c(
            "wrong content type",
            "POST",
            "/ddcc/echo",
            Some("text/plain"),
            b"{}",
            415,
            "not-supported",
        ),
        c(
            "missing content type",
            "POST",
            "/ddcc/echo",
            None,
            b"{}",
            415,
            "not-supported",
        ),
        c(
            "unparsable content type",
            "POST",
            "/ddcc/echo",
            Some("@@@"),
            b"{}",
            415,
            "not-supported",
        ),
        Case {
            body: big_json.clone(),
            ..c(
                "oversize JSON",
                "POST",
                "/ddcc/echo",
                Some("application/json"),
                b"",
                413,
                "too-long",
            )
        },
        Case {
            body: vec![b'a'; 2 * LIMIT],
            ..c(
                "oversize raw body",
                "POST",
                "/ddcc/raw",
                Some("text/plain"),
                b"",
                413,
                "too-long",
            )
        },
        c("unknown route", "GET", "/nope", None, b"", 404, "not-found"),
        c(
            "unknown FHIR route",
            "POST",
            "/fhir/Patient/$nothing",
            Some("application/fhir+json"),
            b"{}",
            404,
            "not-found",
        ),
        c(
            "path traversal",
            "GET",
            "/ddcc/../../etc/passwd",
            None,
            b"",
            404,
            "not-found",
        ),
        c(
            "wrong method",
            "GET",
            "/ddcc/echo",
            None,
            b"",
            405,
            "not-supported",
        ),
        c(
            "wrong method on ops",
            "DELETE",
            "/health",
            None,
            b"",
            405,
            "not-supported",
        ),
        c(
            "wrong method on metrics",
            "POST",
            "/metrics",
            Some("text/plain"),
            b"x",
            405,
            "not-supported",
        ),
    ]
}

fn config(standalone: bool) -> Config {
    let mut c = Config::default();
    c.server.max_body_bytes = LIMIT;
    c.data_dir = common::temp_dir("bad-input");
    c.standalone = Some(standalone);
    c.openhim.url = Some("http://127.0.0.1:9".into());
    // `/metrics` is among the cases: serve it on this (the only) listener.
    c.server.admin_addr = Some("public".into());
    c
}

/// Returns (HTTP status, content type, OperationOutcome issue code) as the
/// client of this mode sees it, unwrapping the envelope behind OpenHIM.
async fn run(standalone: bool) -> Vec<String> {
    let state = server::build_state(config(standalone), |b| {
        b.with_service(std::sync::Arc::new(common::Downstream(
            "http://127.0.0.1:9/".into(),
        )))
    })
    .expect("state");
    let app = test::init_service(server::build_app(state, common::test_routes)).await;
    let mut differences = Vec::new();
    for case in cases() {
        let mut req = TestRequest::default()
            .method(case.method.parse().expect("method"))
            .uri(case.path)
            .set_payload(case.body.clone());
        if let Some(ct) = case.content_type {
            req = req.insert_header((CONTENT_TYPE, ct));
        }
        let resp = test::call_service(&app, req.to_request()).await;
        let outer_status = resp.status().as_u16();
        let outer_ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = test::read_body(resp).await;
        let enveloped = !standalone && !ddcc_mediator::pipeline::OPS_PATHS.contains(&case.path);
        let (status, ct, inner): (u16, String, Vec<u8>) = if enveloped {
            if outer_status != 200 || outer_ct != "application/json+openhim" {
                differences.push(format!(
                    "{} [openhim]: outer {outer_status} {outer_ct}, expected 200 application/json+openhim",
                    case.name
                ));
                continue;
            }
            let env: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(b) = env["response"]["body"].as_str() else {
                differences.push(format!(
                    "{} [openhim]: response.body is not a string",
                    case.name
                ));
                continue;
            };
            if env["status"]
                != if case.status >= 500 {
                    "Failed"
                } else {
                    "Completed"
                }
            {
                differences.push(format!(
                    "{} [openhim]: envelope status {}",
                    case.name, env["status"]
                ));
            }
            (
                env["response"]["status"].as_u64().unwrap_or(0) as u16,
                env["response"]["headers"]["content-type"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                b.as_bytes().to_vec(),
            )
        } else {
            (outer_status, outer_ct, body.to_vec())
        };
        let oo: Value = serde_json::from_slice(&inner).unwrap_or(Value::Null);
        let mode = if standalone { "standalone" } else { "openhim" };
        if status != case.status {
            differences.push(format!(
                "{} [{mode}]: status {status}, expected {}",
                case.name, case.status
            ));
        }
        if ct != "application/fhir+json" {
            differences.push(format!("{} [{mode}]: content type {ct:?}", case.name));
        }
        if oo["resourceType"] != "OperationOutcome" || oo["issue"][0]["code"] != case.code {
            differences.push(format!(
                "{} [{mode}]: expected OperationOutcome with code {}, got {}",
                case.name,
                case.code,
                String::from_utf8_lossy(&inner)
            ));
        }
    }
    differences
}

#[actix_web::test]
async fn bad_input_yields_4xx_operation_outcomes() {
    let mut differences = run(true).await;
    differences.extend(run(false).await);
    for d in &differences {
        println!("DIFF {d}");
    }
    println!(
        "{} cases × 2 modes, {} differences",
        cases().len(),
        differences.len()
    );
    assert!(differences.is_empty());
}

#[actix_web::test]
async fn standalone_health_ready_and_request_ids() {
    let state = server::build_state(config(true), |b| b).expect("state");
    let app = test::init_service(server::build_app(state, |_| {})).await;
    let resp = test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/ready")
            .insert_header(("x-request-id", "abc-123"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
    let ready: Value = test::read_body_json(resp).await;
    assert_eq!(ready["mode"], "standalone");
    assert_eq!(ready["checks"][0]["name"], "data_dir");
    // A hostile request id is replaced, not echoed into logs and headers.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/health")
            .insert_header(("x-request-id", "a b\"c"))
            .to_request(),
    )
    .await;
    assert_ne!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("a b\"c")
    );
}

struct Down(&'static str, bool);

impl ddcc_mediator::readiness::ReadinessCheck for Down {
    fn name(&self) -> &str {
        self.0
    }
    fn required(&self) -> bool {
        self.1
    }
    fn check(&self) -> ddcc_mediator::readiness::CheckFuture<'_> {
        Box::pin(async { Err("connection refused".to_string()) })
    }
}

#[actix_web::test]
async fn ready_is_503_only_when_a_required_dependency_is_down() {
    for (required, expected) in [(false, 200), (true, 503)] {
        let state = server::build_state(config(true), |b| {
            b.with_readiness(std::sync::Arc::new(Down("vault", required)))
        })
        .expect("state");
        let app = test::init_service(server::build_app(state, |_| {})).await;
        let resp = test::call_service(&app, TestRequest::get().uri("/ready").to_request()).await;
        assert_eq!(resp.status().as_u16(), expected);
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["ready"], expected == 200);
        let vault = body["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "vault"))
            .expect("vault check listed");
        assert_eq!(vault["ok"], false);
        assert_eq!(vault["detail"], "connection refused");
        // Liveness does not depend on dependencies.
        let resp = test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;
        assert_eq!(resp.status().as_u16(), 200);
    }
}

async fn panics() -> actix_web::HttpResponse {
    let v: Vec<u8> = Vec::new();
    // Deliberate: stands for a bug in a handler.
    let i = v.len() + 3;
    actix_web::HttpResponse::Ok().body(vec![v[i]])
}

#[actix_web::test]
async fn a_panicking_handler_becomes_a_500_operation_outcome() {
    use actix_web::dev::Service as _;
    let state = server::build_state(config(true), |b| b).expect("state");
    let app = test::init_service(server::build_app(state, |cfg| {
        cfg.route("/ddcc/panic", actix_web::web::get().to(panics));
    }))
    .await;
    let err = app
        .call(TestRequest::get().uri("/ddcc/panic").to_request())
        .await
        .err()
        .expect("an error, not a response");
    let resp = err.error_response();
    assert_eq!(resp.status().as_u16(), 500);
    let body = actix_web::body::to_bytes(resp.into_body())
        .await
        .expect("body");
    let oo: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["diagnostics"], "internal server error");
    // The app keeps serving.
    let resp = test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(resp.status().as_u16(), 200);
}
