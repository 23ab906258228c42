//! The public API: profile selection, OperationOutcome shape, aliases, terminology.

mod common;
use common::*;
use fhir_validator::{
    has_errors, to_operation_outcome, Membership, ProfileSet, Severity, Terminology, Validator,
    MESSAGE_ID_SYSTEM,
};
use serde_json::json;

fn patient() -> serde_json::Value {
    json!({
        "resourceType": "Patient",
        "name": [{"use": "official", "text": "Aulus Agerius"}],
        "birthDate": "2003-03-03"
    })
}

#[test]
fn profile_selection() {
    let v = validator();
    let mut p = patient();
    p.as_object_mut().unwrap().remove("birthDate");
    // No profile, no meta.profile: base checks only, the missing birthDate is fine.
    assert!(!has_errors(&v.validate(&p, None)));
    // Explicit profile.
    let issues = v.validate(&p, Some(&format!("{DDCC}DDCCPatient")));
    assert_eq!(errors(&issues).len(), 1, "{issues:?}");
    assert_eq!(issues[0].message_id, "CARDINALITY_MIN");
    assert_eq!(issues[0].location, "Patient.birthDate");
    // meta.profile.
    p["meta"] = json!({"profile": [format!("{DDCC}DDCCPatient")]});
    assert_eq!(errors(&v.validate(&p, None)).len(), 1);
    // Unknown meta.profile: a warning, not an error.
    p["meta"] = json!({"profile": ["http://example.org/StructureDefinition/Nope"]});
    let issues = v.validate(&p, None);
    assert!(!has_errors(&issues));
    assert!(issues
        .iter()
        .any(|i| i.message_id == "PROFILE_UNKNOWN" && i.severity == Severity::Warning));
    // Unknown explicit profile: an error (nothing was validated).
    let issues = v.validate(
        &patient(),
        Some("http://example.org/StructureDefinition/Nope"),
    );
    assert!(issues
        .iter()
        .any(|i| i.message_id == "PROFILE_UNKNOWN" && i.severity == Severity::Error));
    // A core base definition: base checks, type must match.
    assert!(!has_errors(&v.validate(
        &patient(),
        Some("http://hl7.org/fhir/StructureDefinition/Patient")
    )));
    let issues = v.validate(
        &patient(),
        Some("http://hl7.org/fhir/StructureDefinition/Bundle"),
    );
    assert_eq!(errors(&issues)[0].message_id, "PROFILE_TYPE_MISMATCH");
    // Profile for another type.
    let issues = v.validate(&patient(), Some(&format!("{DDCC}DDCCImmunization")));
    assert_eq!(errors(&issues)[0].message_id, "PROFILE_TYPE_MISMATCH");
}

#[test]
fn operation_outcome_shape() {
    let oo = to_operation_outcome(&[]);
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["severity"], "information");
    let v = validator();
    let mut p = patient();
    p["birthDate"] = json!("03/03/2003");
    let issues = v.validate(&p, Some(&format!("{DDCC}DDCCPatient")));
    let oo = to_operation_outcome(&issues);
    let i = &oo["issue"][0];
    assert_eq!(i["severity"], "error");
    assert_eq!(i["code"], "value");
    assert_eq!(i["details"]["coding"][0]["system"], MESSAGE_ID_SYSTEM);
    assert_eq!(i["details"]["coding"][0]["code"], "PRIMITIVE_FORMAT");
    assert_eq!(i["expression"][0], "Patient.birthDate");
    // The OperationOutcome we produce is itself base-valid.
    assert!(!has_errors(&v.validate(&oo, None)));
}

