//! Oracle (a): `QRespToVSCoreDataSet` on every QuestionnaireResponse in the
//! conformance corpus gives exactly the expected core data set of
//! `ddcc-ig/derived/expected-core-data-set/` (compared after dropping empty objects).

mod transform_support;

use fml::exec::transform;
use serde_json::Value;
use std::path::Path;
use transform_support::*;

const MAP: &str = "http://smart.who.int/ddcc/StructureMap/QRespToVSCoreDataSet";

fn find_qrs<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Object(m) => {
            if m.get("resourceType").and_then(Value::as_str) == Some("QuestionnaireResponse") {
                out.push(v);
                return;
            }
            m.values().for_each(|x| find_qrs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| find_qrs(x, out)),
        _ => {}
    }
}

#[test]
fn qresp_to_core_data_set_matches_expected() {
    let Some(conf) = conformance_dir() else {
        return;
    };
    let term = terminology(&conf, "terminology");
    let expected_dir = conf.join("ddcc-ig/derived/expected-core-data-set");
    let mut all_failures = 0;
    for (source, reg) in ig_registries(&conf) {
        let mut total = 0;
        let mut passed = 0;
        let mut failures = Vec::new();
        for file in json_files(&conf) {
            if file.starts_with(conf.join("ddcc-ig/derived")) {
                continue;
            }
            let doc = read_json(&file);
            let mut qrs = Vec::new();
            find_qrs(&doc, &mut qrs);
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            for qr in qrs {
                total += 1;
                let id = qr.get("id").and_then(Value::as_str).unwrap_or("");
                let by_file = expected_dir.join(format!("{stem}.expected.json"));
                let by_id = expected_dir.join(format!("QuestionnaireResponse-{id}.expected.json"));
                let label = file
                    .strip_prefix(&conf)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                let exp_path = [by_file, by_id].into_iter().find(|p| Path::exists(p));
                let Some(exp_path) = exp_path else {
                    failures.push(format!("{label} (QR {id}): no expected core data set"));
                    continue;
                };
                let expected = prune(&read_json(&exp_path));
                match transform(MAP, qr, &reg, &term) {
                    Err(e) => failures.push(format!("{label} (QR {id}): transform failed: {e}")),
                    Ok(actual) => {
                        let mut d = Vec::new();
                        diff(
                            expected.as_ref().unwrap_or(&Value::Null),
                            prune(&actual).as_ref().unwrap_or(&Value::Null),
                            "$",
                            &mut d,
                        );
                        if d.is_empty() {
                            passed += 1;
                        } else {
                            failures.push(format!(
                                "{label} (QR {id}) vs {}:\n    {}",
                                exp_path
                                    .file_name()
                                    .map(|f| f.to_string_lossy())
                                    .unwrap_or_default(),
                                d.join("\n    ")
                            ));
                        }
                    }
                }
            }
        }
        for f in &failures {
            println!("DIFF [{source}] {f}");
        }
        println!("{source}: {passed} of {total} passed");
        assert!(
            total >= 19,
            "expected at least 19 QuestionnaireResponses, found {total}"
        );
        all_failures += failures.len();
    }
    assert_eq!(all_failures, 0, "differences listed above");
}
