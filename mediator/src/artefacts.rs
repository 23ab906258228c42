//! The knowledge artefacts served read-only and publicly under `/fhir` (ValueSet,
//! CodeSystem, ConceptMap, PlanDefinition, Library, Questionnaire,
//! StructureDefinition, StructureMap), and what the trust network needs to announce
//! them: the public URL of each, and the exact bytes behind it.
//!
//! Architecture invariant: **the bytes served for a version never change.** Every
//! artefact is serialised once, at load, in its RFC 8785 canonical form (sorted keys,
//! no insignificant whitespace), and those bytes are what every read returns and what
//! the trusted reference's thumbprint hashes. The form depends only on the resource's
//! content — not on the file's formatting, `serde_json` features or this build — so a
//! restart or an upgrade that does not change a resource does not change its
//! thumbprint.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use actix_web::web::Bytes;
use base64::Engine;
use serde_json::Value;
use trust_network::reference::{thumbprint, Publisher, ServedArtefact};

/// The resource types served here, in CapabilityStatement order.
pub const SERVED_TYPES: [&str; 8] = [
    "CodeSystem",
    "ConceptMap",
    "Library",
    "PlanDefinition",
    "Questionnaire",
    "StructureDefinition",
    "StructureMap",
    "ValueSet",
];

/// The types whose references are published on the trust network (contract §5.5).
const PUBLISHED_TYPES: [&str; 2] = ["ValueSet", "PlanDefinition"];

/// The trust domain our references are published under (contract §5.1: `DDCC`).
pub const TRUST_DOMAIN: &str = "DDCC";

/// The environment variable naming the PEM certificate of the TLS endpoint that
/// serves the artefacts (a reference's `sslPublicKey`).
pub const TLS_CERT_ENV: &str = "DDCC_TLS_CERT";

/// Files in the profiles folder that are configuration, not FHIR resources.
const NOT_RESOURCES: [&str; 2] = ["issuing.json", "terminology-url-aliases.json"];

#[derive(Debug, thiserror::Error)]
pub enum ArtefactError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{resource_type}/{id} is defined by both {first} and {second}, with the same version")]
    Duplicate {
        resource_type: String,
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("public base URL {0:?} must be an absolute http(s) URL")]
    PublicBase(String),
    #[error("{0} is not set: the trusted references need the PEM certificate of the TLS endpoint serving the artefacts (their sslPublicKey)")]
    MissingEnv(&'static str),
    #[error("{var} ({path}): {message}")]
    TlsCertificate {
        var: &'static str,
        path: String,
        message: String,
    },
}

/// One served artefact: its identity, where it is served, and the exact bytes.
#[derive(Debug, Clone)]
pub struct Served {
    pub resource_type: String,
    /// The logical id it is served under (see [`Artefacts::load`] on collisions).
    pub id: String,
    /// Canonical URL (`url` element), when it has one.
    pub url: Option<String>,
    pub version: Option<String>,
    pub name: Option<String>,
    /// `<public base>/<type>/<id>`: what a trusted reference points at.
    pub public_url: String,
    /// Lowercase hex SHA-256 of [`Served::bytes`].
    pub thumbprint: String,
    /// `W/"<thumbprint>"`: the hash, not `version`, because a local edit that forgets
    /// to bump the version still changes the bytes.
    pub etag: String,
    /// The file it was loaded from.
    pub source: PathBuf,
    bytes: Bytes,
    resource: Value,
}

impl Served {
    /// The exact bytes served for this artefact.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The bytes as a cheap handle for a response body (no copy).
    pub fn body(&self) -> Bytes {
        self.bytes.clone()
    }
    /// The resource (what the bytes encode), for search bundles and `$expand`.
    pub fn resource(&self) -> &Value {
        &self.resource
    }
}

/// Everything served, loaded once; read-only afterwards and shared behind an `Arc`.
pub struct Artefacts {
    public_base: String,
    items: Vec<Served>,
    by_key: HashMap<(String, String), usize>,
    terminology: terminology::Terminology,
}

