//! Parse all 21 FML maps of the DDCC IG (`../shared/conformance/ddcc-ig/maps`).
//! Skips with a message when the shared corpus is absent.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn ig_maps() -> Option<Vec<(String, String)>> {
    let shared = match std::env::var_os("DDCC_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let dir = shared.join("conformance/ddcc-ig/maps");
    let mut maps: Vec<(String, String)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "fml"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.file_name()?.to_string_lossy().into_owned(), text))
        })
        .collect();
    maps.sort();
    Some(maps)
}

fn bench(c: &mut Criterion) {
    let Some(maps) = ig_maps() else {
        eprintln!("SKIP: ../shared/conformance/ddcc-ig/maps not found (set DDCC_SHARED); nothing to benchmark");
        return;
    };
    let bytes: usize = maps.iter().map(|(_, t)| t.len()).sum();
    let mut group = c.benchmark_group("fml_parse");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("all_{}_ig_maps", maps.len()), |b| {
        b.iter(|| {
            for (name, text) in &maps {
                let map = fml::parse::parse_map(std::hint::black_box(text));
                assert!(map.is_ok(), "{name} failed to parse");
            }
        })
    });
    if let Some((name, text)) = maps.iter().find(|(n, _)| n == "QRespToVSCoreDataSet.fml") {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name.as_str(), |b| {
            b.iter(|| fml::parse::parse_map(std::hint::black_box(text)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
