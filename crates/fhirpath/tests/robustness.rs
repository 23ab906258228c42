//! Deep nesting, huge inputs and bad input give errors, never panics or stack
//! overflows. Each case runs on a thread with the default 2 MiB stack.

use fhirpath::{evaluate_str, parse, Error};
use serde_json::json;

fn on_small_stack<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic or overflow");
}

fn too_deep_or_ok(src: String) {
    on_small_stack(move || {
        let doc = json!({"resourceType": "Patient", "a": {"a": {"a": 1}}});
        match evaluate_str(&src, &doc) {
            Ok(_) | Err(Error::TooDeep) => {}
            Err(e) => panic!("unexpected error {e} for a deep expression"),
        }
    });
}

/// Below the bounds an expression evaluates; at and above it gives TooDeep.
fn must_work_if(works: bool, src: String) {
    on_small_stack(move || {
        let doc = json!({"resourceType": "Patient", "a": {"a": {"a": 1}}});
        match evaluate_str(&src, &doc) {
            Ok(_) if works => {}
            Err(Error::TooDeep) if !works => {}
            other => panic!(
                "{}…: expected {}, got {other:?}",
                &src[..src.len().min(40)],
                if works { "a result" } else { "TooDeep" }
            ),
        }
    });
}

#[test]
fn ten_thousand_parentheses() {
    too_deep_or_ok(format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)));
}

#[test]
fn ten_thousand_member_steps() {
    too_deep_or_ok(format!("Patient{}", ".a".repeat(10_000)));
}

#[test]
fn ten_thousand_unary_minus() {
    too_deep_or_ok(format!("{}1", "-".repeat(10_000)));
    too_deep_or_ok(format!("{}1", "- (".repeat(5_000)) + &")".repeat(5_000));
}

#[test]
fn ten_thousand_binary_operators() {
    too_deep_or_ok(format!("1{}", " + 1".repeat(10_000)));
    too_deep_or_ok(format!("true{}", " and true".repeat(10_000)));
    too_deep_or_ok(format!("1{}", " | 1".repeat(10_000)));
}

#[test]
fn ten_thousand_nested_function_arguments() {
    too_deep_or_ok(format!(
        "{}true{}",
        "where(".repeat(10_000),
        ")".repeat(10_000)
    ));
    too_deep_or_ok(format!(
        "{}1{}",
        "iif(true, ".repeat(10_000),
        ")".repeat(10_000)
    ));
    too_deep_or_ok(format!(
        "{}{}",
        "a.select(".repeat(10_000),
        ")".repeat(10_000)
    ));
}

#[test]
fn deepest_accepted_expressions_evaluate_on_a_small_stack() {
    // right below the parser's bound, so evaluation recursion is exercised too
    for n in [50, 99, 100, 101] {
        must_work_if(
            n < 100,
            format!("{}true{}", "where(".repeat(n), ")".repeat(n)),
        );
        must_work_if(n < 100, format!("{}1{}", "(".repeat(n), ")".repeat(n)));
        must_work_if(
            n < 100,
            format!("{}1{}", "iif(true, ".repeat(n), ")".repeat(n)),
        );
        must_work_if(n < 100, format!("{}1", "-".repeat(n)));
    }
    for n in [50, 100, 199, 200] {
        must_work_if(n < 200, format!("Patient{}", ".a".repeat(n)));
        must_work_if(n < 200, format!("1{}", " + 1".repeat(n)));
        must_work_if(n < 200, format!("Patient{}", ".where(true)".repeat(n)));
    }
    for n in [10, 50, 99] {
        must_work_if(true, format!("Patient{}", ".a.where(a.exists())".repeat(n)));
    }
}

#[test]
fn ten_thousand_parentheses_give_too_deep() {
    on_small_stack(|| {
        let src = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(parse(&src).err(), Some(Error::TooDeep));
    });
}

#[test]
fn deep_json_with_descendants_and_repeat() {
    on_small_stack(|| {
        // built by hand: serde_json's parser and json! would recurse
        let mut v = json!(1);
        for _ in 0..100_000 {
            let mut m = serde_json::Map::new();
            m.insert("a".into(), v);
            v = serde_json::Value::Object(m);
        }
        let mut root = serde_json::Map::new();
        root.insert("resourceType".into(), json!("Basic"));
        root.insert("a".into(), v);
        let doc = serde_json::Value::Object(root);
        let n = evaluate_str("descendants().count()", &doc).expect("descendants");
        assert_eq!(n[0].to_json(), json!(100_001));
        let n = evaluate_str("repeat(a).count()", &doc).expect("repeat");
        assert_eq!(n[0].to_json(), json!(100_001));
        // dropping a 100 000-deep serde_json value recurses; unwind it by hand
        let mut cur = doc;
        loop {
            let next = cur.get_mut("a").map(serde_json::Value::take);
            match next {
                Some(n) if !n.is_null() => cur = n,
                _ => break,
            }
        }
    });
}

