//! The IG's main flow, QRespToVSCoreDataSet then CoreDataSetVSToAddBundle, on the
//! six example QuestionnaireResponses: the transaction Bundle has the entries and
//! links the map writes (checked against the map text, since the IG keeps no output).

mod transform_support;

use fml::exec::{transform, transform_with, TransformOptions};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use transform_support::*;

const QR_MAP: &str = "http://smart.who.int/ddcc/StructureMap/QRespToVSCoreDataSet";
const BUNDLE_MAP: &str = "http://smart.who.int/ddcc/StructureMap/CoreDataSetVSToAddBundle";

fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match seg.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(seg)?,
        };
    }
    Some(cur)
}

#[test]
fn main_flow_builds_transaction_bundle() {
    let Some(conf) = conformance_dir() else {
        return;
    };
    let reg = ig_registry(&conf);
    let term = terminology(&conf, "terminology");
    let mut total = 0;
    let mut passed = 0;
    let mut failures = Vec::new();
    for file in json_files(&conf.join("ddcc-ig/examples")) {
        let name = file.file_name().and_then(|s| s.to_str()).unwrap_or("");
        if !name.starts_with("QuestionnaireResponse-") {
            continue;
        }
        total += 1;
        let qr = read_json(&file);
        let counter = AtomicUsize::new(0);
        let opts = TransformOptions {
            uuid: Some(Box::new(move || {
                format!(
                    "00000000-0000-4000-8000-{:012}",
                    counter.fetch_add(1, Ordering::SeqCst)
                )
            })),
            now: None,
        };
        let cds = match transform(QR_MAP, &qr, &reg, &term) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: QRespToVSCoreDataSet: {e}"));
                continue;
            }
        };
        let bundle = match transform_with(BUNDLE_MAP, &cds, &reg, &term, &opts) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: CoreDataSetVSToAddBundle: {e}"));
                continue;
            }
        };
        let pid = "00000000-0000-4000-8000-000000000000";
        let iid = "00000000-0000-4000-8000-000000000002";
        let expect: Vec<(&str, Value)> = vec![
            ("resourceType", "Bundle".into()),
            ("type", "transaction".into()),
            ("entry.0.fullUrl", format!("urn:uuid:{pid}").into()),
            ("entry.0.request.method", "PUT".into()),
            ("entry.0.request.url", format!("Patient/{pid}").into()),
            ("entry.0.resource.resourceType", "Patient".into()),
            ("entry.0.resource.id", pid.into()),
            (
                "entry.0.resource.name.0.text",
                get(&cds, "name").cloned().unwrap_or_default(),
            ),
            (
                "entry.0.resource.birthDate",
                get(&cds, "birthDate").cloned().unwrap_or_default(),
            ),
            ("entry.1.resource.resourceType", "Composition".into()),
            (
                "entry.1.resource.subject.reference",
                format!("Patient/{pid}").into(),
            ),
            (
                "entry.1.resource.section.0.entry.0.reference",
                format!("Immunization/{iid}").into(),
            ),
            ("entry.2.resource.resourceType", "DocumentReference".into()),
            (
                "entry.2.resource.content.2.attachment.contentType",
                "application/pdf".into(),
            ),
            (
                "entry.3.resource.description",
                "DCC QR code for COVID 19 Vaccine Certificate".into(),
            ),
            ("entry.4.resource.resourceType", "Immunization".into()),
            ("entry.4.resource.id", iid.into()),
            ("entry.4.resource.status", "completed".into()),
            (
                "entry.4.resource.occurrenceDateTime",
                get(&cds, "vaccination.date").cloned().unwrap_or_default(),
            ),
            (
                "entry.4.resource.vaccineCode.coding.0",
                get(&cds, "vaccination.vaccine")
                    .cloned()
                    .unwrap_or_default(),
            ),
            (
                "entry.4.resource.protocolApplied.0.doseNumberPositiveInt",
                get(&cds, "vaccination.dose").cloned().unwrap_or_default(),
            ),
            (
                "entry.4.resource.extension.0.url",
                "http://smart.who.int/ddcc/StructureDefinition/DDCCVaccineBrand".into(),
            ),
            (
                "entry.4.resource.extension.0.valueCoding",
                get(&cds, "vaccination.brand").cloned().unwrap_or_default(),
            ),
            (
                "entry.4.resource.extension.2.valueCode",
                get(&cds, "vaccination.country.code")
                    .cloned()
                    .unwrap_or_default(),
            ),
            (
                "entry.5.resource.resourceType",
                "ImmunizationRecommendation".into(),
            ),
            (
                "entry.5.resource.recommendation.0.doseNumberInteger",
                Value::from(
                    get(&cds, "vaccination.dose")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        + 1,
                ),
            ),
        ];
        let before = failures.len();
        for (path, want) in expect {
            let got = get(&bundle, path);
            if got != Some(&want) {
                failures.push(format!("{name}: {path}: expected {want}, got {got:?}"));
            }
        }
        if get(&bundle, "entry.6").is_some() {
            failures.push(format!("{name}: more than 6 entries"));
        }
        if failures.len() == before {
            passed += 1;
        }
    }
    for f in &failures {
        println!("DIFF {f}");
    }
    println!("{passed} of {total} passed");
    assert!(
        total == 6,
        "expected 6 example QuestionnaireResponses, found {total}"
    );
    assert!(failures.is_empty(), "{} differences", failures.len());
}
