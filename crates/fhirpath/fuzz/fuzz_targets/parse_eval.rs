#![no_main]
//! Any text evaluated over a fixed DDCC-like Immunization: a result or an error,
//! never a panic. The input is split at the first NUL into an expression and an
//! optional JSON document, so the fuzzer can vary both.

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn base() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::json!({
            "resourceType": "Immunization",
            "id": "x",
            "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XM0GQ8"}]},
            "occurrenceDateTime": "2021-05-06T10:00:00+02:00",
            "protocolApplied": [{"doseNumberPositiveInt": 1, "seriesDosesString": "2"}],
            "extension": [{"url": "u", "valueDecimal": 1.50}, {"url": "v", "valueQuantity": {"value": 5, "unit": "mg"}}],
            "note": [{"text": "a b"}, {"text": "ü"}]
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (src, json) = match text.split_once('\0') {
        Some((s, j)) => (s, serde_json::from_str::<serde_json::Value>(j).ok()),
        None => (text, None),
    };
    let doc = json.as_ref().unwrap_or_else(|| base());
    if let Ok(items) = fhirpath::evaluate_str(src, doc) {
        for i in &items {
            let _ = i.to_json();
            let _ = i.fhir_type();
            let _ = i.to_fhirpath_string();
        }
    }
});
