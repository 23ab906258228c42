//! The mediator's gateway client against the gateway double (tests/gateway-double)
//! over real mTLS, with rcgen key material onboarded by the double's test trust
//! anchor and every CMS checked by the `openssl` command inside the double.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ddcc_mediator::gateway::{
    Backoff, EdgeError, EdgeRequest, EdgeResponse, Gateway, GatewaySettings, HttpEdge, Method,
    ReqwestEdge, UploadIdentity,
};
use ddcc_store::gateway::{DONE, FAILED, PENDING};
use ddcc_store::{SqliteStore, Store};
use gateway_double::participant::{Exchange, Participant};
use gateway_double::pki::{self, Credentials, Profile};
use gateway_double::{Config, GatewayDouble, ParticipantKeys};
use serde_json::Value;
use trust_network::reference::{Publisher, ServedArtefact};

const PREFIX: &str = "https://moh.example/fhir/";

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ddcc-gwc-{tag}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The settings an operator would give: PEM files for TLS, UP and the TA, the
/// double's server CA; a fast backoff.
fn settings(
    gw: &GatewayDouble,
    dir: &Path,
    tls: &Credentials,
    up: &Credentials,
) -> GatewaySettings {
    let env: HashMap<&str, String> = [
        ("DDCC_GATEWAY_URL", gw.base_url()),
        (
            "DDCC_GATEWAY_TLS_CERT",
            write(dir, "tls.pem", &tls.cert_pem()).display().to_string(),
        ),
        (
            "DDCC_GATEWAY_TLS_KEY",
            write(dir, "tls.key", &tls.key_pem()).display().to_string(),
        ),
        (
            "DDCC_GATEWAY_CA",
            write(dir, "ca.pem", gw.server_ca_pem())
                .display()
                .to_string(),
        ),
        (
            "DDCC_GATEWAY_UPLOAD_CERT",
            write(dir, "up.pem", &up.cert_pem()).display().to_string(),
        ),
        (
            "DDCC_GATEWAY_UPLOAD_KEY",
            write(dir, "up.key", &up.key_pem()).display().to_string(),
        ),
        (
            "DDCC_GATEWAY_TRUST_ANCHOR",
            write(dir, "ta.pem", gw.trust_anchor_pem())
                .display()
                .to_string(),
        ),
        ("DDCC_GATEWAY_RETRY_BASE", "10ms".into()),
        ("DDCC_GATEWAY_RETRY_MAX", "50ms".into()),
        ("DDCC_GATEWAY_TIMEOUT", "5s".into()),
    ]
    .into_iter()
    .collect();
    GatewaySettings::from_env(|k| env.get(k).cloned())
        .unwrap()
        .unwrap()
}

fn open_store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.join("data")).unwrap())
}

fn client(s: &GatewaySettings, store: Arc<dyn Store>, country: &str) -> Gateway {
    Gateway::from_settings(s, store, country).unwrap()
}

fn publisher(country: &str) -> Publisher {
    Publisher {
        country: country.into(),
        domain: "DDCC".into(),
        ssl_public_key: "MIIBtestTLS".into(),
    }
}

fn artefact(kind: &str, id: &str, body: &str) -> ServedArtefact {
    ServedArtefact {
        resource_type: kind.into(),
        url: format!("{PREFIX}{kind}/{id}"),
        name: id.into(),
        version: "1.0.0".into(),
        bytes: body.as_bytes().to_vec(),
    }
}

async fn world() -> (GatewayDouble, ParticipantKeys, ParticipantKeys) {
    let gw = GatewayDouble::start(Config::default()).await.unwrap();
    let a = ParticipantKeys::generate("XA").unwrap();
    let b = ParticipantKeys::generate("XB").unwrap();
    gw.onboard_participant(&a).await.unwrap();
    gw.onboard_participant(&b).await.unwrap();
    (gw, a, b)
}