#[test]
fn aliases_resolve_profiles_and_extension_urls() {
    let mut set = profiles();
    set.add_base_alias("http://old.example/sd/", DDCC);
    assert!(set.get("http://old.example/sd/DDCCPatient").is_some());
    set.add_alias("http://x/renamed", format!("{DDCC}DDCCEventBrand"));
    assert_eq!(
        set.canonical("http://x/renamed"),
        format!("{DDCC}DDCCEventBrand")
    );
    let ihe =
        "http://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.ProvideDocumentBundleResponse";
    set.add_alias(ihe, "http://hl7.org/fhir/StructureDefinition/Bundle");
    let v = Validator::new(set, terminology());
    // An unloadable profile aliased onto its core resource: base checks only.
    let response = json!({"resourceType": "Bundle", "type": "transaction-response"});
    assert!(!has_errors(&v.validate(&response, Some(ihe))));
    assert!(has_errors(&v.validate(&patient(), Some(ihe))));
    let mut p = patient();
    p["meta"] = json!({"profile": ["http://old.example/sd/DDCCPatient"]});
    assert!(!has_errors(&v.validate(&p, None)));
}

#[test]
fn terminology_membership() {
    let t = terminology();
    let vs = "http://smart.who.int/ddcc/ValueSet/WHODDCCVaccinesCOVID19";
    assert_eq!(
        t.member(vs, Some("http://id.who.int/icd11/mms"), "XM0GQ8"),
        Membership::Member
    );
    assert_eq!(
        t.member(vs, Some("http://id.who.int/icd11/mms"), "NOPE"),
        Membership::NotMember
    );
    assert_eq!(
        t.member("http://example.org/vs", None, "x"),
        Membership::UnknownValueSet
    );
    assert_eq!(
        Terminology::with_r4_core().member(
            "http://hl7.org/fhir/ValueSet/bundle-type|4.0.1",
            None,
            "document"
        ),
        Membership::Member
    );
}

#[test]
fn required_binding_to_loaded_value_set_and_unknown_value_set_warning() {
    // A tiny profile with a required binding to a DDCC value set and one to an
    // unloaded value set, to exercise both paths.
    let sd = json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/sd/Coded",
        "name": "Coded", "kind": "resource", "type": "Basic",
        "snapshot": {"element": [
            {"id": "Basic", "path": "Basic", "min": 0, "max": "*"},
            {"id": "Basic.code", "path": "Basic.code", "min": 1, "max": "1",
             "type": [{"code": "CodeableConcept"}],
             "binding": {"strength": "required", "valueSet": "http://smart.who.int/ddcc/ValueSet/WHODDCCVaccinesCOVID19"}},
            {"id": "Basic.subject", "path": "Basic.subject", "min": 0, "max": "1",
             "type": [{"code": "Reference"}]},
            {"id": "Basic.language", "path": "Basic.language", "min": 0, "max": "1",
             "type": [{"code": "code"}],
             "binding": {"strength": "required", "valueSet": "http://example.org/vs/unknown"}}
        ]}
    });
    let mut set = ProfileSet::new();
    set.add(&sd).expect("profile compiles");
    let v = Validator::new(set, terminology());
    let ok = json!({"resourceType": "Basic", "code": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XM0GQ8"}]}});
    assert!(!has_errors(
        &v.validate(&ok, Some("http://example.org/sd/Coded"))
    ));
    let bad = json!({"resourceType": "Basic", "code": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XX"}]}, "language": "en"});
    let issues = v.validate(&bad, Some("http://example.org/sd/Coded"));
    let errs = errors(&issues);
    assert_eq!(errs.len(), 1, "{issues:?}");
    assert_eq!(
        (errs[0].message_id, errs[0].location.as_str()),
        ("BINDING_REQUIRED", "Basic.code")
    );
    assert!(issues.iter().any(|i| i.message_id == "VALUESET_UNKNOWN"
        && i.severity == Severity::Warning
        && i.location == "Basic.language"));
}

#[test]
fn profile_errors_are_typed() {
    let mut set = ProfileSet::new();
    assert!(set.add(&json!({"resourceType": "Patient"})).is_err());
    assert!(set
        .add(&json!({"resourceType": "StructureDefinition", "url": "x"}))
        .is_err());
    assert!(set.is_empty());
}

#[test]
fn validator_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Validator>();
    let v = validator();
    let p = patient();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| v.validate(&p, Some(&format!("{DDCC}DDCCPatient")))))
            .collect();
        for h in handles {
            assert!(!has_errors(&h.join().expect("no panic")));
        }
    });
}

