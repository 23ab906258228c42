//! Service configuration: embedded defaults, then an optional TOML file, then
//! environment variables (the reference mediator's names where they exist).
//!
//! Other modules extend [`Config`] by adding a section struct with
//! `#[serde(default)]`, a field here, and their variables in [`Config::apply_env`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default listening port of the reference mediator.
pub const DEFAULT_PORT: u16 = 4321;
/// Default request body limit: 5 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Env { name: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub openhim: OpenHimConfig,
    pub log: LogConfig,
    /// Where the service keeps local state (embedded store, key material exports…).
    pub data_dir: PathBuf,
    /// `STANDALONE`: `None` means "decide from whether an OpenHIM URL is configured".
    pub standalone: Option<bool>,
    pub ddcc: DdccConfig,
    pub registry: RegistryConfig,
}

/// What the service runs as, `DDCC_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Issuing, mapping, validation, verification and the registry.
    #[default]
    Full,
    /// Only the FHIR REST store/registry routes (and health/metrics): no issuing, no
    /// signing key. Another instance's `FHIR_SERVER`.
    Store,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "store" => Ok(Self::Store),
            other => Err(format!("expected full or store, got {other:?}")),
        }
    }
}

/// Where the registry keeps its resources and how it pages searches.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// `DDCC_MODE`.
    pub mode: Mode,
    /// `FHIR_SERVER`: base URL of an external FHIR server (e.g. HAPI, or another
    /// instance in store mode) holding the registry's resources. Idempotency keys,
    /// revocations and the audit trail stay in the local store.
    pub fhir_server: Option<String>,
    /// `FHIR_SERVER_TIMEOUT_MS`: per request to the FHIR server.
    pub fhir_server_timeout_ms: u64,
    /// `FHIR_SERVER_RETRIES`: extra attempts, with doubling backoff, for reads after a
    /// connection failure or a 5xx, and for writes the server never received.
    pub fhir_server_retries: u32,
    /// `DDCC_SEARCH_DEFAULT_COUNT`: page size when a search gives no `_count`.
    pub search_default_count: usize,
    /// `DDCC_SEARCH_MAX_COUNT`: larger `_count`s are lowered to this (at most 1000).
    pub search_max_count: usize,
}

impl std::fmt::Debug for RegistryConfig {
    // Hand-written so credentials in the FHIR server URL never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let server = self.fhir_server.as_deref().map(|u| {
            let Some((scheme, rest)) = u.split_once("://") else {
                return u.to_string();
            };
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}/{path}"),
                None => u.to_string(),
            }
        });
        f.debug_struct("RegistryConfig")
            .field("mode", &self.mode)
            .field("fhir_server", &server)
            .field("fhir_server_timeout_ms", &self.fhir_server_timeout_ms)
            .field("fhir_server_retries", &self.fhir_server_retries)
            .field("search_default_count", &self.search_default_count)
            .field("search_max_count", &self.search_max_count)
            .finish()
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Full,
            fhir_server: None,
            fhir_server_timeout_ms: 10_000,
            fhir_server_retries: 3,
            search_default_count: 50,
            search_max_count: ddcc_store::MAX_COUNT,
        }
    }
}

/// What the service issues and from which artefacts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdccConfig {
    /// `DDCC_PROFILES_DIR`: the FHIR artefacts to load (maps, definitions, terminology).
    pub profiles_dir: PathBuf,
    /// `DDCC_CQL_DIR`: FHIR `Library` resources (CQL business rules) served beside the
    /// profiles; optional, skipped when the folder does not exist.
    pub cql_dir: PathBuf,
    /// `DDCC_ISSUER_COUNTRY`: ISO 3166-1 alpha-2 of the issuing authority (CWT `iss`,
    /// the development DSC's `C`). `XA` is a user-assigned code, safe for tests.
    pub issuer_country: String,
    /// `DDCC_ISSUER_NAME`: `v[0].is` of EU DCCs when the response names no issuer.
    pub issuer_name: Option<String>,
    /// `DDCC_CERTIFICATE_VALIDITY_DAYS`: lifetime when the response gives no end date.
    pub certificate_validity_days: u32,
}

