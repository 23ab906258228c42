//! StructureMap (R4 JSON) → FML text. The text re-parses (in the IG Publisher
//! dialect) to the same resource: every rule name is written out, documentation
//! goes in trailing `//` comments where the compiler picks it up again, and the
//! short form `src.a -> tgt.b;` is written in its explicit long form.

use std::fmt::Write;

use serde_json::Value;

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A double-quoted FML/FHIRPath string literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 32 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name, quoted when it is not a plain identifier (`"-260"`).
fn name(text: &str) -> String {
    if is_identifier(text) {
        text.to_string()
    } else {
        quote(text)
    }
}

/// A comment's text on one line.
fn one_line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\r', '\n'], " ")
}

fn parameter(p: &Value) -> String {
    if let Some(id) = s(p, "valueId") {
        // Dotted ids (`v.given`) are written as they are; anything else quoted.
        if id.split('.').all(is_identifier) {
            id.to_string()
        } else {
            quote(id)
        }
    } else if let Some(text) = s(p, "valueString") {
        quote(text)
    } else if let Some(b) = p.get("valueBoolean").and_then(Value::as_bool) {
        b.to_string()
    } else if let Some(n) = p.get("valueInteger") {
        n.to_string()
    } else if let Some(d) = p.get("valueDecimal").and_then(Value::as_f64) {
        let text = d.to_string();
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        quote("")
    }
}

/// Renders a StructureMap resource as FML text.
pub fn to_fml(map: &Value) -> String {
    let mut out = String::new();
    let url = s(map, "url").unwrap_or_default();
    let map_name = s(map, "name").unwrap_or_default();
    let status = s(map, "status").unwrap_or("draft");
    if map.get("title").is_some() || map.get("version").is_some() || status != "draft" {
        let _ = writeln!(out, "/// url = {}", quote(url));
        let _ = writeln!(out, "/// name = {}", quote(map_name));
        for key in ["title", "version", "description"] {
            if let Some(v) = s(map, key) {
                let _ = writeln!(out, "/// {key} = {}", quote(&one_line(v)));
            }
        }
        let _ = writeln!(out, "/// status = {}", quote(status));
    } else {
        let _ = writeln!(out, "map {} = {}", quote(url), quote(map_name));
        if let Some(d) = s(map, "description") {
            for line in d.split("\r\n") {
                let _ = writeln!(out, "// {}", one_line(line));
            }
        }
    }
    out.push('\n');
    for cm in arr(map, "contained") {
        if s(cm, "resourceType") == Some("ConceptMap") {
            render_concept_map(cm, &mut out);
        }
    }
    for st in arr(map, "structure") {
        let _ = write!(out, "uses {}", quote(s(st, "url").unwrap_or_default()));
        if let Some(alias) = s(st, "alias") {
            let _ = write!(out, " alias {}", name(alias));
        }
        let _ = write!(out, " as {}", s(st, "mode").unwrap_or("source"));
        if let Some(doc) = s(st, "documentation") {
            let _ = write!(out, " // {}", one_line(doc));
        }
        out.push('\n');
    }
    for import in map
        .get("import")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "imports {}",
            quote(import.as_str().unwrap_or_default())
        );
    }
    for group in arr(map, "group") {
        out.push('\n');
        render_group(group, &mut out);
    }
    out
}

fn render_concept_map(cm: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "conceptmap {} {{",
        quote(s(cm, "id").unwrap_or_default())
    );
    let mut systems: Vec<&str> = Vec::new();
    for g in arr(cm, "group") {
        for key in ["source", "target"] {
            if let Some(sys) = s(g, key) {
                if !systems.contains(&sys) {
                    systems.push(sys);
                }
            }
        }
    }
    let prefix = |sys: &str| format!("s{}", systems.iter().position(|x| *x == sys).unwrap_or(0));
    for (i, sys) in systems.iter().enumerate() {
        let _ = writeln!(out, "  prefix s{i} = {}", quote(sys));
    }
    for g in arr(cm, "group") {
        if s(&g["unmapped"], "mode") == Some("provided") {
            let _ = writeln!(
                out,
                "  unmapped for {} = provided",
                prefix(s(g, "source").unwrap_or_default())
            );
        }
    }
    for g in arr(cm, "group") {
        let src = prefix(s(g, "source").unwrap_or_default());
        for e in arr(g, "element") {
            for t in arr(e, "target") {
                let code = quote(s(e, "code").unwrap_or_default());
                let symbol = match s(t, "equivalence").unwrap_or("equivalent") {
                    "relatedto" => "-",
                    "equal" => "=",
                    "disjoint" => "!=",
                    "unmatched" => "--",
                    "wider" => "<=",
                    "subsumes" => "<-",
                    "narrower" => ">=",
                    "specializes" => ">-",
                    "inexact" => "~",
                    _ => "==",
                };
                if symbol == "--" {
                    let _ = writeln!(out, "  {src}:{code} --");
                } else {
                    let tgt = prefix(s(g, "target").unwrap_or_default());
                    let tcode = quote(s(t, "code").unwrap_or_default());
                    let _ = writeln!(out, "  {src}:{code} {symbol} {tgt}:{tcode}");
                }
            }
        }
    }
    out.push_str("}\n\n");
}

