//! Evaluate FHIRPath expressions against a JSON file: `fp <file.json> <expr>...`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: fp <file.json> <expr>...");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let doc: serde_json::Value = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    for e in &args[2..] {
        match fhirpath::evaluate_str(e, &doc) {
            Ok(items) => {
                let out: Vec<serde_json::Value> = items.iter().map(|i| i.to_json()).collect();
                println!("{e} => {}", serde_json::Value::Array(out));
            }
            Err(err) => println!("{e} ERR {err}"),
        }
    }
}
