//! The WHO Trust Network Gateway client (contract: `shared/contracts/gateway.md`):
//! publishing trusted references to our served artefacts, uploading our DSC and
//! revocations, and downloading the trust lists (verified before anything is stored).
//!
//! Every upload goes through the persistent outbox in the store (`GatewayStore`):
//! the row is written first, a worker delivers it with exponential backoff, and only
//! a definite answer ends it, so uploads survive gateway outages and restarts.
//! The CMS envelope is signed at delivery time (signing-time inside the UP
//! certificate's validity, the current key).
//!
//! Retry rules: GETs and DELETEs are repeated freely; a POST is repeated when nothing
//! reached the gateway, and otherwise only after re-reading the state it would change
//! (a reference POST whose answer was lost re-reads the reference list first, so it
//! turns into "already there" or an update, never a duplicate).

pub mod edge;
pub mod ops;
pub mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ddcc_cert::Signer;
use ddcc_store::gateway::{DONE, FAILED};
use ddcc_store::{GatewayStore, OutboxItem, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trust_network::reference::{plan, Publisher, ServedArtefact, TrustedReference};

pub use edge::{EdgeError, EdgeRequest, EdgeResponse, HttpEdge, Method, ReqwestEdge};

/// Outbox kinds.
pub const KIND_REFERENCE: &str = "reference";
pub const KIND_REFERENCE_DELETE: &str = "reference-delete";
pub const KIND_DSC: &str = "dsc";
pub const KIND_REVOCATION: &str = "revocation";

const CMS: &str = "application/cms";
const CMS_TEXT: &str = "application/cms-text";
const JSON: &str = "application/json";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway client configuration: {0}")]
    Config(String),
    #[error("the store does not keep gateway state (outbox, trust list)")]
    NoStore,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// The gateway answered with an error status.
    #[error("gateway answered {status} to {what}: {problem}")]
    Status {
        what: String,
        status: u16,
        problem: String,
    },
    #[error("unexpected answer from the gateway to {what}: {message}")]
    Protocol { what: String, message: String },
    #[error("cannot sign the upload: {0}")]
    Sign(String),
    #[error("trusted reference: {0}")]
    Reference(#[from] trust_network::reference::ReferenceError),
    #[error("no upload certificate configured (DDCC_GATEWAY_UPLOAD_CERT and DDCC_GATEWAY_UPLOAD_KEY or DDCC_GATEWAY_UPLOAD_VAULT_KEY)")]
    NoUploadIdentity,
    #[error("no trust anchor configured (DDCC_GATEWAY_TRUST_ANCHOR)")]
    NoTrustAnchor,
}

impl GatewayError {
    /// Worth trying again later (outage, overload), as opposed to a refusal that
    /// needs an operator (wrong certificate, not onboarded).
    pub fn is_transient(&self) -> bool {
        match self {
            GatewayError::Edge(_) => true,
            GatewayError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The error body of contract §10, as far as it parses.
fn problem(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut s = format!("{} {}", field("code"), field("problem"));
            let details = field("details");
            if !details.is_empty() {
                s.push_str(": ");
                s.push_str(&details);
            }
            s.trim().to_string()
        }
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

/// Exponential backoff between delivery attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `attempts + 1`, with up to 20 % jitter so instances that
    /// failed together do not retry together.
    pub fn delay(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(0, 30) as u32;
        let d = self
            .base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max);
        d + d.mul_f64(fastrand::f64() * 0.2)
    }
}

/// Where the TNP UP key lives and its certificate.
#[derive(Clone)]
pub struct UploadIdentity {
    pub cert_der: Vec<u8>,
    pub signer: Arc<dyn Signer>,
}

/// Settings read from the environment (see README, "Trust network gateway").
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub url: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub upload_cert: Option<PathBuf>,
    pub upload_key: Option<PathBuf>,
    pub upload_vault_key: Option<String>,
    /// Vault for the UP key (the `VAULT_*` settings, key = `upload_vault_key`).
    pub upload_vault: Option<vault_transit::VaultConfig>,
    pub trust_anchor: Option<PathBuf>,
    pub timeout: Duration,
    pub backoff: Backoff,
    /// Outbox worker wake-up interval.
    pub deliver_interval: Duration,
    /// Trust-list delta sync (DSCs) interval; a full sync runs every `full_sync_interval`.
    pub sync_interval: Duration,
    pub full_sync_interval: Duration,
    /// Upload revocations (`POST /revocation-list`, a hidden endpoint on TNG).
    pub revocations: bool,
    /// `/trustedCertificate` domain for our DSC; `None` uploads through
    /// `/signerCertificate` (domain DCC).
    pub dsc_domain: Option<String>,
}

impl GatewaySettings {
    /// `None` when `DDCC_GATEWAY_URL` is unset: the gateway client is off.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, GatewayError> {
        let get = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(url) = get("DDCC_GATEWAY_URL") else {
            return Ok(None);
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(GatewayError::Config(format!(
                "DDCC_GATEWAY_URL must be an http(s) URL, got {url:?}"
            )));
        }
        let dur = |k: &str, default: Duration| -> Result<Duration, GatewayError> {
            match get(k) {
                None => Ok(default),
                Some(v) => humantime::parse_duration(&v)
                    .map_err(|e| GatewayError::Config(format!("{k}={v:?}: {e}"))),
            }
        };
        let path = |k: &str| get(k).map(PathBuf::from);
        let upload_vault_key = get("DDCC_GATEWAY_UPLOAD_VAULT_KEY");
        let upload_vault = match &upload_vault_key {
            Some(name) => {
                let mut cfg = vault_transit::VaultConfig::from_lookup(get)
                    .map_err(|e| GatewayError::Config(format!("Vault for the UP key: {e}")))?;
                cfg.key_name = name.clone();
                // The UP certificate certifies one key version; a rotation needs a new
                // certificate onboarded anyway, so sign with the latest.
                cfg.key_version = None;
                Some(cfg)
            }
            None => None,
        };
        Ok(Some(Self {
            url,
            tls_cert: path("DDCC_GATEWAY_TLS_CERT"),
            tls_key: path("DDCC_GATEWAY_TLS_KEY"),
            ca: path("DDCC_GATEWAY_CA"),
            upload_cert: path("DDCC_GATEWAY_UPLOAD_CERT"),
            upload_key: path("DDCC_GATEWAY_UPLOAD_KEY"),
            upload_vault_key,
            upload_vault,
            trust_anchor: path("DDCC_GATEWAY_TRUST_ANCHOR"),
            timeout: dur("DDCC_GATEWAY_TIMEOUT", Duration::from_secs(30))?,
            backoff: Backoff {
                base: dur("DDCC_GATEWAY_RETRY_BASE", Duration::from_secs(5))?,
                max: dur("DDCC_GATEWAY_RETRY_MAX", Duration::from_secs(3600))?,
            },
            deliver_interval: dur("DDCC_GATEWAY_DELIVER_INTERVAL", Duration::from_secs(10))?,
            sync_interval: dur("DDCC_GATEWAY_SYNC_INTERVAL", Duration::from_secs(3600))?,
            full_sync_interval: dur(
                "DDCC_GATEWAY_FULL_SYNC_INTERVAL",
                Duration::from_secs(24 * 3600),
            )?,
            revocations: matches!(
                get("DDCC_GATEWAY_REVOCATIONS").as_deref(),
                Some("1" | "true" | "yes" | "on")
            ),
            dsc_domain: get("DDCC_GATEWAY_DSC_DOMAIN"),
        }))
    }

    pub fn edge(&self) -> Result<ReqwestEdge, GatewayError> {
        ReqwestEdge::new(
            &self.url,
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.ca.as_deref(),
            self.timeout,
        )
        .map_err(|e| GatewayError::Config(e.to_string()))
    }

    /// The TNP UP identity: a PKCS#8 PEM key file, or a Vault transit key.
    pub fn upload_identity(&self) -> Result<Option<UploadIdentity>, GatewayError> {
        let Some(cert) = &self.upload_cert else {
            return Ok(None);
        };
        let cert_der = read_pem(cert, "CERTIFICATE")?;
        let signer: Arc<dyn Signer> = match (&self.upload_key, &self.upload_vault) {
            (Some(key), _) => {
                let pkcs8 = read_pem(key, "PRIVATE KEY")?;
                Arc::new(
                    ddcc_cert::local::LocalSigner::from_pkcs8(&pkcs8)
                        .map_err(|e| GatewayError::Config(format!("{}: {e}", key.display())))?,
                )
            }
            (None, Some(cfg)) => Arc::new(
                vault_transit::VaultTransitSigner::new(cfg.clone())
                    .map_err(|e| GatewayError::Config(format!("Vault: {e}")))?,
            ),
            (None, None) => return Err(GatewayError::NoUploadIdentity),
        };
        Ok(Some(UploadIdentity { cert_der, signer }))
    }

    pub fn trust_anchor_der(&self) -> Result<Option<Vec<u8>>, GatewayError> {
        self.trust_anchor
            .as_ref()
            .map(|p| read_pem(p, "CERTIFICATE"))
            .transpose()
    }
}

