//! The FHIRPath expressions embedded in a map (`where`, `check`, `log`,
//! `evaluate(…)` and `(…)` targets).
//!
//! The StructureMap compiler does not keep the author's text: it parses the
//! expression and stores `ExpressionNode.toString()`, which normalises quotes,
//! spacing and — through its operator-precedence pass — inserts parentheses around
//! each run of higher-precedence operators when operators of different precedence
//! are mixed. This module parses just enough FHIRPath to find an expression's extent
//! and reproduce that canonical text; evaluation belongs to the `fhirpath` crate.

use super::lexer::{unquote, Token};
use super::parser::TokenStream;
use super::ParseError;

/// Deepest nesting of parentheses, function arguments and path steps accepted
/// inside one expression.
pub(crate) const MAX_EXPRESSION_DEPTH: usize = 200;

/// Binary operators, as HAPI's `ExpressionNode.Operation.fromCode` knows them.
const OPERATORS: &[&str] = &[
    "=", "!=", "~", "!~", "<", ">", "<=", ">=", "|", "+", "-", "*", "/", "&", "and", "or", "xor",
    "implies", "is", "as", "div", "mod", "in", "contains", "memberOf",
];

/// HAPI's precedence passes, tightest first. Operators in no pass (`implies`,
/// `as`, `in`, `contains`, `memberOf`) stay as a left-to-right sequence.
const PRECEDENCE: &[&[&str]] = &[
    &["*", "/", "div", "mod"],
    &["+", "-", "&"],
    &["|"],
    &["<", ">", "<=", ">="],
    &["is"],
    &["=", "~", "!=", "!~"],
    &["and"],
    &["xor", "or"],
];

pub(crate) fn is_operator(token: &Token<'_>) -> bool {
    OPERATORS.contains(&token.str())
}

/// An operand sequence `t0 op1 t1 op2 t2 …` (one proximal expression).
#[derive(Debug)]
struct Seq {
    terms: Vec<Term>,
    ops: Vec<String>,
}

#[derive(Debug)]
struct Term {
    primary: Primary,
    index: Option<Box<Seq>>,
    inner: Option<Box<Term>>,
}

#[derive(Debug)]
enum Primary {
    Name(String),
    Function(String, Vec<Seq>),
    Constant(String),
    Group(Box<Seq>),
    Unary(String, Box<Seq>),
}

/// Parses one expression starting at the stream's current token and returns its
/// canonical text. Stops at the first token that cannot continue the expression.
pub(crate) fn parse_expression(ts: &mut TokenStream<'_>) -> Result<String, ParseError> {
    let seq = parse_seq(ts, true, 0)?;
    let mut out = String::new();
    print_seq(&seq, &mut out);
    Ok(out)
}

fn depth_guard(ts: &TokenStream<'_>, depth: usize) -> Result<(), ParseError> {
    if depth > MAX_EXPRESSION_DEPTH {
        Err(ts.error_here(format!(
            "FHIRPath expression nested deeper than {MAX_EXPRESSION_DEPTH} levels"
        )))
    } else {
        Ok(())
    }
}

fn parse_seq(ts: &mut TokenStream<'_>, proximal: bool, depth: usize) -> Result<Seq, ParseError> {
    depth_guard(ts, depth)?;
    if matches!(ts.current().str(), "-" | "+") {
        let op = ts.take().text.to_string();
        let rest = parse_seq(ts, proximal, depth + 1)?;
        return Ok(Seq {
            terms: vec![Term {
                primary: Primary::Unary(op, Box::new(rest)),
                index: None,
                inner: None,
            }],
            ops: Vec::new(),
        });
    }
    let first = parse_term(ts, depth + 1)?;
    let mut seq = Seq {
        terms: vec![first],
        ops: Vec::new(),
    };
    if proximal {
        while is_operator(ts.current()) {
            seq.ops.push(ts.take().text.to_string());
            let next = parse_seq(ts, false, depth + 1)?;
            // A non-proximal parse yields exactly one term (or a unary wrapper).
            seq.terms.extend(next.terms);
        }
        for ops in PRECEDENCE {
            seq = gather(seq, ops);
        }
    }
    Ok(seq)
}

