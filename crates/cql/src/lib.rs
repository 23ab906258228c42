//! CQL business rules for the verifier: an interpreter for ELM (the JSON form the
//! CQL-to-ELM translator writes) over one patient's FHIR R4 resources, and the rule
//! set that PlanDefinitions bind to use cases.
//!
//! * [`elm::ElmLibrary`] — a library's declarations, indexed once.
//! * [`evaluate`] — every expression definition for one patient ([`PatientData`]).
//! * [`RuleSet`] — the published Libraries (`cql/Library-*.json`) and PlanDefinitions
//!   (`fhir-profiles/plandefinitions/`), evaluated by canonical URL.
//!
//! Pure: no I/O besides [`RuleSet::load`] reading its two directories; evaluation is
//! bounded in depth and steps and never panics on bad ELM or data.

pub mod data;
pub mod elm;
pub mod eval;
pub mod rules;
pub mod value;

pub use data::PatientData;
pub use elm::ElmLibrary;
pub use eval::{evaluate, evaluate_expression, EvalParams, Libraries};
pub use rules::{RuleResult, RuleSet};
pub use value::CqlValue;

/// Everything that can go wrong loading or running a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CqlError {
    /// The ELM is malformed (a missing field, an unknown name).
    #[error("invalid ELM: {0}")]
    Elm(String),
    /// The ELM uses something this interpreter does not implement.
    #[error("unsupported in ELM: {0}")]
    Unsupported(String),
    /// A runtime type error (e.g. a logical operator on a string).
    #[error("type error: {0}")]
    Type(String),
    /// An included library that was not loaded.
    #[error("library {0} is not loaded")]
    MissingLibrary(String),
    /// A value set a rule needs and the terminology cannot answer.
    #[error("value set {0}: {1}")]
    ValueSet(String, String),
    /// The patient data is unusable (not a Bundle, no resourceType, too large).
    #[error("patient data: {0}")]
    Data(String),
    /// Depth, step or size bound reached.
    #[error("evaluation limit: {0}")]
    Limit(String),
    /// Reading the rule directories.
    #[error("loading rules: {0}")]
    Load(String),
    /// A rule canonical that no loaded PlanDefinition or Library has.
    #[error("no rule with canonical {0}")]
    UnknownRule(String),
}