fn read_pem(path: &std::path::Path, label: &str) -> Result<Vec<u8>, GatewayError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))?;
    ddcc_cert::x509::pem_decode(label, &text)
        .map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))
}

/// What `publish` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PublishSummary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

/// What one outbox pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliverySummary {
    pub delivered: usize,
    pub failed: Vec<String>,
    pub retrying: Vec<String>,
}

/// The client. Cheap to share (`Arc`).
pub struct Gateway {
    edge: Arc<dyn HttpEdge>,
    store: Arc<dyn Store>,
    upload: Option<UploadIdentity>,
    trust_anchor: Option<Vec<u8>>,
    /// Our country: the `C` of our TLS and UP certificates.
    country: String,
    backoff: Backoff,
    revocations: bool,
    dsc_domain: Option<String>,
}

/// How a delivery attempt ended.
enum Outcome {
    Done,
    /// Refused for good: needs an operator.
    Failed(String),
    /// Try again after the backoff (or `at` a given delay).
    Retry(String, Option<Duration>),
}

fn now_ms() -> i64 {
    ddcc_store::time::now_ms()
}

impl Gateway {
    pub fn new(
        edge: Arc<dyn HttpEdge>,
        store: Arc<dyn Store>,
        upload: Option<UploadIdentity>,
        trust_anchor: Option<Vec<u8>>,
        country: &str,
        backoff: Backoff,
    ) -> Result<Self, GatewayError> {
        if store.gateway().is_none() {
            return Err(GatewayError::NoStore);
        }
        Ok(Self {
            edge,
            store,
            upload,
            trust_anchor,
            country: country.to_string(),
            backoff,
            revocations: false,
            dsc_domain: None,
        })
    }

