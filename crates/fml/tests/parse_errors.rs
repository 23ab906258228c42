//! Syntax errors carry the line and column of the offending token, and hostile
//! input (deep nesting, huge or truncated text) gives an error, never a panic or a
//! stack overflow.

use fml::parse::{parse_map, ParseError};

const HEADER: &str = "map \"http://example.org/StructureMap/T\" = \"T\"\n\n";

fn err(src: &str) -> ParseError {
    match parse_map(src) {
        Ok(v) => panic!("expected a syntax error, got {v}"),
        Err(e) => e,
    }
}

#[test]
fn errors_name_line_column_and_cause() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("", 1, 1, "map input cannot be empty"),
        ("  // only a comment\n", 2, 1, "map input cannot be empty"),
        (
            "map \"u\" = \"n\"\n\ngroup G(source s, target t) {\n  s.a as x tgt.b = x;\n}\n",
            4,
            12,
            "expected '->', 'then', a rule name or ';' but found 'tgt'",
        ),
        ("map \"http://x", 1, 5, "unterminated string or quoted name"),
        ("map \"u\" \"n\"", 1, 9, "expected '=' but found '\"n\"'"),
        (
            "map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a as x -> t.b = frobnicate(x);\n}",
            3,
            21,
            "unknown transform 'frobnicate'",
        ),
        (
            "map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a as x -> t.b = x;\n",
            4,
            1,
            "expected '}' closing the group but found end of input",
        ),
        (
            "map \"u\" = \"n\"\ngroup G(input s) {\n}",
            2,
            9,
            "expected 'source' or 'target' but found 'input'",
        ),
        ("map \"u\" = \"n\"\n/* never closed", 2, 16, "unterminated /* comment"),
        (
            "map \"u\" = \"n\"\nuses \"x\" alias A as sauce\n",
            2,
            21,
            "expected 'source', 'target', 'queried' or 'produced' but found 'sauce'",
        ),
        (
            "map \"u\" = \"n\"\nconceptmap \"c\" {\n  prefix s = \"http://s\"\n  q:a == s:b\n}\n",
            4,
            3,
            "unknown concept map prefix 'q'",
        ),
        (
            "map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a as x where (x = -> t.b = x;\n}",
            3,
            23,
            "expected a FHIRPath expression but found '->'",
        ),
        (
            "map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a as x where (x = 1 -> t.b = x;\n}",
            3,
            25,
            "expected ')' but found '->'",
        ),
        (
            "map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a : Coding 1.. as x;\n}",
            3,
            20,
            "expected a maximum cardinality but found 'as'",
        ),
        (
            "map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a as x -> t.b = 'é' \"ok\";\n  s.b as y -> ;\n}",
            4,
            15,
            "expected a target but found ';'",
        ),
        ("map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a as x -> t.b = '\\q';\n}", 3, 21, "unknown character escape \\q"),
        (
            "map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s as x -> t.b = x;\n}",
            3,
            20,
            "expected a rule name (rules without a single source element must be named) but found ';'",
        ),
    ];
    let mut failures = Vec::new();
    for (src, line, column, message) in cases {
        let e = err(src);
        if (e.line, e.column, e.message.as_str()) != (*line, *column, *message) {
            failures.push(format!(
                "{src:?}\n  got:      {e}\n  expected: line {line}, column {column}: {message}"
            ));
        }
    }
    for f in &failures {
        println!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} error cases differ (listed above)",
        failures.len()
    );
}

#[test]
fn display_leads_with_position() {
    let e = err("map \"u\" = \"n\"\ngroup G(source s, target t) {\n  s.a as x tgt.b = x;\n}");
    assert_eq!(
        e.to_string(),
        "line 3, column 12: expected '->', 'then', a rule name or ';' but found 'tgt'"
    );
}

/// Runs `f` on a thread with a 2 MiB stack, the size of a default spawned thread:
/// nesting limits must hold there, well before the stack runs out.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("parser must not panic or overflow")
}

