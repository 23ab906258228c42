//! FHIR profile validation: FHIR JSON against StructureDefinition snapshots —
//! cardinality, types and choices, fixed/pattern values, slicing, bindings,
//! invariants (via the `fhirpath` crate) and references inside Bundles.
//!
//! Pure: loading from disk is a convenience ([`ProfileSet::load_dir`],
//! [`Terminology::add_dir`]); validation does no I/O.

mod issue;
mod profile;
mod terminology;
mod types;
mod validate;

pub use issue::{has_errors, to_operation_outcome, Issue, IssueCode, Severity, MESSAGE_ID_SYSTEM};
pub use profile::{Profile, ProfileError, ProfileSet};
pub use terminology::{Membership, Terminology};
pub use validate::{Validator, MAX_DEPTH};