/// The double's records of `country`, as (url, thumbprint).
fn listed(gw: &GatewayDouble, country: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = gw
        .references()
        .into_iter()
        .filter(|r| r.country == country)
        .map(|r| (r.url, r.thumbprint))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn publish_republish_update_delete() {
    let (gw, a, _b) = world().await;
    let dir = tmp("publish");
    let s = settings(&gw, &dir, &a.tls, &a.up);
    let g = client(&s, open_store(&dir), "XA");
    let vs = artefact("ValueSet", "vaccines", "{\"v\":1}");
    let pd = artefact("PlanDefinition", "rules", "{\"p\":1}");

    let first = g
        .publish(&[vs.clone(), pd.clone()], &publisher("XA"), PREFIX)
        .await
        .unwrap();
    assert_eq!((first.create, first.update, first.delete), (2, 0, 0));
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.delivered, 2, "{d:?}");
    let want = |a: &ServedArtefact| {
        (
            a.url.clone(),
            trust_network::reference::thumbprint(&a.bytes),
        )
    };
    let mut expected = vec![want(&vs), want(&pd)];
    expected.sort();
    assert_eq!(listed(&gw, "XA"), expected);
    let posts = gw.requests_to("POST", "/trust/reference").len();

    // Re-publish: nothing changed, nothing sent.
    let again = g
        .publish(&[vs.clone(), pd.clone()], &publisher("XA"), PREFIX)
        .await
        .unwrap();
    assert_eq!(
        (again.create, again.update, again.delete, again.unchanged),
        (0, 0, 0, 2)
    );
    assert_eq!(g.deliver_due().await.unwrap().delivered, 0);
    assert_eq!(gw.requests_to("POST", "/trust/reference").len(), posts);

    // A changed ValueSet: its record is updated in place (same uuid).
    let uuid_before = gw
        .references()
        .into_iter()
        .find(|r| r.url == vs.url)
        .unwrap()
        .uuid;
    let vs2 = artefact("ValueSet", "vaccines", "{\"v\":2}");
    let changed = g
        .publish(&[vs2.clone(), pd.clone()], &publisher("XA"), PREFIX)
        .await
        .unwrap();
    assert_eq!((changed.create, changed.update, changed.delete), (0, 1, 0));
    assert_eq!(g.deliver_due().await.unwrap().delivered, 1);
    let rec = gw
        .references()
        .into_iter()
        .find(|r| r.url == vs.url)
        .unwrap();
    assert_eq!(rec.uuid, uuid_before);
    assert_eq!(
        rec.thumbprint,
        trust_network::reference::thumbprint(&vs2.bytes)
    );
    assert_eq!(gw.references().len(), 2);

    // The PlanDefinition is no longer served: its record is deleted.
    let removed = g
        .publish(std::slice::from_ref(&vs2), &publisher("XA"), PREFIX)
        .await
        .unwrap();
    assert_eq!(removed.delete, 1);
    assert_eq!(g.deliver_due().await.unwrap().delivered, 1);
    assert_eq!(listed(&gw, "XA"), vec![want(&vs2)]);

    let status = g.status().await.unwrap();
    assert_eq!(status["outbox"]["done"], 4);
    assert_eq!(status["outbox"]["failed"], 0);
    assert_eq!(status["publishedReferences"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn wrong_upload_certificate_is_rejected_and_reported() {
    let (gw, a, b) = world().await;
    let dir = tmp("wrong-up");
    // XA's TLS with XB's (onboarded, other country) UP certificate.
    let s = settings(&gw, &dir, &a.tls, &b.up);
    let g = client(&s, open_store(&dir), "XA");
    g.publish(&[artefact("ValueSet", "a", "{}")], &publisher("XA"), PREFIX)
        .await
        .unwrap();
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.failed.len(), 1, "{d:?}");
    assert!(d.failed[0].contains("403"), "{d:?}");
    assert!(gw.references().is_empty());
    let failed = g.status().await.unwrap()["outbox"]["rows"][0].clone();
    assert_eq!(failed["state"], FAILED);
    assert!(
        failed["lastError"]
            .as_str()
            .unwrap()
            .contains("Invalid Upload Certificate"),
        "{failed}"
    );
}

#[tokio::test]
async fn unknown_tls_certificate_is_401_and_reported() {
    let (gw, a, _b) = world().await;
    let dir = tmp("unknown-tls");
    let stranger = pki::generate(Profile::Tls, "XA").unwrap();
    let s = settings(&gw, &dir, &stranger, &a.up);
    let g = client(&s, open_store(&dir), "XA");
    let e = g
        .publish(&[artefact("ValueSet", "a", "{}")], &publisher("XA"), PREFIX)
        .await
        .expect_err("not onboarded");
    assert!(e.to_string().contains("401"), "{e}");
    // An upload through the outbox is refused and kept for the operator to see.
    let dsc = pki::dsc(&a.sca, "XA", "XA DSC").unwrap();
    g.queue_dsc(&dsc.cert_der()).await.unwrap();
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.failed.len(), 1, "{d:?}");
    assert!(d.failed[0].contains("401"), "{d:?}");
    assert!(gw.signer_certificates().is_empty());
}

#[tokio::test]
async fn expired_upload_certificate_is_rejected() {
    let (gw, a, _b) = world().await;
    let now = time::OffsetDateTime::now_utc();
    let expired = pki::generate_with_validity(
        Profile::Upload,
        "XA",
        now - time::Duration::days(400),
        now - time::Duration::days(30),
    )
    .unwrap();
    gw.onboard("XA", gateway_double::PartyType::Upload, &expired.cert_der())
        .await
        .unwrap();
    let dir = tmp("expired-up");
    let s = settings(&gw, &dir, &a.tls, &expired);
    let g = client(&s, open_store(&dir), "XA");
    g.publish(&[artefact("ValueSet", "a", "{}")], &publisher("XA"), PREFIX)
        .await
        .unwrap();
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.failed.len(), 1, "{d:?}");
    assert!(d.failed[0].contains("400"), "{d:?}");
    assert!(gw.references().is_empty());
}