/// HAPI `gatherPrecedence`: when the sequence mixes operators of this level with
/// others, each maximal run joined by this level's operators becomes a group.
fn gather(seq: Seq, level: &[&str]) -> Seq {
    let in_level = |op: &String| level.contains(&op.as_str());
    if seq.ops.iter().all(in_level) || !seq.ops.iter().any(in_level) {
        return seq;
    }
    let mut terms = seq.terms.into_iter();
    let mut out = Seq {
        terms: Vec::new(),
        ops: Vec::new(),
    };
    let Some(first) = terms.next() else {
        return out;
    };
    let mut run = Seq {
        terms: vec![first],
        ops: Vec::new(),
    };
    let flush = |run: Seq, out: &mut Seq| {
        if run.ops.is_empty() {
            out.terms.extend(run.terms);
        } else {
            out.terms.push(Term {
                primary: Primary::Group(Box::new(run)),
                index: None,
                inner: None,
            });
        }
    };
    for (op, term) in seq.ops.into_iter().zip(terms) {
        if in_level(&op) {
            run.ops.push(op);
            run.terms.push(term);
        } else {
            flush(
                std::mem::replace(
                    &mut run,
                    Seq {
                        terms: Vec::new(),
                        ops: Vec::new(),
                    },
                ),
                &mut out,
            );
            out.ops.push(op);
            run.terms.push(term);
        }
    }
    flush(run, &mut out);
    out
}

fn parse_term(ts: &mut TokenStream<'_>, depth: usize) -> Result<Term, ParseError> {
    depth_guard(ts, depth)?;
    let tok = ts.current();
    if tok.text.is_empty() {
        return Err(ts.expected("a FHIRPath expression"));
    }
    let primary = if tok.is_constant() && tok.text != "-" && tok.text != "+" {
        ts.take();
        let text = constant_text(tok)?;
        let numeric = tok.text.as_bytes().first().is_some_and(u8::is_ascii_digit);
        let next = ts.current();
        if numeric && next.text.starts_with(['\'', '"']) {
            ts.take();
            Primary::Constant(format!("{} '{}'", tok.text, escape_json(&unquote(next)?)))
        } else if numeric && fhirpath::CALENDAR_UNITS.contains(&next.str()) {
            ts.take();
            Primary::Constant(format!("{} '{}'", tok.text, next.text))
        } else {
            Primary::Constant(text)
        }
    } else if tok.text == "(" {
        ts.take();
        let inner = parse_seq(ts, true, depth + 1)?;
        ts.expect(")")?;
        Primary::Group(Box::new(inner))
    } else if tok.is_name() || tok.text.starts_with('`') || tok.text.starts_with('$') {
        ts.take();
        if ts.current().text == "(" {
            ts.take();
            let mut params = Vec::new();
            while ts.current().text != ")" {
                params.push(parse_seq(ts, true, depth + 1)?);
                if ts.current().text == "," {
                    ts.take();
                } else if ts.current().text != ")" {
                    return Err(ts.expected("',' or ')'"));
                }
            }
            ts.take();
            Primary::Function(tok.text.to_string(), params)
        } else {
            Primary::Name(tok.text.to_string())
        }
    } else {
        return Err(ts.expected("a FHIRPath expression"));
    };
    let mut term = Term {
        primary,
        index: None,
        inner: None,
    };
    if ts.current().text == "[" {
        ts.take();
        term.index = Some(Box::new(parse_seq(ts, true, depth + 1)?));
        ts.expect("]")?;
    }
    if ts.current().text == "." {
        ts.take();
        term.inner = Some(Box::new(parse_term(ts, depth + 1)?));
    }
    Ok(term)
}

fn constant_text(tok: &Token<'_>) -> Result<String, ParseError> {
    let t = tok.str();
    Ok(match t.as_bytes().first() {
        Some(b'\'' | b'"') => format!("'{}'", escape_json(&unquote(tok)?)),
        Some(b'0'..=b'9') if !t.contains('.') => match t.parse::<i64>() {
            Ok(n) => n.to_string(),
            Err(_) => t.to_string(),
        },
        _ => t.to_string(),
    })
}

/// HAPI `Utilities.escapeJson`, used when printing string constants.
fn escape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 32 => out.push_str(&format!("\\u{:04}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn print_seq(seq: &Seq, out: &mut String) {
    let mut terms = seq.terms.iter();
    if let Some(first) = terms.next() {
        print_term(first, out);
    }
    for (op, term) in seq.ops.iter().zip(terms) {
        out.push(' ');
        out.push_str(op);
        out.push(' ');
        print_term(term, out);
    }
}

fn print_term(term: &Term, out: &mut String) {
    match &term.primary {
        Primary::Name(n) | Primary::Constant(n) => out.push_str(n),
        Primary::Function(name, params) => {
            out.push_str(name);
            out.push('(');
            for (i, p) in params.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print_seq(p, out);
            }
            out.push(')');
        }
        Primary::Group(seq) => {
            out.push('(');
            print_seq(seq, out);
            out.push(')');
        }
        Primary::Unary(op, seq) => {
            out.push_str(op);
            print_seq(seq, out);
        }
    }
    if let Some(index) = &term.index {
        out.push('[');
        print_seq(index, out);
        out.push(']');
    }
    if let Some(inner) = &term.inner {
        out.push('.');
        print_term(inner, out);
    }
}
