use fml::exec::{transform, LocalTerminology, MapRegistry};
use serde_json::Value;
use std::path::Path;
fn jsons(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
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
    out
}
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn main() {
    let ig = Path::new("/work/shared/conformance/ddcc-ig");
    let mut reg = MapRegistry::new();
    for sd in jsons(&ig.join("definitions")) {
        if sd.get("resourceType").and_then(Value::as_str) == Some("StructureDefinition") {
            reg.add_structure_definition(&sd).unwrap();
        }
    }
    for m in jsons(&ig.join("structuremaps-compiled")) {
        reg.add_map(&m).unwrap();
    }
    let mut term = LocalTerminology::new();
    for r in jsons(&ig.join("terminology")) {
        term.add_resource(&r);
    }
    let qr: Value = serde_json::from_str(
        &std::fs::read_to_string(
            ig.join("examples/QuestionnaireResponse-DDCCVSQuestionnaireResponseExample.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3000);
    for (name, both) in [("qr", false), ("both", true)] {
        let c0 = cpu();
        for _ in 0..n {
            let cds = transform(
                "http://smart.who.int/ddcc/StructureMap/QRespToVSCoreDataSet",
                &qr,
                &reg,
                &term,
            )
            .unwrap();
            if both {
                transform(
                    "http://smart.who.int/ddcc/StructureMap/CoreDataSetVSToAddBundle",
                    &cds,
                    &reg,
                    &term,
                )
                .unwrap();
            }
        }
        println!(
            "{name}: {:.1} us CPU per iteration",
            (cpu() - c0) * 1e6 / n as f64
        );
    }
}