    pub fn from_settings(
        s: &GatewaySettings,
        store: Arc<dyn Store>,
        country: &str,
    ) -> Result<Self, GatewayError> {
        let mut g = Self::new(
            Arc::new(s.edge()?),
            store,
            s.upload_identity()?,
            s.trust_anchor_der()?,
            country,
            s.backoff,
        )?;
        g.revocations = s.revocations;
        g.dsc_domain = s.dsc_domain.clone();
        Ok(g)
    }

    pub fn with_revocations(mut self, on: bool) -> Self {
        self.revocations = on;
        self
    }

    pub fn with_dsc_domain(mut self, domain: Option<String>) -> Self {
        self.dsc_domain = domain;
        self
    }

    fn gw(&self) -> Result<&dyn GatewayStore, GatewayError> {
        self.store.gateway().ok_or(GatewayError::NoStore)
    }

    pub fn country(&self) -> &str {
        &self.country
    }

    /// Sends a GET (repeated a few times on transport faults and 5xx: a GET changes
    /// nothing) and returns the body of a 200.
    async fn get(&self, path: &str) -> Result<Vec<u8>, GatewayError> {
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            let r = self
                .edge
                .send(EdgeRequest {
                    method: Method::Get,
                    path: path.to_string(),
                    content_type: None,
                    headers: Vec::new(),
                    body: Vec::new(),
                })
                .await;
            let e = match r {
                Ok(resp) if resp.status == 200 => return Ok(resp.body),
                Ok(resp) if resp.status == 204 => return Ok(b"[]".to_vec()),
                Ok(resp) => GatewayError::Status {
                    what: format!("GET {path}"),
                    status: resp.status,
                    problem: problem(&resp.body),
                },
                Err(e) => GatewayError::Edge(e),
            };
            if !e.is_transient() {
                return Err(e);
            }
            last = Some(e);
        }
        Err(last.unwrap_or_else(|| GatewayError::Protocol {
            what: format!("GET {path}"),
            message: "no attempt made".into(),
        }))
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, GatewayError> {
        let body = self.get(path).await?;
        serde_json::from_slice(&body).map_err(|e| GatewayError::Protocol {
            what: format!("GET {path}"),
            message: e.to_string(),
        })
    }

