//! A test double of the WHO Trust Network Gateway (TNG) as a Trusted Party sees
//! it. Every rule comes from `shared/contracts/gateway.md` (sections cited as §n in
//! comments), not from the mediator's gateway client: it exists to test that
//! client.
//!
//! - real TLS with client certificates (rustls), identity = SHA-256 thumbprint and
//!   subject `C` of the client certificate, or the proxy headers of §3;
//! - onboarding rows signed (detached CMS) by a trust anchor generated at start
//!   and re-verified on every lookup (§2);
//! - CMS uploads parsed and verified with the `openssl` command (§4);
//! - trusted references, DSC/trusted certificates, trust lists, trusted issuers,
//!   revocation batches with the documented statuses, error bodies and quirks.
//!
//! Start it inside a tokio runtime (`#[tokio::test]` or `#[actix_web::test]`).

pub mod handlers;
pub mod model;
pub mod openssl;
pub mod participant;
pub mod pki;
pub mod server;
pub mod spec;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use model::{
    PartyType, RecordedRequest, RevocationBatch, SignerCertificate, State, TrustedIssuer,
    TrustedParty, TrustedReference,
};
pub use pki::{Credentials, ParticipantKeys};

#[derive(Debug, thiserror::Error)]
pub enum DoubleError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Openssl(#[from] openssl::OpensslError),
    #[error("not a DER X.509 certificate")]
    BadCertificate,
}

/// Whether the `openssl` command (OpenSSL 3, for `cms -certsout`) can run. When
/// it cannot: with `DDCC_REQUIRE_ORACLES` set this panics (CI must not skip),
/// otherwise it prints a SKIP line and returns `false` so a test can return.
/// `tests/tools/setup-openssl.sh` installs it.
pub fn openssl_ready() -> bool {
    let version = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match version {
        Some(v) if v.starts_with("OpenSSL 3") => true,
        other => {
            let why = match other {
                Some(v) => format!("{v} found, OpenSSL 3 needed"),
                None => "the openssl command is missing".to_string(),
            };
            if std::env::var_os("DDCC_REQUIRE_ORACLES").is_some() {
                panic!("gateway double: {why} (run tests/tools/setup-openssl.sh)");
            }
            eprintln!("SKIP: gateway double: {why} (run tests/tools/setup-openssl.sh)");
            false
        }
    }
}

/// Settings a real gateway has in its configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Domains accepted by `/trustedCertificate` (§6.2).
    pub domains: Vec<String>,
    /// `dgc.revocation.hidden.endpoints` (§7): off on TNG, so revocation upload,
    /// delete and single-batch download answer 404.
    pub revocation_hidden_endpoints: bool,
    /// Width of the `trusted_reference.domain` column (§5.1): 32 today, 10 in the
    /// 2023 gateway the legacy suite was written against.
    pub reference_domain_max_len: usize,
    /// Honour the proxy headers of §3 when no client certificate was presented
    /// (the gateway trusts whatever headers reach it).
    pub trust_proxy_headers: bool,
    pub header_sha256: String,
    pub header_dn: String,
    pub header_cert: String,
    /// §5.1 quirk: the real gateway lets any onboarded country overwrite a record
    /// whose uuid it knows; the contract asks a double to refuse (403).
    pub refuse_cross_country_update: bool,
    /// Fixed port (0 = a free one). `restart` reuses the port either way.
    pub port: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domains: ["DCC", "IPS-PILGRIMAGE", "DICVP", "PH4H"]
                .map(String::from)
                .to_vec(),
            revocation_hidden_endpoints: false,
            reference_domain_max_len: 32,
            trust_proxy_headers: true,
            header_sha256: "X-SSL-Client-SHA256".into(),
            header_dn: "X-SSL-Client-DN".into(),
            header_cert: "X-SSL-Client-Cert".into(),
            refuse_cross_country_update: true,
            port: 0,
        }
    }
}

