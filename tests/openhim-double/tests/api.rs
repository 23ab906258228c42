//! The double's API follows the contract (sections cited), checked over HTTP
//! with a plain client, independently of the mediator.

use std::time::{Duration, SystemTime};

use openhim_double::{model::sha512_hex, OpenHimDouble, ROOT_EMAIL, ROOT_PASSWORD};
use serde_json::{json, Value};

fn doc() -> Value {
    json!({
        "urn": "urn:mediator:t", "version": "1.0.0", "name": "T",
        "endpoints": [{"name": "e", "host": "localhost", "port": "4321"}],
        "defaultChannelConfig": [{"name": "c1", "urlPattern": "^/t$", "methods": ["GET"], "routes": [{"name": "r", "host": "localhost", "port": 1, "primary": true}]}],
        "configDefs": [{"param": "secret", "type": "password"}, {"param": "n", "type": "number"}],
        "config": {"secret": "s3cret", "n": 1}
    })
}

fn token_headers(
    rb: reqwest::RequestBuilder,
    salt_of_user: &str,
    password: &str,
    ts: SystemTime,
) -> reqwest::RequestBuilder {
    let hash = sha512_hex(&[salt_of_user, password]);
    let ts = humantime::format_rfc3339_millis(ts).to_string();
    let token = sha512_hex(&[&hash, "any-salt", &ts]);
    rb.header("auth-username", ROOT_EMAIL)
        .header("auth-ts", ts)
        .header("auth-salt", "any-salt")
        .header("auth-token", token)
}

#[actix_web::test]
async fn api_rules() {
    let d = OpenHimDouble::start().await.expect("double");
    let api = d.api_url().to_string();
    let http = reqwest::Client::new();
    let basic = |rb: reqwest::RequestBuilder| rb.basic_auth(ROOT_EMAIL, Some(ROOT_PASSWORD));

    // §2.2: bad credentials → 401, empty body.
    let r = http
        .post(format!("{api}/mediators"))
        .basic_auth(ROOT_EMAIL, Some("x"))
        .json(&doc())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.text().await.expect("body"), "");

    // §3.3 / §2.2 artifact: 201 with the meaningless body.
    let r = basic(http.post(format!("{api}/mediators")))
        .json(&doc())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        r.text().await.expect("body"),
        "User Authenticated Successfully"
    );

    // §2.5: non-admin → 403.
    d.add_user("viewer@x.org", "pw", &[], false);
    let r = http
        .get(format!("{api}/mediators"))
        .basic_auth("viewer@x.org", Some("pw"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 403);

    // §2.3: token scheme, including the ±10 s window.
    let salt: Value = http
        .get(format!("{api}/authenticate/{ROOT_EMAIL}"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let salt = salt["salt"].as_str().expect("salt").to_string();
    let ok = token_headers(
        http.get(format!("{api}/mediators/urn:mediator:t")),
        &salt,
        ROOT_PASSWORD,
        SystemTime::now(),
    );
    let r = ok.send().await.expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let stored: Value = r.json().await.expect("json");
    assert_eq!(
        stored["config"]["secret"], "**********",
        "§4 masks passwords"
    );
    let late = token_headers(
        http.get(format!("{api}/mediators")),
        &salt,
        ROOT_PASSWORD,
        SystemTime::now() - Duration::from_secs(30),
    );
    assert_eq!(late.send().await.expect("sent").status().as_u16(), 401);
    let r = http
        .get(format!("{api}/authenticate/viewer@x.org"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 404, "no token passport");

    // §4 PUT config: invalid → 400 text; masked value restored.
    let r = basic(http.put(format!("{api}/mediators/urn:mediator:t/config")))
        .json(&json!({"n": "one"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 400);
    let r = basic(http.put(format!("{api}/mediators/urn:mediator:t/config")))
        .json(&json!({"secret": "**********", "n": 2}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        d.mediator("urn:mediator:t").expect("stored")["config"]["secret"],
        "s3cret"
    );
    let r = basic(http.put(format!("{api}/mediators/urn:mediator:nope/config")))
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 404);

    // §5 heartbeat: missing uptime 400; config after PUT; then empty.
    let hb = format!("{api}/mediators/urn:mediator:t/heartbeat");
    let r = basic(http.post(&hb))
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 400);
    let r = basic(http.post(&hb))
        .json(&json!({"uptime": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.text().await.expect("body"),
        "",
        "first heartbeat: _lastHeartbeat unset"
    );
    d.set_mediator_config("urn:mediator:t", json!({"secret": "new", "n": 3}))
        .expect("valid");
    let r = basic(http.post(&hb))
        .json(&json!({"uptime": 2}))
        .send()
        .await
        .expect("sent");
    let cfg: Value = r.json().await.expect("config json");
    assert_eq!(cfg, json!({"secret": "new", "n": 3}), "unmasked config");
    let r = basic(http.post(&hb))
        .json(&json!({"uptime": 3, "config": "true"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.text().await.expect("body"),
        "",
        "only the literal true asks for config"
    );
    let r = basic(http.post(format!("{api}/mediators/urn:mediator:x/heartbeat")))
        .json(&json!({"uptime": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 404);

    // §4 GET /heartbeat (public).
    let r: Value = http
        .get(format!("{api}/heartbeat"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(r["mediators"]["urn:mediator:t"], 3.0);

    // §4 channels: unknown name 400, [] installs all, clash 500.
    let ch = format!("{api}/mediators/urn:mediator:t/channels");
    assert_eq!(
        basic(http.post(&ch))
            .json(&json!(["nope"]))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        basic(http.post(&ch))
            .json(&json!([]))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16(),
        201
    );
    assert_eq!(d.channels().len(), 1);
    assert_eq!(
        basic(http.post(&ch))
            .json(&json!(["c1"]))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16(),
        500
    );

    // Fault injection, before auth, then back to normal.
    d.fail_next(2, 502, "/mediators");
    for _ in 0..2 {
        let r = http
            .get(format!("{api}/mediators"))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 502);
    }
    assert_eq!(
        basic(http.get(format!("{api}/mediators")))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16(),
        200
    );
    let log = d.requests_to("GET", "/mediators");
    assert!(
        log.windows(2).all(|w| w[0].at <= w[1].at),
        "timestamps recorded in order"
    );
    d.stop().await;
}
