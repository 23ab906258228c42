//! The long-lived services behind the routes, built once at start-up: the
//! catalogue of FHIR artefacts, the mapping service, the signing identity and the
//! issuer. `serve` and the tests build them the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ddcc_cert::local::LocalSigner;
use ddcc_cert::SigningIdentity;
use ddcc_issuing::issue::{Issuer, IssuerSettings};
use vault_transit::{VaultConfig, VaultTransitSigner};

use crate::catalogue::{Catalogue, CatalogueError};
use crate::config::Config;
use crate::mapping::MappingService;
use crate::readiness::{CheckFuture, ReadinessCheck};
use crate::state::AppStateBuilder;

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("cannot load the FHIR artefacts from {dir}: {source}")]
    Catalogue {
        dir: String,
        #[source]
        source: CatalogueError,
    },
    #[error("development signing key: {0}")]
    LocalKey(String),
    #[error("Vault configuration: {0}")]
    VaultConfig(String),
    #[error("registry store: {0}")]
    Store(#[from] ddcc_store::StoreError),
    #[error("encryption-at-rest keys: {0}")]
    DataKeys(#[from] crate::data_keys::DataKeyError),
    #[error("served artefacts: {0}")]
    Artefacts(#[from] crate::artefacts::ArtefactError),
    #[error("authentication: {0}")]
    Auth(#[from] crate::auth::AuthConfigError),
    #[error("FHIR server client: {0}")]
    FhirServer(String),
}

/// The signing side once connected: the identity (DSC, kid) and the issuer using it.
#[derive(Clone)]
pub struct Signing {
    pub identity: SigningIdentity,
    pub issuer: Arc<Issuer>,
}

/// The issuer, or why there is none yet. With Vault, the service starts even when
/// Vault is down or sealed: a background task connects with backoff and fills the
/// slot, so issuing recovers without a restart; until then issuing answers 503 and
/// `/ready` is red.
pub struct SigningSlot {
    state: std::sync::RwLock<Result<Signing, String>>,
    /// Vault's sign URL, for orchestration records; `None` for the local signer.
    pub endpoint: Option<String>,
}

impl SigningSlot {
    pub fn get(&self) -> Result<Signing, String> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set(&self, v: Result<Signing, String>) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = v;
    }
}

/// What the issuer is built from, besides the signing identity.
#[derive(Clone)]
struct IssuerParts {
    catalogue: Arc<Catalogue>,
    mapping: Arc<MappingService>,
    settings: IssuerSettings,
    validator: Arc<fhir_validator::Validator>,
}

impl IssuerParts {
    fn issuer(&self, identity: &SigningIdentity) -> Arc<Issuer> {
        Arc::new(
            Issuer::new(
                self.catalogue.questionnaires.clone(),
                self.catalogue.pipelines.clone(),
                self.catalogue.terminology.clone(),
                self.mapping.clone(),
                identity.clone(),
                self.settings.clone(),
            )
            .with_check(Arc::new(crate::validation::ProfileCheck(
                self.validator.clone(),
            ))),
        )
    }
}

pub struct Services {
    pub catalogue: Arc<Catalogue>,
    pub mapping: Arc<MappingService>,
    pub validator: Arc<fhir_validator::Validator>,
    /// The single signer; with an issuers file, the first issuer's (for `/ddcc/dsc`).
    pub signing: Arc<SigningSlot>,
    pub registry: Arc<crate::registry::Registry>,
    /// The artefacts served under `/fhir` and announced on the trust network.
    pub artefacts: Arc<crate::artefacts::Artefacts>,
    /// The CQL business rules of `$verify-certificate` (absent without `cql/`).
    pub rules: Option<Arc<crate::rules::CqlRules>>,
    pub auth: Arc<crate::auth::Authenticator>,
    /// One signer per issuer of the issuers file.
    pub issuer_slots: Option<Arc<crate::auth::IssuerSlots>>,
    /// The Vault signers connected at start-up (token upkeep, statistics).
    pub vault: Vec<Arc<VaultTransitSigner>>,
    /// `DDCC_MODE=store`: no signer, so no signer readiness check.
    store_only: bool,
}

/// The registry store: PostgreSQL when `DATABASE_URL` is set (several instances share
/// it), else the embedded SQLite file in the data directory.
pub(crate) async fn open_store(
    config: &Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Arc<crate::registry::Registry>, ServicesError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ddcc_store::StoreError::Backend(format!("{}: {e}", config.data_dir.display()))
    })?;
    let keys = Arc::new(
        crate::data_keys::KeySource::from_env(&config.data_dir, env)?
            .load()
            .await?,
    );
    let store: Arc<dyn ddcc_store::Store> =
        match env("DATABASE_URL").filter(|u| !u.trim().is_empty()) {
            Some(url) => {
                let pool = env("DATABASE_POOL_SIZE")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(16);
                Arc::new(ddcc_store::PostgresStore::connect(&url, pool, keys).await?)
            }
            None => Arc::new(ddcc_store::SqliteStore::open_with_keys(
                config.data_dir.join(ddcc_store::SQLITE_DB_FILE),
                ddcc_store::Synchronous::Full,
                4,
                keys,
            )?),
        };
    // With `FHIR_SERVER` the store above keeps only keys, revocations and the audit trail.
    let store: Arc<dyn ddcc_store::Store> = match &config.registry.fhir_server {
        Some(base) => {
            let remote = crate::fhir_server::FhirServerStore::new(
                base,
                store,
                std::time::Duration::from_millis(config.registry.fhir_server_timeout_ms),
                config.registry.fhir_server_retries,
            )
            .map_err(|e| ServicesError::FhirServer(e.to_string()))?;
            tracing::info!(base = %remote.base_for_logs(), "registry resources on an external FHIR server");
            Arc::new(remote)
        }
        None => store,
    };
    tracing::info!(backend = store.backend(), "registry store open");
    spawn_reencryption(store.clone());
    Ok(Arc::new(crate::registry::Registry { store }))
}

