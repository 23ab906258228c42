//! Helpers shared by the integration tests (not by the product).
#![allow(dead_code)]

use ddcc_cert::SigningIdentity;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared` beside the workspace (or `DDCC_SHARED`), when present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    dir.is_dir().then_some(dir)
}

/// Drive a future to completion on this thread. The signers used in tests answer
/// immediately, so polling with a no-op waker is enough.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

pub fn identity(dir: &Path) -> SigningIdentity {
    ddcc_cert::local::LocalSigner::load_or_create(dir, "USA").expect("local signer")
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture(name: &str) -> Value {
    read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
}

/// Core data sets to issue from: the committed fixtures plus, when `../shared` is
/// present, every expected core data set derived from the IG examples.
pub fn core_data_sets() -> Vec<(String, Value)> {
    let mut out = vec![
        ("fixture:en".to_string(), fixture("core-data-set-en.json")),
        ("fixture:ru".to_string(), fixture("core-data-set-ru.json")),
    ];
    if let Some(shared) = shared_dir() {
        let dir = shared.join("conformance/ddcc-ig/derived/expected-core-data-set");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let v = read_json(&f);
                // The expected outputs are either one core data set or a list.
                let items = match v {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                for (i, item) in items.into_iter().enumerate() {
                    let name = f
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.push((format!("shared:{name}#{i}"), item));
                }
            }
        }
    } else {
        eprintln!("note: ../shared absent; issuing from the committed fixtures only");
    }
    out
}