fn group_with(body: &str) -> String {
    format!("{HEADER}group G(source s, target t) {{\n{body}\n}}\n")
}

#[test]
fn ten_thousand_nested_rules_are_an_error() {
    let e = on_small_stack(|| {
        let depth = 10_000;
        let mut body = String::new();
        for _ in 0..depth {
            body.push_str("s as s then {\n");
        }
        for _ in 0..depth {
            body.push_str("};\n");
        }
        parse_map(&group_with(&body))
    });
    let e = e.expect_err("deep nesting must be refused");
    assert!(e.message.contains("nested deeper than"), "{e}");
    assert_eq!(e.line, 4 + fml::parse::MAX_RULE_DEPTH, "{e}");
}

#[test]
fn nesting_at_the_limit_parses() {
    let v = on_small_stack(|| {
        // The group's own rules are level 1.
        let depth = fml::parse::MAX_RULE_DEPTH - 1;
        let mut body = String::new();
        for _ in 0..depth {
            body.push_str("s as s then {\n");
        }
        // The deepest rule also carries the deepest accepted expression, so the
        // two limits together must fit the stack.
        let parens = 99;
        body.push_str(&format!(
            "s.a as a where {}a{} -> t.a = a;\n",
            "(".repeat(parens),
            ")".repeat(parens)
        ));
        for _ in 0..depth {
            body.push_str("} \"r\";\n");
        }
        parse_map(&group_with(&body)).map(|v| v.to_string().len())
    });
    assert!(v.expect("nesting at the limit is accepted") > 0);
}

#[test]
fn deep_fhirpath_is_an_error() {
    let results = on_small_stack(|| {
        let n = 10_000;
        let parens = format!(
            "s.a as x where {}x{} -> t.b = x;",
            "(".repeat(n),
            ")".repeat(n)
        );
        let path = format!("s.a as x where x{} -> t.b = x;", ".y".repeat(100_000));
        let unary = format!("s.a as x -> t.b = ({}1);", "- ".repeat(n));
        let args = format!(
            "s.a as x where {}x{} -> t.b = x;",
            "f(".repeat(n),
            ")".repeat(n)
        );
        [parens, path, unary, args].map(|body| parse_map(&group_with(&body)))
    });
    for r in results {
        let e = r.expect_err("deep expression must be refused");
        assert!(e.message.contains("nested deeper than"), "{e}");
    }
}

#[test]
fn long_flat_inputs_parse() {
    let (rules, condition_len) = on_small_stack(|| {
        // A long operator chain is flat (no recursion per operand).
        let chain = vec!["x"; 50_000].join(" + ");
        let mut body = format!("s.a as x where {chain} = 1 -> t.b = x \"chain\";\n");
        for i in 0..20_000 {
            body.push_str(&format!("s.e{i} as v{i} -> t.e{i} = v{i} \"rule {i}\";\n"));
        }
        let map = parse_map(&group_with(&body)).expect("huge map parses");
        let rules = map["group"][0]["rule"].as_array().map_or(0, Vec::len);
        let cond = map["group"][0]["rule"][0]["source"][0]["condition"]
            .as_str()
            .map_or(0, str::len);
        (rules, cond)
    });
    assert_eq!(rules, 20_001);
    // "(x + x + … + x) = 1": grouped once, because '+' binds tighter than '='.
    assert_eq!(condition_len, 50_000 + 49_999 * 3 + 2 + 4);
}

#[test]
fn every_prefix_of_a_map_parses_or_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parse/cases");
    let mut checked = 0;
    for name in [
        "quirks.fml",
        "transforms.fml",
        "sources.fml",
        "conceptmap.fml",
        "metadata.fml",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).expect("case file");
        for (i, _) in text.char_indices() {
            // Truncation is the common real-world corruption; none may panic.
            let prefix = &text[..i];
            if let Err(e) = parse_map(prefix) {
                assert!(e.line >= 1 && e.column >= 1, "{e}");
            }
            checked += 1;
        }
    }
    assert!(checked > 1000);
}
