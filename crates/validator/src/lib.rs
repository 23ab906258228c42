//! FHIR profile validation: FHIR JSON against StructureDefinition snapshots —
//! cardinality, types and choices, fixed/pattern values, slicing, bindings,
//! invariants (via the `fhirpath` crate) and references inside Bundles.
//!
//! Pure: loading from disk is a convenience ([`ProfileSet::load_dir`],
//! [`Terminology::add_dir`], [`Validator::load_ig`]); validation does no I/O.
//!
//! ```
//! use fhir_validator::{has_errors, ProfileSet, Terminology, Validator};
//! use serde_json::json;
//!
//! let mut profiles = ProfileSet::new();
//! profiles.add(&json!({
//!     "resourceType": "StructureDefinition",
//!     "url": "http://example.org/sd/Named", "name": "Named",
//!     "kind": "resource", "type": "Organization",
//!     "snapshot": {"element": [
//!         {"id": "Organization", "path": "Organization", "min": 0, "max": "*"},
//!         {"id": "Organization.name", "path": "Organization.name", "min": 1, "max": "1",
//!          "type": [{"code": "string"}]}
//!     ]}
//! })).unwrap();
//! let v = Validator::new(profiles, Terminology::with_r4_core());
//! let issues = v.validate(&json!({"resourceType": "Organization"}), Some("http://example.org/sd/Named"));
//! assert!(has_errors(&issues));
//! assert_eq!(issues[0].message_id, "CARDINALITY_MIN");
//! assert_eq!(issues[0].location, "Organization.name");
//! let outcome = v.validate_to_outcome(&json!({"resourceType": "Organization", "name": "WHO"}),
//!                                     Some("http://example.org/sd/Named"));
//! assert_eq!(outcome["issue"][0]["severity"], "information");
//! ```

mod issue;
mod profile;
pub mod questionnaire;
mod terminology;
mod types;
mod validate;

pub use issue::{
    has_errors, to_operation_outcome, Issue, IssueCode, Severity, MESSAGE_IDS, MESSAGE_ID_SYSTEM,
};
pub use profile::{Profile, ProfileError, ProfileSet};
pub use terminology::{Membership, Terminology};
pub use validate::{Validator, MAX_DEPTH};