/// Re-seals, in the background and in small batches, records that are clear (from
/// before encryption at rest) or sealed with a retired data key: a rotation never
/// blocks start-up, and requests keep being served while the pass runs.
fn spawn_reencryption(store: Arc<dyn ddcc_store::Store>) {
    tokio::spawn(async move {
        let mut total = 0usize;
        loop {
            match store.reencrypt(200).await {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    tracing::warn!(error = %e, "re-encryption pass paused; retrying in 30 s");
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                }
            }
        }
        if total > 0 {
            tracing::info!(
                records = total,
                "re-sealed records under the current data key"
            );
        }
    });
}

/// Connect to Vault transit: read the DSC and pin the key version it certifies (a
/// rotation in Vault must never produce signatures under a kid no DSC matches).
async fn connect_vault(
    vcfg: &VaultConfig,
    country: &str,
) -> Result<(SigningIdentity, Arc<VaultTransitSigner>), String> {
    let dsc = vault_transit::show_dsc(vcfg).await.map_err(|e| {
        format!(
            "the DSC in Vault transit cannot be read ({e}); is Vault up and unsealed, and did `ddcc-mediator keys init` run?"
        )
    })?;
    let mut pinned = vcfg.clone();
    pinned.key_version = Some(dsc.key_version);
    let signer = Arc::new(VaultTransitSigner::new(pinned).map_err(|e| e.to_string())?);
    let identity = SigningIdentity::new(signer.clone(), dsc.certificate_der.clone(), country)
        .map_err(|e| e.to_string())?;
    Ok((identity, signer))
}

impl Services {
    /// Build every service for `config`. Vault is used when `VAULT_ADDR` is set.
    pub async fn build(config: &Config) -> Result<Self, ServicesError> {
        Self::build_with_env(config, |k| std::env::var(k).ok()).await
    }