    /// The whole reference list. Downloaded unfiltered: the gateway swaps its
    /// `country` and `domain` filters (contract §5.4), so `plan` filters locally.
    pub async fn list_references(&self) -> Result<Vec<TrustedReference>, GatewayError> {
        self.get_json("/trustList/references").await
    }

    /// Signs `payload` with the UP key as the single-line base64 CMS of contract §4.
    pub async fn sign(&self, payload: &[u8]) -> Result<String, GatewayError> {
        let up = self.upload.as_ref().ok_or(GatewayError::NoUploadIdentity)?;
        let now = u64::try_from(crate::now_unix()).unwrap_or(0);
        let der = trust_network::cms_sign::sign_attached(
            payload,
            &up.cert_der,
            up.signer.as_ref(),
            Some(now),
        )
        .await
        .map_err(|e| GatewayError::Sign(e.to_string()))?;
        Ok(trust_network::cms_sign::to_body(&der))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<EdgeResponse, EdgeError> {
        self.edge
            .send(EdgeRequest {
                method,
                path: path.to_string(),
                content_type: Some(content_type),
                headers: Vec::new(),
                body,
            })
            .await
    }

    // ---- publish ------------------------------------------------------------

    /// Queues what brings the gateway's list in line with `artefacts`: creates,
    /// updates (the changed ones only) and deletes. Delivery is the outbox's.
    pub async fn publish(
        &self,
        artefacts: &[ServedArtefact],
        publisher: &Publisher,
        owned_url_prefix: &str,
    ) -> Result<PublishSummary, GatewayError> {
        let desired = artefacts
            .iter()
            .map(|a| trust_network::reference::reference_for(a, publisher))
            .collect::<Result<Vec<_>, _>>()?;
        let published = self.list_references().await?;
        let p = plan(&desired, &published, publisher, owned_url_prefix);
        let gw = self.gw()?;
        let now = now_ms();
        for r in p.create.iter().chain(p.update.iter()) {
            let mut want = r.clone();
            // The uuid is looked up again at delivery: the list may change meanwhile.
            want.uuid = None;
            let payload = json!({ "reference": want, "prefix": owned_url_prefix });
            gw.outbox_enqueue(KIND_REFERENCE, &format!("ref:{}", r.url), &payload, now)
                .await?;
        }
        for uuid in &p.delete {
            gw.outbox_enqueue(
                KIND_REFERENCE_DELETE,
                &format!("refdel:{uuid}"),
                &json!({ "uuid": uuid }),
                now,
            )
            .await?;
        }
        gw.set_gateway_state(
            "published_references",
            &serde_json::to_string(&desired).unwrap_or_default(),
        )
        .await?;
        Ok(PublishSummary {
            create: p.create.len(),
            update: p.update.len(),
            delete: p.delete.len(),
            unchanged: p.unchanged,
        })
    }

    async fn deliver_reference(&self, item: &OutboxItem) -> Result<Outcome, GatewayError> {
        let mut want: TrustedReference = serde_json::from_value(item.payload["reference"].clone())
            .map_err(|e| GatewayError::Protocol {
                what: "outbox row".into(),
                message: e.to_string(),
            })?;
        let prefix = item.payload["prefix"].as_str().unwrap_or("");
        // Re-read before every POST: after a lost answer the record may exist already.
        let listed = self.list_references().await?;
        let publisher = Publisher {
            country: want.country.clone(),
            domain: want.domain.clone().unwrap_or_else(|| "DDCC".into()),
            ssl_public_key: want.ssl_public_key.clone(),
        };
        let p = plan(std::slice::from_ref(&want), &listed, &publisher, prefix);
        if let Some(update) = p.update.first() {
            want.uuid = update.uuid.clone();
        } else if p.create.is_empty() {
            return Ok(Outcome::Done);
        }
        let body = serde_json::to_vec(&want).map_err(|e| GatewayError::Protocol {
            what: "reference".into(),
            message: e.to_string(),
        })?;
        let cms = self.sign(&body).await?;
        let resp = self
            .send(Method::Post, "/trust/reference", CMS_TEXT, cms.into_bytes())
            .await;
        Ok(match resp {
            Ok(r) if r.status == 201 || r.status == 200 => Outcome::Done,
            // The uuid vanished between listing and updating: list again next time.
            Ok(r) if r.status == 404 => {
                Outcome::Retry(format!("404 on update: {}", problem(&r.body)), None)
            }
            Ok(r) => status_outcome("POST /trust/reference", r),
            Err(e) => Outcome::Retry(e.to_string(), None),
        })
    }

    async fn deliver_reference_delete(&self, item: &OutboxItem) -> Result<Outcome, GatewayError> {
        let uuid = item.payload["uuid"].as_str().unwrap_or_default();
        let body = serde_json::to_vec(&json!({ "uuid": uuid })).unwrap_or_default();
        let cms = self.sign(&body).await?;
        let resp = self
            .send(
                Method::Delete,
                "/trust/reference",
                CMS_TEXT,
                cms.into_bytes(),
            )
            .await;
        Ok(match resp {
            // 404: already gone (a repeated DELETE after a lost answer).
            Ok(r) if r.status == 204 || r.status == 200 || r.status == 404 => Outcome::Done,
            Ok(r) => status_outcome("DELETE /trust/reference", r),
            Err(e) => Outcome::Retry(e.to_string(), None),
        })
    }

    // ---- DSC ----------------------------------------------------------------

    /// Queues the upload of our DSC.
    pub async fn queue_dsc(&self, dsc_der: &[u8]) -> Result<i64, GatewayError> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(dsc_der);
        let payload = json!({ "der": b64, "domain": self.dsc_domain });
        Ok(self
            .gw()?
            .outbox_enqueue(
                KIND_DSC,
                &format!("dsc:{}", trust_network::reference::thumbprint(dsc_der)),
                &payload,
                now_ms(),
            )
            .await?)
    }

