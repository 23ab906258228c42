//! FHIR Mapping Language engine.
