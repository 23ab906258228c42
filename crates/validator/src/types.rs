//! FHIR primitive formats and a small table of R4 complex datatypes, for the
//! types whose definitions are not loaded (the R4 core package is not shipped).

use regex_lite::Regex;
use serde_json::Value;
use std::sync::LazyLock;

const YEAR: &str = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)";
const TIME: &str = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?";
const TZ: &str = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))";

fn re(src: String) -> Regex {
    // Only constants of this module reach here (covered by the unit tests), never input.
    Regex::new(&format!("^(?:{src})$")).expect("constant FHIR primitive regex")
}

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
    ))
});
static DATETIME: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{TIME}{TZ})?)?)?"
    ))
});
static INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"{YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{TIME}{TZ}"
    ))
});
static TIME_RE: LazyLock<Regex> = LazyLock::new(|| re(TIME.to_string()));
static CODE: LazyLock<Regex> = LazyLock::new(|| re(r"[^\s]+( [^\s]+)*".to_string()));
static ID: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9\-\.]{1,64}".to_string()));
static URI: LazyLock<Regex> = LazyLock::new(|| re(r"\S*".to_string()));
static OID: LazyLock<Regex> =
    LazyLock::new(|| re(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+".to_string()));
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    re(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".to_string())
});
static BASE64: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9\+/=\s]*".to_string()));

/// Is `code` a FHIR primitive type name (including FHIRPath System types)?
pub fn is_primitive(code: &str) -> bool {
    matches!(
        code,
        "boolean"
            | "integer"
            | "integer64"
            | "string"
            | "decimal"
            | "uri"
            | "url"
            | "canonical"
            | "base64Binary"
            | "instant"
            | "date"
            | "dateTime"
            | "time"
            | "code"
            | "oid"
            | "id"
            | "markdown"
            | "unsignedInt"
            | "positiveInt"
            | "uuid"
            | "xhtml"
    ) || code.starts_with("http://hl7.org/fhirpath/System.")
}