impl Default for DdccConfig {
    fn default() -> Self {
        Self {
            profiles_dir: PathBuf::from("fhir-profiles"),
            cql_dir: PathBuf::from("cql"),
            issuer_country: "XA".into(),
            issuer_name: None,
            certificate_validity_days: 365,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            openhim: OpenHimConfig::default(),
            log: LogConfig::default(),
            data_dir: PathBuf::from("./data"),
            standalone: None,
            ddcc: DdccConfig::default(),
            registry: RegistryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `SERVER_HOST`: address to bind.
    pub host: String,
    /// `SERVER_PORT`.
    pub port: u16,
    /// `DDCC_MAX_BODY_BYTES`: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `DDCC_PUBLIC_BASE_URL`: the externally visible base URL (links in issued documents).
    pub public_base_url: Option<String>,
    /// `DDCC_WORKERS`: actix worker threads; 0 = one per core.
    pub workers: usize,
    /// `DDCC_SHUTDOWN_TIMEOUT_SECS`: grace period for in-flight requests on SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// `DDCC_ADMIN_ADDR`: the internal listener for `/metrics` and `/admin/**`
    /// (which the public listener then answers with 404). Unset: loopback on the
    /// public port + 1. `public`: serve them on the public listener (no separation).
    pub admin_addr: Option<String>,
    /// `DDCC_CLOCK_OFFSET_WARN_SECS`: warn when a peer's `Date` differs from our clock
    /// by more than this.
    pub clock_offset_warn_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: DEFAULT_PORT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            public_base_url: None,
            workers: 0,
            shutdown_timeout_secs: 30,
            admin_addr: None,
            clock_offset_warn_secs: crate::clock::DEFAULT_WARN_SECS,
        }
    }
}

impl ServerConfig {
    /// The admin listener's address when admin routes are separated from the public
    /// listener, `None` when they are served publicly (`DDCC_ADMIN_ADDR=public`).
    pub fn admin_listener(&self) -> Option<String> {
        match self.admin_addr.as_deref().map(str::trim) {
            Some(a) if a.eq_ignore_ascii_case("public") => None,
            Some(a) if !a.is_empty() => Some(a.to_string()),
            _ => Some(format!("127.0.0.1:{}", self.port.wrapping_add(1))),
        }
    }
}

/// How the mediator authenticates to the OpenHIM API (contract §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenHimAuth {
    /// `Authorization: Basic` (cores ≥ 7.1, or older ones configured for it).
    Basic,
    /// The legacy `auth-*` sha512 token headers (cores 5.x–7.0; deprecated in 8.x).
    Token,
    /// Basic first; after a 401 switch to token (and back after another 401), so
    /// one setting works with every core from 5.x to 8.x (§2.1).
    Auto,
}

impl std::str::FromStr for OpenHimAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "basic" => Ok(Self::Basic),
            "token" => Ok(Self::Token),
            "auto" => Ok(Self::Auto),
            other => Err(format!("expected basic, token or auto, got {other:?}")),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenHimConfig {
    /// `OPENHIM_URL`: the core's API; `None` (and no `STANDALONE`) means standalone.
    pub url: Option<String>,
    /// `OPENHIM_USERNAME`.
    pub username: String,
    /// `OPENHIM_PASSWORD`.
    pub password: String,
    /// `OPENHIM_AUTH`.
    pub auth: OpenHimAuth,
    /// `TRUST_SELF_SIGNED`: accept the core's self-signed certificate.
    pub trust_self_signed: bool,
    /// `MEDIATOR_HOST`: replaces every `host` in the registration document.
    pub mediator_host: Option<String>,
    /// `MEDIATOR_PORT`: replaces every `port` in the registration document
    /// (defaults to the listening port).
    pub mediator_port: Option<u16>,
    /// `OPENHIM_MEDIATOR_CONFIG`: a mediatorConfig.json to send instead of the embedded one.
    pub mediator_config: Option<PathBuf>,
    /// `OPENHIM_HEARTBEAT_MS`.
    pub heartbeat_ms: u64,
    /// `OPENHIM_REGISTER_INITIAL_MS`: first retry delay after a failed registration.
    pub register_initial_ms: u64,
    /// `OPENHIM_REGISTER_MAX_MS`: cap of the retry delay.
    pub register_max_ms: u64,
    /// `OPENHIM_REQUEST_TIMEOUT_MS`: timeout of each API call.
    pub request_timeout_ms: u64,
}