impl std::fmt::Debug for Artefacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artefacts")
            .field("public_base", &self.public_base)
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

/// A resource read from a file, before ids are settled.
struct Candidate {
    resource: Value,
    resource_type: String,
    path: PathBuf,
}

impl Artefacts {
    /// Load every FHIR resource of a [`SERVED_TYPES`] type from `profiles_dir`
    /// (recursively, `*.json`, plus the FML maps in `maps/` compiled to StructureMaps)
    /// and from `cql_dir` (recursively, `*.json`; files that are not FHIR resources of
    /// those types, such as ELM, are skipped). `public_base` is the FHIR base the
    /// public URLs start with (e.g. `https://mediator.moh.example/fhir`).
    ///
    /// Logical ids are unique per type: when two files define the same type and id (the
    /// two IG editions share many ids), the highest `version` keeps the id and the
    /// others are served as `<id>-<version>` (with `id` rewritten in the served bytes).
    pub fn load(
        profiles_dir: &Path,
        cql_dir: Option<&Path>,
        public_base: &str,
    ) -> Result<Self, ArtefactError> {
        let public_base = normalise_base(public_base)?;
        let mut candidates = Vec::new();
        let mut json_files = Vec::new();
        files(profiles_dir, "json", &mut json_files)?;
        if let Some(dir) = cql_dir {
            files(dir, "json", &mut json_files)?;
        }
        for path in json_files {
            let is_config = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| NOT_RESOURCES.contains(&n));
            if is_config {
                continue;
            }
            let v = read_json(&path)?;
            if let Some(rt) = served_type(&v) {
                candidates.push(Candidate {
                    resource_type: rt.to_string(),
                    resource: v,
                    path,
                });
            }
        }
        let mut fml_files = Vec::new();
        let maps_dir = profiles_dir.join("maps");
        if maps_dir.is_dir() {
            files(&maps_dir, "fml", &mut fml_files)?;
        }
        for path in fml_files {
            let text = std::fs::read_to_string(&path).map_err(|e| ArtefactError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let mut sm = fml::parse::parse_map(&text).map_err(|e| ArtefactError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            // FML has no id; the IG Publisher names compiled maps by the last segment
            // of their canonical, which is what a client asking by id expects.
            if str_field(&sm, "id").is_none() {
                let id = str_field(&sm, "url")
                    .and_then(|u| u.rsplit('/').next())
                    .or_else(|| str_field(&sm, "name"))
                    .map(str::to_string);
                if let (Some(id), Some(obj)) = (id, sm.as_object_mut()) {
                    obj.insert("id".into(), Value::String(id));
                }
            }
            candidates.push(Candidate {
                resource_type: "StructureMap".into(),
                resource: sm,
                path,
            });
        }

        // No alias table here (unlike the issuing catalogue): an expansion reports each
        // code under the system its ValueSet names, as a client reading the served
        // ValueSet expects, not under the CodeSystem URL the IG renamed it to.
        let mut terminology = terminology::Terminology::new();
        let mut items = Vec::with_capacity(candidates.len());
        for (c, id) in settle_ids(&candidates)?.into_iter() {
            if matches!(
                c.resource_type.as_str(),
                "ValueSet" | "CodeSystem" | "ConceptMap"
            ) {
                terminology
                    .add(c.resource.clone())
                    .map_err(|e| ArtefactError::Invalid {
                        path: c.path.clone(),
                        message: e.to_string(),
                    })?;
            }
            items.push(serve(c, id, &public_base)?);
        }
        items.sort_by(|a, b| (&a.resource_type, &a.id).cmp(&(&b.resource_type, &b.id)));
        let by_key = items
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.resource_type.clone(), s.id.clone()), i))
            .collect();
        Ok(Artefacts {
            public_base,
            items,
            by_key,
            terminology,
        })
    }

    /// The FHIR base the public URLs start with (no trailing slash).
    pub fn public_base(&self) -> &str {
        &self.public_base
    }

    /// Every served artefact, ordered by type and id.
    pub fn all(&self) -> &[Served] {
        &self.items
    }

    pub fn of_type<'a>(&'a self, resource_type: &'a str) -> impl Iterator<Item = &'a Served> + 'a {
        self.items
            .iter()
            .filter(move |s| s.resource_type == resource_type)
    }

    pub fn get(&self, resource_type: &str, id: &str) -> Option<&Served> {
        self.by_key
            .get(&(resource_type.to_string(), id.to_string()))
            .map(|&i| &self.items[i])
    }

    /// By canonical URL (a `url|version` suffix counts as `version`), optionally of
    /// one version.
    pub fn by_url(&self, resource_type: &str, url: &str, version: Option<&str>) -> Vec<&Served> {
        let (url, suffix) = match url.split_once('|') {
            Some((u, v)) => (u, Some(v)),
            None => (url, None),
        };
        self.items
            .iter()
            .filter(|s| s.resource_type == resource_type && s.url.as_deref() == Some(url))
            .filter(|s| {
                [suffix, version]
                    .into_iter()
                    .flatten()
                    .all(|v| s.version.as_deref() == Some(v))
            })
            .collect()
    }

    /// Local terminology over the served ValueSets and CodeSystems, for `$expand`.
    pub fn terminology(&self) -> &terminology::Terminology {
        &self.terminology
    }

    /// What the trust network announces: every served ValueSet and PlanDefinition, and
    /// the Libraries they use (a PlanDefinition's `library`, its actions'
    /// `definitionCanonical`, a Library's `depends-on` artefacts, transitively). `url`
    /// is the public URL, `bytes` exactly what that URL serves.
    pub fn published(&self) -> Vec<ServedArtefact> {
        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        let mut pending: Vec<String> = Vec::new();
        for (i, s) in self.items.iter().enumerate() {
            if PUBLISHED_TYPES.contains(&s.resource_type.as_str()) {
                chosen.insert(i);
                if s.resource_type == "PlanDefinition" {
                    pending.extend(plan_definition_canonicals(&s.resource));
                }
            }
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        while let Some(canonical) = pending.pop() {
            if !seen.insert(canonical.clone()) {
                continue;
            }
            for lib in self.by_url("Library", &canonical, None) {
                if let Some(&i) = self
                    .by_key
                    .get(&(lib.resource_type.clone(), lib.id.clone()))
                {
                    if chosen.insert(i) {
                        pending.extend(library_dependencies(&lib.resource));
                    }
                }
            }
        }
        chosen
            .into_iter()
            .map(|i| {
                let s = &self.items[i];
                ServedArtefact {
                    resource_type: s.resource_type.clone(),
                    url: s.public_url.clone(),
                    name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                    version: s.version.clone().unwrap_or_default(),
                    bytes: s.bytes.to_vec(),
                }
            })
            .collect()
    }
}

