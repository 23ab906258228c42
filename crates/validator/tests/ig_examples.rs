//! Every IG example validates without errors against its declared profile(s).

mod common;
use common::*;

#[test]
fn ig_examples_validate_clean() {
    let Some(shared) = shared() else {
        eprintln!("skip: conformance corpus not found (../shared or DDCC_SHARED)");
        return;
    };
    let dir = shared.join("conformance/ddcc-ig/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "expected the IG examples, found {}",
        files.len()
    );
    let v = validator();
    let mut failed = 0;
    let mut warnings = 0;
    for f in &files {
        let res = read_json(f);
        let declared = res
            .pointer("/meta/profile/0")
            .and_then(|p| p.as_str())
            .expect("every IG example declares a profile");
        assert!(
            v.profiles().get(declared).is_some(),
            "{declared} not loaded"
        );
        let issues = v.validate(&res, None);
        warnings += issues.len() - errors(&issues).len();
        let errs = errors(&issues);
        if !errs.is_empty() {
            failed += 1;
            println!("{}: {} error(s)", f.display(), errs.len());
            for i in errs {
                println!("  {i}");
            }
        }
    }
    println!(
        "{} examples, {} with errors, {} non-error issues; invariants evaluated: {}",
        files.len(),
        failed,
        warnings,
        v.invariants_enabled()
    );
    assert_eq!(failed, 0);
}

/// The vendored Questionnaires the service ships validate against their profiles.
#[test]
fn vendored_questionnaires_validate_clean() {
    let dir = ig_dir().join("questionnaires");
    let v = validator();
    let mut n = 0;
    let mut failed = 0;
    for e in std::fs::read_dir(&dir).expect("questionnaires").flatten() {
        let q = read_json(&e.path());
        assert!(
            q.pointer("/meta/profile/0").is_some(),
            "{} declares no profile",
            e.path().display()
        );
        let issues = v.validate(&q, None);
        n += 1;
        if !errors(&issues).is_empty() {
            failed += 1;
            println!("{}:", e.path().display());
            for i in errors(&issues) {
                println!("  {i}");
            }
        }
    }
    println!("{n} questionnaires, {failed} with errors");
    assert_eq!(n, 3);
    assert_eq!(failed, 0);
}