    pub async fn build_with_env(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ServicesError> {
        let dir = &resolve_profiles_dir(&config.ddcc.profiles_dir);
        let catalogue =
            Arc::new(
                Catalogue::load(dir).map_err(|source| ServicesError::Catalogue {
                    dir: dir.display().to_string(),
                    source,
                })?,
            );
        tracing::info!(
            maps = catalogue.map_sources.len(),
            definitions = catalogue.structure_definitions.len(),
            questionnaires = catalogue.questionnaires.len(),
            dir = %dir.display(),
            "loaded FHIR artefacts"
        );
        let artefacts = Arc::new(load_artefacts(config)?);
        tracing::info!(
            served = artefacts.all().len(),
            base = artefacts.public_base(),
            "serving FHIR artefacts"
        );
        let mapping = Arc::new(MappingService::new(
            &catalogue,
            Some(config.data_dir.join("structuremaps")),
        ));
        // Rules are an optional part of verification: a cql/ folder the rule engine
        // cannot load (e.g. a Library without ELM) is logged loudly and verification
        // runs without rules, answering each requested rule as not evaluated.
        let rules = match crate::rules::CqlRules::load(
            &config.ddcc.cql_dir,
            &dir.join("plandefinitions"),
            catalogue.terminology.clone(),
            mapping.clone(),
        ) {
            Ok(r) => r.map(Arc::new),
            Err(e) => {
                tracing::error!(dir = %config.ddcc.cql_dir.display(), error = %e, "CQL rules cannot be loaded");
                None
            }
        };
        if rules.is_none() {
            tracing::warn!(dir = %config.ddcc.cql_dir.display(), "no CQL rules: `rule` parameters of $verify-certificate are not evaluated");
        }
        let validator = Arc::new(crate::validation::build(&catalogue));
        let parts = IssuerParts {
            validator: validator.clone(),
            catalogue: catalogue.clone(),
            mapping: mapping.clone(),
            settings: IssuerSettings {
                validity_seconds: i64::from(config.ddcc.certificate_validity_days) * 86_400,
                issuer_name: config.ddcc.issuer_name.clone(),
                shc_issuer_url: shc_issuer_url(config),
                ..Default::default()
            },
        };
        let country = config.ddcc.issuer_country.clone();
        let registry = open_store(config, &env).await?;
        let auth = Arc::new(crate::auth::Authenticator::from_lookup(&env)?);
        auth.log_summary();
        let vault_on = env("VAULT_ADDR").is_some_and(|v| !v.trim().is_empty());

        let store_only = config.registry.mode == crate::config::Mode::Store;
        let (signing, issuer_slots, vault) = if store_only {
            tracing::info!("store mode: FHIR registry routes only, no issuing and no signing key");
            let slot = Arc::new(SigningSlot {
                state: std::sync::RwLock::new(Err(
                    "store mode (DDCC_MODE=store) does not issue".into()
                )),
                endpoint: None,
            });
            (slot, None, Vec::new())
        } else if let Some(file) = &auth.issuers {
            let mut slots = Vec::new();
            let mut vault = Vec::new();
            for issuer in &file.issuers {
                let mut p = parts.clone();
                p.settings.issuer_name = Some(issuer.name.clone());
                let (slot, signer) = if vault_on {
                    let vcfg = issuer_vault_config(issuer, &env)?;
                    vault_slot(vcfg, issuer.country.clone(), p).await
                } else {
                    let dir = config
                        .data_dir
                        .join("keys")
                        .join("issuers")
                        .join(&issuer.id);
                    let identity = LocalSigner::load_or_create(&dir, &issuer.country)
                        .map_err(|e| ServicesError::LocalKey(e.to_string()))?;
                    tracing::warn!(issuer = %issuer.id, kid = %identity.kid_b64(), "issuer signs with a local development key: NOT FOR PRODUCTION");
                    (local_slot(identity, &p), None)
                };
                vault.extend(signer);
                slots.push((issuer.id.clone(), slot));
            }
            let signing = slots[0].1.clone();
            (
                signing,
                Some(Arc::new(crate::auth::IssuerSlots(slots))),
                vault,
            )
        } else if vault_on {
            let vcfg = VaultConfig::from_lookup(&env)
                .map_err(|e| ServicesError::VaultConfig(e.to_string()))?;
            let (slot, vault) = vault_slot(vcfg, country, parts).await;
            (slot, None, vault.into_iter().collect())
        } else {
            let keys = config.data_dir.join("keys");
            let identity = LocalSigner::load_or_create(&keys, &country)
                .map_err(|e| ServicesError::LocalKey(e.to_string()))?;
            tracing::warn!(
                kid = %identity.kid_b64(),
                dir = %keys.display(),
                "signing with a local development key and self-signed SCA: NOT FOR PRODUCTION (set VAULT_ADDR to sign through Vault transit)"
            );
            (local_slot(identity, &parts), None, Vec::new())
        };
        Ok(Services {
            catalogue,
            mapping,
            validator,
            signing,
            registry,
            artefacts,
            rules,
            auth,
            issuer_slots,
            vault,
            store_only,
        })
    }

    /// Put the services into the app state, with their readiness checks.
    pub fn install(self, mut builder: AppStateBuilder) -> AppStateBuilder {
        for signer in &self.vault {
            // One check per issuer key when there are several (names are report keys).
            let name = match &self.issuer_slots {
                Some(_) => format!("vault-transit:{}", signer.config().key_name),
                None => "vault-transit".to_string(),
            };
            builder = builder.with_readiness(Arc::new(VaultCheck(signer.clone(), name)));
        }
        match &self.issuer_slots {
            Some(slots) => {
                for (id, slot) in &slots.0 {
                    builder = builder.with_readiness(Arc::new(SigningCheck(
                        slot.clone(),
                        format!("signer:{id}"),
                    )));
                }
                builder = builder.with_service(slots.clone());
            }
            // Store mode has no signer, so no signer readiness check.
            None if self.store_only => {}
            None => {
                builder = builder.with_readiness(Arc::new(SigningCheck(
                    self.signing.clone(),
                    "signer".into(),
                )));
            }
        }
        builder = builder
            .with_service(self.auth)
            .with_readiness(Arc::new(StoreCheck(self.registry.clone())))
            .with_service(self.registry)
            .with_service(self.catalogue)
            .with_service(self.mapping)
            .with_service(self.validator)
            .with_service(self.signing)
            .with_service(self.artefacts)
            .with_service(Arc::new(crate::routes::verify::SyncedTrust::default()));
        match self.rules {
            Some(r) => builder.with_service(Arc::new(crate::routes::verify::Rules(r))),
            None => builder,
        }
    }
}

/// A slot holding a local development identity.
fn local_slot(identity: SigningIdentity, parts: &IssuerParts) -> Arc<SigningSlot> {
    Arc::new(SigningSlot {
        state: std::sync::RwLock::new(Ok(Signing {
            issuer: parts.issuer(&identity),
            identity,
        })),
        endpoint: None,
    })
}

/// A slot signing through Vault transit: connected now, or by a background task
/// with backoff while Vault is unavailable.
async fn vault_slot(
    vcfg: VaultConfig,
    country: String,
    parts: IssuerParts,
) -> (Arc<SigningSlot>, Option<Arc<VaultTransitSigner>>) {
    let endpoint = format!(
        "{}/v1/{}/sign/{}",
        vcfg.addr.trim_end_matches('/'),
        vcfg.transit_mount.trim_matches('/'),
        vcfg.key_name
    );
    let slot = Arc::new(SigningSlot {
        state: std::sync::RwLock::new(Err("connecting to Vault transit".into())),
        endpoint: Some(endpoint),
    });
    match connect_vault(&vcfg, &country).await {
        Ok((identity, signer)) => {
            tracing::info!(kid = %identity.kid_b64(), key = %vcfg.key_name, "signing through Vault transit");
            slot.set(Ok(Signing {
                issuer: parts.issuer(&identity),
                identity,
            }));
            (slot, Some(signer))
        }
        Err(e) => {
            tracing::error!(error = %e, key = %vcfg.key_name, "Vault transit not available at start-up; retrying in the background");
            slot.set(Err(e));
            tokio::spawn(retry_vault(vcfg, country, parts, slot.clone()));
            (slot, None)
        }
    }
}

/// An issuer's Vault settings: the shared `VAULT_*` ones (address, TLS, timeouts,
/// batching) with its own transit key and, when given, its own AppRole, whose
/// policy should allow only `transit/sign/<its key>` (and reading that key's DSC).
fn issuer_vault_config(
    issuer: &crate::auth::issuers::IssuerEntry,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<VaultConfig, ServicesError> {
    let bad = |m: String| ServicesError::VaultConfig(format!("issuer {}: {m}", issuer.id));
    let v = issuer
        .vault
        .as_ref()
        .ok_or_else(|| bad("no [issuer.vault] section while VAULT_ADDR is set".into()))?;
    let secret = match (&v.secret_id_file, &v.secret_id_env) {
        (Some(f), _) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| bad(format!("secret_id_file {}: {e}", f.display())))?
                .trim()
                .to_string(),
        ),
        (None, Some(name)) => Some(
            env(name)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| bad(format!("secret_id_env {name} is not set")))?,
        ),
        (None, None) => None,
    };
    if v.role_id.is_none() {
        tracing::warn!(issuer = %issuer.id, "issuer has no AppRole of its own: it signs with the global Vault token, whose policy is not limited to its key");
    }
    let own = v.role_id.clone().zip(secret);
    VaultConfig::from_lookup(|k| match (k, &own) {
        ("VAULT_TRANSIT_KEY", _) => Some(v.key.clone()),
        // The DSC read at connection pins the version.
        ("VAULT_TRANSIT_KEY_VERSION", _) => None,
        ("VAULT_TOKEN", Some(_)) => None,
        ("VAULT_ROLE_ID", Some((role, _))) => Some(role.clone()),
        ("VAULT_SECRET_ID", Some((_, secret))) => Some(secret.clone()),
        ("VAULT_APPROLE_MOUNT", Some(_)) => v.mount.clone().or_else(|| env(k)),
        _ => env(k).filter(|s| !s.trim().is_empty()),
    })
    .map_err(|e| bad(e.to_string()))
}