#[test]
fn unprofiled_document_bundle_still_checks_references_and_entry_profiles() {
    let v = validator();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
             "resource": {"resourceType": "Composition", "subject": {"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"}}},
            {"fullUrl": "urn:uuid:33333333-3333-4333-8333-333333333333",
             "resource": {"resourceType": "Patient",
                          "meta": {"profile": [format!("{DDCC}DDCCPatient")]},
                          "name": [{"use": "official", "text": "A"}]}}
        ]
    });
    let issues = v.validate(&bundle, None);
    let got: Vec<(&str, &str)> = errors(&issues)
        .iter()
        .map(|i| (i.message_id, i.location.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("CARDINALITY_MIN", "Bundle.entry[1].resource.birthDate"),
            (
                "REFERENCE_UNRESOLVED",
                "Bundle.entry[0].resource.subject.reference"
            ),
        ]
    );
}

#[test]
fn every_emitted_message_id_is_documented() {
    // Scan the sources for message id literals (UPPER_SNAKE strings).
    let sources = [
        include_str!("../src/validate.rs"),
        include_str!("../src/types.rs"),
        include_str!("../src/issue.rs"),
    ];
    let documented: Vec<&str> = fhir_validator::MESSAGE_IDS.iter().map(|m| m.0).collect();
    let mut missing = Vec::new();
    for src in sources {
        for lit in src.split('"').skip(1).step_by(2) {
            let is_id = lit.len() > 3
                && lit.contains('_')
                && lit
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit());
            if is_id && !documented.contains(&lit) {
                missing.push(lit.to_string());
            }
        }
    }
    assert!(missing.is_empty(), "undocumented message ids: {missing:?}");
    // And the data-driven cases only expect documented ids.
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("data/mutations.json")).expect("mutations.json");
    for c in cases.as_array().expect("array") {
        let id = c["expect"][0].as_str().expect("id");
        assert!(documented.contains(&id), "{id} undocumented");
    }
}

#[test]
fn fixed_value_and_multiple_choice_types() {
    let sd = json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/sd/Fixed", "name": "Fixed", "kind": "resource", "type": "Observation",
        "snapshot": {"element": [
            {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
            {"id": "Observation.status", "path": "Observation.status", "min": 1, "max": "1",
             "type": [{"code": "code"}], "fixedCode": "final"},
            {"id": "Observation.code", "path": "Observation.code", "min": 1, "max": "1",
             "type": [{"code": "CodeableConcept"}],
             "fixedCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]}},
            {"id": "Observation.value[x]", "path": "Observation.value[x]", "min": 0, "max": "1",
             "type": [{"code": "string"}, {"code": "integer"}]}
        ]}
    });
    let mut set = ProfileSet::new();
    set.add(&sd).expect("compiles");
    let v = Validator::new(set, Terminology::with_r4_core());
    let url = Some("http://example.org/sd/Fixed");
    let ok = json!({"resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]}, "valueInteger": 3});
    assert!(!has_errors(&v.validate(&ok, url)));
    let ids = |doc: &serde_json::Value| -> Vec<(&'static str, String)> {
        errors(&v.validate(doc, url))
            .iter()
            .map(|i| (i.message_id, i.location.clone()))
            .collect()
    };
    let mut bad = ok.clone();
    bad["status"] = json!("preliminary");
    assert_eq!(
        ids(&bad),
        vec![("FIXED_MISMATCH", "Observation.status".to_string())]
    );
    let mut bad = ok.clone();
    // Fixed means exact: an extra text is a mismatch (a pattern would allow it).
    bad["code"]["text"] = json!("extra");
    assert_eq!(
        ids(&bad),
        vec![("FIXED_MISMATCH", "Observation.code".to_string())]
    );
    let mut bad = ok.clone();
    bad["valueString"] = json!("three");
    assert_eq!(
        ids(&bad),
        vec![("TYPE_CHOICE_MULTIPLE", "Observation.value".to_string())]
    );
}