    async fn deliver_dsc(&self, item: &OutboxItem) -> Result<Outcome, GatewayError> {
        let b64 = item.payload["der"].as_str().unwrap_or_default().to_string();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .map_err(|e| GatewayError::Protocol {
                what: "outbox row".into(),
                message: e.to_string(),
            })?;
        let cms = self.sign(&der).await?;
        let (what, resp) = match item.payload["domain"].as_str() {
            Some(domain) => {
                let body =
                    json!({ "cms": cms, "domain": domain, "group": "DSC", "properties": {} });
                (
                    "POST /trustedCertificate",
                    self.send(
                        Method::Post,
                        "/trustedCertificate",
                        JSON,
                        body.to_string().into_bytes(),
                    )
                    .await,
                )
            }
            None => (
                "POST /signerCertificate",
                self.send(Method::Post, "/signerCertificate", CMS, cms.into_bytes())
                    .await,
            ),
        };
        match resp {
            Ok(r) if r.status == 201 || r.status == 200 => Ok(Outcome::Done),
            Ok(r) if r.status == 409 => {
                // Already there: make sure it is our certificate under our country.
                let rows: Vec<trust_network::trustlist::CertificateRow> = self
                    .get_json(&format!(
                        "/trustList/certificate?group=DSC&country={}",
                        self.country
                    ))
                    .await?;
                if rows
                    .iter()
                    .any(|r| r.certificate == b64 && r.country == self.country)
                {
                    Ok(Outcome::Done)
                } else {
                    Ok(Outcome::Failed(format!(
                        "409 from {what}, but the gateway lists no DSC of {} equal to ours",
                        self.country
                    )))
                }
            }
            Ok(r) => Ok(status_outcome(what, r)),
            Err(e) => Ok(Outcome::Retry(e.to_string(), None)),
        }
    }

