//! The main flow in process: QuestionnaireResponse -> core data set
//! (QRespToVSCoreDataSet) -> transaction Bundle (CoreDataSetVSToAddBundle), on the
//! IG's English example, with maps compiled once (as the service caches them).
//! Needs the conformance corpus (`../shared` or `$DDCC_SHARED`); skips without it.

use criterion::{criterion_group, criterion_main, Criterion};
use fml::exec::{transform, LocalTerminology, MapRegistry};
use serde_json::Value;
use std::hint::black_box;
use std::path::{Path, PathBuf};

const QR_MAP: &str = "http://smart.who.int/ddcc/StructureMap/QRespToVSCoreDataSet";
const BUNDLE_MAP: &str = "http://smart.who.int/ddcc/StructureMap/CoreDataSetVSToAddBundle";

fn ig_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let d = shared.join("conformance/ddcc-ig");
    d.is_dir().then_some(d)
}

fn jsons(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Some(v) = std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|t| serde_json::from_str(t.trim_start_matches('\u{feff}')).ok())
                {
                    out.push(v);
                }
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let Some(ig) = ig_dir() else {
        eprintln!("SKIP: conformance corpus not found (set DDCC_SHARED)");
        return;
    };
    let mut reg = MapRegistry::new();
    for sd in jsons(&ig.join("definitions")) {
        if sd.get("resourceType").and_then(Value::as_str) == Some("StructureDefinition") {
            reg.add_structure_definition(&sd).expect("definition");
        }
    }
    for m in jsons(&ig.join("structuremaps-compiled")) {
        reg.add_map(&m).expect("map");
    }
    let mut term = LocalTerminology::new();
    for r in jsons(&ig.join("terminology")) {
        term.add_resource(&r);
    }
    let qr: Value = serde_json::from_str(
        &std::fs::read_to_string(
            ig.join("examples/QuestionnaireResponse-DDCCVSQuestionnaireResponseExample.json"),
        )
        .expect("example"),
    )
    .expect("json");

    c.bench_function("QRespToVSCoreDataSet", |b| {
        b.iter(|| transform(QR_MAP, black_box(&qr), &reg, &term).expect("transform"))
    });
    let cds = transform(QR_MAP, &qr, &reg, &term).expect("transform");
    c.bench_function("CoreDataSetVSToAddBundle", |b| {
        b.iter(|| transform(BUNDLE_MAP, black_box(&cds), &reg, &term).expect("transform"))
    });
    c.bench_function("main flow (both maps)", |b| {
        b.iter(|| {
            let cds = transform(QR_MAP, black_box(&qr), &reg, &term).expect("transform");
            transform(BUNDLE_MAP, &cds, &reg, &term).expect("transform")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