/// Capped exponential backoff until Vault answers with a usable DSC.
async fn retry_vault(
    vcfg: VaultConfig,
    country: String,
    parts: IssuerParts,
    slot: Arc<SigningSlot>,
) {
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        tokio::time::sleep(delay).await;
        match connect_vault(&vcfg, &country).await {
            Ok((identity, _signer)) => {
                tracing::info!(kid = %identity.kid_b64(), "Vault transit connected; issuing enabled");
                slot.set(Ok(Signing {
                    issuer: parts.issuer(&identity),
                    identity,
                }));
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "Vault transit still not available");
                slot.set(Err(e));
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}

struct SigningCheck(Arc<SigningSlot>, String);

impl ReadinessCheck for SigningCheck {
    fn name(&self) -> &str {
        &self.1
    }
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            self.0
                .get()
                .map(|s| format!("ready, kid {}", s.identity.kid_b64()))
        })
    }
}

/// The artefacts directory: as configured when it exists; for the default relative
/// path, also an installed layout beside the executable (`../share/ddcc-mediator/`)
/// and the source tree the binary was built from, so `ddcc-mediator serve` works on
/// embedded defaults from any working directory.
pub fn resolve_profiles_dir(configured: &Path) -> PathBuf {
    if configured.is_dir() || configured.is_absolute() {
        return configured.to_path_buf();
    }
    let mut candidates = Vec::new();
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(bin_dir.join("../share/ddcc-mediator").join(configured));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(configured),
    );
    candidates
        .into_iter()
        .find(|c| c.is_dir())
        .unwrap_or_else(|| configured.to_path_buf())
}