    // ---- revocations --------------------------------------------------------

    /// Queues the revocations recorded by `$revokeHealthCertificate` that are not
    /// queued yet, one batch per kid (hash type SIGNATURE, contract §7).
    pub async fn queue_revocations(&self) -> Result<usize, GatewayError> {
        if !self.revocations {
            return Ok(0);
        }
        let gw = self.gw()?;
        let queued_upto: i64 = gw
            .gateway_state("revocations_queued_upto")
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Unpublished revocations stay unpublished while the gateway refuses them
        // (404 on TNG), so read past the ones already queued rather than the oldest
        // few: the store caps one read at 100 000.
        let pending: Vec<_> = self
            .store
            .pending_revocations(100_000)
            .await?
            .into_iter()
            .filter(|p| p.seq > queued_upto)
            .collect();
        let Some(max_seq) = pending.iter().map(|p| p.seq).max() else {
            return Ok(0);
        };
        let mut by_kid: std::collections::BTreeMap<String, Vec<&ddcc_store::PendingRevocation>> =
            Default::default();
        for p in &pending {
            by_kid.entry(p.revocation.kid.clone()).or_default().push(p);
        }
        // A batch may be dropped by the gateway once it expires: DSCs live at most
        // two years (contract §2), so nothing they signed is valid after that.
        let expires = ddcc_cert::rfc3339_utc(crate::now_unix() + 2 * 366 * 24 * 3600);
        let now = now_ms();
        // The gateway takes 1..1000 entries per batch (contract §7).
        let mut chunks: Vec<(String, Vec<&ddcc_store::PendingRevocation>)> = Vec::new();
        for (kid, items) in &by_kid {
            for c in items.chunks(1000) {
                chunks.push((kid.clone(), c.to_vec()));
            }
        }
        for (kid, items) in &chunks {
            let entries: Vec<Value> = items
                .iter()
                .filter_map(|p| {
                    let h = ddcc_store::Revocation::truncated(&p.revocation.signature_hash);
                    hex::decode(h).ok().map(
                        |b| json!({"hash": base64::engine::general_purpose::STANDARD.encode(b)}),
                    )
                })
                .collect();
            let seqs: Vec<i64> = items.iter().map(|p| p.seq).collect();
            let batch = json!({
                "country": self.country,
                "expires": expires,
                "kid": kid,
                "hashType": "SIGNATURE",
                "entries": entries,
            });
            let first = seqs.first().copied().unwrap_or_default();
            gw.outbox_enqueue(
                KIND_REVOCATION,
                &format!("rev:{kid}:{first}"),
                &json!({ "batch": batch, "seqs": seqs }),
                now,
            )
            .await?;
        }
        gw.set_gateway_state("revocations_queued_upto", &max_seq.to_string())
            .await?;
        Ok(pending.len())
    }

