//! ValueSet membership for bindings and `memberOf`: an adapter over the `terminology`
//! crate, which alone decides membership. It keeps the validator's four-way answer,
//! where "cannot tell" makes a binding check pass silently.

use crate::profile::{read_json_dir, ProfileError};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Member,
    NotMember,
    /// The value set is not loaded.
    UnknownValueSet,
    /// Loaded, but the answer depends on content that cannot be evaluated here
    /// (unsupported filters, external code systems): neither confirmed nor refuted.
    CannotTell,
}

#[derive(Debug, Default, Clone)]
pub struct Terminology {
    inner: terminology::Terminology,
}

impl From<terminology::Terminology> for Terminology {
    /// Shares content already loaded elsewhere (ConceptMaps and aliases included).
    fn from(inner: terminology::Terminology) -> Self {
        Self { inner }
    }
}

impl Terminology {
    pub fn new() -> Self {
        Self::default()
    }

    /// With the small R4 core enumerations DDCC profiles bind `required`.
    pub fn with_r4_core() -> Self {
        terminology::Terminology::with_r4_core().into()
    }

    /// Add a ValueSet or CodeSystem; other resources are ignored (returns false).
    pub fn add(&mut self, res: &Value) -> bool {
        matches!(
            res.get("resourceType").and_then(Value::as_str),
            Some("ValueSet" | "CodeSystem")
        ) && self.inner.add(res.clone()).is_ok()
    }

    /// Every ValueSet/CodeSystem `*.json` in `dir`; returns how many were added.
    pub fn add_dir(&mut self, dir: impl AsRef<Path>) -> Result<usize, ProfileError> {
        Ok(read_json_dir(dir.as_ref())?
            .iter()
            .filter(|(_, j)| self.add(j))
            .count())
    }

    pub fn has_value_set(&self, url: &str) -> bool {
        self.inner.has_value_set(url)
    }

    /// Is `code` (in `system`, when known) a member of `value_set`?
    pub fn member(&self, value_set: &str, system: Option<&str>, code: &str) -> Membership {
        match self.inner.contains(value_set, system, code) {
            Ok(true) => Membership::Member,
            Ok(false) => Membership::NotMember,
            Err(terminology::Error::UnknownValueSet(_)) => Membership::UnknownValueSet,
            Err(_) => Membership::CannotTell,
        }
    }
}
