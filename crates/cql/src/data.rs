//! The patient data a rule runs on: one patient's resources, as cql-exec-fhir sees a
//! patient Bundle (every resource of a type is that patient's; the Patient is the
//! first Patient resource).

use crate::CqlError;
use serde_json::Value;

/// Upper bound on resources per patient: a certificate carries a handful, a hostile
/// Bundle must not make evaluation quadratic in something huge.
pub const MAX_RESOURCES: usize = 10_000;

/// One patient's resources (Patient, Immunizations, ...).
#[derive(Debug, Clone, Default)]
pub struct PatientData {
    resources: Vec<Value>,
}

impl PatientData {
    /// From a FHIR Bundle: every `entry.resource`. A document Bundle's Composition,
    /// Organizations etc. are kept; rules retrieve only the types they name.
    pub fn from_bundle(bundle: &Value) -> Result<PatientData, CqlError> {
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(CqlError::Data("not a Bundle".into()));
        }
        let entries = match bundle.get("entry") {
            None => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return Err(CqlError::Data("Bundle.entry is not an array".into())),
        };
        PatientData::from_resources(entries.iter().filter_map(|e| e.get("resource")).cloned())
    }

    /// From resources given one by one.
    pub fn from_resources(
        resources: impl IntoIterator<Item = Value>,
    ) -> Result<PatientData, CqlError> {
        let mut out = Vec::new();
        for r in resources {
            if r.get("resourceType").and_then(Value::as_str).is_none() {
                return Err(CqlError::Data("a resource without resourceType".into()));
            }
            if out.len() == MAX_RESOURCES {
                return Err(CqlError::Data(format!(
                    "more than {MAX_RESOURCES} resources for one patient"
                )));
            }
            out.push(r);
        }
        Ok(PatientData { resources: out })
    }

    /// Resources of one type, in the order given.
    pub fn of_type<'a>(&'a self, resource_type: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.get("resourceType").and_then(Value::as_str) == Some(resource_type))
    }

    pub fn resources(&self) -> &[Value] {
        &self.resources
    }
}