#[test]
fn huge_inputs() {
    on_small_stack(|| {
        let long = "x".repeat(5_000_000);
        let doc =
            json!({"resourceType": "Basic", "s": long, "items": (0..100_000).collect::<Vec<_>>()});
        let r = evaluate_str("s.length()", &doc).expect("length");
        assert_eq!(r[0].to_json(), json!(5_000_000));
        let r = evaluate_str("items.where($this mod 2 = 0).count()", &doc).expect("count");
        assert_eq!(r[0].to_json(), json!(50_000));
        let r = evaluate_str("s.replaceMatches('x+', 'y')", &doc).expect("replace");
        assert_eq!(r[0].to_json(), json!("y"));
        // a 1 MB expression made of a long union is parsed without recursion trouble
        let src = vec!["1"; 150].join(" | ");
        assert!(evaluate_str(&src, &doc).is_ok());
        let src = format!("'{}'.length()", "y".repeat(1_000_000));
        assert_eq!(
            evaluate_str(&src, &doc).expect("long literal")[0].to_json(),
            json!(1_000_000)
        );
    });
}

#[test]
fn bad_input_gives_errors() {
    let doc = json!({"resourceType": "Patient", "name": [{"given": ["a", "b"]}], "n": 1});
    type Check = fn(&Error) -> bool;
    let cases: &[(&str, Check)] = &[
        (
            "nosuch()",
            |e| matches!(e, Error::UnknownFunction(n) if n == "nosuch"),
        ),
        ("name.given.nosuch(1, 2)", |e| {
            matches!(e, Error::UnknownFunction(_))
        }),
        ("1 + 'a'", |e| matches!(e, Error::Eval(_))),
        ("'a' < 1", |e| matches!(e, Error::Eval(_))),
        ("name.given.substring(1)", |e| matches!(e, Error::Eval(_))),
        ("name.given.single()", |e| matches!(e, Error::Eval(_))),
        ("n.substring(0)", |e| matches!(e, Error::Eval(_))),
        ("'a'.matches('(')", |e| matches!(e, Error::Eval(_))),
        ("'a'.substring('x')", |e| matches!(e, Error::Eval(_))),
        ("9223372036854775807 + 1", |e| matches!(e, Error::Eval(_))),
        ("%undefined", |e| matches!(e, Error::Eval(_))),
        ("where()", |e| matches!(e, Error::Eval(_))),
        ("conformsTo('http://x')", |e| matches!(e, Error::Eval(_))),
        ("name.given.where(true) and true", |e| {
            matches!(e, Error::Eval(_))
        }),
        ("1 +", |e| matches!(e, Error::Syntax { .. })),
        ("(1", |e| matches!(e, Error::Syntax { .. })),
        ("'unterminated", |e| matches!(e, Error::Syntax { .. })),
        ("@20", |e| matches!(e, Error::Syntax { .. })),
        ("1 2", |e| matches!(e, Error::Syntax { .. })),
        ("a.", |e| matches!(e, Error::Syntax { .. })),
        ("$nope", |e| matches!(e, Error::Syntax { .. })),
        ("#", |e| matches!(e, Error::Syntax { .. })),
        ("'\\u12'", |e| matches!(e, Error::Syntax { .. })),
        ("/* open", |e| matches!(e, Error::Syntax { .. })),
        ("", |e| matches!(e, Error::Syntax { .. })),
    ];
    let mut wrong = Vec::new();
    for (src, ok) in cases {
        match evaluate_str(src, &doc) {
            Err(e) if ok(&e) => {}
            other => wrong.push(format!("{src}: {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = parse("name.where(\n  use = )").expect_err("syntax error");
    match e {
        Error::Syntax { at, .. } => assert_eq!((at.line, at.column), (2, 9)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn non_ascii_text_where_dates_are_expected() {
    let doc = json!({"resourceType": "Patient", "birthDate": "2003-03-0é"});
    for text in [
        "2021-01-01T10:00:00é",
        "2021-01-01T10:00:00+01:0é",
        "2021-01-01T10:00é",
        "10:00:0é",
        "é",
        "2021-0😀",
        "😀😀😀😀",
    ] {
        for f in [
            "toDateTime()",
            "toDate()",
            "toTime()",
            "convertsToDateTime()",
            "toQuantity()",
        ] {
            let src = format!("'{text}'.{f}");
            let r = evaluate_str(&src, &doc).expect("conversion never fails");
            let ok = r.is_empty() || r[0].to_json() == json!(false);
            assert!(ok, "{src} gave {r:?}");
        }
        let cmp = format!("'{text}' < @2021-01-01");
        assert!(
            evaluate_str(&cmp, &doc).is_err(),
            "{cmp} must be a type error"
        );
    }
    assert!(evaluate_str("birthDate < @2021-01-01", &doc).is_err());
}

#[test]
fn exponential_growth_is_cut_off() {
    on_small_stack(|| {
        let doc = json!({"resourceType": "Basic", "n": (0..64).collect::<Vec<_>>()});
        for src in [
            "n.aggregate($total.combine($total), 1).count()",
            "n.aggregate($total & $total, 'xx').length()",
            "n.aggregate($total + $total, 'xx').length()",
            "n.aggregate($total.replace('', $total), 'ab').length()",
            "n.aggregate($total.replaceMatches('', $total), 'ab').length()",
        ] {
            match evaluate_str(src, &doc) {
                Err(Error::Eval(_)) => {}
                other => panic!("{src}: expected an evaluation error, got {other:?}"),
            }
        }
    });
}