#[tokio::test]
async fn outbox_delivers_after_an_outage_across_a_restart() {
    let (mut gw, a, _b) = world().await;
    let dir = tmp("outage");
    let s = settings(&gw, &dir, &a.tls, &a.up);
    let dsc = pki::dsc(&a.sca, "XA", "XA DSC").unwrap();
    {
        let g = client(&s, open_store(&dir), "XA");
        g.publish(&[artefact("ValueSet", "a", "{}")], &publisher("XA"), PREFIX)
            .await
            .unwrap();
        gw.set_down(true).await.unwrap();
        g.queue_dsc(&dsc.cert_der()).await.unwrap();
        let d = g.deliver_due().await.unwrap();
        assert_eq!(
            (d.delivered, d.failed.len(), d.retrying.len()),
            (0, 0, 2),
            "{d:?}"
        );
        // The "mediator" stops here: client and store handles are dropped.
    }
    gw.set_down(false).await.unwrap();
    // A new process: a new store handle on the same data directory, a new client.
    let g = client(&s, open_store(&dir), "XA");
    let pending = g.status().await.unwrap()["outbox"]["pending"].clone();
    assert_eq!(pending, 2);
    let mut delivered = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        delivered += g.deliver_due().await.unwrap().delivered;
        if delivered == 2 {
            break;
        }
    }
    assert_eq!(delivered, 2);
    assert_eq!(gw.references().len(), 1);
    assert_eq!(gw.signer_certificates().len(), 1);
    assert_eq!(gw.signer_certificates()[0].raw_der, dsc.cert_der());

    // Uploading the same DSC again: 409, checked against the list, counted as done.
    let again = g.queue_dsc(&dsc.cert_der()).await.unwrap();
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.delivered, 1, "{d:?}");
    let rows = g.status().await.unwrap()["outbox"]["rows"].clone();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == again)
        .unwrap()
        .clone();
    assert_eq!(row["state"], DONE);
    assert_eq!(g.status().await.unwrap()["outbox"]["pending"], 0);
    let _ = PENDING;
}

type Rewrite = Box<dyn Fn(&mut Vec<Value>) + Send + Sync>;

/// Passes everything through, but alters what `/trustList/certificate` answers.
struct Tamper {
    inner: ReqwestEdge,
    with: Rewrite,
}

impl HttpEdge for Tamper {
    fn send(&self, req: EdgeRequest) -> ddcc_store::BoxFuture<'_, Result<EdgeResponse, EdgeError>> {
        Box::pin(async move {
            let tamper =
                req.method == Method::Get && req.path.starts_with("/trustList/certificate");
            let mut r = self.inner.send(req).await?;
            if tamper && r.status == 200 {
                let mut rows: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
                (self.with)(&mut rows);
                r.body = serde_json::to_vec(&rows).unwrap();
            }
            Ok(r)
        })
    }
}

