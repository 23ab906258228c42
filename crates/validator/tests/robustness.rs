//! Hostile and malformed input: deep nesting is reported, not overflowed; no
//! replacement of any node of real documents by any JSON kind makes validation panic.

mod common;
use common::*;
use fhir_validator::has_errors;
use serde_json::{json, Value};

/// Wrap `inner` as `{ ...fields, key: [inner] }` by moving it (`json!` would
/// serialise a copy at every level, quadratic in the depth).
fn wrap(fields: Value, key: &str, inner: Value) -> Value {
    let mut obj = fields;
    if let Some(o) = obj.as_object_mut() {
        o.insert(key.to_string(), Value::Array(vec![inner]));
    }
    obj
}

fn nested_extension(depth: usize) -> Value {
    let mut v = json!({"url": "http://example.org/leaf", "valueString": "x"});
    for _ in 0..depth {
        v = wrap(json!({"url": "http://example.org/n"}), "extension", v);
    }
    v
}

/// Validate on a thread with a 2 MiB stack (the default for spawned threads): the
/// depth guard must hold there. Building and dropping the deep values happens on
/// the caller's big stack, because serde_json's own Drop recurses.
fn validate_on_small_stack(doc: &Value) -> (bool, bool) {
    let v = validator();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, || {
                let issues = v.validate(doc, None);
                (
                    issues.iter().any(|i| i.message_id == "DEPTH_EXCEEDED"),
                    has_errors(&issues),
                )
            })
            .expect("spawn")
            .join()
            .expect("validation must not overflow a 2 MiB stack")
    })
}

#[test]
fn deep_nesting_is_reported_not_overflowed() {
    let big = std::thread::Builder::new().stack_size(512 << 20).spawn(|| {
        let mut out = Vec::new();
        for depth in [10usize, 200, 2_000] {
            let patient = wrap(
                json!({
                    "resourceType": "Patient",
                    "meta": {"profile": [format!("{DDCC}DDCCPatient")]},
                    "name": [{"use": "official", "text": "A"}],
                    "birthDate": "2000-01-01",
                }),
                "extension",
                nested_extension(depth),
            );
            out.push(("profiled", depth, validate_on_small_stack(&patient)));
            // An unprofiled resource takes the untyped walk.
            let mut basic = json!({"resourceType": "Basic"});
            basic["code"] = nested_extension(depth);
            out.push(("untyped", depth, validate_on_small_stack(&basic)));
            // Resources nested in resources.
            let mut bundle = json!({"resourceType": "Bundle", "type": "collection"});
            for _ in 0..depth {
                let mut entry = serde_json::Map::new();
                entry.insert("resource".to_string(), bundle);
                bundle = wrap(
                    json!({"resourceType": "Bundle", "type": "collection"}),
                    "entry",
                    Value::Object(entry),
                );
            }
            out.push(("bundles", depth, validate_on_small_stack(&bundle)));
        }
        out
    });
    let results = big.expect("spawn").join().expect("no overflow");
    let mut wrong = 0;
    for (what, depth, (exceeded, errors)) in results {
        let expect = depth >= 200;
        println!("{what} depth {depth}: DEPTH_EXCEEDED {exceeded}, errors {errors}");
        if exceeded != expect || errors != expect {
            wrong += 1;
        }
    }
    assert_eq!(wrong, 0);
}

fn paths(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                // The narrative is a large opaque string; one replacement of it is enough.
                paths(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                paths(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn no_node_replacement_panics() {
    let Some(shared) = shared() else {
        eprintln!("skip: conformance corpus not found (../shared or DDCC_SHARED)");
        return;
    };
    let v = validator();
    let replacements = [
        json!(null),
        json!(0),
        json!(-1.5),
        json!(""),
        json!("x y"),
        json!([]),
        json!({}),
        json!(true),
        json!([{}]),
    ];
    let mut runs = 0;
    for file in [
        "Bundle-ExampleEnglish.json",
        "Bundle-DDCCTXSHEbundleexample1.json",
    ] {
        let doc = read_json(&shared.join("conformance/ddcc-ig/examples").join(file));
        let mut ps = Vec::new();
        paths(&doc, String::new(), &mut ps);
        for p in ps.iter().filter(|p| !p.is_empty()) {
            for r in &replacements {
                let mut d = doc.clone();
                if let Some(slot) = d.pointer_mut(p) {
                    *slot = r.clone();
                }
                let issues = v.validate(&d, None);
                // Every issue must carry a location (callers point users at it).
                assert!(issues.iter().all(|i| !i.location.is_empty()), "{file} {p}");
                runs += 1;
            }
        }
    }
    println!("{runs} mutated validations, no panic");
    assert!(runs > 1000);
}

#[test]
fn non_resources_are_errors_not_panics() {
    let v = validator();
    for x in [
        json!(null),
        json!(1),
        json!("Patient"),
        json!([]),
        json!({}),
        json!({"resourceType": 5}),
    ] {
        let issues = v.validate(&x, None);
        assert!(has_errors(&issues), "{x}: {issues:?}");
        let issues = v.validate(&x, Some(&format!("{DDCC}DDCCPatient")));
        assert!(has_errors(&issues), "{x} with profile: {issues:?}");
    }
}
