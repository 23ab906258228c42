//! Validations per second of the English DDCC:VS document Bundle against
//! DDCCVSDocument, and of a Submit Health Event batch (a Parameters entry with a
//! QuestionnaireResponse carrying a ~31 kB narrative) against its request profile.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhir_validator::{ProfileSet, Terminology, Validator};
use std::path::PathBuf;

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let doc = shared.join("conformance/ddcc-ig/examples/Bundle-ExampleEnglish.json");
    let Ok(text) = std::fs::read_to_string(&doc) else {
        eprintln!("skip: {} not found (set DDCC_SHARED)", doc.display());
        return;
    };
    let Ok(bundle) = serde_json::from_str::<serde_json::Value>(&text) else {
        eprintln!("skip: {} is not JSON", doc.display());
        return;
    };
    let ig = root.join("fhir-profiles/ig");
    let Ok((profiles, _)) = ProfileSet::load_dir(ig.join("definitions")) else {
        eprintln!("skip: profiles not loadable");
        return;
    };
    let mut term = Terminology::with_r4_core();
    if term.add_dir(ig.join("terminology")).is_err() {
        eprintln!("skip: terminology not loadable");
        return;
    }
    let she_path = shared.join("conformance/ddcc-ig/examples/Bundle-DDCCTXSHEbundleexample1.json");
    let she: Option<serde_json::Value> = std::fs::read_to_string(&she_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let v = Validator::new(profiles, term);
    let profile = "http://smart.who.int/ddcc/StructureDefinition/DDCCVSDocument";
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("Bundle-ExampleEnglish/DDCCVSDocument", |b| {
        b.iter(|| v.validate(std::hint::black_box(&bundle), Some(profile)))
    });
    if let Some(she) = &she {
        let p = "http://smart.who.int/ddcc/StructureDefinition/DDCCSubmitHealthEventRequest";
        g.bench_function(
            "Bundle-DDCCTXSHEbundleexample1/DDCCSubmitHealthEventRequest",
            |b| b.iter(|| v.validate(std::hint::black_box(she), Some(p))),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