/// A primitive's problem: (message id, message).
pub type PrimitiveError = (&'static str, String);

/// Check a JSON value against a primitive type: JSON kind first, then the lexical form.
pub fn check_primitive(v: &Value, code: &str) -> Result<(), PrimitiveError> {
    let code = match code.strip_prefix("http://hl7.org/fhirpath/System.") {
        Some("String") => "string",
        Some("Boolean") => "boolean",
        Some("Integer") => "integer",
        Some("Decimal") => "decimal",
        Some("Date") => "date",
        Some("DateTime") => "dateTime",
        Some("Time") => "time",
        Some(_) => return Ok(()),
        None => code,
    };
    let wrong_kind = |want: &str| {
        Err((
            "TYPE_WRONG_JSON",
            format!(
                "expected a JSON {want} for FHIR type {code}, found {}",
                kind(v)
            ),
        ))
    };
    match code {
        "boolean" => {
            if !v.is_boolean() {
                return wrong_kind("boolean");
            }
            Ok(())
        }
        "integer" | "positiveInt" | "unsignedInt" => {
            let Some(n) = v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)) else {
                return if v.is_number() {
                    Err(("PRIMITIVE_FORMAT", format!("{v} is not a valid {code}")))
                } else {
                    wrong_kind("number")
                };
            };
            let ok = match code {
                "positiveInt" => (1..=i32::MAX as i64).contains(&n),
                "unsignedInt" => (0..=i32::MAX as i64).contains(&n),
                _ => (i32::MIN as i64..=i32::MAX as i64).contains(&n),
            };
            if ok {
                Ok(())
            } else {
                Err(("PRIMITIVE_FORMAT", format!("{n} is not a valid {code}")))
            }
        }
        "decimal" => {
            if !v.is_number() {
                return wrong_kind("number");
            }
            Ok(())
        }
        "integer64" => match v.as_str() {
            Some(s) if s.parse::<i64>().is_ok() => Ok(()),
            Some(s) => Err((
                "PRIMITIVE_FORMAT",
                format!("'{s}' is not a valid integer64"),
            )),
            None => wrong_kind("string"),
        },
        _ => {
            let Some(s) = v.as_str() else {
                return wrong_kind("string");
            };
            if s.is_empty() {
                return Err((
                    "PRIMITIVE_EMPTY",
                    format!("a {code} value must not be empty"),
                ));
            }
            let rx: Option<&Regex> = match code {
                "date" => Some(&DATE),
                "dateTime" => Some(&DATETIME),
                "instant" => Some(&INSTANT),
                "time" => Some(&TIME_RE),
                "code" => Some(&CODE),
                "id" => Some(&ID),
                "uri" | "url" | "canonical" => Some(&URI),
                "oid" => Some(&OID),
                "uuid" => Some(&UUID),
                "base64Binary" => Some(&BASE64),
                _ => None,
            };
            match rx {
                Some(rx) if !rx.is_match(s) => Err((
                    "PRIMITIVE_FORMAT",
                    format!("'{}' is not a valid {code}", truncate(s)),
                )),
                _ => Ok(()),
            }
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 60 {
        let mut t: String = s.chars().take(60).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One element of a built-in datatype: name (`value[x]` for choices), allowed
/// type codes (`*` = any), min, whether repeating, required value set.
pub struct BuiltinElement {
    pub name: &'static str,
    pub types: &'static [&'static str],
    pub min: u32,
    pub many: bool,
    pub required_vs: Option<&'static str>,
}

const fn el(
    name: &'static str,
    types: &'static [&'static str],
    min: u32,
    many: bool,
    required_vs: Option<&'static str>,
) -> BuiltinElement {
    BuiltinElement {
        name,
        types,
        min,
        many,
        required_vs,
    }
}

macro_rules! vs {
    ($n:literal) => {
        Some(concat!("http://hl7.org/fhir/ValueSet/", $n))
    };
}

static CODING: &[BuiltinElement] = &[
    el("system", &["uri"], 0, false, None),
    el("version", &["string"], 0, false, None),
    el("code", &["code"], 0, false, None),
    el("display", &["string"], 0, false, None),
    el("userSelected", &["boolean"], 0, false, None),
];
static CODEABLE_CONCEPT: &[BuiltinElement] = &[
    el("coding", &["Coding"], 0, true, None),
    el("text", &["string"], 0, false, None),
];
static IDENTIFIER: &[BuiltinElement] = &[
    el("use", &["code"], 0, false, vs!("identifier-use")),
    el("type", &["CodeableConcept"], 0, false, None),
    el("system", &["uri"], 0, false, None),
    el("value", &["string"], 0, false, None),
    el("period", &["Period"], 0, false, None),
    el("assigner", &["Reference"], 0, false, None),
];
static REFERENCE: &[BuiltinElement] = &[
    el("reference", &["string"], 0, false, None),
    el("type", &["uri"], 0, false, None),
    el("identifier", &["Identifier"], 0, false, None),
    el("display", &["string"], 0, false, None),
];
static PERIOD: &[BuiltinElement] = &[
    el("start", &["dateTime"], 0, false, None),
    el("end", &["dateTime"], 0, false, None),
];
static QUANTITY: &[BuiltinElement] = &[
    el("value", &["decimal"], 0, false, None),
    el(
        "comparator",
        &["code"],
        0,
        false,
        vs!("quantity-comparator"),
    ),
    el("unit", &["string"], 0, false, None),
    el("system", &["uri"], 0, false, None),
    el("code", &["code"], 0, false, None),
];
static HUMAN_NAME: &[BuiltinElement] = &[
    el("use", &["code"], 0, false, vs!("name-use")),
    el("text", &["string"], 0, false, None),
    el("family", &["string"], 0, false, None),
    el("given", &["string"], 0, true, None),
    el("prefix", &["string"], 0, true, None),
    el("suffix", &["string"], 0, true, None),
    el("period", &["Period"], 0, false, None),
];
static EXTENSION: &[BuiltinElement] = &[
    el("url", &["uri"], 1, false, None),
    el("value[x]", &["*"], 0, false, None),
];
static META: &[BuiltinElement] = &[
    el("versionId", &["id"], 0, false, None),
    el("lastUpdated", &["instant"], 0, false, None),
    el("source", &["uri"], 0, false, None),
    el("profile", &["canonical"], 0, true, None),
    el("security", &["Coding"], 0, true, None),
    el("tag", &["Coding"], 0, true, None),
];
static NARRATIVE: &[BuiltinElement] = &[
    el("status", &["code"], 1, false, vs!("narrative-status")),
    el("div", &["xhtml"], 1, false, None),
];
static ATTACHMENT: &[BuiltinElement] = &[
    el("contentType", &["code"], 0, false, None),
    el("language", &["code"], 0, false, None),
    el("data", &["base64Binary"], 0, false, None),
    el("url", &["url"], 0, false, None),
    el("size", &["unsignedInt"], 0, false, None),
    el("hash", &["base64Binary"], 0, false, None),
    el("title", &["string"], 0, false, None),
    el("creation", &["dateTime"], 0, false, None),
];
static CONTACT_POINT: &[BuiltinElement] = &[
    el("system", &["code"], 0, false, vs!("contact-point-system")),
    el("value", &["string"], 0, false, None),
    el("use", &["code"], 0, false, vs!("contact-point-use")),
    el("rank", &["positiveInt"], 0, false, None),
    el("period", &["Period"], 0, false, None),
];
static ADDRESS: &[BuiltinElement] = &[
    el("use", &["code"], 0, false, vs!("address-use")),
    el("type", &["code"], 0, false, vs!("address-type")),
    el("text", &["string"], 0, false, None),
    el("line", &["string"], 0, true, None),
    el("city", &["string"], 0, false, None),
    el("district", &["string"], 0, false, None),
    el("state", &["string"], 0, false, None),
    el("postalCode", &["string"], 0, false, None),
    el("country", &["string"], 0, false, None),
    el("period", &["Period"], 0, false, None),
];
static ANNOTATION: &[BuiltinElement] = &[
    el("author[x]", &["Reference", "string"], 0, false, None),
    el("time", &["dateTime"], 0, false, None),
    el("text", &["markdown"], 1, false, None),
];

/// The elements of a known complex datatype (without `id` and `extension`, which
/// every datatype has).
pub fn builtin_datatype(code: &str) -> Option<&'static [BuiltinElement]> {
    Some(match code {
        "Coding" => CODING,
        "CodeableConcept" => CODEABLE_CONCEPT,
        "Identifier" => IDENTIFIER,
        "Reference" => REFERENCE,
        "Period" => PERIOD,
        "Quantity" | "SimpleQuantity" | "Age" | "Duration" | "Count" | "Distance"
        | "MoneyQuantity" => QUANTITY,
        "HumanName" => HUMAN_NAME,
        "Extension" => EXTENSION,
        "Meta" => META,
        "Narrative" => NARRATIVE,
        "Attachment" => ATTACHMENT,
        "ContactPoint" => CONTACT_POINT,
        "Address" => ADDRESS,
        "Annotation" => ANNOTATION,
        _ => return None,
    })
}

