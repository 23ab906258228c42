//! Resource type and id validation. Ids end up in URLs (`Location`, references), so
//! anything that could be read as a path segment other than an id is refused here, once,
//! before it reaches SQL or a response header.

use crate::StoreError;

pub fn is_resource_type(t: &str) -> bool {
    // A type outside R4 is a client error, not a new table.
    fhirpath::model::r4().is_resource_type(t)
}

pub fn check_type(t: &str) -> Result<(), StoreError> {
    if is_resource_type(t) {
        Ok(())
    } else {
        // Truncate so a hostile megabyte "type" is not echoed back whole.
        Err(StoreError::UnknownResourceType(
            t.chars().take(64).collect(),
        ))
    }
}

/// FHIR id: `[A-Za-z0-9\-\.]{1,64}`, minus the dot-only forms that are path segments.
pub fn check_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !id.contains("..")
        && id != ".";
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.chars().take(80).collect()))
    }
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r4_resource_types_only() {
        assert!(is_resource_type("DocumentReference"));
        assert!(!is_resource_type("Bogus"));
    }

    #[test]
    fn ids() {
        assert!(check_id("abc-1.2").is_ok());
        assert!(check_id(&"a".repeat(64)).is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a..b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