/// The served artefacts for `config`: the profiles folder, and the CQL folder when it
/// exists (resolved like the profiles folder).
pub fn load_artefacts(
    config: &Config,
) -> Result<crate::artefacts::Artefacts, crate::artefacts::ArtefactError> {
    let profiles = resolve_profiles_dir(&config.ddcc.profiles_dir);
    let cql = resolve_profiles_dir(&config.ddcc.cql_dir);
    crate::artefacts::Artefacts::load(
        &profiles,
        cql.is_dir().then_some(cql.as_path()),
        &crate::artefacts::public_fhir_base(config),
    )
}

/// The SMART Health Card `iss`: the public base without its `/fhir` suffix, since
/// verifiers fetch `<iss>/.well-known/jwks.json` and we serve that at the root.
pub fn shc_issuer_url(config: &Config) -> String {
    match &config.server.public_base_url {
        Some(base) => base
            .trim_end_matches('/')
            .trim_end_matches("/fhir")
            .to_string(),
        None => format!("http://{}:{}", config.server.host, config.server.port),
    }
}

/// A cheap query through the store's pool: red when the database is unreachable.
struct StoreCheck(Arc<crate::registry::Registry>);

impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &str {
        "store"
    }
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let q = ddcc_store::SearchQuery::new().with("_count", "1");
            self.0
                .store
                .search("List", &q)
                .await
                .map(|_| format!("{} reachable", self.0.store.backend()))
                .map_err(|e| e.to_string())
        })
    }
}

struct VaultCheck(Arc<VaultTransitSigner>, String);

impl ReadinessCheck for VaultCheck {
    fn name(&self) -> &str {
        &self.1
    }
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let h = self.0.health().await;
            if h.is_ready() {
                Ok("unsealed, reachable".into())
            } else {
                Err(format!("{h:?}"))
            }
        })
    }
}
