//! The long-lived services behind the routes, built once at start-up: the
//! catalogue of FHIR artefacts, the mapping service, the signing identity and the
//! issuer. `serve` and the tests build them the same way.

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
    #[error("the DSC in Vault transit cannot be read ({0}); run `ddcc-mediator keys init` first")]
    VaultDsc(String),
}

/// Where signatures come from; kept for readiness and for `/ddcc/dsc`.
pub enum SignerKind {
    /// A P-256 key in the data directory, with a self-signed development SCA.
    Local,
    Vault(Arc<VaultTransitSigner>),
}

/// The downstream signing endpoint, for orchestration records (Vault only).
pub struct SigningEndpoint {
    pub url: String,
}

pub struct Services {
    pub catalogue: Arc<Catalogue>,
    pub mapping: Arc<MappingService>,
    pub identity: SigningIdentity,
    pub signer_kind: SignerKind,
    pub issuer: Arc<Issuer>,
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
        let dir = &config.ddcc.profiles_dir;
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

        let country = &config.ddcc.issuer_country;
        let (identity, signer_kind) = if env("VAULT_ADDR").is_some_and(|v| !v.trim().is_empty()) {
            let mut vcfg = VaultConfig::from_lookup(&env)
                .map_err(|e| ServicesError::VaultConfig(e.to_string()))?;
            // Pin the key version the DSC certifies: a rotation in Vault must not
            // produce signatures under a kid no DSC matches.
            let dsc = vault_transit::show_dsc(&vcfg)
                .await
                .map_err(|e| ServicesError::VaultDsc(e.to_string()))?;
            vcfg.key_version = Some(dsc.key_version);
            let signer = Arc::new(
                VaultTransitSigner::new(vcfg)
                    .map_err(|e| ServicesError::VaultConfig(e.to_string()))?,
            );
            let identity =
                SigningIdentity::new(signer.clone(), dsc.certificate_der.clone(), country)
                    .map_err(|e| ServicesError::VaultDsc(e.to_string()))?;
            tracing::info!(kid = %identity.kid_b64(), "signing through Vault transit");
            (identity, SignerKind::Vault(signer))
        } else {
            let keys = config.data_dir.join("keys");
            let identity = LocalSigner::load_or_create(&keys, country)
                .map_err(|e| ServicesError::LocalKey(e.to_string()))?;
            tracing::warn!(
                kid = %identity.kid_b64(),
                dir = %keys.display(),
                "signing with a local development key and self-signed SCA: NOT FOR PRODUCTION (set VAULT_ADDR to sign through Vault transit)"
            );
            (identity, SignerKind::Local)
        };

        let settings = IssuerSettings {
            validity_seconds: i64::from(config.ddcc.certificate_validity_days) * 86_400,
            issuer_name: config.ddcc.issuer_name.clone(),
            shc_issuer_url: shc_issuer_url(config),
            ..Default::default()
        };
        let issuer = Arc::new(Issuer::new(
            catalogue.questionnaires.clone(),
            catalogue.pipelines.clone(),
            catalogue.terminology.clone(),
            mapping.clone(),
            identity.clone(),
            settings,
        ));
        Ok(Services {
            catalogue,
            mapping,
            identity,
            signer_kind,
            issuer,
        })
    }

    /// Put the services into the app state, with their readiness checks.
    pub fn install(self, mut builder: AppStateBuilder) -> AppStateBuilder {
        if let SignerKind::Vault(signer) = &self.signer_kind {
            let cfg = signer.config();
            builder = builder
                .with_readiness(Arc::new(VaultCheck(signer.clone())))
                .with_service(Arc::new(SigningEndpoint {
                    url: format!(
                        "{}/v1/{}/sign/{}",
                        cfg.addr.trim_end_matches('/'),
                        cfg.transit_mount.trim_matches('/'),
                        cfg.key_name
                    ),
                }));
        }
        builder
            .with_service(self.catalogue)
            .with_service(self.mapping)
            .with_service(self.issuer)
            .with_service(Arc::new(self.identity))
    }
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