fn render_group(group: &Value, out: &mut String) {
    let _ = write!(out, "group {}(", name(s(group, "name").unwrap_or_default()));
    for (i, input) in arr(group, "input").iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{} {}",
            s(input, "mode").unwrap_or("source"),
            name(s(input, "name").unwrap_or_default())
        );
        if let Some(t) = s(input, "type") {
            let _ = write!(out, " : {}", name(t));
        }
    }
    out.push(')');
    if let Some(e) = s(group, "extends") {
        let _ = write!(out, " extends {}", name(e));
    }
    match s(group, "typeMode") {
        Some("types") => out.push_str(" <<types>>"),
        Some("type-and-types") => out.push_str(" <<type+>>"),
        _ => {}
    }
    out.push_str(" {\n");
    for rule in arr(group, "rule") {
        render_rule(rule, 1, out);
    }
    out.push_str("}\n");
}

fn render_rule(rule: &Value, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    out.push_str(&indent);
    let sources: Vec<String> = arr(rule, "source").iter().map(render_source).collect();
    out.push_str(&sources.join(", "));
    let targets: Vec<String> = arr(rule, "target").iter().map(render_target).collect();
    if !targets.is_empty() {
        out.push_str(" -> ");
        out.push_str(&targets.join(", "));
    }
    let nested = arr(rule, "rule");
    let dependents = arr(rule, "dependent");
    if !nested.is_empty() {
        out.push_str(" then {\n");
        for r in nested {
            render_rule(r, depth + 1, out);
        }
        out.push_str(&indent);
        out.push('}');
    } else if !dependents.is_empty() {
        out.push_str(" then ");
        let calls: Vec<String> = dependents
            .iter()
            .map(|d| {
                let vars: Vec<String> = arr(d, "variable")
                    .iter()
                    .map(|v| {
                        let v = v.as_str().unwrap_or_default();
                        if is_identifier(v) {
                            v.to_string()
                        } else {
                            quote(v)
                        }
                    })
                    .collect();
                format!(
                    "{}({})",
                    name(s(d, "name").unwrap_or_default()),
                    vars.join(", ")
                )
            })
            .collect();
        out.push_str(&calls.join(", "));
    }
    if let Some(n) = s(rule, "name") {
        let _ = write!(out, " {}", quote(n));
    }
    out.push(';');
    if let Some(doc) = s(rule, "documentation") {
        let _ = write!(out, " // {}", one_line(doc));
    }
    out.push('\n');
}

fn render_source(src: &Value) -> String {
    let mut out = String::new();
    let context = s(src, "context").unwrap_or_default();
    if context == "@search" {
        let _ = write!(out, "search({})", s(src, "element").unwrap_or_default());
    } else {
        out.push_str(&name(context));
        if let Some(e) = s(src, "element") {
            let _ = write!(out, ".{}", name(e));
        }
    }
    if let Some(t) = s(src, "type") {
        let _ = write!(out, " : {t}");
        if let (Some(min), Some(max)) = (src.get("min"), s(src, "max")) {
            let _ = write!(out, " {min}..{max}");
        }
    }
    if let Some(d) = s(src, "defaultValueString") {
        let _ = write!(out, " default {}", quote(d));
    }
    if let Some(m) = s(src, "listMode") {
        let _ = write!(out, " {m}");
    }
    if let Some(v) = s(src, "variable") {
        let _ = write!(out, " as {}", name(v));
    }
    for (keyword, key) in [
        ("where", "condition"),
        ("check", "check"),
        ("log", "logMessage"),
    ] {
        if let Some(expr) = s(src, key) {
            let _ = write!(out, " {keyword} {expr}");
        }
    }
    out
}

fn render_target(tgt: &Value) -> String {
    let mut out = String::new();
    let context = s(tgt, "context");
    if let Some(c) = context {
        out.push_str(&name(c));
        if let Some(e) = s(tgt, "element") {
            let _ = write!(out, ".{}", name(e));
        }
    }
    let params = arr(tgt, "parameter");
    if let Some(transform) = s(tgt, "transform") {
        if context.is_some() {
            out.push_str(" = ");
        }
        let rendered: Vec<String> = params.iter().map(parameter).collect();
        match transform {
            "copy" if context.is_some() && params.len() == 1 => out.push_str(&rendered[0]),
            "evaluate" if params.len() == 1 => {
                let _ = write!(
                    out,
                    "({})",
                    s(&params[0], "valueString").unwrap_or_default()
                );
            }
            "evaluate" if params.len() == 2 => {
                let _ = write!(
                    out,
                    "evaluate({}, {})",
                    rendered[0],
                    s(&params[1], "valueString").unwrap_or_default()
                );
            }
            _ => {
                let _ = write!(out, "{transform}({})", rendered.join(", "));
            }
        }
    }
    if let Some(v) = s(tgt, "variable") {
        let _ = write!(out, " as {}", name(v));
    }
    for mode in arr(tgt, "listMode") {
        let mode = mode.as_str().unwrap_or_default();
        let _ = write!(out, " {mode}");
        if mode == "share" {
            if let Some(id) = s(tgt, "listRuleId") {
                let _ = write!(out, " {}", name(id));
            }
        }
    }
    out
}
