//! `cargo run --release -p fhir-validator --example throughput -- <file.json> <profile> [n]`:
//! validations per second on one thread (a quick check beside the criterion bench).

use fhir_validator::Validator;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: throughput <file.json> <profile> [n]")?;
    let profile = args
        .next()
        .ok_or("usage: throughput <file.json> <profile> [n]")?;
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let ig = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fhir-profiles/ig");
    let v = Validator::load_ig(ig, |_| {})?;
    let res: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let first = v.validate(&res, Some(&profile));
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(v.validate(std::hint::black_box(&res), Some(&profile)));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n} validations in {secs:.3} s: {:.0}/s ({:.1} µs each), {} issue(s)",
        n as f64 / secs,
        secs * 1e6 / n as f64,
        first.len()
    );
    Ok(())
}
