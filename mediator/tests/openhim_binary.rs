//! The built binary: `ddcc-mediator serve` with no configuration starts
//! standalone and answers `/health`; behind OpenHIM it registers; SIGTERM
//! shuts it down gracefully (heartbeats stopped, exit code 0).

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{wait_until, URN};
use openhim_double::OpenHimDouble;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn(envs: &[(&str, String)]) -> Child {
    let dir = common::temp_dir("bin");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"));
    cmd.arg("serve")
        .current_dir(&dir)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // The admin listener defaults to port + 1, which a parallel test may hold.
        .env("DDCC_ADMIN_ADDR", "127.0.0.1:0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("binary starts")
}

async fn wait_healthy(port: u16) {
    let url = format!("http://127.0.0.1:{port}/health");
    for _ in 0..250 {
        if let Ok(r) = reqwest::get(&url).await {
            assert_eq!(r.status().as_u16(), 200);
            return;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("{url} never answered");
}

/// Sends SIGTERM and returns (exit success, stderr).
fn terminate(mut child: Child) -> (bool, String) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "SIGTERM delivered");
    let status = child.wait().expect("exits");
    let mut log = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    (status.success(), log)
}

#[actix_web::test]
async fn starts_standalone_without_configuration_and_stops_on_sigterm() {
    // Only the port is set, so parallel test runs do not collide on 4321.
    let port = free_port();
    let child = spawn(&[("SERVER_PORT", port.to_string())]);
    wait_healthy(port).await;
    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["mode"], "standalone");
    let probe = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
            .arg("healthcheck")
            .env_clear()
            .env("SERVER_PORT", port.to_string())
            .stderr(Stdio::null())
            .status()
            .expect("healthcheck runs")
            .success()
    };
    assert!(
        probe(port),
        "healthcheck passes against the running service"
    );
    let (ok, log) = terminate(child);
    assert!(ok, "clean exit:\n{log}");
    assert!(log.contains("embedded defaults"), "{log}");
    assert!(log.contains("mode standalone"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!probe(port), "healthcheck fails once the service is gone");
}

#[actix_web::test]
async fn registers_from_environment_and_stops_heartbeats_on_sigterm() {
    let double = OpenHimDouble::start().await.expect("double");
    let port = free_port();
    let child = spawn(&[
        ("SERVER_PORT", port.to_string()),
        ("OPENHIM_URL", double.api_url().to_string()),
        (
            "OPENHIM_PASSWORD",
            openhim_double::ROOT_PASSWORD.to_string(),
        ),
        ("MEDIATOR_HOST", "127.0.0.1".to_string()),
        ("OPENHIM_HEARTBEAT_MS", "100".to_string()),
        ("DDCC_LOG_FORMAT", "json".to_string()),
    ]);
    wait_healthy(port).await;
    let hb_path = format!("/mediators/{URN}/heartbeat");
    wait_until(15, "heartbeats from the binary", || {
        double.requests_to("POST", &hb_path).len() >= 2
    })
    .await;
    let doc = double.mediator(URN).expect("registered");
    assert_eq!(doc["endpoints"][0]["port"], u64::from(port));

    let (ok, log) = terminate(child);
    assert!(ok, "clean exit:\n{log}");
    assert!(log.contains("OpenHIM heartbeats stopped"), "{log}");
    // JSON log lines, one object per line.
    let first = log.lines().next().unwrap_or("");
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "{first}"
    );
    let count = double.requests_to("POST", &hb_path).len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(double.requests_to("POST", &hb_path).len(), count);
    double.stop().await;
}