impl Config {
    /// The gateway the legacy Gauge suite was written against (2023): the
    /// reference `domain` column held 10 characters, so the scenario "Invalid
    /// domain in reference is rejected" (`DoesntExist`, 11) got an error (§5.1).
    pub fn legacy_suite() -> Self {
        Self {
            reference_domain_max_len: 10,
            ..Self::default()
        }
    }
}

/// What request handlers share.
pub struct Inner {
    pub config: Config,
    pub state: Mutex<State>,
    pub ta_cert_pem: String,
    ta_key_pem: String,
    /// Identifies this gateway as `sourceGateway` in a peer's federated copies.
    pub gateway_id: String,
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signs `content` as the trust anchor (detached CMS, base64), as the operator
    /// does for every onboarding row and trusted issuer (§2, §8).
    pub async fn ta_sign(&self, content: &[u8]) -> Result<String, openssl::OpensslError> {
        let der = openssl::sign(
            content,
            &self.ta_cert_pem,
            &self.ta_key_pem,
            &openssl::SignOptions {
                detached: true,
                ..Default::default()
            },
        )
        .await?;
        Ok(model::b64(&der))
    }

    /// Whether `signature` (base64 detached CMS) over `content` verifies with the
    /// trust anchor as signer. Cached per (content, signature).
    pub async fn ta_signature_valid(&self, content: &[u8], signature: &str) -> bool {
        let key = model::sha256_hex(&[content, b"\0", signature.as_bytes()].concat());
        if let Some(v) = self.lock().ta_checks.get(&key) {
            return *v;
        }
        use base64::Engine;
        let ok = match base64::engine::general_purpose::STANDARD.decode(signature) {
            Ok(der) => openssl::verify_detached_by(&der, content, &self.ta_cert_pem)
                .await
                .is_ok(),
            Err(_) => false,
        };
        self.lock().ta_checks.insert(key, ok);
        ok
    }

    /// The onboarding row for (thumbprint, country, type) whose TA signature
    /// verifies; rows without a valid signature are treated as absent (§2).
    pub async fn valid_party(
        &self,
        thumbprint: &str,
        country: &str,
        kind: PartyType,
    ) -> Option<TrustedParty> {
        let candidates: Vec<TrustedParty> = self
            .lock()
            .parties
            .iter()
            .filter(|p| p.thumbprint == thumbprint && p.country == country && p.kind == kind)
            .cloned()
            .collect();
        for p in candidates {
            if self.ta_signature_valid(&p.raw_der, &p.signature).await {
                return Some(p);
            }
        }
        None
    }

    /// All rows of `country` and `kind` with a valid TA signature.
    pub async fn valid_parties_of(&self, country: &str, kind: PartyType) -> Vec<TrustedParty> {
        let candidates: Vec<TrustedParty> = self
            .lock()
            .parties
            .iter()
            .filter(|p| p.country == country && p.kind == kind)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for p in candidates {
            if self.ta_signature_valid(&p.raw_der, &p.signature).await {
                out.push(p);
            }
        }
        out
    }
}

/// Options of [`GatewayDouble::onboard_with`].
#[derive(Debug, Clone)]
pub struct Onboarding {
    pub country: String,
    pub kind: PartyType,
    pub cert_der: Vec<u8>,
    pub domain: String,
    /// E.g. `REVOCATION_LIST_READER`, `REVOCATION_UPLOADER`, `REVOCATION_DELETER` (§7).
    pub roles: Vec<String>,
    /// Set for rows copied from a peer gateway (federation).
    pub source_gateway: Option<String>,
}

impl Onboarding {
    pub fn new(country: &str, kind: PartyType, cert_der: &[u8]) -> Self {
        Self {
            country: country.to_string(),
            kind,
            cert_der: cert_der.to_vec(),
            domain: "DCC".into(),
            roles: Vec::new(),
            source_gateway: None,
        }
    }
}

/// A running (or stopped) gateway double. State survives `stop`/`restart`.
pub struct GatewayDouble {
    inner: Arc<Inner>,
    acceptor: TlsAcceptor,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    server_ca_pem: String,
    ta_cert_der: Vec<u8>,
}

