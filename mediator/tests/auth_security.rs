//! Security of issuing, against real components: an OIDC issuer whose JWKS (keys
//! generated here) is served over HTTP by the test; real TLS with client
//! certificates (rcgen CA, reqwest clients with identities); per-issuer signers
//! selected by the caller's identity only; a real OpenBao with one AppRole and a
//! restrictive policy per issuer, tokens short enough to expire mid-run; the admin
//! listener apart from the public one; the OpenHIM core's clock offset.

mod service;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::test::{self, TestRequest};
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use ddcc_mediator::config::Config;
use ddcc_mediator::server::{self, Surface};
use ddcc_mediator::services::Services;
use ring::rand::SystemRandom;
use ring::signature::{self as rs, KeyPair as _};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    ddcc_mediator::now_unix()
}

// ---------------------------------------------------------------- OIDC issuer

enum Key {
    Ec(rs::EcdsaKeyPair),
    Rsa(rs::RsaKeyPair),
}

struct SigningKey {
    kid: String,
    key: Key,
}

impl SigningKey {
    fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let doc = rs::EcdsaKeyPair::generate_pkcs8(&rs::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key");
        let kp =
            rs::EcdsaKeyPair::from_pkcs8(&rs::ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                .expect("P-256 key pair");
        Self {
            kid: kid.into(),
            key: Key::Ec(kp),
        }
    }

    /// ring cannot generate RSA keys; openssl can.
    fn rsa(kid: &str) -> Option<Self> {
        let path = std::env::temp_dir().join(format!(
            "ddcc-auth-rsa-{}-{:x}.der",
            std::process::id(),
            fastrand::u64(..)
        ));
        // PKCS#1 DER: ring's PKCS#8 parser refuses OpenSSL 3's encoding.
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl genrsa -traditional 2048 2>/dev/null | openssl rsa -traditional -outform DER -out '{}' 2>/dev/null",
                path.display()
            ))
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var_os("DDCC_REQUIRE_ORACLES").is_none(),
                "openssl cannot generate an RSA key and DDCC_REQUIRE_ORACLES is set"
            );
            println!("SKIP (RS256 part): openssl cannot generate an RSA key");
            return None;
        }
        let der = std::fs::read(&path).expect("RSA key");
        let _ = std::fs::remove_file(&path);
        Some(Self {
            kid: kid.into(),
            key: Key::Rsa(rs::RsaKeyPair::from_der(&der).expect("RSA PKCS#1")),
        })
    }

    fn alg(&self) -> &'static str {
        match self.key {
            Key::Ec(_) => "ES256",
            Key::Rsa(_) => "RS256",
        }
    }

    fn jwk(&self) -> Value {
        match &self.key {
            Key::Ec(kp) => {
                let p = kp.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                       "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Key::Rsa(kp) => {
                let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                       "n": b64(&c.n), "e": b64(&c.e)})
            }
        }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Ec(kp) => kp.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            Key::Rsa(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&rs::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .expect("sign");
                sig
            }
        }
    }

    fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid});
        sign_raw(&header, claims, |m| self.sign(m))
    }
}

fn sign_raw(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&sig))
}

