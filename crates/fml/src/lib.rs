//! FHIR Mapping Language engine.

pub mod exec;
pub mod model;
pub mod parse;
