//! Registration, heartbeat and run-time config against the OpenHIM double.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{openhim_config, start_mediator, wait_until, URN};
use ddcc_mediator::config::OpenHimAuth;
use ddcc_mediator::openhim::RegistrationState;
use openhim_double::OpenHimDouble;
use serde_json::json;

fn registered(m: &common::Running) -> bool {
    m.state.openhim.state() == RegistrationState::Registered
}

#[actix_web::test]
async fn registers_with_basic_auth_and_sends_heartbeats() {
    let double = OpenHimDouble::start().await.expect("double");
    let m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Basic),
        double.api_url(),
    )
    .await;
    wait_until(10, "registered", || registered(&m)).await;
    let hb_path = format!("/mediators/{URN}/heartbeat");
    wait_until(10, "two heartbeats", || {
        double.requests_to("POST", &hb_path).len() >= 2
    })
    .await;

    let regs = double.requests_to("POST", "/mediators");
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].status, 201);
    assert_eq!(regs[0].auth, "basic");
    // Basic auth needs no pre-flight call (§5, mediator-utils note).
    assert!(double
        .requests_to("GET", "/authenticate/root@openhim.org")
        .is_empty());
    let hbs = double.requests_to("POST", &hb_path);
    assert!(hbs.iter().all(|r| r.status == 200 && r.auth == "basic"));

    let doc = double.mediator(URN).expect("stored");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    let port = m
        .url
        .rsplit(':')
        .next()
        .expect("port")
        .parse::<u64>()
        .expect("num");
    assert_eq!(
        doc["endpoints"][0]["host"], "127.0.0.1",
        "MEDIATOR_HOST applied"
    );
    assert_eq!(doc["endpoints"][0]["port"], port);
    assert_eq!(
        doc["defaultChannelConfig"][0]["routes"][0]["host"],
        "127.0.0.1"
    );
    assert!(doc["_uptime"].is_number());
    // The first heartbeat asked for config, so run-time config equals the stored one.
    assert_eq!(
        m.state.runtime_config().get_str("qrErrorCorrectionLevel"),
        Some("Q")
    );
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn registers_with_the_legacy_token_scheme() {
    let double = OpenHimDouble::start().await.expect("double");
    let m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Token),
        double.api_url(),
    )
    .await;
    wait_until(10, "registered", || registered(&m)).await;
    let hb_path = format!("/mediators/{URN}/heartbeat");
    wait_until(10, "a heartbeat", || {
        !double.requests_to("POST", &hb_path).is_empty()
    })
    .await;
    let regs = double.requests_to("POST", "/mediators");
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].auth, "token");
    assert_eq!(regs[0].status, 201);
    assert!(double
        .requests_to("POST", &hb_path)
        .iter()
        .all(|r| r.auth == "token" && r.status == 200));
    // The salt is fetched once and the hash reused (§2.3 step 2).
    assert_eq!(
        double
            .requests_to("GET", "/authenticate/root@openhim.org")
            .len(),
        1
    );
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn token_scheme_fails_for_a_user_without_token_passport() {
    let double = OpenHimDouble::start().await.expect("double");
    double.add_user("ops@example.org", "pw", &["admin"], false);
    let mut cfg = openhim_config(double.api_url(), OpenHimAuth::Token);
    cfg.openhim.username = "ops@example.org".into();
    cfg.openhim.password = "pw".into();
    let m = start_mediator(cfg, double.api_url()).await;
    wait_until(10, "three failed attempts", || {
        m.state
            .openhim
            .registration_failures
            .load(Ordering::Relaxed)
            >= 3
    })
    .await;
    assert_eq!(m.state.openhim.state(), RegistrationState::Registering);
    assert!(double.mediator(URN).is_none());
    // The same user works with basic auth.
    let mut cfg = openhim_config(double.api_url(), OpenHimAuth::Basic);
    cfg.openhim.username = "ops@example.org".into();
    cfg.openhim.password = "pw".into();
    m.stop().await;
    let m = start_mediator(cfg, double.api_url()).await;
    wait_until(10, "registered", || registered(&m)).await;
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn failed_registrations_back_off_with_growing_delays_then_succeed() {
    let double = OpenHimDouble::start().await.expect("double");
    double.fail_next(5, 503, "/mediators");
    let mut cfg = openhim_config(double.api_url(), OpenHimAuth::Basic);
    // Wide enough that loopback latency on a loaded machine (added to every
    // gap) cannot reorder consecutive delays: adjacent ranges are ≥ 75 ms apart.
    cfg.openhim.register_initial_ms = 150;
    cfg.openhim.register_max_ms = 1200;
    let m = start_mediator(cfg, double.api_url()).await;
    wait_until(20, "registered", || registered(&m)).await;

    let regs = double.requests_to("POST", "/mediators");
    let statuses: Vec<u16> = regs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 503, 503, 503, 201]);
    assert_eq!(
        m.state
            .openhim
            .registration_failures
            .load(Ordering::Relaxed),
        5
    );
    let gaps: Vec<Duration> = regs.windows(2).map(|w| w[1].at - w[0].at).collect();
    println!("gaps between attempts: {gaps:?}");
    // Bases 150, 300, 600, 1200, 1200 ms, each jittered into [0.75, 1]×base:
    // every gap is at least its jittered minimum, and gaps never shrink before the cap.
    let bases = [150u64, 300, 600, 1200, 1200];
    for (gap, base) in gaps.iter().zip(bases) {
        assert!(
            *gap >= Duration::from_millis(base * 3 / 4),
            "{gap:?} < 0.75×{base}ms"
        );
    }
    for i in 0..3 {
        assert!(
            gaps[i + 1] >= gaps[i],
            "gap {} ({:?}) < gap {} ({:?})",
            i + 1,
            gaps[i + 1],
            i,
            gaps[i]
        );
    }
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn reregistration_of_a_newer_version_keeps_operator_config() {
    let double = OpenHimDouble::start().await.expect("double");
    let m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Basic),
        double.api_url(),
    )
    .await;
    wait_until(10, "registered", || registered(&m)).await;
    m.stop().await;

    // The operator edits config in the console.
    double
        .set_mediator_config(
            URN,
            json!({"qrErrorCorrectionLevel": "H", "certificateValidityDays": 30, "signingKeyName": "ops-key", "forwardToFhirServer": true}),
        )
        .expect("valid config");

    // A newer release: new version, a new parameter, a changed default.
    let mut doc: serde_json::Value =
        serde_json::from_str(ddcc_mediator::openhim::mediator_config::EMBEDDED).expect("json");
    doc["version"] = json!("99.0.0");
    doc["configDefs"]
        .as_array_mut()
        .expect("defs")
        .push(json!({"param": "newSetting", "displayName": "New", "type": "string"}));
    doc["config"]["qrErrorCorrectionLevel"] = json!("M");
    doc["config"]["newSetting"] = json!("fresh-default");
    let dir = common::temp_dir("cfg");
    let file = dir.join("mediatorConfig.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let mut cfg = openhim_config(double.api_url(), OpenHimAuth::Basic);
    cfg.openhim.mediator_config = Some(file);
    let m2 = start_mediator(cfg, double.api_url()).await;
    wait_until(10, "re-registered", || registered(&m2)).await;
    // Defaults of the new document apply at once; the operator's values arrive
    // with the first heartbeat (config: true).
    wait_until(10, "config via first heartbeat", || {
        m2.state.openhim.heartbeats.load(Ordering::Relaxed) >= 1
    })
    .await;

    let stored = double.mediator(URN).expect("stored");
    assert_eq!(stored["version"], "99.0.0");
    assert_eq!(
        stored["config"]["qrErrorCorrectionLevel"], "H",
        "operator value kept"
    );
    assert_eq!(stored["config"]["certificateValidityDays"], 30);
    assert_eq!(stored["config"]["signingKeyName"], "ops-key");
    assert_eq!(stored["config"]["newSetting"], "fresh-default");
    let rc = m2.state.runtime_config();
    assert_eq!(rc.get_str("qrErrorCorrectionLevel"), Some("H"));
    assert_eq!(rc.get_u64("certificateValidityDays"), Some(30));
    assert_eq!(rc.get_bool("forwardToFhirServer"), Some(true));

    // An older binary registering again changes nothing.
    let m3 = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Basic),
        double.api_url(),
    )
    .await;
    wait_until(10, "registered", || registered(&m3)).await;
    assert_eq!(double.mediator(URN).expect("stored")["version"], "99.0.0");
    m3.stop().await;
    m2.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn config_change_reaches_the_mediator_on_the_next_heartbeat() {
    let double = OpenHimDouble::start().await.expect("double");
    let m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Basic),
        double.api_url(),
    )
    .await;
    wait_until(10, "first heartbeat", || {
        m.state.openhim.heartbeats.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(
        m.state.runtime_config().get_str("qrErrorCorrectionLevel"),
        Some("Q")
    );
    let mut rx = m.state.subscribe_runtime_config();
    rx.borrow_and_update();

    double
        .set_mediator_config(
            URN,
            json!({"qrErrorCorrectionLevel": "L", "certificateValidityDays": 90}),
        )
        .expect("valid");
    wait_until(10, "config applied", || {
        m.state.runtime_config().get_str("qrErrorCorrectionLevel") == Some("L")
    })
    .await;
    assert!(
        rx.has_changed().expect("sender alive"),
        "watchers are notified"
    );
    assert_eq!(
        m.state.runtime_config().get_u64("certificateValidityDays"),
        Some(90)
    );

    // A value that fails its definition (smuggled past the double's own check)
    // is rejected; the previous value stays and the valid key still applies.
    {
        let core = double.core();
        let mut core = openhim_double::lock(&core);
        let med = core.mediators.get_mut(URN).expect("stored");
        med.doc.insert(
            "config".into(),
            json!({"qrErrorCorrectionLevel": "Z", "certificateValidityDays": 7}),
        );
        med.config_modified_us = Some(openhim_double::model::now_us() + 1);
    }
    wait_until(10, "valid key applied", || {
        m.state.runtime_config().get_u64("certificateValidityDays") == Some(7)
    })
    .await;
    assert_eq!(
        m.state.runtime_config().get_str("qrErrorCorrectionLevel"),
        Some("L")
    );
    assert!(m.state.openhim.config_rejections.load(Ordering::Relaxed) >= 1);
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn heartbeat_404_leads_to_reregistration() {
    let double = OpenHimDouble::start().await.expect("double");
    let m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Basic),
        double.api_url(),
    )
    .await;
    wait_until(10, "registered", || registered(&m)).await;
    wait_until(10, "first heartbeat", || {
        m.state.openhim.heartbeats.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert!(double.delete_mediator(URN));
    wait_until(10, "registered again", || {
        m.state.openhim.registrations.load(Ordering::Relaxed) >= 2 && double.mediator(URN).is_some()
    })
    .await;
    let hb_path = format!("/mediators/{URN}/heartbeat");
    assert!(double
        .requests_to("POST", &hb_path)
        .iter()
        .any(|r| r.status == 404));
    assert_eq!(double.requests_to("POST", "/mediators").len(), 2);
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn stopping_ends_heartbeats_and_metrics_show_the_state() {
    let double = OpenHimDouble::start().await.expect("double");
    let mut m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Basic),
        double.api_url(),
    )
    .await;
    wait_until(10, "heartbeats", || {
        m.state.openhim.heartbeats.load(Ordering::Relaxed) >= 2
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", m.admin_url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("ddcc_openhim_registration_state{state=\"registered\"} 1"),
        "{metrics}"
    );
    // The core's Date headers against our clock (same host: well within a second
    // of Date's resolution).
    let offset = m
        .state
        .metrics
        .clock
        .get("openhim")
        .expect("offset recorded");
    assert!(offset.abs() < 2.0, "{offset}");
    assert!(
        metrics.contains("ddcc_clock_offset_seconds{source=\"openhim\"}"),
        "{metrics}"
    );
    let public = reqwest::get(format!("{}/metrics", m.url))
        .await
        .expect("public");
    assert_eq!(
        public.status().as_u16(),
        404,
        "metrics only on the admin listener"
    );
    let ready: serde_json::Value = reqwest::get(format!("{}/ready", m.url))
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["openhim"], "registered");
    assert_eq!(ready["mode"], "openhim");

    m.stop_openhim().await;
    assert_eq!(m.state.openhim.state(), RegistrationState::Stopped);
    let count = double.requests().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(double.requests().len(), count, "no API calls after stop");
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn self_signed_core_certificate_needs_trust_self_signed() {
    let double = OpenHimDouble::start_with(openhim_double::Options {
        api_tls: true,
        ..Default::default()
    })
    .await
    .expect("double");
    assert!(double.api_url().starts_with("https://"));

    // Verified TLS (the default) refuses the self-signed certificate.
    let m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Basic),
        double.api_url(),
    )
    .await;
    wait_until(10, "failed attempts", || {
        m.state
            .openhim
            .registration_failures
            .load(Ordering::Relaxed)
            >= 2
    })
    .await;
    assert!(
        double.requests_to("POST", "/mediators").is_empty(),
        "no request got through TLS"
    );
    assert!(double.mediator(URN).is_none());
    m.stop().await;

    // TRUST_SELF_SIGNED=true accepts it.
    let mut cfg = openhim_config(double.api_url(), OpenHimAuth::Basic);
    cfg.openhim.trust_self_signed = true;
    let m = start_mediator(cfg, double.api_url()).await;
    wait_until(10, "registered over https", || registered(&m)).await;
    assert_eq!(double.requests_to("POST", "/mediators")[0].status, 201);
    m.stop().await;
    double.stop().await;
}

#[actix_web::test]
async fn auto_auth_falls_back_to_token_on_a_token_only_core() {
    let double = OpenHimDouble::start_with(openhim_double::Options {
        basic_auth: false,
        ..Default::default()
    })
    .await
    .expect("double");
    let m = start_mediator(
        openhim_config(double.api_url(), OpenHimAuth::Auto),
        double.api_url(),
    )
    .await;
    wait_until(10, "registered", || registered(&m)).await;
    let regs = double.requests_to("POST", "/mediators");
    let seen: Vec<(u16, &str)> = regs.iter().map(|r| (r.status, r.auth)).collect();
    assert_eq!(seen, vec![(401, "none"), (201, "token")]);
    m.stop().await;
    double.stop().await;
}
