//! Rule evaluation per verification: the three published use cases over one
//! patient's Bundle (Patient + 3 Immunizations), as `$verify-certificate` will run them.

use criterion::{criterion_group, criterion_main, Criterion};
use ddcc_cql::{PatientData, RuleSet};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut term = terminology::Terminology::new();
    let vs = root.join("fhir-profiles/ig/terminology/ValueSet-WHODDCCVaccinesCOVID19.json");
    term.add(serde_json::from_str(&std::fs::read_to_string(vs).expect("vs")).expect("json"))
        .expect("vs");
    let set = RuleSet::load(
        &root.join("cql"),
        &root.join("fhir-profiles/plandefinitions"),
    )
    .expect("rules")
    .with_terminology(Arc::new(term));
    let bundle: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/cql/patients/three-of-two-booster.json"))
            .expect("patient"),
    )
    .expect("json");
    c.bench_function("all three use cases, booster patient", |b| {
        b.iter(|| {
            let data = PatientData::from_bundle(black_box(&bundle)).expect("data");
            black_box(set.evaluate(None, &data).expect("rules"))
        })
    });
    let data = PatientData::from_bundle(&bundle).expect("data");
    for plan in ["travel-full-series", "venue-any-dose", "product-series"] {
        let canonical = format!("http://ddcc-mediator.org/fhir/PlanDefinition/{plan}");
        c.bench_function(plan, |b| {
            b.iter(|| black_box(set.evaluate(Some(&canonical), &data).expect("rule")))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
