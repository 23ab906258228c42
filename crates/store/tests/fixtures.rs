//! Data-driven: the DDCC compliance-testing-framework fixtures (from `../shared`) run
//! through the store as the HTTP layer will use it. Transaction bundles convert and commit
//! (every response location readable), `-400` bundles are refused with 400, document
//! bundles store and read back unchanged, the unknown-type body is refused with 404.
//! Every difference is printed, then the test asserts there were none.

use std::path::{Path, PathBuf};

use ddcc_store::bundle::{transaction_response, tx_request_from_bundle};
use ddcc_store::{SqliteStore, Store};
use serde_json::Value;

fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("DDCC_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    dir.is_dir().then_some(dir)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

/// Drops `id` and `meta` (which the server owns) for comparing a stored body.
fn without_server_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("meta");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_fixtures_through_the_store() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared not found (set DDCC_SHARED)");
        return;
    };
    let fixtures = shared.join("conformance/compliance-testing-framework/features/fixtures");
    let mut files = Vec::new();
    json_files(&fixtures, &mut files);
    assert!(
        !files.is_empty(),
        "no fixtures under {}",
        fixtures.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let mut differences = Vec::new();
    let mut checked = 0;
    for f in &files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(f).expect("read fixture"))
        else {
            differences.push(format!("{name}: not JSON"));
            continue;
        };
        let rt = v
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let expect_400 = name.contains("-400");
        match (rt, ty) {
            ("Bundle", "transaction") | ("Bundle", "") if name.starts_with("Bundle-Provide") => {
                checked += 1;
                let outcome = match tx_request_from_bundle(&v) {
                    Ok(req) => store
                        .transaction(req)
                        .await
                        .map(|r| (r, v["entry"].as_array().map_or(0, Vec::len))),
                    Err(e) => Err(e),
                };
                match (outcome, expect_400) {
                    (Err(e), true) if e.http_status() == 400 => {}
                    (Err(e), true) => differences.push(format!(
                        "{name}: expected 400, got {} ({e})",
                        e.http_status()
                    )),
                    (Ok(_), true) => differences.push(format!("{name}: expected 400, got success")),
                    (Err(e), false) => differences.push(format!("{name}: {e}")),
                    (Ok((results, n)), false) => {
                        if results.len() != n {
                            differences
                                .push(format!("{name}: {} results for {n} entries", results.len()));
                        }
                        let resp = transaction_response(&results);
                        for (i, r) in results.iter().enumerate() {
                            if resp["entry"][i]["response"]["location"] != r.location.as_str() {
                                differences.push(format!("{name}: response entry {i} location"));
                            }
                            if let Err(e) = store.vread(&r.resource_type, &r.id, r.version_id).await
                            {
                                differences.push(format!("{name}: GET {}: {e}", r.location));
                            }
                        }
                        // Relative references to absolute-fullUrl entries now point at
                        // the ids the server assigned.
                        if let Some(list) = results.iter().find(|r| r.resource_type == "List") {
                            let body = store
                                .read("List", &list.id)
                                .await
                                .map(|s| s.resource)
                                .unwrap_or_default();
                            let subject = body["subject"]["reference"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let patient = results.iter().find(|r| r.resource_type == "Patient");
                            if let Some(p) = patient {
                                if subject != format!("Patient/{}", p.id) {
                                    differences.push(format!("{name}: List.subject `{subject}` not rewritten to Patient/{}", p.id));
                                }
                            }
                        }
                    }
                }
            }
            ("Bundle", "document") | ("Bundle", "") if name.starts_with("Bundle-DDCCDocument") => {
                checked += 1;
                if name.contains("-422") || expect_400 {
                    // Profile and structure validation belong to the validator, not the store.
                    continue;
                }
                match store.create(v.clone()).await {
                    Ok(s) => match store.read("Bundle", &s.id).await {
                        Ok(back)
                            if without_server_fields(&back.resource)
                                == without_server_fields(&v) => {}
                        Ok(_) => differences.push(format!(
                            "{name}: stored body differs from the submitted one"
                        )),
                        Err(e) => differences.push(format!("{name}: read back: {e}")),
                    },
                    Err(e) => differences.push(format!("{name}: {e}")),
                }
            }
            (other, _) if name.starts_with("Bundle-DDCCDocument-404") => {
                checked += 1;
                match store.create(v.clone()).await {
                    Err(e) if e.http_status() == 404 => {}
                    Err(e) => differences.push(format!(
                        "{name} ({other}): expected 404, got {} ({e})",
                        e.http_status()
                    )),
                    Ok(_) => {
                        differences.push(format!("{name} ({other}): expected 404, got success"))
                    }
                }
            }
            _ => {}
        }
    }
    for d in &differences {
        eprintln!("DIFFERENCE {d}");
    }
    eprintln!(
        "{checked} fixtures checked, {} differences",
        differences.len()
    );
    assert!(
        checked >= 6,
        "expected the register/store fixtures, checked {checked}"
    );
    assert!(differences.is_empty());
}