/// The FHIR base clients and references use: `DDCC_PUBLIC_BASE_URL` (with `/fhir`
/// appended unless it already ends so), else the local listener.
pub fn public_fhir_base(config: &crate::Config) -> String {
    match &config.server.public_base_url {
        Some(b) => format!("{}/fhir", b.trim_end_matches('/').trim_end_matches("/fhir")),
        None => format!("http://{}:{}/fhir", config.server.host, config.server.port),
    }
}

/// The publisher of our references: `DDCC_ISSUER_COUNTRY` (already in the config),
/// domain `DDCC`, and the base64 DER of the certificate in the PEM file named by
/// `DDCC_TLS_CERT`.
pub fn publisher_from_env(
    config: &crate::Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Publisher, ArtefactError> {
    let path = env(TLS_CERT_ENV)
        .filter(|p| !p.trim().is_empty())
        .ok_or(ArtefactError::MissingEnv(TLS_CERT_ENV))?;
    let tls_error = |message: String| ArtefactError::TlsCertificate {
        var: TLS_CERT_ENV,
        path: path.clone(),
        message,
    };
    let pem = std::fs::read_to_string(&path).map_err(|e| tls_error(e.to_string()))?;
    let der = ddcc_cert::x509::pem_decode("CERTIFICATE", &pem)
        .map_err(|e| tls_error(format!("no PEM CERTIFICATE block: {e}")))?;
    if der.first() != Some(&0x30) || der.len() < 64 {
        return Err(tls_error("the PEM block is not a DER certificate".into()));
    }
    Ok(Publisher {
        country: config.ddcc.issuer_country.clone(),
        domain: TRUST_DOMAIN.into(),
        ssl_public_key: base64::engine::general_purpose::STANDARD.encode(der),
    })
}

fn normalise_base(base: &str) -> Result<String, ArtefactError> {
    let b = base.trim().trim_end_matches('/');
    let rest = b
        .strip_prefix("https://")
        .or_else(|| b.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !b.chars().any(|c| c.is_whitespace()) => {
            Ok(b.to_string())
        }
        _ => Err(ArtefactError::PublicBase(base.to_string())),
    }
}

fn served_type(v: &Value) -> Option<&'static str> {
    let rt = v.get("resourceType").and_then(Value::as_str)?;
    SERVED_TYPES.iter().copied().find(|t| *t == rt)
}

