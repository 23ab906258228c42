//! Every IG map on every JSON resource of the corpus's examples and fixtures: a
//! transform either succeeds or returns an error naming where it failed; nothing
//! panics. (Most combinations are nonsense on purpose.)

mod transform_support;

use fml::exec::{transform, TransformError};
use transform_support::*;

#[test]
fn every_map_on_every_example_errors_or_succeeds() {
    let Some(conf) = conformance_dir() else {
        return;
    };
    let reg = ig_registry(&conf);
    let term = terminology(&conf, "terminology-2023-11");
    let mut inputs = Vec::new();
    for dir in [
        "ddcc-ig/examples",
        "ddcc-ig/examples-extra",
        "ddcc-ig/structuremap-tests/fixtures",
    ] {
        inputs.extend(
            json_files(&conf.join(dir))
                .into_iter()
                .map(|f| read_json(&f)),
        );
    }
    let urls: Vec<String> = reg.maps().map(|m| m.url.clone()).collect();
    let (mut ok, mut failed, mut total) = (0, 0, 0);
    let mut kinds = std::collections::BTreeSet::new();
    for url in &urls {
        for input in &inputs {
            total += 1;
            match transform(url, input, &reg, &term) {
                Ok(out) => {
                    assert!(out.is_object(), "{url}: output is not an object");
                    ok += 1;
                }
                Err(e) => {
                    // Every failure says where it happened.
                    match &e {
                        TransformError::Rule { map, group, .. } => {
                            assert_eq!(map, url);
                            assert!(!group.is_empty());
                        }
                        TransformError::Setup { map, .. } | TransformError::TooDeep { map, .. } => {
                            assert_eq!(map, url)
                        }
                        TransformError::UnknownMap(m) => panic!("map {m} vanished"),
                    }
                    failed += 1;
                    // One example of each kind of failure, for the log.
                    let text = e.to_string();
                    let kind: String = text
                        .split(": ")
                        .last()
                        .unwrap_or_default()
                        .chars()
                        .take(60)
                        .collect();
                    if kinds.insert(kind) {
                        println!("ERROR {text}");
                    }
                }
            }
        }
    }
    println!("{total} transforms: {ok} succeeded, {failed} returned errors, 0 panics");
    assert!(
        urls.len() >= 21 && inputs.len() >= 40,
        "corpus smaller than expected"
    );
}
