//! Rough evaluation speed over the English QuestionnaireResponse:
//! `cargo run --release --example speed -- <QuestionnaireResponse.json>`.
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: speed <QuestionnaireResponse.json>");
        std::process::exit(2);
    };
    let doc: serde_json::Value =
        match std::fs::read_to_string(&path).map(|t| serde_json::from_str(&t)) {
            Ok(Ok(d)) => d,
            _ => {
                eprintln!("cannot read {path}");
                std::process::exit(2);
            }
        };
    let exprs = [
        "item.where(linkId = 'dose').answer.value",
        "item.where(linkId = 'vaccine').answer.value.code",
        "item.answer.value.ofType(date).max()",
        "item.where(linkId = 'name').answer.value.replaceMatches('$', ' ')",
        "(item.where(linkId = 'dose').answer.value.toInteger() + 1) > 1",
    ];
    for src in exprs {
        let e = match fhirpath::parse(src) {
            Ok(e) => e,
            Err(err) => {
                eprintln!("{src}: {err}");
                continue;
            }
        };
        let root = [fhirpath::Item::Node {
            value: &doc,
            type_name: Some("QuestionnaireResponse".into()),
        }];
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            let r = fhirpath::evaluate(&e, &root, &fhirpath::EmptyEnvironment);
            std::hint::black_box(r.ok());
        }
        let per = t.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(fhirpath::parse(src).ok());
        }
        let parse = t.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
        println!("{per:8.2} µs eval  {parse:6.2} µs parse  {src}");
    }
}
