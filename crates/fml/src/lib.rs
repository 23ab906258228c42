//! FHIR Mapping Language engine.

pub mod parse;
