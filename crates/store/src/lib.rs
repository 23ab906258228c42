//! FHIR resource store.