    async fn deliver_revocation(&self, item: &OutboxItem) -> Result<Outcome, GatewayError> {
        let body = serde_json::to_vec(&item.payload["batch"]).unwrap_or_default();
        let cms = self.sign(&body).await?;
        match self
            .send(Method::Post, "/revocation-list", CMS_TEXT, cms.into_bytes())
            .await
        {
            Ok(r) if r.status == 201 || r.status == 200 => {
                let seqs: Vec<i64> =
                    serde_json::from_value(item.payload["seqs"].clone()).unwrap_or_default();
                let at = ddcc_store::time::format_instant(now_ms());
                self.store.mark_published(&seqs, &at).await?;
                Ok(Outcome::Done)
            }
            // TNG hides the revocation upload (contract §7): keep the batch for a
            // gateway that enables it, and ask again rarely.
            Ok(r) if r.status == 404 => {
                tracing::warn!("the gateway does not accept revocation uploads (404); kept queued");
                Ok(Outcome::Retry(
                    "404: revocation upload not supported by this gateway".into(),
                    Some(self.backoff.max),
                ))
            }
            Ok(r) => Ok(status_outcome("POST /revocation-list", r)),
            Err(e) => Ok(Outcome::Retry(e.to_string(), None)),
        }
    }

    // ---- outbox worker --------------------------------------------------------

    /// One pass: delivers every due row once.
    pub async fn deliver_due(&self) -> Result<DeliverySummary, GatewayError> {
        let gw = self.gw()?;
        // The lease outlasts one delivery with all its timeouts; a crashed worker's
        // rows come back when it ends.
        let lease = 10 * 60 * 1000;
        let items = gw.outbox_lease(now_ms(), lease, 100).await?;
        let mut summary = DeliverySummary::default();
        for item in items {
            let label = format!("#{} {} {}", item.id, item.kind, item.dedup);
            let outcome = match item.kind.as_str() {
                KIND_REFERENCE => self.deliver_reference(&item).await,
                KIND_REFERENCE_DELETE => self.deliver_reference_delete(&item).await,
                KIND_DSC => self.deliver_dsc(&item).await,
                KIND_REVOCATION => self.deliver_revocation(&item).await,
                other => Ok(Outcome::Failed(format!("unknown outbox kind {other}"))),
            };
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) if e.is_transient() => Outcome::Retry(e.to_string(), None),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            let now = now_ms();
            match outcome {
                Outcome::Done => {
                    gw.outbox_finish(item.id, DONE, None, now).await?;
                    tracing::info!(item = %label, "delivered to the gateway");
                    summary.delivered += 1;
                }
                Outcome::Failed(why) => {
                    gw.outbox_finish(item.id, FAILED, Some(&why), now).await?;
                    tracing::error!(item = %label, reason = %why, "refused by the gateway");
                    summary.failed.push(format!("{label}: {why}"));
                }
                Outcome::Retry(why, at) => {
                    let delay = at.unwrap_or_else(|| self.backoff.delay(item.attempts));
                    let next = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4);
                    gw.outbox_retry(item.id, next, &why, now).await?;
                    tracing::warn!(item = %label, reason = %why, retry_in_ms = delay.as_millis() as u64, "gateway delivery postponed");
                    summary.retrying.push(format!("{label}: {why}"));
                }
            }
        }
        Ok(summary)
    }

    /// The status report: outbox rows, sync times, published references.
    pub async fn status(&self) -> Result<Value, GatewayError> {
        let gw = self.gw()?;
        let rows = gw.outbox_list(None, 200).await?;
        let mut counts = std::collections::HashMap::new();
        for state in [ddcc_store::gateway::PENDING, DONE, FAILED] {
            counts.insert(state, gw.outbox_list(Some(state), 100_000).await?.len());
        }
        let count = |s: &str| counts.get(s).copied().unwrap_or(0);
        let state = |k: &'static str| async move {
            gw.gateway_state(k)
                .await
                .map(|v| v.and_then(|s| serde_json::from_str::<Value>(&s).ok()))
        };
        let trust = gw.trust_list(None).await?;
        let mut groups = serde_json::Map::new();
        for e in &trust {
            let n = groups.entry(e.group.clone()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
        Ok(json!({
            "country": self.country,
            "outbox": {
                "pending": count(ddcc_store::gateway::PENDING),
                "done": count(DONE),
                "failed": count(FAILED),
                "rows": rows.iter().map(|r| json!({
                    "id": r.id, "kind": r.kind, "key": r.dedup, "state": r.state,
                    "attempts": r.attempts, "nextAttemptMs": r.next_ms,
                    "lastError": r.last_error,
                })).collect::<Vec<_>>(),
            },
            "lastSync": state("last_sync").await?,
            "lastFullSync": state("last_full_sync").await?,
            "trustList": groups,
            "publishedReferences": state("published_references").await?,
        }))
    }
}

