//! Shared set-up of the double's own tests: a double with countries XA and XB
//! onboarded (TLS, UP, SCA) and XC generated but not onboarded.

#![allow(dead_code)]

use gateway_double::openssl::{self, SignOptions};
use gateway_double::{Config, Credentials, GatewayDouble, ParticipantKeys};
use serde_json::Value;

pub struct World {
    pub gw: GatewayDouble,
    pub a: ParticipantKeys,
    pub b: ParticipantKeys,
    pub c: ParticipantKeys,
}

/// `None` (after printing why) when the openssl command is missing and
/// `DDCC_REQUIRE_ORACLES` is unset.
pub async fn world() -> Option<World> {
    world_with(Config::default()).await
}

pub async fn world_with(config: Config) -> Option<World> {
    if !gateway_double::openssl_ready() {
        return None;
    }
    let gw = GatewayDouble::start(config).await.expect("start double");
    let a = ParticipantKeys::generate("XA").unwrap();
    let b = ParticipantKeys::generate("XB").unwrap();
    let c = ParticipantKeys::generate("XC").unwrap();
    gw.onboard_participant(&a).await.unwrap();
    gw.onboard_participant(&b).await.unwrap();
    Some(World { gw, a, b, c })
}

impl World {
    /// A reqwest client presenting `tls` (or no certificate).
    pub fn client(&self, tls: Option<&Credentials>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.gw.server_ca_pem().as_bytes()).unwrap(),
            );
        if let Some(c) = tls {
            b = b.identity(reqwest::Identity::from_pem(c.identity_pem().as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.gw.base_url(), path)
    }
}

/// `openssl cms -sign -nodetach -binary` over `payload` with `up`, single-line base64.
pub async fn cms(payload: &[u8], up: &Credentials) -> String {
    cms_with(payload, up, &SignOptions::default()).await
}

pub async fn cms_with(payload: &[u8], up: &Credentials, opts: &SignOptions) -> String {
    let der = openssl::sign(payload, &up.cert_pem(), &up.key_pem(), opts)
        .await
        .expect("openssl cms -sign");
    gateway_double::model::b64(&der)
}

/// The legacy suite's reference payload (contract §12.1) for `country`.
pub fn reference(country: &str) -> Value {
    let thumbprint = hex::encode((0..32).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
    serde_json::json!({
        "version": 1,
        "url": "https://testing.only.this/does/not/exist",
        "country": country,
        "domain": "DCC",
        "type": "DCC",
        "service": "ValueSet",
        "thumbprint": thumbprint,
        "name": "TestReference",
        "sslPublicKey": "MIIBdummy",
        "contentType": "application/json",
        "signatureType": "CMS",
        "referenceVersion": "1.3.0",
    })
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// Asserts a gateway error body (§10) with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        let v = self.json();
        assert_eq!(v["code"], code, "body: {}", self.text);
        for k in ["problem", "sendValue", "details"] {
            assert!(v[k].is_string(), "{k} missing in {}", self.text);
        }
        v
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.expect("HTTP answer");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Answer {
        status,
        headers,
        text,
    }
}

pub fn cms_post(
    client: &reqwest::Client,
    url: String,
    content_type: &str,
    body: String,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("Content-Type", content_type)
        .header("Content-Transfer-Encoding", "base64")
        .body(body)
}

pub fn cms_delete(
    client: &reqwest::Client,
    url: String,
    content_type: &str,
    body: String,
) -> reqwest::RequestBuilder {
    client
        .delete(url)
        .header("Content-Type", content_type)
        .body(body)
}

/// Lists references unfiltered.
pub async fn list(w: &World, tls: &Credentials) -> Vec<Value> {
    let a = send(w.client(Some(tls)).get(w.url("/trustList/references"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json().as_array().cloned().unwrap()
}