impl std::fmt::Debug for OpenHimConfig {
    // Hand-written so the password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenHimConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("auth", &self.auth)
            .field("trust_self_signed", &self.trust_self_signed)
            .field("mediator_host", &self.mediator_host)
            .field("mediator_port", &self.mediator_port)
            .field("mediator_config", &self.mediator_config)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("register_initial_ms", &self.register_initial_ms)
            .field("register_max_ms", &self.register_max_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

impl Default for OpenHimConfig {
    fn default() -> Self {
        Self {
            url: None,
            username: "root@openhim.org".into(),
            password: "openhim-password".into(),
            auth: OpenHimAuth::Basic,
            trust_self_signed: false,
            mediator_host: None,
            mediator_port: None,
            mediator_config: None,
            heartbeat_ms: 10_000,
            register_initial_ms: 1_000,
            register_max_ms: 60_000,
            request_timeout_ms: 10_000,
        }
    }
}

impl OpenHimConfig {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.max(1))
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Compact,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "compact" | "text" => Ok(Self::Compact),
            "json" => Ok(Self::Json),
            other => Err(format!("expected compact or json, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `DDCC_LOG_FORMAT`.
    pub format: LogFormat,
    /// `RUST_LOG` / `DDCC_LOG`: a tracing-subscriber filter.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Compact,
            filter: "info".into(),
        }
    }
}

/// Where each effective setting came from, for the start-up log line.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub file: Option<PathBuf>,
    pub env_vars: Vec<String>,
}

impl Config {
    /// Defaults ← `file` (if given) ← process environment.
    pub fn load(file: Option<&Path>) -> Result<(Self, Provenance), ConfigError> {
        Self::load_with(file, |k| std::env::var(k).ok())
    }

