//! FHIR profile validation.