#[tokio::test]
async fn trust_list_sync_verifies_trust_anchor_signatures_and_dsc_chains() {
    let (gw, a, b) = world().await;
    let dir = tmp("sync");
    let s = settings(&gw, &dir, &a.tls, &a.up);
    let store = open_store(&dir);
    let g = client(&s, store.clone(), "XA");
    let dsc_a = pki::dsc(&a.sca, "XA", "XA DSC").unwrap();
    let dsc_b = pki::dsc(&b.sca, "XB", "XB DSC").unwrap();
    g.queue_dsc(&dsc_a.cert_der()).await.unwrap();
    assert_eq!(g.deliver_due().await.unwrap().delivered, 1);
    let sb = settings(&gw, &tmp("sync-b"), &b.tls, &b.up);
    let gb = client(&sb, open_store(&tmp("sync-b-store")), "XB");
    gb.queue_dsc(&dsc_b.cert_der()).await.unwrap();
    assert_eq!(gb.deliver_due().await.unwrap().delivered, 1);

    let r = g.sync_full().await.unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    let mut dscs = store.gateway().unwrap().trusted_dscs().await.unwrap();
    dscs.sort();
    let mut want = vec![dsc_a.cert_der(), dsc_b.cert_der()];
    want.sort();
    assert_eq!(dscs, want);
    // TLS, UP and CSCA of both countries, plus the two DSCs.
    assert_eq!(r.accepted, 8);

    // A tampered list: XB's UPLOAD row carries another certificate (its TA
    // signature no longer matches), so XB's DSC has no verified uploader either;
    // XA's DSC row is replaced by a certificate no CSCA issued.
    let b_up = gateway_double::model::b64(&b.up.cert_der());
    let rogue = pki::generate(Profile::Upload, "XB").unwrap();
    let rogue_b64 = gateway_double::model::b64(&rogue.cert_der());
    let self_signed_dsc =
        gateway_double::model::b64(&pki::generate(Profile::Upload, "XA").unwrap().cert_der());
    let dsc_a_b64 = gateway_double::model::b64(&dsc_a.cert_der());
    let tampered = Gateway::new(
        Arc::new(Tamper {
            inner: s_edge(&s),
            with: Box::new(move |rows| {
                for r in rows.iter_mut() {
                    if r["certificate"] == b_up.as_str() {
                        r["certificate"] = Value::String(rogue_b64.clone());
                    } else if r["certificate"] == dsc_a_b64.as_str() {
                        r["certificate"] = Value::String(self_signed_dsc.clone());
                    }
                }
            }),
        }),
        store.clone(),
        None,
        Some(gw.trust_anchor_der().to_vec()),
        "XA",
        Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
    )
    .unwrap();
    let r = tampered.sync_full().await.unwrap();
    let reasons: Vec<String> = r
        .rejected
        .iter()
        .map(|x| format!("{} {}: {}", x.group, x.country, x.reason))
        .collect();
    assert_eq!(r.rejected.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().any(|x| x.starts_with("UPLOAD XB")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|x| x.starts_with("DSC XA") && x.contains("CSCA")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|x| x.starts_with("DSC XB")),
        "{reasons:?}"
    );
    // Only what verified is kept: no DSC at all now.
    assert!(store
        .gateway()
        .unwrap()
        .trusted_dscs()
        .await
        .unwrap()
        .is_empty());

    // Delta sync with the honest gateway restores the DSCs against the CSCA/UPLOAD
    // entries kept by the last full sync (XB's UPLOAD is missing there, so only XA's).
    let d = g.sync_delta().await.unwrap();
    assert_eq!(d.dscs, 1, "{:?}", d.rejected);
    assert_eq!(
        store.gateway().unwrap().trusted_dscs().await.unwrap(),
        vec![dsc_a.cert_der()]
    );
}

fn s_edge(s: &GatewaySettings) -> ReqwestEdge {
    s.edge().unwrap()
}

/// Our client as a participant of the legacy `@reference` scenarios: our CMS
/// signer (through `Gateway::sign`) and our HTTP edge.
struct Mediator {
    country: String,
    gateway: Gateway,
    edge: ReqwestEdge,
}

impl Mediator {
    async fn exchange(&self, method: Method, path: String, body: &str) -> Result<Exchange, String> {
        let r = self
            .edge
            .send(EdgeRequest {
                method,
                path,
                content_type: (method != Method::Get).then_some("application/cms-text"),
                headers: Vec::new(),
                body: body.as_bytes().to_vec(),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Exchange {
            status: r.status,
            body: r.body,
        })
    }
}

impl Participant for Mediator {
    fn country(&self) -> String {
        self.country.clone()
    }
    async fn sign(&self, payload: &[u8]) -> Result<String, String> {
        self.gateway.sign(payload).await.map_err(|e| e.to_string())
    }
    async fn upload_reference(&self, cms: &str) -> Result<Exchange, String> {
        self.exchange(Method::Post, "/trust/reference".into(), cms)
            .await
    }
    async fn delete_reference(&self, cms: &str) -> Result<Exchange, String> {
        self.exchange(Method::Delete, "/trust/reference".into(), cms)
            .await
    }
    async fn download_references(&self, query: &str) -> Result<Exchange, String> {
        let path = if query.is_empty() {
            "/trustList/references".to_string()
        } else {
            format!("/trustList/references?{query}")
        };
        self.exchange(Method::Get, path, "").await
    }
}

fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if p.is_dir() {
        Some(p)
    } else {
        println!("SKIP: {} is absent", p.display());
        None
    }
}