    /// As [`Config::load`] with an injectable environment, for tests.
    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Self, Provenance), ConfigError> {
        let mut prov = Provenance::default();
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                prov.file = Some(path.to_path_buf());
                Self::from_toml(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
            None => Self::default(),
        };
        prov.env_vars = cfg.apply_env(env)?;
        Ok((cfg, prov))
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies environment overrides; returns the names of the variables used.
    pub fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut used = Vec::new();
        let mut get = |name: &str| -> Option<String> {
            // An empty variable counts as unset: compose files often pass `VAR=`.
            let v = env(name).filter(|v| !v.trim().is_empty())?;
            used.push(name.to_string());
            Some(v)
        };
        if let Some(v) = get("SERVER_HOST") {
            self.server.host = v;
        }
        if let Some(v) = get("SERVER_PORT") {
            self.server.port = parse("SERVER_PORT", &v)?;
        }
        if let Some(v) = get("DDCC_MAX_BODY_BYTES") {
            self.server.max_body_bytes = parse("DDCC_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = get("DDCC_PUBLIC_BASE_URL") {
            self.server.public_base_url = Some(v);
        }
        if let Some(v) = get("DDCC_WORKERS") {
            self.server.workers = parse("DDCC_WORKERS", &v)?;
        }
        if let Some(v) = get("DDCC_SHUTDOWN_TIMEOUT_SECS") {
            self.server.shutdown_timeout_secs = parse("DDCC_SHUTDOWN_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = get("DDCC_ADMIN_ADDR") {
            self.server.admin_addr = Some(v);
        }
        if let Some(v) = get("DDCC_CLOCK_OFFSET_WARN_SECS") {
            self.server.clock_offset_warn_secs = parse("DDCC_CLOCK_OFFSET_WARN_SECS", &v)?;
        }
        if let Some(v) = get("DDCC_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("STANDALONE") {
            self.standalone = Some(parse_bool("STANDALONE", &v)?);
        }
        if let Some(v) = get("OPENHIM_URL") {
            self.openhim.url = Some(v);
        }
        if let Some(v) = get("OPENHIM_USERNAME") {
            self.openhim.username = v;
        }
        if let Some(v) = get("OPENHIM_PASSWORD") {
            self.openhim.password = v;
        }
        if let Some(v) = get("OPENHIM_AUTH") {
            self.openhim.auth = parse("OPENHIM_AUTH", &v)?;
        }
        if let Some(v) = get("TRUST_SELF_SIGNED") {
            self.openhim.trust_self_signed = parse_bool("TRUST_SELF_SIGNED", &v)?;
        }
        if let Some(v) = get("MEDIATOR_HOST") {
            self.openhim.mediator_host = Some(v);
        }
        if let Some(v) = get("MEDIATOR_PORT") {
            self.openhim.mediator_port = Some(parse("MEDIATOR_PORT", &v)?);
        }
        if let Some(v) = get("OPENHIM_MEDIATOR_CONFIG") {
            self.openhim.mediator_config = Some(PathBuf::from(v));
        }
        if let Some(v) = get("OPENHIM_HEARTBEAT_MS") {
            self.openhim.heartbeat_ms = parse("OPENHIM_HEARTBEAT_MS", &v)?;
        }
        if let Some(v) = get("OPENHIM_REGISTER_INITIAL_MS") {
            self.openhim.register_initial_ms = parse("OPENHIM_REGISTER_INITIAL_MS", &v)?;
        }
        if let Some(v) = get("OPENHIM_REGISTER_MAX_MS") {
            self.openhim.register_max_ms = parse("OPENHIM_REGISTER_MAX_MS", &v)?;
        }
        if let Some(v) = get("OPENHIM_REQUEST_TIMEOUT_MS") {
            self.openhim.request_timeout_ms = parse("OPENHIM_REQUEST_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("DDCC_PROFILES_DIR") {
            self.ddcc.profiles_dir = PathBuf::from(v);
        }
        if let Some(v) = get("DDCC_CQL_DIR") {
            self.ddcc.cql_dir = PathBuf::from(v);
        }
        if let Some(v) = get("DDCC_ISSUER_COUNTRY") {
            let v = v.trim().to_ascii_uppercase();
            if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ConfigError::Env {
                    name: "DDCC_ISSUER_COUNTRY".into(),
                    message: format!("expected an ISO 3166-1 alpha-2 code, got {v:?}"),
                });
            }
            self.ddcc.issuer_country = v;
        }
        if let Some(v) = get("DDCC_ISSUER_NAME") {
            self.ddcc.issuer_name = Some(v);
        }
        if let Some(v) = get("DDCC_CERTIFICATE_VALIDITY_DAYS") {
            self.ddcc.certificate_validity_days = parse("DDCC_CERTIFICATE_VALIDITY_DAYS", &v)?;
        }
        if let Some(v) = get("DDCC_MODE") {
            self.registry.mode = parse("DDCC_MODE", &v)?;
        }
        if let Some(v) = get("FHIR_SERVER") {
            self.registry.fhir_server = Some(v.trim().trim_end_matches('/').to_string());
        }
        if let Some(v) = get("FHIR_SERVER_TIMEOUT_MS") {
            self.registry.fhir_server_timeout_ms = parse("FHIR_SERVER_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("FHIR_SERVER_RETRIES") {
            self.registry.fhir_server_retries = parse("FHIR_SERVER_RETRIES", &v)?;
        }
        if let Some(v) = get("DDCC_SEARCH_DEFAULT_COUNT") {
            self.registry.search_default_count = parse("DDCC_SEARCH_DEFAULT_COUNT", &v)?;
        }
        if let Some(v) = get("DDCC_SEARCH_MAX_COUNT") {
            self.registry.search_max_count = parse("DDCC_SEARCH_MAX_COUNT", &v)?;
        }
        if let Some(v) = get("DDCC_LOG_FORMAT") {
            self.log.format = parse("DDCC_LOG_FORMAT", &v)?;
        }
        if let Some(v) = get("DDCC_LOG").or_else(|| get("RUST_LOG")) {
            self.log.filter = v;
        }
        Ok(used)
    }

    /// Standalone when asked to be, or when no OpenHIM core is configured at all.
    pub fn is_standalone(&self) -> bool {
        self.standalone.unwrap_or(self.openhim.url.is_none())
    }

    /// The OpenHIM API URL to use when not standalone (the reference default if unset).
    pub fn openhim_url(&self) -> &str {
        self.openhim
            .url
            .as_deref()
            .unwrap_or("https://localhost:8080")
    }

    /// One human-readable line describing the choices made, for the start-up log.
    pub fn summary(&self, prov: &Provenance) -> String {
        let source = match (&prov.file, prov.env_vars.is_empty()) {
            (None, true) => {
                "embedded defaults (no config file, no environment overrides)".to_string()
            }
            (Some(f), true) => format!("config file {}", f.display()),
            (None, false) => format!("embedded defaults + env {}", prov.env_vars.join(",")),
            (Some(f), false) => format!(
                "config file {} + env {}",
                f.display(),
                prov.env_vars.join(",")
            ),
        };
        let mode = if self.is_standalone() {
            "standalone (plain FHIR responses, no OpenHIM registration)".to_string()
        } else {
            format!(
                "behind OpenHIM at {} (auth {:?}, trust_self_signed {})",
                self.openhim_url(),
                self.openhim.auth,
                self.openhim.trust_self_signed
            )
        };
        format!(
            "configuration from {source}; listening on {}:{}; mode {mode}; data dir {}; max body {} bytes",
            self.server.host,
            self.server.port,
            self.data_dir.display(),
            self.server.max_body_bytes
        )
    }
}

fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse::<T>().map_err(|e| ConfigError::Env {
        name: name.into(),
        message: e.to_string(),
    })
}