/// A tiny OIDC issuer: discovery and JWKS over HTTP, counting JWKS fetches.
struct Idp {
    issuer: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl Idp {
    async fn start(keys: Vec<Value>) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let issuer = format!("http://127.0.0.1:{port}/realms/ddcc");
        let jwks = Arc::new(Mutex::new(json!({ "keys": keys })));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (j, f, iss) = (jwks.clone(), fetches.clone(), issuer.clone());
        let srv = actix_web::HttpServer::new(move || {
            let (j, f, iss) = (j.clone(), f.clone(), iss.clone());
            actix_web::App::new()
                .route(
                    "/realms/ddcc/.well-known/openid-configuration",
                    web::get().to(move || {
                        let iss = iss.clone();
                        async move {
                            HttpResponse::Ok().json(json!({
                                "issuer": iss,
                                "jwks_uri": format!("{iss}/protocol/openid-connect/certs"),
                            }))
                        }
                    }),
                )
                .route(
                    "/realms/ddcc/protocol/openid-connect/certs",
                    web::get().to(move || {
                        let (j, f) = (j.clone(), f.clone());
                        async move {
                            f.fetch_add(1, Ordering::SeqCst);
                            let doc = j.lock().map(|g| g.clone()).unwrap_or(Value::Null);
                            HttpResponse::Ok().json(doc)
                        }
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = srv.handle();
        actix_web::rt::spawn(srv);
        Idp {
            issuer,
            jwks,
            fetches,
            handle,
        }
    }

    fn publish(&self, keys: Vec<Value>) {
        if let Ok(mut g) = self.jwks.lock() {
            *g = json!({ "keys": keys });
        }
    }
}

const AUDIENCE: &str = "ddcc-mediator";

fn claims(issuer: &str, client: &str) -> Value {
    json!({
        "iss": issuer, "aud": ["account", AUDIENCE], "azp": client, "sub": format!("svc-{client}"),
        "exp": now() + 300, "iat": now(), "nbf": now() - 5,
        "realm_access": {"roles": ["offline_access"]},
        "resource_access": {AUDIENCE: {"roles": ["issuer"]}},
    })
}

type Env = HashMap<String, String>;

fn env_of(pairs: &[(&str, String)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

async fn services(cfg: &Config, env: &Env) -> Services {
    Services::build_with_env(cfg, |k| env.get(k).cloned())
        .await
        .expect("services")
}

/// A write that reaches its handler only when authentication let it through, and
/// that the handler then refuses for its body: status 400, never 401/403.
fn register_write(token: Option<&str>) -> actix_http::Request {
    let mut r = TestRequest::post()
        .uri("/fhir")
        .insert_header((CONTENT_TYPE, "application/fhir+json"))
        .set_payload(r#"{"resourceType":"Bundle","type":"collection"}"#);
    if let Some(t) = token {
        r = r.insert_header((AUTHORIZATION, format!("Bearer {t}")));
    }
    r.to_request()
}

async fn count_auth_events(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    outcome: &str,
) -> usize {
    let req = TestRequest::get()
        .uri(&format!(
            "/fhir/AuditEvent?type=110114&outcome={outcome}&_count=500"
        ))
        .to_request();
    let resp = test::call_service(app, req).await;
    assert_eq!(resp.status().as_u16(), 200);
    let b: Value = serde_json::from_slice(&test::read_body(resp).await).expect("bundle");
    b["entry"].as_array().map_or(0, Vec::len)
}

#[actix_web::test]
async fn oidc_bearer_tokens_are_checked_against_the_issuers_jwks() {
    let es = SigningKey::ec("es-1");
    let rsa = SigningKey::rsa("rsa-1");
    let mut keys = vec![es.jwk()];
    keys.extend(rsa.as_ref().map(SigningKey::jwk));
    let idp = Idp::start(keys.clone()).await;
    let cfg = service::config("auth-oidc");
    let env = env_of(&[
        ("DDCC_OIDC_ISSUER", idp.issuer.clone()),
        ("DDCC_OIDC_AUDIENCE", AUDIENCE.into()),
        ("DDCC_OIDC_LEEWAY_SECS", "10".into()),
        ("DDCC_OIDC_JWKS_MIN_REFRESH_SECS", "3600".into()),
    ]);
    let svc = services(&cfg, &env).await;
    let state = server::build_state(cfg, |b| svc.install(b)).expect("state");
    let app = test::init_service(server::build_app(state, |_| {})).await;

    let good = claims(&idp.issuer, "emr-a");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let stranger = SigningKey::ec("es-1"); // same kid, another key
    let unknown = SigningKey::ec("es-unknown");
    let hs256 = {
        // A classic confusion attack: the public key as an HMAC secret.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, es.jwk().to_string().as_bytes());
        sign_raw(
            &json!({"alg": "HS256", "typ": "JWT", "kid": "es-1"}),
            &good,
            |m| ring::hmac::sign(&key, m).as_ref().to_vec(),
        )
    };
    let tampered = {
        let t = es.token(&good);
        let parts: Vec<&str> = t.split('.').collect();
        let evil = with(&|c| c["azp"] = json!("emr-b"));
        format!(
            "{}.{}.{}",
            parts[0],
            b64(evil.to_string().as_bytes()),
            parts[2]
        )
    };
    let mut cases: Vec<(&str, Option<String>, bool)> = vec![
        ("ES256, valid", Some(es.token(&good)), true),
        ("no token", None, false),
        (
            "expired",
            Some(es.token(&with(&|c| c["exp"] = json!(now() - 600)))),
            false,
        ),
        (
            "expired within leeway",
            Some(es.token(&with(&|c| c["exp"] = json!(now() - 3)))),
            true,
        ),
        (
            "not yet valid",
            Some(es.token(&with(&|c| c["nbf"] = json!(now() + 600)))),
            false,
        ),
        (
            "no exp",
            Some(es.token(&with(&|c| {
                c.as_object_mut().map(|o| o.remove("exp"));
            }))),
            false,
        ),
        (
            "wrong audience",
            Some(es.token(&with(&|c| c["aud"] = json!("account")))),
            false,
        ),
        (
            "wrong issuer",
            Some(es.token(&with(&|c| {
                c["iss"] = json!("https://evil.example/realms/ddcc")
            }))),
            false,
        ),
        (
            "signed by another key under a known kid",
            Some(stranger.token(&good)),
            false,
        ),
        ("unknown kid", Some(unknown.token(&good)), false),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(good.to_string().as_bytes())
            )),
            false,
        ),
        ("HS256 with the public key as secret", Some(hs256), false),
        ("payload changed after signing", Some(tampered), false),
        ("not a JWT", Some("abc".into()), false),
    ];
    if let Some(r) = &rsa {
        cases.push(("RS256, valid", Some(r.token(&good)), true));
        let mut h = json!({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"});
        h["alg"] = json!("ES256");
        cases.push((
            "RSA key under an ES256 header",
            Some(sign_raw(&h, &good, |m| r.sign(m))),
            false,
        ));
    }
    let mut failures = Vec::new();
    let mut refused = 0;
    for (name, token, accepted) in &cases {
        let resp = test::call_service(&app, register_write(token.as_deref())).await;
        let status = resp.status().as_u16();
        let www = resp.headers().get("www-authenticate").cloned();
        let body: Value =
            serde_json::from_slice(&test::read_body(resp).await).unwrap_or(Value::Null);
        let ok = if *accepted {
            status == 400
        } else {
            refused += 1;
            status == 401
                && body["resourceType"] == "OperationOutcome"
                && body["issue"][0]["code"] == "login"
                && www.is_some()
        };
        if !ok {
            failures.push(format!("{name}: HTTP {status} {body}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // One fetch at the first token; the unknown kid is refused without a second one
    // inside the refresh floor (a flood of forged kids costs the IdP nothing).
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // Reads stay open, even with a token that would be refused.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/fhir/metadata")
            .insert_header((AUTHORIZATION, "Bearer garbage"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);

    // Every decision is an AuditEvent, refusals with outcome 4.
    assert_eq!(count_auth_events(&app, "4").await, refused);
    assert_eq!(count_auth_events(&app, "0").await, cases.len() - refused);

    // The handlers' own events name the authenticated client, not a header.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/fhir/AuditEvent?type=rest&outcome=4&_count=500")
            .to_request(),
    )
    .await;
    let b: Value = serde_json::from_slice(&test::read_body(resp).await).expect("bundle");
    let agents: Vec<&Value> = b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"]["agent"][0]["who"]["identifier"])
        .collect();
    assert!(!agents.is_empty());
    assert!(
        agents
            .iter()
            .all(|w| w["value"] == "emr-a" && w["system"] == idp.issuer.as_str()),
        "{agents:?}"
    );
    idp.handle.stop(false).await;
}

#[actix_web::test]
async fn a_rotated_key_is_fetched_on_its_unknown_kid() {
    let old = SigningKey::ec("k1");
    let idp = Idp::start(vec![old.jwk()]).await;
    let cfg = service::config("auth-rotate");
    let env = env_of(&[
        ("DDCC_OIDC_ISSUER", idp.issuer.clone()),
        ("DDCC_OIDC_AUDIENCE", AUDIENCE.into()),
        ("DDCC_OIDC_JWKS_MIN_REFRESH_SECS", "0".into()),
    ]);
    let svc = services(&cfg, &env).await;
    let state = server::build_state(cfg, |b| svc.install(b)).expect("state");
    let app = test::init_service(server::build_app(state, |_| {})).await;
    let c = claims(&idp.issuer, "emr-a");
    let resp = test::call_service(&app, register_write(Some(&old.token(&c)))).await;
    assert_eq!(resp.status().as_u16(), 400);
    let new = SigningKey::ec("k2");
    idp.publish(vec![old.jwk(), new.jwk()]);
    let resp = test::call_service(&app, register_write(Some(&new.token(&c)))).await;
    assert_eq!(
        resp.status().as_u16(),
        400,
        "new kid accepted after a refetch"
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // The IdP is discovered, not configured: with it gone, cached keys still work.
    idp.handle.stop(false).await;
    let resp = test::call_service(&app, register_write(Some(&new.token(&c)))).await;
    assert_eq!(resp.status().as_u16(), 400);
    // A key never published cannot be fetched either: 503, the IdP is unreachable.
    let resp =
        test::call_service(&app, register_write(Some(&SigningKey::ec("k3").token(&c)))).await;
    assert_eq!(resp.status().as_u16(), 503);
}

// ------------------------------------------------------------- mTLS + issuers

struct Pki {
    dir: std::path::PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "ddcc-auth-pki-{tag}-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{tag} client CA"));
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let ca = rcgen::CertifiedIssuer::self_signed(p, ca_key).expect("CA");
        Pki { dir, ca }
    }

    /// A leaf signed by this CA: (certificate PEM, key PEM).
    fn leaf(&self, cn: &str, server: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let sans = if server {
            vec!["localhost".to_string(), "127.0.0.1".to_string()]
        } else {
            Vec::new()
        };
        let mut p = rcgen::CertificateParams::new(sans).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "DDCC test");
        p.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = p.signed_by(&key, &self.ca).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }

    fn client(&self, server_ca_pem: &str, identity: Option<(String, String)>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(server_ca_pem.as_bytes()).expect("root"),
            );
        if let Some((cert, key)) = identity {
            b = b.identity(
                reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).expect("identity"),
            );
        }
        b.build().expect("client")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An issued document's signer: the issuer public keys whose Bundle signature verifies.
fn signed_by(doc: &Value, keys: &[(&str, Vec<u8>)]) -> Vec<String> {
    keys.iter()
        .filter(|(_, k)| ddcc_cert::bundle_sig::verify(doc, k).is_ok())
        .map(|(id, _)| id.to_string())
        .collect()
}

fn event(base: &Value, id: &str) -> Value {
    let mut qr = base.clone();
    qr["identifier"] = json!({"system": "urn:ddcc-mediator:auth-test", "value": id});
    qr
}

const ISSUERS: &str = r#"{
  "issuer": [
    {"id": "moh-a", "name": "Ministry of Health A", "country": "XA",
     "callers": ["cert-cn:emr-a", "openhim:emr-a", "oidc-client:emr-a"]},
    {"id": "moh-b", "name": "Ministry of Health B", "country": "XB",
     "callers": ["cert-cn:emr-b", "openhim:emr-b"]}
  ],
  "grant": [
    {"callers": ["cert-cn:ops"], "groups": ["admin"]},
    {"callers": ["openhim:registrar"], "groups": ["register"]}
  ]
}"#;

#[actix_web::test]
async fn client_certificates_select_the_issuer_and_nothing_else_can() {
    let Some(qr) = service::english_response() else {
        return;
    };
    let clients = Pki::new("clients");
    let servers = Pki::new("server");
    let rogue = Pki::new("rogue");
    let (srv_cert, srv_key) = servers.leaf("ddcc-mediator", true);
    let ca_pem = clients.ca.pem();
    let server_ca_pem = servers.ca.pem();
    let issuers = clients.write("issuers.json", ISSUERS);
    let env = env_of(&[
        ("DDCC_TLS_CERT", clients.write("srv.pem", &srv_cert)),
        ("DDCC_TLS_KEY", clients.write("srv.key", &srv_key)),
        ("DDCC_TLS_CLIENT_CA", clients.write("ca.pem", &ca_pem)),
        ("DDCC_OPENHIM_ROUTER_CERT", "openhim-router".into()),
        ("DDCC_ISSUERS_FILE", issuers),
    ]);
    let mut cfg = service::config("auth-mtls");
    cfg.server.workers = 1;
    let svc = services(&cfg, &env).await;
    let slots = svc.issuer_slots.clone().expect("issuer slots");
    let keys: Vec<(&str, Vec<u8>)> = slots
        .0
        .iter()
        .map(|(id, s)| {
            (
                id.as_str(),
                s.get().expect("local signer").identity.public_key.clone(),
            )
        })
        .collect();
    assert_eq!(keys.len(), 2);
    let registry = svc.registry.clone();
    let state = server::build_state(cfg, |b| svc.install(b)).expect("state");
    let tls = ddcc_mediator::auth::mtls::server_config(
        &ddcc_mediator::auth::TlsSettings::from_lookup(&|k| env.get(k).cloned())
            .expect("tls settings")
            .expect("tls on"),
    )
    .expect("rustls config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let srv =
        server::run_listener(&state, Surface::Public, listener, Some(tls), false).expect("run");
    let handle = srv.handle();
    actix_web::rt::spawn(srv);
    let base = format!("https://localhost:{port}");
    let issue_url = format!("{base}/fhir/QuestionnaireResponse/$generateHealthCertificate");

    let client =
        |cn: Option<&str>| clients.client(&server_ca_pem, cn.map(|cn| clients.leaf(cn, false)));
    let post = |c: reqwest::Client, body: Value, headers: Vec<(&'static str, &'static str)>| {
        let url = issue_url.clone();
        async move {
            let mut rb = c
                .post(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string());
            for (k, v) in headers {
                rb = rb.header(k, v);
            }
            let resp = rb.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let documents = || async {
        registry
            .store
            .search(
                "Bundle",
                &ddcc_store::SearchQuery::new().with("_count", "500"),
            )
            .await
            .expect("search")
            .len()
    };

    // Each issuer's caller signs with its own key.
    let (s, doc) = post(client(Some("emr-a")), event(&qr, "a-1"), vec![]).await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-a"]);
    let (s, doc) = post(client(Some("emr-b")), event(&qr, "b-1"), vec![]).await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-b"]);

    // The same event from another issuer's caller is that issuer's certificate, not
    // a replay of A's (idempotency is per issuer).
    let (s, doc) = post(client(Some("emr-b")), event(&qr, "a-1"), vec![]).await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-b"]);
    let (s, doc) = post(client(Some("emr-a")), event(&qr, "a-1"), vec![]).await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-a"], "A's replay is A's");

    // Nothing in the request can choose the key: A's caller asserting B's OpenHIM
    // client id (it is not the router) or naming B in headers still signs as A.
    let (s, doc) = post(
        client(Some("emr-a")),
        event(&qr, "a-2"),
        vec![("x-openhim-clientid", "emr-b"), ("x-ddcc-issuer", "moh-b")],
    )
    .await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-a"]);

    // The OpenHIM router's certificate may assert the client it authenticated.
    let (s, doc) = post(
        client(Some("openhim-router")),
        event(&qr, "b-2"),
        vec![("x-openhim-clientid", "emr-b")],
    )
    .await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-b"]);

    // Revocation is scoped like signing: only the issuer that signed a certificate
    // may revoke it.
    let (s, a_doc) = post(client(Some("emr-a")), event(&qr, "a-revoke"), vec![]).await;
    assert_eq!(s, 200, "{a_doc}");
    let hcid = a_doc["identifier"]["value"]
        .as_str()
        .expect("document identifier")
        .to_string();
    let revoke = |c: reqwest::Client| {
        let url = format!("{base}/fhir/Bundle/$revokeHealthCertificate");
        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "id", "valueString": hcid.clone()}]});
        async move {
            let r = c
                .post(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .expect("revoke");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, body) = revoke(client(Some("emr-b"))).await;
    assert_eq!(s, 403, "B's caller must not revoke A's certificate: {body}");
    let (s, body) = revoke(client(Some("emr-a"))).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["parameter"][0]["valueBoolean"], true, "{body}");

    // Refusals: nothing issued, nothing stored.
    let before = documents().await;
    for (who, cn, status) in [
        ("a caller of no issuer", Some("emr-c"), 403),
        ("a caller granted only admin", Some("ops"), 403),
        (
            "the router without a client id",
            Some("openhim-router"),
            403,
        ),
        ("no certificate", None, 401),
    ] {
        let (s, body) = post(client(cn), event(&qr, &format!("refused-{who}")), vec![]).await;
        assert_eq!(s, status, "{who}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{who}");
    }
    assert_eq!(
        documents().await,
        before,
        "a refused request stores nothing"
    );

    // A certificate from another CA never gets a connection.
    let stranger = rogue.leaf("emr-a", false);
    let err = clients
        .client(&server_ca_pem, Some(stranger))
        .post(&issue_url)
        .body(event(&qr, "rogue").to_string())
        .send()
        .await;
    assert!(
        err.is_err(),
        "handshake with an unknown client CA must fail"
    );

    // Reads stay open over TLS without a certificate; the JWKS lists both issuers.
    let jwks: Value = client(None)
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "{jwks}");
    handle.stop(false).await;
}

#[actix_web::test]
async fn openhim_client_ids_are_believed_only_from_trusted_proxies() {
    let Some(qr) = service::english_response() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "ddcc-auth-proxy-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let issuers = dir.join("issuers.json");
    std::fs::write(&issuers, ISSUERS).expect("write");
    let env = env_of(&[
        ("DDCC_OPENHIM_TRUSTED_PROXIES", "10.1.0.0/16".into()),
        ("DDCC_ISSUERS_FILE", issuers.display().to_string()),
    ]);
    let cfg = service::config("auth-proxy");
    let svc = services(&cfg, &env).await;
    let state = server::build_state(cfg, |b| svc.install(b)).expect("state");
    let app = test::init_service(server::build_app(state, |_| {})).await;
    let post = |peer: &str, client: &str, id: &str| {
        TestRequest::post()
            .uri("/fhir/QuestionnaireResponse/$generateHealthCertificate")
            .peer_addr(peer.parse().expect("addr"))
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .insert_header(("x-openhim-clientid", client.to_string()))
            .set_payload(event(&qr, id).to_string())
            .to_request()
    };
    let resp = test::call_service(&app, post("10.1.2.3:5000", "emr-a", "p-1")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let resp = test::call_service(&app, post("192.0.2.7:5000", "emr-a", "p-2")).await;
    assert_eq!(
        resp.status().as_u16(),
        401,
        "the header from anywhere else is not an identity"
    );
    let resp = test::call_service(&app, post("10.1.2.3:5000", "emr-z", "p-3")).await;
    assert_eq!(resp.status().as_u16(), 403);

    // A `batch` to `POST /fhir` issues: a caller allowed to register but not to issue
    // is refused there too, while its registrations reach the handler.
    let root = |client: &str, body: Value| {
        TestRequest::post()
            .uri("/fhir")
            .peer_addr("10.1.2.3:5000".parse().expect("addr"))
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .insert_header(("x-openhim-clientid", client.to_string()))
            .set_payload(body.to_string())
            .to_request()
    };
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": event(&qr, "p-4"), "request": {"method": "POST", "url": "QuestionnaireResponse/$generateHealthCertificate"}}
    ]});
    let resp = test::call_service(&app, root("registrar", batch.clone())).await;
    assert_eq!(resp.status().as_u16(), 403, "registering is not issuing");
    let resp = test::call_service(&app, root("emr-a", batch)).await;
    assert_eq!(
        resp.status().as_u16(),
        201,
        "an issuer's caller may submit the batch"
    );
    let resp = test::call_service(
        &app,
        root(
            "registrar",
            json!({"resourceType": "Bundle", "type": "collection"}),
        ),
    )
    .await;
    assert_eq!(
        resp.status().as_u16(),
        400,
        "past authentication, refused for its body"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ------------------------------------------------------------ admin listener

#[actix_web::test]
async fn the_public_listener_hides_admin_paths_the_admin_listener_serves_them() {
    let mut cfg = service::config("auth-admin");
    cfg.server.workers = 1;
    let svc = services(&cfg, &Env::new()).await;
    let state = server::build_state(cfg, |b| svc.install(b)).expect("state");
    assert!(
        state.config.server.admin_listener().is_some(),
        "separate by default"
    );
    let start = |surface| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let srv = server::run_listener(&state, surface, l, None, false).expect("run");
        let h = srv.handle();
        actix_web::rt::spawn(srv);
        (format!("http://127.0.0.1:{port}"), h)
    };
    let (public, hp) = start(Surface::Public);
    let (admin, ha) = start(Surface::Admin);
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("request");
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        }
    };
    let cases = [
        (&public, "/metrics", 404),
        (&public, "/admin/gateway/status", 404),
        (&public, "/health", 200),
        (&public, "/fhir/metadata", 200),
        (&admin, "/metrics", 200),
        (&admin, "/health", 200),
        (&admin, "/ready", 200),
        (&admin, "/fhir/metadata", 404),
    ];
    let mut failures = Vec::new();
    for (base, path, want) in cases {
        let (s, body) = get(format!("{base}{path}")).await;
        if s != want {
            failures.push(format!("{base}{path}: {s}, want {want}: {body}"));
        }
        if s == 404 && !body.contains("OperationOutcome") {
            failures.push(format!("{base}{path}: 404 without an OperationOutcome"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (_, metrics) = get(format!("{admin}/metrics")).await;
    assert!(metrics.contains("ddcc_http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("# TYPE ddcc_clock_offset_seconds gauge"),
        "{metrics}"
    );
    hp.stop(false).await;
    ha.stop(false).await;

    let mut shared = Config::default();
    shared.server.admin_addr = Some("public".into());
    assert_eq!(shared.server.admin_listener(), None);
    shared.server.admin_addr = None;
    shared.server.port = 4321;
    assert_eq!(
        shared.server.admin_listener().as_deref(),
        Some("127.0.0.1:4322")
    );
}

// ------------------------------------------------- OpenBao: one AppRole per issuer

fn policy(key: &str) -> String {
    // Sign with its key and read that key's DSC; nothing else (no other key, no
    // key creation, no export).
    format!(
        r#"path "transit/sign/{key}" {{ capabilities = ["update"] }}
path "transit/sign/{key}/*" {{ capabilities = ["update"] }}
path "transit/keys/{key}" {{ capabilities = ["read"] }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_issuer_signs_through_its_own_approle_and_short_tokens_are_renewed() {
    use reqwest::Method;
    let Some(qr) = service::english_response() else {
        return;
    };
    let Some(bao) = openbao_harness::start().await else {
        return;
    };
    bao.enable("transit", "transit").await;
    bao.enable("pki", "pki").await;
    bao.api(
        Method::POST,
        "sys/mounts/pki/tune",
        Some(json!({"max_lease_ttl": "87600h"})),
    )
    .await;
    bao.api(
        Method::POST,
        "pki/root/generate/internal",
        Some(json!({"common_name": "test SCA", "country": "XA", "key_type": "ec", "key_bits": 256, "ttl": "87600h"})),
    )
    .await;
    for (key, country) in [("dsc-a", "XA"), ("dsc-b", "XB")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
            .args(["keys", "init", "--days", "365"])
            .env_clear()
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", openbao_harness::ROOT_TOKEN)
            .env("VAULT_TRANSIT_KEY", key)
            .env("DDCC_ISSUER_COUNTRY", country)
            .output()
            .expect("keys init runs");
        assert!(
            out.status.success(),
            "keys init {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (status, _) = bao
        .try_api(
            Method::POST,
            "sys/auth/approle",
            Some(json!({"type": "approle"})),
        )
        .await;
    assert!(status < 300, "enable approle: {status}");
    let mut creds = HashMap::new();
    for (issuer, key) in [("a", "dsc-a"), ("b", "dsc-b")] {
        bao.api(
            Method::POST,
            &format!("sys/policies/acl/issuer-{issuer}"),
            Some(json!({ "policy": policy(key) })),
        )
        .await;
        // A 3 s token: it must be renewed several times during the run below.
        bao.api(
            Method::POST,
            &format!("auth/approle/role/issuer-{issuer}"),
            Some(
                json!({"token_policies": [format!("issuer-{issuer}")], "token_ttl": "3s",
                        "token_max_ttl": "1h", "secret_id_num_uses": 0}),
            ),
        )
        .await;
        let role = bao
            .api(
                Method::GET,
                &format!("auth/approle/role/issuer-{issuer}/role-id"),
                None,
            )
            .await;
        let secret = bao
            .api(
                Method::POST,
                &format!("auth/approle/role/issuer-{issuer}/secret-id"),
                None,
            )
            .await;
        creds.insert(
            issuer,
            (
                role["data"]["role_id"]
                    .as_str()
                    .expect("role id")
                    .to_string(),
                secret["data"]["secret_id"]
                    .as_str()
                    .expect("secret id")
                    .to_string(),
            ),
        );
    }

    // A's AppRole cannot use B's key, whatever the mediator would ask.
    let (role_a, secret_a) = creds["a"].clone();
    let approle = |role: &str, secret: &str, key: &str| {
        let cfg = vault_transit::VaultConfig::new(
            bao.addr.clone(),
            vault_transit::Auth::AppRole {
                role_id: role.to_string(),
                secret_id: vault_transit::Secret::new(secret),
                mount: "approle".into(),
            },
            key,
        );
        vault_transit::VaultTransitSigner::new(cfg).expect("signer")
    };
    use ddcc_cert::signer::Signer as _;
    assert!(approle(&role_a, &secret_a, "dsc-a")
        .sign(b"m")
        .await
        .is_ok());
    let denied = approle(&role_a, &secret_a, "dsc-b").sign(b"m").await;
    assert!(
        denied.is_err(),
        "policy of A must refuse B's key: {denied:?}"
    );

    let dir = std::env::temp_dir().join(format!(
        "ddcc-auth-vault-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let issuers = dir.join("issuers.toml");
    std::fs::write(
        &issuers,
        format!(
            r#"
[[issuer]]
id = "moh-a"
name = "Ministry of Health A"
country = "XA"
callers = ["openhim:emr-a"]
[issuer.vault]
key = "dsc-a"
role_id = "{}"
secret_id_env = "ISSUER_A_SECRET_ID"

[[issuer]]
id = "moh-b"
name = "Ministry of Health B"
country = "XB"
callers = ["openhim:emr-b"]
[issuer.vault]
key = "dsc-b"
role_id = "{}"
secret_id_file = "{}"
"#,
            creds["a"].0,
            creds["b"].0,
            dir.join("b.secret").display()
        ),
    )
    .expect("issuers file");
    std::fs::write(dir.join("b.secret"), format!("{}\n", creds["b"].1)).expect("secret file");
    let env = env_of(&[
        ("VAULT_ADDR", bao.addr.clone()),
        ("ISSUER_A_SECRET_ID", creds["a"].1.clone()),
        ("DDCC_OPENHIM_TRUSTED_PROXIES", "127.0.0.1/32".into()),
        ("DDCC_ISSUERS_FILE", issuers.display().to_string()),
    ]);
    let cfg = service::config("auth-vault");
    let svc = services(&cfg, &env).await;
    let slots = svc.issuer_slots.clone().expect("slots");
    let keys: Vec<(&str, Vec<u8>)> = slots
        .0
        .iter()
        .map(|(id, s)| {
            (
                id.as_str(),
                s.get().expect("connected").identity.public_key.clone(),
            )
        })
        .collect();
    let signer_a = svc
        .vault
        .iter()
        .find(|s| s.config().key_name == "dsc-a")
        .cloned()
        .expect("A's signer");
    let registry = svc.registry.clone();
    let state = server::build_state(cfg, |b| svc.install(b)).expect("state");
    let app = test::init_service(server::build_app(state, |_| {})).await;
    let post = |client: &str, id: String| {
        TestRequest::post()
            .uri("/fhir/QuestionnaireResponse/$generateHealthCertificate")
            .peer_addr("127.0.0.1:40000".parse().expect("addr"))
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .insert_header(("x-openhim-clientid", client.to_string()))
            .set_payload(event(&qr, &id).to_string())
            .to_request()
    };

    let resp = test::call_service(&app, post("emr-b", "vb-1".into())).await;
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = serde_json::from_slice(&test::read_body(resp).await).expect("json");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-b"]);

    let before = registry
        .store
        .search(
            "Bundle",
            &ddcc_store::SearchQuery::new().with("_count", "500"),
        )
        .await
        .expect("search")
        .len();
    let resp = test::call_service(&app, post("emr-c", "vc-1".into())).await;
    assert_eq!(
        resp.status().as_u16(),
        403,
        "a caller of no issuer signs nothing"
    );
    let after = registry
        .store
        .search(
            "Bundle",
            &ddcc_store::SearchQuery::new().with("_count", "500"),
        )
        .await
        .expect("search")
        .len();
    assert_eq!(before, after);

    // Issue as A for longer than several token lifetimes: every request succeeds.
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < std::time::Duration::from_secs(10) {
        let resp = test::call_service(&app, post("emr-a", format!("va-{n}"))).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        assert_eq!(
            status,
            200,
            "request {n} at {:?}: {}",
            started.elapsed(),
            String::from_utf8_lossy(&body)
        );
        let doc: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(signed_by(&doc, &keys), vec!["moh-a"]);
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let stats = signer_a.stats();
    eprintln!("{n} certificates over 10 s with 3 s tokens: {stats:?}");
    assert!(n >= 3, "{n}");
    assert!(
        stats.renewals + stats.logins >= 3,
        "the 3 s token was renewed or replaced: {stats:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ------------------------------------------------------- the binary, as deployed

/// Kills the child on drop, so a failing assertion leaves no server behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn serve_runs_tls_with_client_certificates_and_the_admin_listener() {
    let free = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    };
    let (port, admin_port) = (free(), free());
    let pki = Pki::new("serve");
    let (cert, key) = pki.leaf("ddcc-mediator", true);
    let ca_pem = pki.ca.pem();
    let data = pki.dir.join("data");
    let child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
            .arg("serve")
            .env_clear()
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("DDCC_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("DDCC_DATA_DIR", &data)
            .env("DDCC_PROFILES_DIR", service::root().join("fhir-profiles"))
            .env("DDCC_TLS_CERT", pki.write("srv.pem", &cert))
            .env("DDCC_TLS_KEY", pki.write("srv.key", &key))
            .env("DDCC_TLS_CLIENT_CA", pki.write("ca.pem", &ca_pem))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("binary starts"),
    );
    let anonymous = pki.client(&ca_pem, None);
    let with_cert = pki.client(&ca_pem, Some(pki.leaf("emr-a", false)));
    let base = format!("https://localhost:{port}");
    let mut up = false;
    for _ in 0..500 {
        if anonymous.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    assert!(up, "{base}/health never answered");
    let status = |r: reqwest::Response| r.status().as_u16();
    let write = |c: &reqwest::Client| {
        c.post(format!("{base}/fhir"))
            .header("content-type", "application/fhir+json")
            .body(r#"{"resourceType":"Bundle","type":"collection"}"#)
            .send()
    };
    assert_eq!(status(write(&anonymous).await.expect("write")), 401);
    assert_eq!(
        status(write(&with_cert).await.expect("write")),
        400,
        "authenticated by its certificate"
    );
    assert_eq!(
        status(
            anonymous
                .get(format!("{base}/metrics"))
                .send()
                .await
                .expect("metrics")
        ),
        404
    );
    let plain = reqwest::Client::new();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .map(status)
            .unwrap_or(0)
            != 200,
        "the public listener speaks TLS only"
    );
    let metrics = plain
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .expect("admin listener");
    assert_eq!(metrics.status().as_u16(), 200);
    // The container health check, with the service's environment, probes the admin
    // listener (the public one is TLS).
    let probe = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .arg("healthcheck")
        .env_clear()
        .env("SERVER_PORT", port.to_string())
        .env("DDCC_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("DDCC_TLS_CERT", pki.dir.join("srv.pem"))
        .status()
        .expect("healthcheck runs");
    assert!(probe.success());
    drop(child);
}

#[actix_web::test]
async fn oidc_clients_select_their_issuer() {
    let Some(qr) = service::english_response() else {
        return;
    };
    let key = SigningKey::ec("k");
    let idp = Idp::start(vec![key.jwk()]).await;
    let dir = std::env::temp_dir().join(format!(
        "ddcc-auth-oidc-issuers-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let issuers = dir.join("issuers.json");
    std::fs::write(&issuers, ISSUERS).expect("write");
    let env = env_of(&[
        ("DDCC_OIDC_ISSUER", idp.issuer.clone()),
        ("DDCC_OIDC_AUDIENCE", AUDIENCE.into()),
        ("DDCC_ISSUERS_FILE", issuers.display().to_string()),
    ]);
    let cfg = service::config("auth-oidc-issuers");
    let svc = services(&cfg, &env).await;
    let slots = svc.issuer_slots.clone().expect("slots");
    let keys: Vec<(&str, Vec<u8>)> = slots
        .0
        .iter()
        .map(|(id, s)| {
            (
                id.as_str(),
                s.get().expect("local signer").identity.public_key.clone(),
            )
        })
        .collect();
    let state = server::build_state(cfg, |b| svc.install(b)).expect("state");
    let app = test::init_service(server::build_app(state, |_| {})).await;
    let post = |client: &str, id: &str| {
        TestRequest::post()
            .uri("/ddcc/generateHealthCertificate")
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .insert_header((
                AUTHORIZATION,
                format!("Bearer {}", key.token(&claims(&idp.issuer, client))),
            ))
            .set_payload(event(&qr, id).to_string())
            .to_request()
    };
    let resp = test::call_service(&app, post("emr-a", "o-1")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = serde_json::from_slice(&test::read_body(resp).await).expect("json");
    assert_eq!(signed_by(&doc, &keys), vec!["moh-a"]);
    // A valid token of a client no issuer lists: authenticated, not allowed.
    let resp = test::call_service(&app, post("emr-unknown", "o-2")).await;
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = serde_json::from_slice(&test::read_body(resp).await).expect("json");
    assert_eq!(body["issue"][0]["code"], "forbidden");
    idp.handle.stop(false).await;
    let _ = std::fs::remove_dir_all(dir);
}