#[tokio::test]
async fn legacy_reference_scenarios_hold_with_our_client() {
    let Some(shared) = shared() else { return };
    let md = std::fs::read_to_string(
        shared.join("contracts/gateway-api-tests/legacy-gauge-specs/specs/gateway/reference.md"),
    )
    .unwrap();
    let spec = gateway_double::spec::parse(&md);
    // The 2023 gateway the suite was written against: a 10-character domain column.
    let gw = GatewayDouble::start(Config {
        reference_domain_max_len: 10,
        ..Config::default()
    })
    .await
    .unwrap();
    let mut actors = HashMap::new();
    for (actor, country, onboard) in [
        ("CountryA", "XA", true),
        ("CountryB", "XB", true),
        ("CountryC", "XC", false),
        // Another participant's view of the list; the double has no second gateway
        // in this run.
        ("OtherGateway", "XD", true),
    ] {
        let keys = ParticipantKeys::generate(country).unwrap();
        if onboard {
            gw.onboard_participant(&keys).await.unwrap();
        }
        let dir = tmp(&format!("scenario-{country}"));
        let s = settings(&gw, &dir, &keys.tls, &keys.up);
        actors.insert(
            actor.to_string(),
            Mediator {
                country: country.into(),
                gateway: Gateway::new(
                    Arc::new(s.edge().unwrap()),
                    open_store(&dir),
                    Some(UploadIdentity {
                        cert_der: keys.up.cert_der(),
                        signer: Arc::new(
                            ddcc_cert::local::LocalSigner::from_pkcs8(&keys.up.key.serialize_der())
                                .unwrap(),
                        ),
                    }),
                    None,
                    country,
                    Backoff {
                        base: Duration::from_millis(10),
                        max: Duration::from_millis(50),
                    },
                )
                .unwrap(),
                edge: s.edge().unwrap(),
            },
        );
    }
    let runner = gateway_double::spec::Runner {
        actors: &actors,
        ssl_public_key: gateway_double::model::b64(&actors_tls(&gw)),
    };
    let outcomes = runner.run(&spec).await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for o in &outcomes {
        if o.skipped {
            println!("skipped: {}", o.scenario);
            continue;
        }
        ran += 1;
        for f in &o.failures {
            failures.push(format!("{}: {f}", o.scenario));
        }
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(ran >= 8, "{ran} scenarios ran");
    assert!(failures.is_empty(), "{} failure(s)", failures.len());
}

/// Any DER certificate: the `sslPublicKey` the scenarios put in references.
fn actors_tls(gw: &GatewayDouble) -> Vec<u8> {
    gw.trusted_parties()[0].raw_der.clone()
}

#[path = "service/mod.rs"]
mod service;

/// The service as deployed: artefacts served under `/fhir`, the client installed,
/// the admin routes driving it. A verifier fetches every published URL from the
/// service, hashes the bytes and finds that thumbprint on the gateway's list.
#[actix_web::test]
async fn admin_publish_then_a_verifier_matches_every_served_url() {
    use actix_web::test as at;
    let (gw, a, _b) = world().await;
    let dir = tmp("admin");
    let s = settings(&gw, &dir, &a.tls, &a.up);
    // Our serving endpoint's TLS certificate, for the references' sslPublicKey. Only
    // this test sets it in this test binary.
    let serving = write(&dir, "serving.pem", &a.tls.cert_pem());
    std::env::set_var("DDCC_TLS_CERT", &serving);

    let cfg = service::config("gw-admin");
    let services = ddcc_mediator::services::Services::build_with_env(&cfg, |_| None)
        .await
        .unwrap();
    let base = services.artefacts.public_base().to_string();
    let store = services.registry.store.clone();
    // The development DSC's SCA is our CSCA on this gateway.
    let identity = services.signing.get().unwrap().identity;
    let sca_pem = std::fs::read_to_string(cfg.data_dir.join("keys/sca-cert.pem")).unwrap();
    let sca_der = ddcc_cert::x509::pem_decode("CERTIFICATE", &sca_pem).unwrap();
    gw.onboard("XA", gateway_double::PartyType::Csca, &sca_der)
        .await
        .unwrap();
    let g = Arc::new(Gateway::from_settings(&s, store.clone(), "XA").unwrap());
    let state =
        ddcc_mediator::server::build_state(cfg, |b| services.install(b).with_service(g.clone()))
            .unwrap();
    // As `serve` does: the gateway's `Date` headers feed the clock-offset metric.
    g.attach_clock(state.metrics.clone());
    let metrics = state.metrics.clone();
    // Admin routes live on the admin listener only; artefacts on the public one.
    let admin = at::init_service(ddcc_mediator::server::build_app_for(
        state.clone(),
        ddcc_mediator::server::Surface::Admin,
        |_| {},
    ))
    .await;
    let app = at::init_service(ddcc_mediator::server::build_app(state, |_| {})).await;

    let resp = at::call_service(
        &admin,
        at::TestRequest::post()
            .uri("/admin/gateway/publish")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let out: Value = at::read_body_json(resp).await;
    let created = out["plan"]["create"].as_u64().unwrap();
    assert!(created > 0, "{out}");
    // The double's replies carry `Date`; both clocks are this machine's.
    let offset = metrics
        .clock
        .get("gateway")
        .expect("gateway clock offset recorded");
    assert!(offset.abs() < 5.0, "offset {offset}");
    let resp = at::call_service(&admin, at::TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(at::read_body(resp).await.to_vec()).unwrap();
    assert!(
        text.contains("ddcc_clock_offset_seconds{source=\"gateway\"}"),
        "{text}"
    );
    assert_eq!(
        out["delivery"]["delivered"].as_u64(),
        Some(created),
        "{out}"
    );
    assert_eq!(out["delivery"]["failed"], serde_json::json!([]));

    let refs = gw.references();
    assert_eq!(refs.len() as u64, created);
    for r in &refs {
        let path = r
            .url
            .strip_prefix(base.trim_end_matches("/fhir"))
            .unwrap_or_else(|| panic!("{} is not under {base}", r.url));
        let resp = at::call_service(&app, at::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(resp.status(), 200, "{path}");
        let body = at::read_body(resp).await;
        assert_eq!(
            trust_network::reference::thumbprint(&body),
            r.thumbprint,
            "{path}: served bytes differ from the published thumbprint"
        );
        assert_eq!(r.country, "XA");
        assert_eq!(r.domain, "DDCC");
    }

    // Publishing again sends nothing.
    let resp = at::call_service(
        &admin,
        at::TestRequest::post()
            .uri("/admin/gateway/publish")
            .to_request(),
    )
    .await;
    let again: Value = at::read_body_json(resp).await;
    assert_eq!(
        again["plan"]["unchanged"].as_u64(),
        Some(created),
        "{again}"
    );
    assert_eq!(again["delivery"]["delivered"], 0);

    let resp = at::call_service(
        &admin,
        at::TestRequest::post()
            .uri("/admin/gateway/upload-dsc")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let up: Value = at::read_body_json(resp).await;
    assert_eq!(up["delivery"]["delivered"], 1, "{up}");
    assert_eq!(gw.signer_certificates()[0].raw_der, identity.dsc_der);

    let resp = at::call_service(
        &admin,
        at::TestRequest::post()
            .uri("/admin/gateway/sync")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sync: Value = at::read_body_json(resp).await;
    assert_eq!(sync["rejected"], serde_json::json!([]), "{sync}");
    assert_eq!(
        store.gateway().unwrap().trusted_dscs().await.unwrap(),
        vec![identity.dsc_der.clone()]
    );

    let resp = at::call_service(
        &admin,
        at::TestRequest::get()
            .uri("/admin/gateway/status")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let status: Value = at::read_body_json(resp).await;
    assert_eq!(status["outbox"]["done"].as_u64(), Some(created + 1));
    assert_eq!(status["trustList"]["DSC"], 1);
    assert!(status["lastFullSync"]["at"].is_string(), "{status}");
}

/// Without `DDCC_GATEWAY_URL` the admin routes say so (503 OperationOutcome).
#[actix_web::test]
async fn admin_routes_without_a_client_answer_503() {
    use actix_web::test as at;
    let cfg = service::config("gw-off");
    let services = ddcc_mediator::services::Services::build_with_env(&cfg, |_| None)
        .await
        .unwrap();
    let state = ddcc_mediator::server::build_state(cfg, |b| services.install(b)).unwrap();
    let admin = at::init_service(ddcc_mediator::server::build_app_for(
        state,
        ddcc_mediator::server::Surface::Admin,
        |_| {},
    ))
    .await;
    let resp = at::call_service(
        &admin,
        at::TestRequest::get()
            .uri("/admin/gateway/status")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 503);
    let body: Value = at::read_body_json(resp).await;
    assert_eq!(body["resourceType"], "OperationOutcome");
}

/// Revocations recorded by `$revokeHealthCertificate`: on a default TNG the upload
/// is hidden (404) and they stay queued; where the gateway enables it they are
/// uploaded, marked published, and come back through the revocation-list sync,
/// verified against the uploader's certificate.
#[tokio::test]
async fn revocations_upload_where_enabled_and_sync_back() {
    let rev = ddcc_store::Revocation::new(
        "XA",
        "URN:UVCI:01:XA:REV1",
        &[5u8; 64],
        ddcc_store::SignatureAlg::Ecdsa,
        "2Rk3X8HntrI=",
        "2024-01-01T00:00:00.000Z",
        "Bundle/1",
    );

    // Default TNG: hidden endpoint.
    let (gw, a, _b) = world().await;
    let dir = tmp("rev-hidden");
    let s = settings(&gw, &dir, &a.tls, &a.up);
    let store = open_store(&dir);
    let g = client(&s, store.clone(), "XA").with_revocations(true);
    store.record_revocation(rev.clone()).await.unwrap();
    assert_eq!(g.queue_revocations().await.unwrap(), 1);
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.retrying.len(), 1, "{d:?}");
    assert!(d.retrying[0].contains("404"), "{d:?}");
    assert_eq!(store.pending_revocations(10).await.unwrap().len(), 1);

    // A gateway with the revocation endpoints on, and the roles granted.
    let gw = GatewayDouble::start(Config {
        revocation_hidden_endpoints: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let keys = ParticipantKeys::generate("XA").unwrap();
    let mut tls = gateway_double::Onboarding::new(
        "XA",
        gateway_double::PartyType::Authentication,
        &keys.tls.cert_der(),
    );
    tls.roles = vec![
        "REVOCATION_UPLOADER".into(),
        "REVOCATION_LIST_READER".into(),
    ];
    gw.onboard_with(tls).await.unwrap();
    gw.onboard("XA", gateway_double::PartyType::Upload, &keys.up.cert_der())
        .await
        .unwrap();
    gw.onboard("XA", gateway_double::PartyType::Csca, &keys.sca.cert_der())
        .await
        .unwrap();
    let dir = tmp("rev-on");
    let s = settings(&gw, &dir, &keys.tls, &keys.up);
    let store = open_store(&dir);
    let g = client(&s, store.clone(), "XA").with_revocations(true);
    store.record_revocation(rev.clone()).await.unwrap();
    g.queue_revocations().await.unwrap();
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.delivered, 1, "{d:?}");
    assert!(store.pending_revocations(10).await.unwrap().is_empty());
    let batches = gw.revocation_batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].payload["hashType"], "SIGNATURE");
    assert_eq!(batches[0].payload["kid"], "2Rk3X8HntrI=");

    let report = g.sync_full().await.unwrap();
    assert_eq!(
        report.revocations["available"], true,
        "{:?}",
        report.revocations
    );
    assert_eq!(report.revocations["hashes"], 1, "{:?}", report.revocations);
    let hashes = store.gateway().unwrap().revoked_hashes().await.unwrap();
    assert_eq!(hashes.len(), 1);
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(ddcc_store::Revocation::truncated(&rev.signature_hash)).unwrap());
    assert_eq!(hashes[0].hash, want);
    assert_eq!(hashes[0].country, "XA");
}

/// `ddcc-mediator gateway …` as an operator runs it: a separate process with the
/// configuration in its environment, against the double.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_publish_status_sync_upload() {
    let (gw, a, b) = world().await;
    let dir = tmp("cli");
    let s = settings(&gw, &dir, &a.tls, &a.up);
    let data = dir.join("data");
    let env: Vec<(String, String)> = vec![
        ("DDCC_GATEWAY_URL".into(), s.url.clone()),
        (
            "DDCC_GATEWAY_TLS_CERT".into(),
            s.tls_cert.clone().unwrap().display().to_string(),
        ),
        (
            "DDCC_GATEWAY_TLS_KEY".into(),
            s.tls_key.clone().unwrap().display().to_string(),
        ),
        (
            "DDCC_GATEWAY_CA".into(),
            s.ca.clone().unwrap().display().to_string(),
        ),
        (
            "DDCC_GATEWAY_UPLOAD_CERT".into(),
            s.upload_cert.clone().unwrap().display().to_string(),
        ),
        (
            "DDCC_GATEWAY_UPLOAD_KEY".into(),
            s.upload_key.clone().unwrap().display().to_string(),
        ),
        (
            "DDCC_GATEWAY_TRUST_ANCHOR".into(),
            s.trust_anchor.clone().unwrap().display().to_string(),
        ),
        (
            "DDCC_TLS_CERT".into(),
            write(&dir, "serving.pem", &a.tls.cert_pem())
                .display()
                .to_string(),
        ),
        ("DDCC_DATA_DIR".into(), data.display().to_string()),
        (
            "DDCC_PROFILES_DIR".into(),
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../fhir-profiles")
                .display()
                .to_string(),
        ),
        ("DDCC_ISSUER_COUNTRY".into(), "XA".into()),
    ];
    let run = |args: &'static [&'static str], env: Vec<(String, String)>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
                .args(args)
                .env_remove("DATABASE_URL")
                .env_remove("VAULT_ADDR")
                .envs(env)
                .output()
                .unwrap();
            let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            (
                out.status.code(),
                stdout,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (code, out, err) = run(&["gateway", "publish"], env.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    let created = out["plan"]["create"].as_u64().unwrap();
    assert!(created > 0);
    assert_eq!(gw.references().len() as u64, created);

    let (code, out, err) = run(&["gateway", "publish"], env.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out["plan"]["unchanged"].as_u64(), Some(created));

    // The development DSC (created on first use in the data dir): its SCA must be
    // onboarded as our CSCA first, or the gateway refuses it and the exit code says so.
    let (code, out, _) = run(&["gateway", "upload-dsc"], env.clone()).await.unwrap();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["delivery"]["failed"].as_array().unwrap().len(), 1);
    let sca = std::fs::read_to_string(data.join("keys/sca-cert.pem")).unwrap();
    gw.onboard(
        "XA",
        gateway_double::PartyType::Csca,
        &ddcc_cert::x509::pem_decode("CERTIFICATE", &sca).unwrap(),
    )
    .await
    .unwrap();
    let (code, out, err) = run(&["gateway", "upload-dsc"], env.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{err} {out}");
    assert_eq!(gw.signer_certificates().len(), 1);

    let (code, out, err) = run(&["gateway", "sync"], env.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out["dscs"], 1, "{out}");

    let (code, out, err) = run(&["gateway", "status"], env.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out["outbox"]["done"].as_u64(), Some(created + 1), "{out}");
    assert_eq!(out["outbox"]["failed"], 1);
    assert_eq!(out["trustList"]["DSC"], 1);

    // XB's TLS certificate with our (XA) configuration: 401 from the gateway, a
    // non-zero exit and the gateway's reason on stderr.
    let mut wrong = env.clone();
    let tls_b = write(&dir, "tls-b.pem", &b.tls.cert_pem());
    let key_b = write(&dir, "tls-b.key", &b.tls.key_pem());
    let stranger = pki::generate(Profile::Tls, "XA").unwrap();
    std::fs::write(&tls_b, stranger.cert_pem()).unwrap();
    std::fs::write(&key_b, stranger.key_pem()).unwrap();
    for (k, v) in wrong.iter_mut() {
        if k == "DDCC_GATEWAY_TLS_CERT" {
            *v = tls_b.display().to_string();
        } else if k == "DDCC_GATEWAY_TLS_KEY" {
            *v = key_b.display().to_string();
        }
    }
    let (code, _, err) = run(&["gateway", "sync"], wrong).await.unwrap();
    assert_ne!(code, Some(0));
    assert!(err.contains("401"), "{err}");
}

/// With `DDCC_GATEWAY_DSC_DOMAIN` the DSC goes through `/trustedCertificate` (JSON
/// wrapping the CMS); the gateway then lists the attached upload CMS as the DSC's
/// signature, which the sync verifies as well.
#[tokio::test]
async fn dsc_through_trusted_certificate_for_a_domain() {
    let (gw, a, _b) = world().await;
    let dir = tmp("trusted-cert");
    let s = settings(&gw, &dir, &a.tls, &a.up);
    let store = open_store(&dir);
    let g = client(&s, store.clone(), "XA").with_dsc_domain(Some("IPS-PILGRIMAGE".into()));
    let dsc = pki::dsc(&a.sca, "XA", "XA DSC").unwrap();
    g.queue_dsc(&dsc.cert_der()).await.unwrap();
    let d = g.deliver_due().await.unwrap();
    assert_eq!(d.delivered, 1, "{d:?}");
    assert_eq!(gw.requests_to("POST", "/trustedCertificate").len(), 1);
    let stored = gw.signer_certificates();
    assert_eq!(stored[0].domain, "IPS-PILGRIMAGE");
    let r = g.sync_full().await.unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!(
        store.gateway().unwrap().trusted_dscs().await.unwrap(),
        vec![dsc.cert_der()]
    );
}

/// What `serve` runs: the outbox worker and the sync loop (full first, then deltas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_worker_delivers_and_syncs() {
    let (gw, a, _b) = world().await;
    let dir = tmp("background");
    let mut s = settings(&gw, &dir, &a.tls, &a.up);
    s.deliver_interval = Duration::from_millis(20);
    s.sync_interval = Duration::from_millis(50);
    let store = open_store(&dir);
    let g = Arc::new(client(&s, store.clone(), "XA"));
    let dsc = pki::dsc(&a.sca, "XA", "XA DSC").unwrap();
    g.queue_dsc(&dsc.cert_der()).await.unwrap();
    ddcc_mediator::gateway::spawn_background(g.clone(), s);
    let mut synced = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let dscs = store.gateway().unwrap().trusted_dscs().await.unwrap();
        let status = g.status().await.unwrap();
        if dscs == vec![dsc.cert_der()] && status["lastSync"]["report"]["full"] == false {
            synced = true;
            break;
        }
    }
    assert!(synced, "{}", g.status().await.unwrap());
    assert_eq!(gw.signer_certificates().len(), 1);
    let status = g.status().await.unwrap();
    assert_eq!(status["outbox"]["done"], 1);
    assert_eq!(status["lastFullSync"]["report"]["full"], true);
}
