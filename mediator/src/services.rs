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
    pub signing: Arc<SigningSlot>,
    pub registry: Arc<crate::registry::Registry>,
    vault: Option<Arc<VaultTransitSigner>>,
    /// `DDCC_MODE=store`: no signer, so no signer readiness check.
    store_only: bool,
}

/// The registry store: PostgreSQL when `DATABASE_URL` is set (several instances share
/// it), else the embedded SQLite file in the data directory.
async fn open_store(
    config: &Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Arc<crate::registry::Registry>, ServicesError> {
    let store: Arc<dyn ddcc_store::Store> =
        match env("DATABASE_URL").filter(|u| !u.trim().is_empty()) {
            Some(url) => {
                let pool = env("DATABASE_POOL_SIZE")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(16);
                Arc::new(ddcc_store::PostgresStore::connect(&url, pool).await?)
            }
            None => Arc::new(ddcc_store::SqliteStore::open(&config.data_dir)?),
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
    Ok(Arc::new(crate::registry::Registry { store }))
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
        let mapping = Arc::new(MappingService::new(
            &catalogue,
            Some(config.data_dir.join("structuremaps")),
        ));
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

        if config.registry.mode == crate::config::Mode::Store {
            tracing::info!("store mode: FHIR registry routes only, no issuing and no signing key");
            return Ok(Services {
                catalogue,
                mapping,
                validator,
                signing: Arc::new(SigningSlot {
                    state: std::sync::RwLock::new(Err(
                        "store mode (DDCC_MODE=store) does not issue".into(),
                    )),
                    endpoint: None,
                }),
                registry,
                vault: None,
                store_only: true,
            });
        }

        if env("VAULT_ADDR").is_some_and(|v| !v.trim().is_empty()) {
            let vcfg = VaultConfig::from_lookup(&env)
                .map_err(|e| ServicesError::VaultConfig(e.to_string()))?;
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
            let vault = match connect_vault(&vcfg, &country).await {
                Ok((identity, signer)) => {
                    tracing::info!(kid = %identity.kid_b64(), "signing through Vault transit");
                    slot.set(Ok(Signing {
                        issuer: parts.issuer(&identity),
                        identity,
                    }));
                    Some(signer)
                }
                Err(e) => {
                    tracing::error!(error = %e, "Vault transit not available at start-up; retrying in the background");
                    slot.set(Err(e));
                    tokio::spawn(retry_vault(vcfg, country, parts, slot.clone()));
                    None
                }
            };
            return Ok(Services {
                catalogue,
                mapping,
                validator,
                signing: slot,
                registry,
                vault,
                store_only: false,
            });
        }

        let keys = config.data_dir.join("keys");
        let identity = LocalSigner::load_or_create(&keys, &country)
            .map_err(|e| ServicesError::LocalKey(e.to_string()))?;
        tracing::warn!(
            kid = %identity.kid_b64(),
            dir = %keys.display(),
            "signing with a local development key and self-signed SCA: NOT FOR PRODUCTION (set VAULT_ADDR to sign through Vault transit)"
        );
        let slot = Arc::new(SigningSlot {
            state: std::sync::RwLock::new(Ok(Signing {
                issuer: parts.issuer(&identity),
                identity,
            })),
            endpoint: None,
        });
        Ok(Services {
            catalogue,
            mapping,
            validator,
            signing: slot,
            registry,
            vault: None,
            store_only: false,
        })
    }

    /// Put the services into the app state, with their readiness checks.
    pub fn install(self, mut builder: AppStateBuilder) -> AppStateBuilder {
        if let Some(signer) = &self.vault {
            builder = builder.with_readiness(Arc::new(VaultCheck(signer.clone())));
        }
        if !self.store_only {
            builder = builder.with_readiness(Arc::new(SigningCheck(self.signing.clone())));
        }
        builder
            .with_readiness(Arc::new(StoreCheck(self.registry.clone())))
            .with_service(self.registry)
            .with_service(self.catalogue)
            .with_service(self.mapping)
            .with_service(self.validator)
            .with_service(self.signing)
    }
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

struct SigningCheck(Arc<SigningSlot>);

impl ReadinessCheck for SigningCheck {
    fn name(&self) -> &str {
        "signer"
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

struct VaultCheck(Arc<VaultTransitSigner>);

impl ReadinessCheck for VaultCheck {
    fn name(&self) -> &str {
        "vault-transit"
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
