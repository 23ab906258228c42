//! The issuers file (`DDCC_ISSUERS_FILE`, JSON or TOML by extension): which callers
//! belong to which issuing organisation, which Vault transit key (DSC) that
//! organisation signs with and with which AppRole, and which route groups each
//! caller may use. The caller's authenticated identity selects its issuer; nothing
//! in a request can.
//!
//! ```toml
//! [[issuer]]
//! id = "moh-a"
//! name = "Ministry of Health A"
//! country = "XA"
//! callers = ["oidc-client:emr-a", "cert-cn:emr-a.example.org", "openhim:emr-a"]
//! groups = ["issue", "register"]          # the default
//! [issuer.vault]
//! key = "dsc-moh-a"
//! role_id = "…"
//! secret_id_file = "/run/secrets/moh-a"   # or secret_id_env = "MOH_A_SECRET_ID"
//!
//! [[grant]]                                # callers that issue nothing
//! callers = ["oidc-role:ddcc-admin"]
//! groups = ["admin", "mapping-admin"]
//! ```
//!
//! Caller patterns: `oidc-client:<azp|client_id>`, `oidc-sub:<sub>`,
//! `oidc-role:<realm role>`, `oidc-role:<client>:<client role>`, `cert:<subject DN>`,
//! `cert-cn:<common name>`, `openhim:<client id>`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Caller, RouteGroup};

#[derive(Debug, thiserror::Error)]
pub enum IssuersError {
    #[error("cannot read the issuers file {path}: {message}")]
    Read { path: String, message: String },
    #[error("issuers file {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultIdentity {
    /// The transit key (DSC) this issuer signs with.
    pub key: String,
    /// AppRole role id; without it the global `VAULT_TOKEN`/AppRole is used (a
    /// warning: that token's policy is not limited to this issuer's key).
    pub role_id: Option<String>,
    pub secret_id_file: Option<PathBuf>,
    /// Name of the environment variable holding the secret id.
    pub secret_id_env: Option<String>,
    #[serde(default)]
    pub mount: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerEntry {
    pub id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub callers: Vec<String>,
    #[serde(default = "default_groups")]
    pub groups: Vec<RouteGroup>,
    pub vault: Option<VaultIdentity>,
}

fn default_groups() -> Vec<RouteGroup> {
    vec![RouteGroup::Issue, RouteGroup::Register]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub callers: Vec<String>,
    pub groups: Vec<RouteGroup>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuersFile {
    #[serde(default, rename = "issuer", alias = "issuers")]
    pub issuers: Vec<IssuerEntry>,
    #[serde(default, rename = "grant", alias = "grants")]
    pub grants: Vec<Grant>,
}

const KINDS: &[&str] = &[
    "oidc-client",
    "oidc-sub",
    "oidc-role",
    "cert",
    "cert-cn",
    "openhim",
];

impl IssuersFile {
    pub fn load(path: &Path) -> Result<Self, IssuersError> {
        let text = std::fs::read_to_string(path).map_err(|e| IssuersError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| IssuersError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let file: IssuersFile = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| invalid(e.to_string()))?
        } else {
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?
        };
        file.validate().map_err(invalid)?;
        Ok(file)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.issuers.is_empty() {
            return Err("no [[issuer]]".into());
        }
        let mut ids = std::collections::HashSet::new();
        for i in &self.issuers {
            if i.id.is_empty()
                || !i
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(format!("issuer id {:?} must be [A-Za-z0-9._-]+", i.id));
            }
            if !ids.insert(i.id.as_str()) {
                return Err(format!("issuer id {:?} appears twice", i.id));
            }
            if i.country.len() != 2 || !i.country.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "issuer {}: country must be ISO 3166-1 alpha-2",
                    i.id
                ));
            }
            if i.callers.is_empty() {
                return Err(format!("issuer {} has no callers", i.id));
            }
            if let Some(v) = &i.vault {
                if v.role_id.is_some() && v.secret_id_file.is_none() && v.secret_id_env.is_none() {
                    return Err(format!(
                        "issuer {}: vault.role_id needs secret_id_file or secret_id_env",
                        i.id
                    ));
                }
            }
        }
        let patterns = self
            .issuers
            .iter()
            .flat_map(|i| &i.callers)
            .chain(self.grants.iter().flat_map(|g| &g.callers));
        for p in patterns {
            let ok = p
                .split_once(':')
                .is_some_and(|(k, v)| KINDS.contains(&k) && !v.is_empty());
            if !ok {
                return Err(format!(
                    "caller pattern {p:?} must be <kind>:<value> with kind one of {}",
                    KINDS.join(", ")
                ));
            }
        }
        // The same identity in two issuers would let the caller's request, not its
        // identity, decide which key signs.
        for (n, a) in self.issuers.iter().enumerate() {
            for b in &self.issuers[n + 1..] {
                if let Some(p) = a.callers.iter().find(|p| b.callers.contains(p)) {
                    return Err(format!(
                        "caller {p:?} is listed under both {} and {}",
                        a.id, b.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// The issuers whose caller patterns match. More than one (e.g. through two
    /// roles) is refused by the caller of this function.
    pub fn issuers_of<'a>(&'a self, caller: &Caller) -> Vec<&'a IssuerEntry> {
        self.issuers
            .iter()
            .filter(|i| i.callers.iter().any(|p| caller.matches(p)))
            .collect()
    }

    /// Whether `caller` may use `group`: through its issuer, or through a grant.
    pub fn allows(&self, caller: &Caller, group: RouteGroup) -> bool {
        self.issuers_of(caller)
            .iter()
            .any(|i| i.groups.contains(&group))
            || self
                .grants
                .iter()
                .any(|g| g.groups.contains(&group) && g.callers.iter().any(|p| caller.matches(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IssuersFile, String> {
        let f: IssuersFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        f.validate()?;
        Ok(f)
    }

    #[test]
    fn validation_refuses_ambiguous_or_malformed_files() {
        let ok =
            r#"{"issuer": [{"id": "a", "name": "A", "country": "XA", "callers": ["openhim:a"]}]}"#;
        let f = parse(ok).expect("valid");
        assert_eq!(
            f.issuers[0].groups,
            vec![RouteGroup::Issue, RouteGroup::Register]
        );
        let bad = [
            (r#"{"issuer": []}"#, "no [[issuer]]"),
            (
                r#"{"issuer": [{"id": "a", "name": "A", "country": "XA", "callers": ["a"]}]}"#,
                "must be <kind>:<value>",
            ),
            (
                r#"{"issuer": [{"id": "a", "name": "A", "country": "XA", "callers": ["role:a"]}]}"#,
                "must be <kind>:<value>",
            ),
            (
                r#"{"issuer": [{"id": "a", "name": "A", "country": "xa", "callers": ["openhim:a"]}]}"#,
                "country",
            ),
            (
                r#"{"issuer": [{"id": "a/b", "name": "A", "country": "XA", "callers": ["openhim:a"]}]}"#,
                "issuer id",
            ),
            (
                r#"{"issuer": [{"id": "a", "name": "A", "country": "XA", "callers": ["openhim:a"]},
                               {"id": "b", "name": "B", "country": "XB", "callers": ["openhim:a"]}]}"#,
                "both a and b",
            ),
            (
                r#"{"issuer": [{"id": "a", "name": "A", "country": "XA", "callers": ["openhim:a"],
                                "vault": {"key": "k", "role_id": "r"}}]}"#,
                "secret_id",
            ),
        ];
        for (text, want) in bad {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
        assert!(parse(r#"{"issuer": [], "bogus": 1}"#).is_err());
    }
}
