//! FHIR Mapping Language engine: `parse` (FML text -> StructureMap JSON), `exec`
//! (run StructureMaps with Matchbox's semantics), `model` (type information).

pub mod exec;
pub mod model;
pub mod parse;