fn read_json(path: &Path) -> Result<Value, ArtefactError> {
    let text = std::fs::read_to_string(path).map_err(|e| ArtefactError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| ArtefactError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<(), ArtefactError> {
    let rd = std::fs::read_dir(dir).map_err(|e| ArtefactError::Read {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut found = Vec::new();
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            files(&p, ext, &mut found)?;
        } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
            found.push(p);
        }
    }
    found.sort();
    out.extend(found);
    Ok(())
}

/// FHIR `id`: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Version order for id collisions: dot-separated numeric parts compare as numbers,
/// anything else as text; a missing version sorts lowest.
fn version_key(v: Option<&str>) -> Vec<(u64, String)> {
    v.map(|v| {
        v.split(['.', '-'])
            .map(|p| match p.parse::<u64>() {
                Ok(n) => (n, String::new()),
                Err(_) => (0, p.to_string()),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Decide the id each candidate is served under.
fn settle_ids(candidates: &[Candidate]) -> Result<Vec<(&Candidate, String)>, ArtefactError> {
    let mut groups: HashMap<(&str, &str), Vec<&Candidate>> = HashMap::new();
    for c in candidates {
        let id = str_field(&c.resource, "id").ok_or_else(|| ArtefactError::Invalid {
            path: c.path.clone(),
            message: format!("a served {} needs an id", c.resource_type),
        })?;
        if !is_fhir_id(id) {
            return Err(ArtefactError::Invalid {
                path: c.path.clone(),
                message: format!("{id:?} is not a FHIR id"),
            });
        }
        groups.entry((&c.resource_type, id)).or_default().push(c);
    }
    let mut out = Vec::with_capacity(candidates.len());
    let mut taken: HashMap<(String, String), &Path> = HashMap::new();
    let mut keys: Vec<_> = groups.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let mut group = groups.remove(&key).unwrap_or_default();
        // Highest version first; equal versions keep file order.
        group.sort_by(|a, b| {
            version_key(str_field(&b.resource, "version"))
                .cmp(&version_key(str_field(&a.resource, "version")))
                .then_with(|| a.path.cmp(&b.path))
        });
        for pair in group.windows(2) {
            if str_field(&pair[0].resource, "version") == str_field(&pair[1].resource, "version") {
                return Err(ArtefactError::Duplicate {
                    resource_type: pair[1].resource_type.clone(),
                    id: key.1.to_string(),
                    first: pair[0].path.clone(),
                    second: pair[1].path.clone(),
                });
            }
        }
        for (n, c) in group.into_iter().enumerate() {
            let id = if n == 0 {
                key.1.to_string()
            } else {
                let v: String = str_field(&c.resource, "version")
                    .unwrap_or("")
                    .chars()
                    .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '.' || *ch == '-')
                    .collect();
                format!("{}-{v}", key.1)
            };
            let slot = (c.resource_type.clone(), id.clone());
            if let Some(first) = taken.get(&slot) {
                return Err(ArtefactError::Duplicate {
                    resource_type: c.resource_type.clone(),
                    id,
                    first: first.to_path_buf(),
                    second: c.path.clone(),
                });
            }
            if !is_fhir_id(&id) {
                return Err(ArtefactError::Invalid {
                    path: c.path.clone(),
                    message: format!(
                        "{}/{} is also defined elsewhere and {id:?} is no FHIR id to serve this version under",
                        c.resource_type, key.1
                    ),
                });
            }
            taken.insert(slot, &c.path);
            out.push((c, id));
        }
    }
    Ok(out)
}

fn serve(c: &Candidate, id: String, public_base: &str) -> Result<Served, ArtefactError> {
    let mut resource = c.resource.clone();
    if let Some(obj) = resource.as_object_mut() {
        obj.insert("id".into(), Value::String(id.clone()));
    }
    let canonical =
        ddcc_cert::jcs::canonicalize(&resource).map_err(|e| ArtefactError::Invalid {
            path: c.path.clone(),
            message: format!("no canonical JSON form: {e}"),
        })?;
    let bytes = Bytes::from(canonical.into_bytes());
    let thumbprint = thumbprint(&bytes);
    Ok(Served {
        public_url: format!("{public_base}/{}/{id}", c.resource_type),
        etag: format!("W/\"{thumbprint}\""),
        thumbprint,
        resource_type: c.resource_type.clone(),
        url: str_field(&resource, "url").map(str::to_string),
        version: str_field(&resource, "version").map(str::to_string),
        name: str_field(&resource, "name").map(str::to_string),
        source: c.path.clone(),
        id,
        bytes,
        resource,
    })
}

/// Canonicals a PlanDefinition uses: `library[]` and, at any depth of `action`,
/// `definitionCanonical` (only those naming a served Library are followed).
fn plan_definition_canonicals(pd: &Value) -> Vec<String> {
    let mut out: Vec<String> = pd
        .get("library")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let mut stack: Vec<&Value> = pd
        .get("action")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // Bounded: a resource loaded from disk, but never trust nesting depth.
    let mut budget = 10_000usize;
    while let Some(action) = stack.pop() {
        budget = budget.saturating_sub(1);
        if budget == 0 {
            break;
        }
        if let Some(c) = action.get("definitionCanonical").and_then(Value::as_str) {
            out.push(c.to_string());
        }
        if let Some(a) = action.get("action").and_then(Value::as_array) {
            stack.extend(a.iter());
        }
    }
    out
}

/// Library canonicals a Library depends on (`relatedArtifact` of type `depends-on`).
fn library_dependencies(lib: &Value) -> Vec<String> {
    lib.get("relatedArtifact")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("depends-on"))
        .filter_map(|r| r.get("resource").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        assert!(version_key(Some("1.0.0")) > version_key(Some("0.2.1")));
        assert!(version_key(Some("0.10.0")) > version_key(Some("0.9.9")));
        assert!(version_key(Some("0.0.1")) > version_key(None));
    }

    #[test]
    fn base_must_be_http() {
        assert!(normalise_base("ftp://x").is_err());
        assert!(normalise_base("https://").is_err());
        assert_eq!(
            normalise_base("https://moh.example/fhir/").unwrap(),
            "https://moh.example/fhir"
        );
    }

    #[test]
    fn fhir_ids() {
        assert!(is_fhir_id("who-ddcc-vaccines-covid-19"));
        assert!(is_fhir_id("DDCCDocument-0.2.1"));
        assert!(!is_fhir_id("$expand"));
        assert!(!is_fhir_id(&"a".repeat(65)));
        assert!(!is_fhir_id(""));
    }
}
