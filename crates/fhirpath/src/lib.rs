//! FHIRPath (N1) over FHIR JSON.
