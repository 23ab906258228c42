//! `cargo run -p fhir-validator --example validate_file -- <file.json> [profile]`:
//! prints the issues for one resource, validated with the vendored IG artefacts.

use fhir_validator::Validator;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: validate_file <file.json> [profile]")?;
    let profile = args.next();
    let ig = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fhir-profiles/ig");
    let v = Validator::load_ig(ig, |_| {})?;
    let res: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let issues = v.validate(&res, profile.as_deref());
    for i in &issues {
        println!("{i}");
    }
    println!("{} issue(s)", issues.len());
    Ok(())
}