/// Every type name that may follow a choice prefix (`value` + `String`), for
/// `value[x]` elements that allow any type.
pub fn is_known_type(code: &str) -> bool {
    is_primitive(code)
        || builtin_datatype(code).is_some()
        || matches!(
            code,
            "Money"
                | "Range"
                | "Ratio"
                | "SampledData"
                | "Signature"
                | "Timing"
                | "ContactDetail"
                | "Contributor"
                | "DataRequirement"
                | "Expression"
                | "ParameterDefinition"
                | "RelatedArtifact"
                | "TriggerDefinition"
                | "UsageContext"
                | "Dosage"
        )
}

/// `String` -> `string`, `DateTime` -> `dateTime`, `CodeableConcept` unchanged.
pub fn type_from_suffix(suffix: &str) -> String {
    let lower = {
        let mut c = suffix.chars();
        match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    };
    if is_primitive(&lower) {
        lower
    } else {
        suffix.to_string()
    }
}

/// `dateTime` -> `DateTime`: the suffix a type gives a choice element.
pub fn suffix_of(code: &str) -> String {
    let code = match code.strip_prefix("http://hl7.org/fhirpath/System.") {
        Some(s) => return s.to_string(),
        None => code,
    };
    let mut c = code.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The R4 (4.0.1) resource types, for `resourceType` checks without the core package.
pub const R4_RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        let ok = |v: Value, t: &str| check_primitive(&v, t).is_ok();
        assert!(ok(json!("2021-06-03"), "date"));
        assert!(ok(json!("2021"), "date"));
        assert!(!ok(json!("2021-13-01"), "date"));
        assert!(!ok(json!("03/06/2021"), "date"));
        assert!(ok(json!("2021-06-03T13:28:17-05:00"), "dateTime"));
        assert!(!ok(json!("2021-06-03T13:28:17"), "dateTime"));
        assert!(ok(json!("2021-06-03T13:28:17.123Z"), "instant"));
        assert!(!ok(json!("2021-06-03"), "instant"));
        assert!(ok(json!("12:00:00"), "time"));
        assert!(ok(json!("abc-1.2"), "id"));
        assert!(!ok(json!("abc_1"), "id"));
        assert!(!ok(json!("a  b"), "code"));
        assert!(ok(json!(1), "positiveInt"));
        assert!(!ok(json!(0), "positiveInt"));
        assert!(ok(json!(0), "unsignedInt"));
        assert!(!ok(json!(-1), "unsignedInt"));
        assert!(!ok(json!("1"), "integer"));
        assert!(!ok(json!(1.5), "integer"));
        assert!(ok(json!(1.5), "decimal"));
        assert!(!ok(json!("true"), "boolean"));
        assert!(!ok(json!(""), "string"));
        assert!(ok(json!("x"), "http://hl7.org/fhirpath/System.String"));
        assert!(!ok(json!("has space"), "uri"));
        assert!(ok(json!("urn:oid:1.2.3"), "oid"));
    }

    #[test]
    fn suffixes() {
        assert_eq!(type_from_suffix("DateTime"), "dateTime");
        assert_eq!(type_from_suffix("CodeableConcept"), "CodeableConcept");
        assert_eq!(suffix_of("positiveInt"), "PositiveInt");
        assert_eq!(suffix_of("http://hl7.org/fhirpath/System.String"), "String");
    }
}
