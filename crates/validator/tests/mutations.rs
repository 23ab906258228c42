//! Broken variants of valid IG examples, one defect each (tests/data/mutations.json):
//! each must yield exactly the expected error at the expected location.

mod common;
use common::*;
use serde_json::Value;

fn apply(doc: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op["op"].as_str().ok_or("op without kind")?;
    let path = op["path"].as_str().ok_or("op without path")?;
    let (parent_ptr, last) = path.rsplit_once('/').ok_or("bad pointer")?;
    let parent = doc
        .pointer_mut(parent_ptr)
        .ok_or_else(|| format!("no parent at {parent_ptr}"))?;
    match kind {
        "remove" => match parent {
            Value::Object(o) => o
                .shift_remove(last)
                .map(|_| ())
                .ok_or_else(|| format!("nothing at {path}")),
            Value::Array(a) => {
                let i: usize = last.parse().map_err(|_| "bad index")?;
                (i < a.len())
                    .then(|| {
                        a.remove(i);
                    })
                    .ok_or_else(|| format!("nothing at {path}"))
            }
            _ => Err(format!("cannot remove {path}")),
        },
        "set" => {
            let value = op["value"].clone();
            match parent {
                Value::Object(o) => {
                    o.insert(last.to_string(), value);
                    Ok(())
                }
                Value::Array(a) => {
                    let i: usize = last.parse().map_err(|_| "bad index")?;
                    let slot = a.get_mut(i).ok_or_else(|| format!("nothing at {path}"))?;
                    *slot = value;
                    Ok(())
                }
                _ => Err(format!("cannot set {path}")),
            }
        }
        "rename" => {
            let to = op["to"].as_str().ok_or("rename without to")?;
            let o = parent.as_object_mut().ok_or("rename in a non-object")?;
            let v = o
                .shift_remove(last)
                .ok_or_else(|| format!("nothing at {path}"))?;
            o.insert(to.to_string(), v);
            Ok(())
        }
        "append" => {
            let target = doc
                .pointer_mut(path)
                .and_then(Value::as_array_mut)
                .ok_or_else(|| format!("no array at {path}"))?;
            target.push(op["value"].clone());
            Ok(())
        }
        other => Err(format!("unknown op {other}")),
    }
}

#[test]
fn broken_variants_yield_exactly_the_expected_error() {
    let Some(shared) = shared() else {
        eprintln!("skip: conformance corpus not found (../shared or DDCC_SHARED)");
        return;
    };
    let ig = shared.join("conformance/ddcc-ig");
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mutations.json"),
        )
        .expect("mutations.json"),
    )
    .expect("mutations.json parses");
    let v = validator();
    let mut mismatches = 0;
    let mut ran = 0;
    let mut skipped = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap_or("?");
        if case["fhirpath"].as_bool() == Some(true) && !v.invariants_enabled() {
            skipped.push(name);
            continue;
        }
        let file = case["file"].as_str().expect("file");
        let dir = case["dir"].as_str().unwrap_or("examples");
        // Without a profile: the resource's own meta.profile.
        let profile = case["profile"].as_str();
        let mut doc = read_json(&ig.join(dir).join(file));
        // The original must be clean, or the defect is not the only one.
        let before = v.validate(&doc, profile);
        assert!(
            errors(&before).is_empty(),
            "{file} is not clean: {before:?}"
        );
        for op in case["ops"].as_array().expect("ops") {
            if let Err(e) = apply(&mut doc, op) {
                panic!("{name}: cannot apply {op}: {e}");
            }
        }
        ran += 1;
        let want_id = case["expect"][0].as_str().expect("expect id");
        let want_loc = case["expect"][1].as_str().expect("expect location");
        let issues = v.validate(&doc, profile);
        let errs = errors(&issues);
        let ok = errs.len() == 1 && errs[0].message_id == want_id && errs[0].location == want_loc;
        if !ok {
            mismatches += 1;
            println!("MISMATCH {name}: expected {want_id} at {want_loc}, got:");
            for e in &errs {
                println!("    {e}");
            }
            if errs.is_empty() {
                println!("    (no errors)");
            }
        }
    }
    println!(
        "{} cases, {ran} run, {mismatches} mismatches, {} skipped (need the FHIRPath engine): {:?}",
        cases.len(),
        skipped.len(),
        skipped
    );
    assert!(ran >= 40, "only {ran} variants ran");
    assert_eq!(mismatches, 0);
}