pub fn parse_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Env {
            name: name.into(),
            message: format!("expected true or false, got {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_configuration_means_standalone_on_defaults() {
        let (cfg, prov) = Config::load_with(None, env(&[])).expect("defaults load");
        assert!(cfg.is_standalone());
        assert_eq!(cfg.server.port, 4321);
        assert_eq!(cfg.server.max_body_bytes, 5 * 1024 * 1024);
        assert_eq!(cfg.data_dir, PathBuf::from("./data"));
        assert!(prov.env_vars.is_empty());
        assert!(cfg.summary(&prov).contains("embedded defaults"));
    }

    #[test]
    fn env_overrides_file_and_url_turns_off_standalone() {
        let dir = std::env::temp_dir().join(format!("ddcc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "data_dir = \"/var/ddcc\"\n[server]\nport = 9000\n[openhim]\nauth = \"token\"\n",
        )
        .expect("write");
        let (cfg, prov) = Config::load_with(
            Some(&file),
            env(&[
                ("SERVER_PORT", "9100"),
                ("OPENHIM_URL", "https://core:8080"),
                ("TRUST_SELF_SIGNED", "true"),
                ("MEDIATOR_HOST", ""),
            ]),
        )
        .expect("load");
        assert_eq!(cfg.server.port, 9100);
        assert_eq!(cfg.data_dir, PathBuf::from("/var/ddcc"));
        assert_eq!(cfg.openhim.auth, OpenHimAuth::Token);
        assert!(cfg.openhim.trust_self_signed);
        assert!(!cfg.is_standalone());
        assert_eq!(
            cfg.openhim.mediator_host, None,
            "empty env var counts as unset"
        );
        assert_eq!(prov.env_vars.len(), 3);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn registry_mode_fhir_server_and_paging_from_env() {
        let (cfg, _) = Config::load_with(
            None,
            env(&[
                ("DDCC_MODE", "Store"),
                ("FHIR_SERVER", " http://hapi:8080/fhir/ "),
                ("FHIR_SERVER_RETRIES", "0"),
                ("DDCC_SEARCH_DEFAULT_COUNT", "20"),
                ("DDCC_SEARCH_MAX_COUNT", "200"),
            ]),
        )
        .expect("load");
        assert_eq!(cfg.registry.mode, Mode::Store);
        assert_eq!(
            cfg.registry.fhir_server.as_deref(),
            Some("http://hapi:8080/fhir")
        );
        assert_eq!(cfg.registry.fhir_server_retries, 0);
        assert_eq!(
            (
                cfg.registry.search_default_count,
                cfg.registry.search_max_count
            ),
            (20, 200)
        );
        assert!(Config::load_with(None, env(&[("DDCC_MODE", "issuer")])).is_err());
        let (cfg, _) = Config::load_with(
            None,
            env(&[("FHIR_SERVER", "https://u:s3cret-value@hapi/fhir")]),
        )
        .expect("load");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret-value") && shown.contains("***@hapi/fhir"));
        let (cfg, _) = Config::load_with(None, env(&[])).expect("defaults");
        assert_eq!(cfg.registry.mode, Mode::Full);
        assert!(cfg.registry.fhir_server.is_none());
    }

    #[test]
    fn explicit_standalone_wins_over_url() {
        let (cfg, _) = Config::load_with(
            None,
            env(&[("OPENHIM_URL", "https://core:8080"), ("STANDALONE", "1")]),
        )
        .expect("load");
        assert!(cfg.is_standalone());
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let err = Config::load_with(None, env(&[("SERVER_PORT", "http")])).unwrap_err();
        assert!(matches!(err, ConfigError::Env { ref name, .. } if name == "SERVER_PORT"));
        let err = Config::load_with(None, env(&[("OPENHIM_AUTH", "jwt")])).unwrap_err();
        assert!(matches!(err, ConfigError::Env { ref name, .. } if name == "OPENHIM_AUTH"));
        assert!(Config::from_toml("[server]\nbogus = 1\n").is_err());
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../config.example.toml");
        let cfg = Config::from_toml(text).expect("example parses");
        let d = Config::default();
        assert_eq!(cfg.server.port, d.server.port);
        assert_eq!(cfg.server.max_body_bytes, d.server.max_body_bytes);
        assert_eq!(cfg.openhim.heartbeat_ms, d.openhim.heartbeat_ms);
        assert_eq!(cfg.openhim.auth, d.openhim.auth);
        assert_eq!(cfg.data_dir, d.data_dir);
        assert!(cfg.is_standalone());
        assert_eq!("auto".parse::<OpenHimAuth>(), Ok(OpenHimAuth::Auto));
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let mut cfg = Config::default();
        cfg.openhim.password = "s3cret-value".into();
        assert!(!format!("{cfg:?}").contains("s3cret-value"));
    }
}