impl GatewayDouble {
    pub async fn start(config: Config) -> Result<Self, DoubleError> {
        let ta = pki::generate(pki::Profile::TrustAnchor, "")?;
        let server = pki::server_pki()?;
        let acceptor = server::acceptor(server.leaf.cert_der(), server.leaf.key.serialize_der())?;
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(State::default()),
            ta_cert_pem: ta.cert_pem(),
            ta_key_pem: ta.key_pem(),
            gateway_id: model::random_uuid(),
        });
        let task = tokio::spawn(server::serve(listener, acceptor.clone(), inner.clone()));
        Ok(Self {
            inner,
            acceptor,
            addr,
            task: Some(task),
            server_ca_pem: server.ca.cert_pem(),
            ta_cert_der: ta.cert_der(),
        })
    }

    /// `https://localhost:<port>`: the server certificate is valid for `localhost`
    /// and `127.0.0.1`.
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The CA that issued the server certificate: a client's server trust bundle.
    pub fn server_ca_pem(&self) -> &str {
        &self.server_ca_pem
    }
    /// The TNG_TA certificate a participant receives at onboarding (§2, §8).
    pub fn trust_anchor_pem(&self) -> &str {
        &self.inner.ta_cert_pem
    }
    pub fn trust_anchor_der(&self) -> &[u8] {
        &self.ta_cert_der
    }
    pub fn gateway_id(&self) -> &str {
        &self.inner.gateway_id
    }
    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Inserts an onboarding row (domain `DCC`, no roles), signed by the TA.
    pub async fn onboard(
        &self,
        country: &str,
        kind: PartyType,
        cert_der: &[u8],
    ) -> Result<TrustedParty, DoubleError> {
        self.onboard_with(Onboarding::new(country, kind, cert_der))
            .await
    }

    pub async fn onboard_with(&self, o: Onboarding) -> Result<TrustedParty, DoubleError> {
        x509_parser::parse_x509_certificate(&o.cert_der)
            .map_err(|_| DoubleError::BadCertificate)?;
        let signature = self.inner.ta_sign(&o.cert_der).await?;
        let party = TrustedParty {
            uuid: model::random_uuid(),
            country: o.country,
            kind: o.kind,
            thumbprint: model::sha256_hex(&o.cert_der),
            raw_der: o.cert_der,
            signature,
            domain: o.domain,
            roles: o.roles,
            source_gateway: o.source_gateway,
            created: OffsetDateTime::now_utc(),
        };
        self.inner.lock().parties.push(party.clone());
        Ok(party)
    }

    /// Onboards a participant's TLS (AUTHENTICATION), UP (UPLOAD) and SCA (CSCA)
    /// certificates for its country.
    pub async fn onboard_participant(&self, keys: &ParticipantKeys) -> Result<(), DoubleError> {
        let c = &keys.country;
        self.onboard(c, PartyType::Authentication, &keys.tls.cert_der())
            .await?;
        self.onboard(c, PartyType::Upload, &keys.up.cert_der())
            .await?;
        self.onboard(c, PartyType::Csca, &keys.sca.cert_der())
            .await?;
        Ok(())
    }

    /// Removes every onboarding row with this thumbprint.
    pub fn offboard(&self, thumbprint: &str) -> usize {
        let mut s = self.inner.lock();
        let before = s.parties.len();
        s.parties.retain(|p| p.thumbprint != thumbprint);
        before - s.parties.len()
    }

    /// Replaces the TA signature of the rows with this thumbprint by `signature`
    /// (base64 detached CMS), e.g. one made by another key: such rows must be
    /// treated as absent (§2).
    pub fn set_onboarding_signature(&self, thumbprint: &str, signature: &str) -> usize {
        let mut s = self.inner.lock();
        let mut n = 0;
        for p in s.parties.iter_mut().filter(|p| p.thumbprint == thumbprint) {
            p.signature = signature.to_string();
            n += 1;
        }
        n
    }

    /// Adds a trusted issuer (§8; onboarded by the operator, no upload API),
    /// signed by the TA over `country;name;url;type`.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_trusted_issuer(
        &self,
        country: &str,
        name: &str,
        url: &str,
        kind: &str,
        domain: &str,
        ssl_public_key: &str,
        thumbprint: &str,
    ) -> Result<TrustedIssuer, DoubleError> {
        let mut issuer = TrustedIssuer {
            uuid: model::random_uuid(),
            url: url.into(),
            kind: kind.into(),
            country: country.into(),
            thumbprint: thumbprint.into(),
            ssl_public_key: ssl_public_key.into(),
            key_storage_type: "JWKS".into(),
            signature: String::new(),
            name: name.into(),
            domain: domain.into(),
            created: OffsetDateTime::now_utc(),
            source_gateway: None,
        };
        issuer.signature = self
            .inner
            .ta_sign(issuer.signed_string().as_bytes())
            .await?;
        self.inner.lock().issuers.push(issuer.clone());
        Ok(issuer)
    }

    /// Copies the locally uploaded references of `peer` as federated records
    /// (`sourceGateway` = the peer's id), as a federation download would.
    pub fn federate_references_from(&self, peer: &GatewayDouble) -> usize {
        let copies: Vec<TrustedReference> = peer
            .references()
            .into_iter()
            .filter(|r| r.source_gateway.is_none())
            .map(|mut r| {
                r.source_gateway = Some(peer.gateway_id().to_string());
                r
            })
            .collect();
        let n = copies.len();
        self.inner.lock().references.extend(copies);
        n
    }

    /// Operator data for `GET /valuesets[/{id}]` (§8).
    pub fn add_valueset(&self, id: &str, content: serde_json::Value) {
        self.inner.lock().valuesets.insert(id.to_string(), content);
    }

    /// Operator data for `GET /rules/{country}` in its download shape (§8).
    pub fn set_rules(&self, country: &str, rules: serde_json::Value) {
        self.inner.lock().rules.insert(country.to_string(), rules);
    }

    pub fn references(&self) -> Vec<TrustedReference> {
        self.inner.lock().references.clone()
    }
    pub fn signer_certificates(&self) -> Vec<SignerCertificate> {
        self.inner.lock().signers.clone()
    }
    pub fn revocation_batches(&self) -> Vec<RevocationBatch> {
        self.inner.lock().batches.clone()
    }
    pub fn trusted_parties(&self) -> Vec<TrustedParty> {
        self.inner.lock().parties.clone()
    }
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().requests.clone()
    }
    /// Requests whose method and path match, in arrival order.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }
    /// Polls the state every 20 ms until `done` holds or `timeout` passes; for
    /// tests of background delivery (an outbox) that cannot await the sender.
    pub async fn wait_until(
        &self,
        timeout: std::time::Duration,
        done: impl Fn(&State) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(&self.inner.lock()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn clear_requests(&self) {
        self.inner.lock().requests.clear();
    }

    /// `Some(status)`: answer every request with that status and the contract's
    /// error body (a gateway that is reachable but failing); `None`: normal.
    pub fn set_fail_status(&self, status: Option<u16>) {
        self.inner.lock().fail_status = status;
    }

    /// Closes the listener and every open connection; state is kept.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port with the same state and keys.
    pub async fn restart(&mut self) -> Result<(), DoubleError> {
        self.stop().await;
        let listener = bind_retrying(self.addr).await?;
        self.task = Some(tokio::spawn(server::serve(
            listener,
            self.acceptor.clone(),
            self.inner.clone(),
        )));
        Ok(())
    }

    /// `true`: connections are refused (an outage); `false`: back up.
    pub async fn set_down(&mut self, down: bool) -> Result<(), DoubleError> {
        match (down, self.is_running()) {
            (true, true) => self.stop().await,
            (false, false) => self.restart().await?,
            _ => {}
        }
        Ok(())
    }
}

impl Drop for GatewayDouble {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The port was ours a moment ago; a lingering socket can hold it briefly.
async fn bind_retrying(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}