fn status_outcome(what: &str, r: EdgeResponse) -> Outcome {
    let text = format!("{what}: {} {}", r.status, problem(&r.body));
    if r.status >= 500 || r.status == 429 {
        Outcome::Retry(text, None)
    } else {
        Outcome::Failed(text)
    }
}

/// For `serve`: the client from the environment with its background tasks running,
/// or `None` when `DDCC_GATEWAY_URL` is unset.
impl Gateway {
    /// Records the gateway's clock offset in `metrics` (`ddcc_clock_offset_seconds`).
    pub fn attach_clock(&self, metrics: Arc<crate::metrics::Metrics>) {
        self.edge.attach_clock(metrics);
    }
}

pub fn start(
    config: &crate::Config,
    store: Arc<dyn Store>,
) -> Result<Option<Arc<Gateway>>, GatewayError> {
    let Some(settings) = GatewaySettings::from_env(|k| std::env::var(k).ok())? else {
        return Ok(None);
    };
    let g = Arc::new(Gateway::from_settings(
        &settings,
        store,
        &config.ddcc.issuer_country,
    )?);
    tracing::info!(url = %settings.url, mtls = settings.tls_cert.is_some(), "trust network gateway client on");
    spawn_background(g.clone(), settings);
    Ok(Some(g))
}

/// Runs the outbox worker and the trust-list sync until the process ends.
pub fn spawn_background(gateway: Arc<Gateway>, settings: GatewaySettings) {
    let g = gateway.clone();
    let every = settings.deliver_interval;
    tokio::spawn(async move {
        loop {
            // Delivered rows are kept 30 days for `status`, then dropped.
            let month_ago = now_ms() - 30 * 24 * 3600 * 1000;
            if let Ok(gw) = g.gw() {
                if let Err(e) = gw.outbox_prune(month_ago).await {
                    tracing::warn!(error = %e, "pruning the gateway outbox");
                }
            }
            if let Err(e) = g.queue_revocations().await {
                tracing::warn!(error = %e, "queueing revocations for the gateway");
            }
            if let Err(e) = g.deliver_due().await {
                tracing::warn!(error = %e, "gateway outbox pass");
            }
            tokio::time::sleep(every).await;
        }
    });
    if gateway.trust_anchor.is_some() {
        tokio::spawn(async move {
            loop {
                let full = sync::full_sync_due(&gateway, settings.full_sync_interval)
                    .await
                    .unwrap_or(true);
                let r = if full {
                    gateway.sync_full().await
                } else {
                    gateway.sync_delta().await
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, full, "trust list sync");
                }
                tokio::time::sleep(settings.sync_interval).await;
            }
        });
    }
}

#[cfg(test)]
mod tests;
