//! The FHIRPath N1 function set plus the FHIR additions.

use crate::ast::{Expr, Kind, TypeSpec};
use crate::eval::{eval_err, singleton, to_bool, Evaluator, Frame, Items, R};
use crate::temporal::Temporal;
use crate::value::{self, as_str, prim, quantity_text};
use crate::{Decimal, Error, Item};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

fn b<'a>(v: bool) -> R<Items<'a>> {
    Ok(vec![Item::Boolean(v)])
}

fn s<'a>(v: impl Into<String>) -> Item<'a> {
    Item::String(Cow::Owned(v.into()))
}

fn arity(name: &str, args: &[Expr], min: usize, max: usize) -> R<()> {
    if args.len() < min || args.len() > max {
        return eval_err(format!("wrong number of arguments to {name}()"));
    }
    Ok(())
}

/// A type name given as a function argument (`ofType(Coding)`, `as(FHIR.string)`).
fn type_arg(e: &Expr) -> R<TypeSpec> {
    match &e.kind {
        Kind::Ident(n) => Ok(TypeSpec {
            namespace: None,
            name: n.clone(),
        }),
        Kind::Member(inner, n) => match &inner.kind {
            Kind::Ident(ns) => Ok(TypeSpec {
                namespace: Some(ns.clone()),
                name: n.clone(),
            }),
            _ => eval_err("expected a type name"),
        },
        _ => eval_err("expected a type name"),
    }
}

fn string_input<'a>(input: &[Item<'a>]) -> R<Option<String>> {
    match singleton(input)? {
        None => Ok(None),
        Some(i) => match prim(&i) {
            Item::String(s) => Ok(Some(s.into_owned())),
            _ => eval_err("function needs a string input"),
        },
    }
}

fn to_string_item(i: &Item<'_>) -> Option<String> {
    Some(match prim(i) {
        Item::String(s) => s.into_owned(),
        Item::Boolean(b) => b.to_string(),
        Item::Integer(n) => n.to_string(),
        Item::Decimal(d) => d.text,
        Item::Date(d) | Item::DateTime(d) | Item::Time(d) => d,
        Item::Quantity { value, unit } => quantity_text(&value, &unit),
        _ => return None,
    })
}

fn to_integer(i: &Item<'_>) -> Option<i64> {
    match prim(i) {
        Item::Integer(n) => Some(n),
        Item::Boolean(b) => Some(b as i64),
        Item::String(s) => {
            let t = s.as_ref();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        }
        _ => None,
    }
}

fn to_decimal(i: &Item<'_>) -> Option<Decimal> {
    match prim(i) {
        Item::Integer(n) => Some(Decimal::from_i64(n)),
        Item::Decimal(d) => Some(d),
        Item::Boolean(b) => Some(Decimal::from_i64(b as i64)),
        Item::String(s) => {
            let t = s.as_ref();
            let body = t.strip_prefix(['+', '-']).unwrap_or(t);
            let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
            if int.is_empty()
                || frac.is_empty()
                || !int.bytes().all(|c| c.is_ascii_digit())
                || !frac.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            Decimal::parse(t)
        }
        _ => None,
    }
}

fn to_boolean(i: &Item<'_>) -> Option<bool> {
    match prim(i) {
        Item::Boolean(b) => Some(b),
        Item::Integer(1) => Some(true),
        Item::Integer(0) => Some(false),
        Item::Decimal(d) => match d.to_f64() {
            1.0 => Some(true),
            0.0 => Some(false),
            _ => None,
        },
        Item::String(s) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn parse_quantity_text(t: &str) -> Option<(Decimal, String)> {
    let t = t.trim();
    let (num, rest) = match t.find([' ', '\'']) {
        Some(p) => (&t[..p], t[p..].trim()),
        None => (t, ""),
    };
    let body = num.strip_prefix(['+', '-']).unwrap_or(num);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    if int.is_empty()
        || frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let value = Decimal::parse(num)?;
    let unit = if rest.is_empty() {
        "1".to_string()
    } else if let Some(u) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        u.to_string()
    } else if crate::units::CALENDAR_UNITS.contains(&rest) {
        rest.to_string()
    } else {
        return None;
    };
    Some((value, unit))
}

fn to_quantity(i: &Item<'_>) -> Option<(Decimal, String)> {
    match prim(i) {
        Item::Integer(n) => Some((Decimal::from_i64(n), "1".into())),
        Item::Decimal(d) => Some((d, "1".into())),
        Item::Boolean(b) => Some((Decimal::from_i64(b as i64), "1".into())),
        Item::String(s) => parse_quantity_text(&s),
        other => value::as_quantity(&other),
    }
}

/// `toQuantity(unit)`: metric prefixes and durations convert; other units only to themselves.
fn convert_unit(v: Decimal, from: &str, to: &str) -> Option<(Decimal, String)> {
    if from == to {
        return Some((v, to.to_string()));
    }
    let f = crate::units::factor(from, to)?;
    let d = if f == 1.0 {
        v
    } else {
        Decimal::from_f64(v.to_f64() * f)?
    };
    Some((d, to.to_string()))
}

/// JavaScript replacement syntax (`$1`, `$<name>`, `$&`, `$$`) and Java's `${name}`
/// to the regex crate's.
fn js_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut it = r.chars().peekable();
    while let Some(c) = it.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match it.peek().copied() {
            Some('$') => {
                it.next();
                out.push_str("$$");
            }
            Some('&') => {
                it.next();
                out.push_str("${0}");
            }
            // Java's `${name}`: the IG maps were written for Matchbox (HAPI), where
            // this names a group; FHIRPath.js would leave it as text
            Some('{') => {
                match group_name(&mut it, '}', |c| c.is_ascii_alphanumeric() || c == '_') {
                    Some(name) => out.push_str(&format!("${{{name}}}")),
                    None => out.push_str("$$"),
                }
            }
            Some('<') => match group_name(&mut it, '>', |c| c != '>') {
                Some(name) => out.push_str(&format!("${{{name}}}")),
                None => out.push_str("$$"),
            },
            Some(d) if d.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(d) = it.peek().copied().filter(char::is_ascii_digit) {
                    n.push(d);
                    it.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            _ => out.push_str("$$"),
        }
    }
    out
}

/// After `$` and an opening `{` or `<` (peeked, not taken): the non-empty name up to
/// `close`, every character of it `allowed`. The iterator moves past the name only
/// when there is one; otherwise the `$` stands for itself and the rest is literal text.
fn group_name(
    it: &mut std::iter::Peekable<std::str::Chars<'_>>,
    close: char,
    allowed: impl Fn(char) -> bool,
) -> Option<String> {
    let mut look = it.clone();
    look.next();
    let mut name = String::new();
    for ch in look.by_ref() {
        if ch == close {
            if name.is_empty() || !name.chars().all(&allowed) {
                return None;
            }
            *it = look;
            return Some(name);
        }
        name.push(ch);
    }
    None
}

/// FHIRPath regexes follow JavaScript; `(?<name>` is accepted by the regex crate
/// already, so only compilation limits need guarding. Compiled patterns are cached
/// per thread: maps evaluate the same few patterns for every resource.
fn regex(pattern: &str, whole: bool) -> R<regex::Regex> {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<(String, bool), regex::Regex>> = std::cell::RefCell::new(HashMap::new());
    }
    let key = (pattern.to_string(), whole);
    if let Some(re) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(re);
    }
    let p = if whole {
        format!("^(?s:{pattern})$")
    } else {
        format!("(?s){pattern}")
    };
    let re = regex::RegexBuilder::new(&p)
        .size_limit(1 << 20)
        .nest_limit(100)
        .build()
        .map_err(|e| Error::Eval(format!("invalid regular expression: {e}")))?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(key, re.clone());
    });
    Ok(re)
}

fn chars_of(s: &str) -> Vec<char> {
    s.chars().collect()
}

impl<'e, 'a> Evaluator<'e, 'a> {
    fn arg(&self, args: &[Expr], i: usize, input: &[Item<'a>], frame: &Frame<'a>) -> R<Items<'a>> {
        match args.get(i) {
            Some(e) => self.eval(e, input, frame),
            None => Ok(vec![]),
        }
    }

    fn arg_single(
        &self,
        args: &[Expr],
        i: usize,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> R<Option<Item<'a>>> {
        let v = self.arg(args, i, input, frame)?;
        singleton(&v).map(|o| o.map(|i| prim(&i)))
    }

    fn arg_string(
        &self,
        args: &[Expr],
        i: usize,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> R<Option<String>> {
        match self.arg_single(args, i, input, frame)? {
            None => Ok(None),
            Some(Item::String(s)) => Ok(Some(s.into_owned())),
            Some(_) => eval_err("argument must be a string"),
        }
    }

    fn arg_int(
        &self,
        args: &[Expr],
        i: usize,
        input: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> R<Option<i64>> {
        match self.arg_single(args, i, input, frame)? {
            None => Ok(None),
            Some(Item::Integer(n)) => Ok(Some(n)),
            Some(_) => eval_err("argument must be an integer"),
        }
    }

    /// Evaluates `e` once per item with `$this`/`$index` bound.
    fn lambda(&self, e: &Expr, item: &Item<'a>, index: usize, frame: &Frame<'a>) -> R<Items<'a>> {
        let f = Frame {
            this: vec![item.clone()],
            index: Some(index as i64),
            total: frame.total.clone(),
        };
        self.eval(e, std::slice::from_ref(item), &f)
    }

    /// Dispatches by family so that only one family's locals sit on the stack
    /// per nesting level (debug builds give every match arm its own slots).
    pub(crate) fn call(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        match name {
            "empty" | "exists" | "all" | "allTrue" | "anyTrue" | "allFalse" | "anyFalse"
            | "subsetOf" | "supersetOf" | "count" | "distinct" | "isDistinct" => {
                self.f_existence(name, input, args, frame)
            }
            "where" | "select" | "repeat" | "ofType" | "is" | "as" => {
                self.f_filtering(name, input, args, frame)
            }
            "single" | "first" | "last" | "tail" | "skip" | "take" | "intersect" | "exclude"
            | "union" | "combine" => self.f_subsetting(name, input, args, frame),
            "iif" | "toBoolean" | "convertsToBoolean" | "toInteger" | "convertsToInteger"
            | "toDecimal" | "convertsToDecimal" | "toString" | "convertsToString" | "toDate"
            | "convertsToDate" | "toDateTime" | "convertsToDateTime" | "toTime"
            | "convertsToTime" | "toQuantity" | "convertsToQuantity" => {
                self.f_conversion(name, input, args, frame)
            }
            "indexOf" | "substring" | "startsWith" | "endsWith" | "contains" | "upper"
            | "lower" | "length" | "trim" | "toChars" | "replace" | "matches" | "matchesFull"
            | "replaceMatches" | "split" | "join" => self.f_strings(name, input, args, frame),
            "abs" | "ceiling" | "floor" | "truncate" | "exp" | "ln" | "sqrt" | "round" | "log"
            | "power" => self.f_math(name, input, args, frame),
            "children" | "descendants" => self.f_tree(name, input, args, frame),
            "trace" | "now" | "today" | "timeOfDay" | "aggregate" | "sum" | "min" | "max"
            | "avg" | "not" | "type" => self.f_utility(name, input, args, frame),
            "extension" | "hasValue" | "getValue" | "memberOf" | "resolve" | "htmlChecks"
            | "htmlchecks" | "conformsTo" => self.f_fhir(name, input, args, frame),
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_existence(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "empty" => {
                no_args(0, 0)?;
                b(input.is_empty())
            }
            "exists" => {
                no_args(0, 1)?;
                if let Some(c) = args.first() {
                    for (i, it) in input.iter().enumerate() {
                        if to_bool(&self.lambda(c, it, i, frame)?)? == Some(true) {
                            return b(true);
                        }
                    }
                    return b(false);
                }
                b(!input.is_empty())
            }
            "all" => {
                no_args(1, 1)?;
                for (i, it) in input.iter().enumerate() {
                    if to_bool(&self.lambda(&args[0], it, i, frame)?)? != Some(true) {
                        return b(false);
                    }
                }
                b(true)
            }
            "allTrue" | "anyTrue" | "allFalse" | "anyFalse" => {
                no_args(0, 0)?;
                let mut vals = Vec::new();
                for it in &input {
                    match prim(it) {
                        Item::Boolean(x) => vals.push(x),
                        _ => return eval_err(format!("{name}() needs booleans")),
                    }
                }
                b(match name {
                    "allTrue" => vals.iter().all(|x| *x),
                    "anyTrue" => vals.iter().any(|x| *x),
                    "allFalse" => vals.iter().all(|x| !*x),
                    _ => vals.iter().any(|x| !*x),
                })
            }
            "subsetOf" | "supersetOf" => {
                no_args(1, 1)?;
                let other = self.eval(&args[0], &self.context, frame)?;
                let (small, big) = if name == "subsetOf" {
                    (&input, &other)
                } else {
                    (&other, &input)
                };
                b(small.iter().all(|x| value::contains_item(big, x)))
            }
            "count" => {
                no_args(0, 0)?;
                Ok(vec![Item::Integer(input.len() as i64)])
            }
            "distinct" => {
                no_args(0, 0)?;
                Ok(value::distinct(input))
            }
            "isDistinct" => {
                no_args(0, 0)?;
                let n = input.len();
                b(value::distinct(input).len() == n)
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_filtering(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "where" => {
                no_args(1, 1)?;
                let mut out = Vec::new();
                for (i, it) in input.iter().enumerate() {
                    if to_bool(&self.lambda(&args[0], it, i, frame)?)? == Some(true) {
                        out.push(it.clone());
                    }
                }
                Ok(out)
            }
            "select" => {
                no_args(1, 1)?;
                let mut out = Vec::new();
                for (i, it) in input.iter().enumerate() {
                    out.extend(self.lambda(&args[0], it, i, frame)?);
                }
                Ok(out)
            }
            "repeat" => {
                no_args(1, 1)?;
                let mut out: Items<'a> = Vec::new();
                // document nodes are deduplicated through a structural hash so that a
                // deep or wide document stays linear; other values by FHIRPath equality
                let mut memo = HashMap::new();
                let mut by_hash: HashMap<u64, Vec<&'a Value>> = HashMap::new();
                let mut queue = input;
                while !queue.is_empty() {
                    if out.len() > 1_000_000 {
                        return eval_err("repeat() produced more than a million items");
                    }
                    let mut next = Vec::new();
                    for (i, it) in queue.iter().enumerate() {
                        for r in self.lambda(&args[0], it, i, frame)? {
                            let new = match &r {
                                Item::Node { value, .. } => {
                                    let h = value::structural_hash(value, &mut memo);
                                    let same = by_hash.entry(h).or_default();
                                    if same.iter().any(|v| value::json_eq(v, value)) {
                                        false
                                    } else {
                                        same.push(value);
                                        true
                                    }
                                }
                                _ => !value::contains_item(&out, &r),
                            };
                            if new {
                                out.push(r.clone());
                                next.push(r);
                            }
                        }
                    }
                    queue = next;
                }
                Ok(out)
            }
            "ofType" => {
                no_args(1, 1)?;
                let ty = type_arg(&args[0])?;
                Ok(input.into_iter().filter(|i| self.is_type(i, &ty)).collect())
            }
            "is" | "as" => {
                no_args(1, 1)?;
                let ty = type_arg(&args[0])?;
                if name == "as" {
                    return Ok(input.into_iter().filter(|i| self.is_type(i, &ty)).collect());
                }
                match singleton(&input)? {
                    None => Ok(vec![]),
                    Some(i) => b(self.is_type(&i, &ty)),
                }
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_subsetting(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "single" => {
                no_args(0, 0)?;
                Ok(singleton(&input)?.into_iter().collect())
            }
            "first" => {
                no_args(0, 0)?;
                Ok(input.into_iter().take(1).collect())
            }
            "last" => {
                no_args(0, 0)?;
                Ok(input.into_iter().last().into_iter().collect())
            }
            "tail" => {
                no_args(0, 0)?;
                Ok(input.into_iter().skip(1).collect())
            }
            "skip" | "take" => {
                no_args(1, 1)?;
                let n = self.arg_int(args, 0, &input, frame)?.unwrap_or(0).max(0) as usize;
                Ok(if name == "skip" {
                    input.into_iter().skip(n).collect()
                } else {
                    input.into_iter().take(n).collect()
                })
            }
            "intersect" => {
                no_args(1, 1)?;
                let other = self.eval(&args[0], &self.context, frame)?;
                let keep: Items<'a> = input
                    .into_iter()
                    .filter(|x| value::contains_item(&other, x))
                    .collect();
                Ok(value::distinct(keep))
            }
            "exclude" => {
                no_args(1, 1)?;
                let other = self.eval(&args[0], &self.context, frame)?;
                Ok(input
                    .into_iter()
                    .filter(|x| !value::contains_item(&other, x))
                    .collect())
            }
            "union" | "combine" => {
                no_args(1, 1)?;
                let other = self.eval(&args[0], &self.context, frame)?;
                let mut all = input;
                all.extend(other);
                Ok(if name == "union" {
                    value::distinct(all)
                } else {
                    all
                })
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_conversion(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "iif" => {
                no_args(2, 3)?;
                let cond = self.eval(&args[0], &input, frame)?;
                let branch = if to_bool(&cond)? == Some(true) {
                    args.get(1)
                } else {
                    args.get(2)
                };
                match branch {
                    Some(e) => self.eval(e, &input, frame),
                    None => Ok(vec![]),
                }
            }
            "toBoolean" | "convertsToBoolean" => {
                self.convert(name, input, args, to_boolean, Item::Boolean)
            }
            "toInteger" | "convertsToInteger" => {
                self.convert(name, input, args, to_integer, Item::Integer)
            }
            "toDecimal" | "convertsToDecimal" => {
                self.convert(name, input, args, to_decimal, Item::Decimal)
            }
            "toString" | "convertsToString" => self.convert(name, input, args, to_string_item, s),
            "toDate" | "convertsToDate" => self.convert(
                name,
                input,
                args,
                |i| match prim(i) {
                    Item::Date(d) => Some(d),
                    Item::DateTime(d) => Temporal::parse_date_time(&d).map(|t| {
                        let mut t = t;
                        t.has_time = false;
                        t.precision = t.precision.min(3);
                        t.format()
                    }),
                    Item::String(x) => Temporal::parse_date_time(&x)
                        .filter(|t| !t.has_time)
                        .map(|t| t.format()),
                    _ => None,
                },
                Item::Date,
            ),
            "toDateTime" | "convertsToDateTime" => self.convert(
                name,
                input,
                args,
                |i| match prim(i) {
                    Item::DateTime(d) | Item::Date(d) => Some(d),
                    Item::String(x) => Temporal::parse_date_time(&x).map(|_| x.into_owned()),
                    _ => None,
                },
                Item::DateTime,
            ),
            "toTime" | "convertsToTime" => self.convert(
                name,
                input,
                args,
                |i| match prim(i) {
                    Item::Time(t) => Some(t),
                    Item::String(x) => Temporal::parse_time(&x).map(|t| t.format()),
                    _ => None,
                },
                Item::Time,
            ),
            "toQuantity" | "convertsToQuantity" => {
                no_args(0, 1)?;
                let unit = self.arg_string(args, 0, &input, frame)?;
                let Some(i) = singleton(&input)? else {
                    return Ok(vec![]);
                };
                let q = to_quantity(&i).and_then(|(v, u)| match &unit {
                    Some(target) => convert_unit(v, &u, target),
                    None => Some((v, u)),
                });
                if name == "convertsToQuantity" {
                    return b(q.is_some());
                }
                Ok(q.map(|(value, unit)| Item::Quantity { value, unit })
                    .into_iter()
                    .collect())
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_strings(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "indexOf" => self.string_fn(input, args, frame, |st, a| {
                let sub = a[0].as_deref()?;
                Some(match st.find(sub) {
                    Some(p) => Item::Integer(st[..p].chars().count() as i64),
                    None => Item::Integer(-1),
                })
            }),
            "substring" => {
                no_args(1, 2)?;
                let Some(st) = string_input(&input)? else {
                    return Ok(vec![]);
                };
                let Some(start) = self.arg_int(args, 0, &input, frame)? else {
                    return Ok(vec![]);
                };
                let len = if args.len() > 1 {
                    match self.arg_int(args, 1, &input, frame)? {
                        Some(l) => Some(l),
                        None => return Ok(vec![]),
                    }
                } else {
                    None
                };
                let c = chars_of(&st);
                if start < 0 || start as usize >= c.len() {
                    return Ok(vec![]);
                }
                let end = match len {
                    Some(l) => (start.saturating_add(l.max(0)) as usize).min(c.len()),
                    None => c.len(),
                };
                Ok(vec![s(c[start as usize..end].iter().collect::<String>())])
            }
            "startsWith" => self.string_fn(input, args, frame, |st, a| {
                Some(Item::Boolean(st.starts_with(a[0].as_deref()?)))
            }),
            "endsWith" => self.string_fn(input, args, frame, |st, a| {
                Some(Item::Boolean(st.ends_with(a[0].as_deref()?)))
            }),
            "contains" => self.string_fn(input, args, frame, |st, a| {
                Some(Item::Boolean(st.contains(a[0].as_deref()?)))
            }),
            "upper" => self.string_fn(input, args, frame, |st, _| Some(s(st.to_uppercase()))),
            "lower" => self.string_fn(input, args, frame, |st, _| Some(s(st.to_lowercase()))),
            "length" => self.string_fn(input, args, frame, |st, _| {
                Some(Item::Integer(st.chars().count() as i64))
            }),
            "trim" => self.string_fn(input, args, frame, |st, _| Some(s(st.trim()))),
            "toChars" => {
                no_args(0, 0)?;
                let Some(st) = string_input(&input)? else {
                    return Ok(vec![]);
                };
                Ok(st.chars().map(|c| s(c.to_string())).collect())
            }
            "replace" => {
                no_args(2, 2)?;
                let Some(st) = string_input(&input)? else {
                    return Ok(vec![]);
                };
                let (Some(pat), Some(rep)) = (
                    self.arg_string(args, 0, &input, frame)?,
                    self.arg_string(args, 1, &input, frame)?,
                ) else {
                    return Ok(vec![]);
                };
                // bound the result before building it: a long replacement repeated
                // at every position could otherwise exhaust memory
                let n = if pat.is_empty() {
                    st.chars().count() + 1
                } else {
                    st.matches(pat.as_str()).count()
                };
                if st.len().saturating_add(n.saturating_mul(rep.len())) > crate::eval::MAX_STRING {
                    return eval_err("replace() result larger than 64 MiB");
                }
                let out = if pat.is_empty() {
                    // JavaScript split('').join(rep) semantics: between every character and at both ends
                    let mut o = rep.clone();
                    for c in st.chars() {
                        o.push(c);
                        o.push_str(&rep);
                    }
                    o
                } else {
                    st.replace(&pat, &rep)
                };
                crate::eval::check_len(&out)?;
                Ok(vec![s(out)])
            }
            "matches" | "matchesFull" => {
                no_args(1, 1)?;
                let Some(st) = string_input(&input)? else {
                    return Ok(vec![]);
                };
                let Some(pat) = self.arg_string(args, 0, &input, frame)? else {
                    return Ok(vec![]);
                };
                b(regex(&pat, name == "matchesFull")?.is_match(&st))
            }
            "replaceMatches" => {
                no_args(2, 2)?;
                let Some(st) = string_input(&input)? else {
                    return Ok(vec![]);
                };
                let (Some(pat), Some(rep)) = (
                    self.arg_string(args, 0, &input, frame)?,
                    self.arg_string(args, 1, &input, frame)?,
                ) else {
                    return Ok(vec![]);
                };
                let re = regex(&pat, false)?;
                let refs = rep.matches('$').count();
                let per_match = rep.len().saturating_add(refs.saturating_mul(st.len()));
                // count matches only as far as the bound needs
                if let Some(room) = crate::eval::MAX_STRING
                    .saturating_sub(st.len())
                    .checked_div(per_match)
                {
                    if re.find_iter(&st).take(room.saturating_add(1)).count() > room {
                        return eval_err("replaceMatches() result larger than 64 MiB");
                    }
                }
                let out = re
                    .replace_all(&st, js_replacement(&rep).as_str())
                    .into_owned();
                crate::eval::check_len(&out)?;
                Ok(vec![s(out)])
            }
            "split" => {
                no_args(1, 1)?;
                let Some(st) = string_input(&input)? else {
                    return Ok(vec![]);
                };
                let Some(sep) = self.arg_string(args, 0, &input, frame)? else {
                    return Ok(vec![]);
                };
                if sep.is_empty() {
                    return Ok(st.chars().map(|c| s(c.to_string())).collect());
                }
                Ok(st.split(sep.as_str()).map(s).collect())
            }
            "join" => {
                no_args(0, 1)?;
                let sep = self.arg_string(args, 0, &input, frame)?.unwrap_or_default();
                let mut parts = Vec::new();
                for i in &input {
                    match prim(i) {
                        Item::String(x) => parts.push(x.into_owned()),
                        _ => return eval_err("join() needs strings"),
                    }
                }
                let out = parts.join(&sep);
                crate::eval::check_len(&out)?;
                Ok(vec![s(out)])
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_math(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "abs" | "ceiling" | "floor" | "truncate" | "exp" | "ln" | "sqrt" => {
                no_args(0, 0)?;
                let Some(i) = singleton(&input)? else {
                    return Ok(vec![]);
                };
                self.math1(name, prim(&i))
            }
            "round" => {
                no_args(0, 1)?;
                let Some(i) = singleton(&input)? else {
                    return Ok(vec![]);
                };
                let digits = self.arg_int(args, 0, &input, frame)?.unwrap_or(0);
                if digits < 0 {
                    return eval_err("round() precision must be >= 0");
                }
                let d = match prim(&i) {
                    Item::Integer(n) => Decimal::from_i64(n),
                    Item::Decimal(d) => d,
                    _ => return eval_err("round() needs a number"),
                };
                Ok(d.round(digits.min(30) as u32)
                    .map(Item::Decimal)
                    .into_iter()
                    .collect())
            }
            "log" | "power" => {
                no_args(1, 1)?;
                let Some(i) = singleton(&input)? else {
                    return Ok(vec![]);
                };
                let Some(a) = self.arg_single(args, 0, &input, frame)? else {
                    return Ok(vec![]);
                };
                let f = |x: &Item| match x {
                    Item::Integer(n) => Ok(*n as f64),
                    Item::Decimal(d) => Ok(d.to_f64()),
                    _ => eval_err(format!("{name}() needs numbers")),
                };
                let (x, y) = (f(&prim(&i))?, f(&a)?);
                if name == "power" {
                    if let (Item::Integer(base), Item::Integer(e)) = (prim(&i), &a) {
                        if *e >= 0 {
                            return Ok(u32::try_from(*e)
                                .ok()
                                .and_then(|e| base.checked_pow(e))
                                .map(Item::Integer)
                                .into_iter()
                                .collect());
                        }
                    }
                    return Ok(Decimal::from_f64(x.powf(y))
                        .map(Item::Decimal)
                        .into_iter()
                        .collect());
                }
                Ok(Decimal::from_f64(x.ln() / y.ln())
                    .map(Item::Decimal)
                    .into_iter()
                    .collect())
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_tree(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        _frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "children" => {
                no_args(0, 0)?;
                Ok(self.children(&input))
            }
            "descendants" => {
                no_args(0, 0)?;
                let mut out = Vec::new();
                let mut level = self.children(&input);
                while !level.is_empty() {
                    if out.len() > 10_000_000 {
                        return eval_err("descendants() too large");
                    }
                    let next = self.children(&level);
                    out.extend(level);
                    level = next;
                }
                Ok(out)
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_utility(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "trace" => {
                no_args(1, 2)?;
                Ok(input)
            }
            "now" | "today" | "timeOfDay" => {
                no_args(0, 0)?;
                let now = self.env.now().unwrap_or_else(system_now);
                let t = Temporal::parse_date_time(&now)
                    .ok_or_else(|| Error::Eval("invalid clock value".into()))?;
                Ok(vec![match name {
                    "now" => Item::DateTime(now),
                    "today" => {
                        let mut d = t;
                        d.has_time = false;
                        d.precision = 3;
                        Item::Date(d.format())
                    }
                    _ => {
                        let mut tm = t;
                        tm.has_date = false;
                        tm.tz = None;
                        tm.precision = tm.precision.saturating_sub(3).max(1);
                        Item::Time(tm.format())
                    }
                }])
            }
            "aggregate" => {
                no_args(1, 2)?;
                let mut total = match args.get(1) {
                    Some(init) => self.eval(init, &input, frame)?,
                    None => vec![],
                };
                for (i, it) in input.iter().enumerate() {
                    let f = Frame {
                        this: vec![it.clone()],
                        index: Some(i as i64),
                        total: Some(total),
                    };
                    total = self.eval(&args[0], std::slice::from_ref(it), &f)?;
                }
                Ok(total)
            }
            "sum" | "min" | "max" | "avg" => self.aggregate_fn(name, input),
            "not" => {
                no_args(0, 0)?;
                Ok(to_bool(&input)?
                    .map(|x| Item::Boolean(!x))
                    .into_iter()
                    .collect())
            }
            "type" => {
                no_args(0, 0)?;
                Ok(input
                    .iter()
                    .map(|i| {
                        let (ns, n) = match value::system_type(i) {
                            Some(t) => ("System", t.to_string()),
                            None => (
                                "FHIR",
                                self.item_type(i)
                                    .map_or_else(|| "Element".to_string(), |t| t.into_owned()),
                            ),
                        };
                        Item::Owned {
                            value: std::sync::Arc::new(
                                serde_json::json!({"namespace": ns, "name": n}),
                            ),
                            type_name: Some("TypeInfo".into()),
                        }
                    })
                    .collect())
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    #[inline(never)]
    fn f_fhir(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        let no_args = |min: usize, max: usize| arity(name, args, min, max);
        match name {
            "extension" => {
                no_args(1, 1)?;
                let Some(url) = self.arg_string(args, 0, &input, frame)? else {
                    return Ok(vec![]);
                };
                Ok(self
                    .members(&input, "extension")
                    .into_iter()
                    .filter(|e| {
                        value::json_of(e)
                            .and_then(|v| v.get("url"))
                            .and_then(Value::as_str)
                            == Some(url.as_str())
                    })
                    .collect())
            }
            "hasValue" => {
                no_args(0, 0)?;
                b(input.len() == 1
                    && value::json_of(&input[0]).is_some_and(|v| !v.is_object() && !v.is_array()))
            }
            "getValue" => {
                no_args(0, 0)?;
                match singleton(&input)? {
                    Some(i)
                        if value::json_of(&i).is_some_and(|v| !v.is_object() && !v.is_array()) =>
                    {
                        Ok(vec![prim(&i)])
                    }
                    _ => Ok(vec![]),
                }
            }
            "memberOf" => {
                no_args(1, 1)?;
                let Some(vs) = self.arg_string(args, 0, &input, frame)? else {
                    return Ok(vec![]);
                };
                // HAPI (Matchbox) answers empty unless exactly one item is tested
                let [i] = input.as_slice() else {
                    return Ok(vec![]);
                };
                let r = self.member_of(i, &vs)?;
                Ok(r.map(Item::Boolean).into_iter().collect())
            }
            "resolve" => {
                no_args(0, 0)?;
                Ok(self.resolve(&input))
            }
            "htmlChecks" | "htmlchecks" => {
                no_args(0, 0)?;
                b(true)
            }
            "conformsTo" => {
                eval_err("conformsTo() needs a validator, which this evaluator does not have")
            }
            _ => Err(Error::UnknownFunction(name.to_string())),
        }
    }

    fn convert<T>(
        &self,
        name: &str,
        input: Items<'a>,
        args: &[Expr],
        f: impl Fn(&Item<'a>) -> Option<T>,
        wrap: impl Fn(T) -> Item<'a>,
    ) -> R<Items<'a>> {
        arity(name, args, 0, 0)?;
        let Some(i) = singleton(&input)? else {
            return Ok(vec![]);
        };
        let r = f(&i);
        if name.starts_with("convertsTo") {
            return b(r.is_some());
        }
        Ok(r.map(wrap).into_iter().collect())
    }

    fn string_fn(
        &self,
        input: Items<'a>,
        args: &[Expr],
        frame: &Frame<'a>,
        f: impl Fn(&str, &[Option<String>]) -> Option<Item<'a>>,
    ) -> R<Items<'a>> {
        let Some(st) = string_input(&input)? else {
            return Ok(vec![]);
        };
        let mut a = Vec::new();
        for i in 0..args.len() {
            let v = self.arg_string(args, i, &input, frame)?;
            if v.is_none() {
                return Ok(vec![]);
            }
            a.push(v);
        }
        if a.is_empty() {
            a.push(None);
        }
        Ok(f(&st, &a).into_iter().collect())
    }

    fn math1(&self, name: &str, i: Item<'a>) -> R<Items<'a>> {
        let out = match (name, i) {
            ("abs", Item::Integer(n)) => Some(Item::Integer(
                n.checked_abs()
                    .ok_or_else(|| Error::Eval("integer overflow".into()))?,
            )),
            ("abs", Item::Decimal(d)) => Some(Item::Decimal(if d.text.starts_with('-') {
                d.negated()
            } else {
                d
            })),
            ("abs", Item::Quantity { value, unit }) => Some(Item::Quantity {
                value: if value.text.starts_with('-') {
                    value.negated()
                } else {
                    value
                },
                unit,
            }),
            ("ceiling" | "floor" | "truncate", Item::Integer(n)) => Some(Item::Integer(n)),
            ("ceiling" | "floor" | "truncate", Item::Decimal(d)) => {
                let x = d.to_f64();
                let r = match name {
                    "ceiling" => x.ceil(),
                    "floor" => x.floor(),
                    _ => x.trunc(),
                };
                if r.abs() > 9.0e18 {
                    return eval_err("integer overflow");
                }
                Some(Item::Integer(r as i64))
            }
            (_, Item::Integer(n)) => self.math_f(name, n as f64),
            (_, Item::Decimal(d)) => self.math_f(name, d.to_f64()),
            _ => return eval_err(format!("{name}() needs a number")),
        };
        Ok(out.into_iter().collect())
    }

    fn math_f(&self, name: &str, x: f64) -> Option<Item<'a>> {
        let r = match name {
            "exp" => x.exp(),
            "ln" => x.ln(),
            _ => x.sqrt(),
        };
        Decimal::from_f64(r).map(Item::Decimal)
    }

    fn aggregate_fn(&self, name: &str, input: Items<'a>) -> R<Items<'a>> {
        if input.is_empty() {
            return Ok(if name == "sum" {
                vec![Item::Integer(0)]
            } else {
                vec![]
            });
        }
        let items: Items<'a> = input.iter().map(prim).collect();
        match name {
            "min" | "max" => {
                let mut best = items[0].clone();
                for i in &items[1..] {
                    let o = value::compare(i, &best).map_err(Error::Eval)?;
                    let better = match o {
                        Some(std::cmp::Ordering::Less) => name == "min",
                        Some(std::cmp::Ordering::Greater) => name == "max",
                        Some(_) => false,
                        None => return Ok(vec![]),
                    };
                    if better {
                        best = i.clone();
                    }
                }
                Ok(vec![best])
            }
            _ => {
                let mut acc = items[0].clone();
                for i in &items[1..] {
                    acc = crate::ops::binary(
                        crate::ast::BinOp::Add,
                        vec![acc],
                        vec![i.clone()],
                        false,
                    )?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Eval("sum overflow".into()))?;
                }
                if name == "avg" {
                    return crate::ops::binary(
                        crate::ast::BinOp::Div,
                        vec![acc],
                        vec![Item::Integer(items.len() as i64)],
                        false,
                    );
                }
                Ok(vec![acc])
            }
        }
    }

    fn children(&self, input: &[Item<'a>]) -> Items<'a> {
        let mut out = Vec::new();
        for i in input {
            if let Some(Value::Object(map)) = value::json_of(i) {
                let keys: Vec<String> = map
                    .keys()
                    .filter(|k| !k.starts_with('_') && *k != "resourceType")
                    .cloned()
                    .collect();
                for k in keys {
                    out.extend(self.members(std::slice::from_ref(i), &k));
                }
            }
        }
        out
    }

    fn member_of(&self, item: &Item<'a>, vs: &str) -> R<Option<bool>> {
        let ask = |system: Option<&str>, code: &str| -> R<bool> {
            self.env
                .member_of(system, code, vs)
                .ok_or_else(|| Error::Eval(format!("unknown value set {vs}")))
        };
        if let Some(code) = as_str(item) {
            return ask(None, code).map(Some);
        }
        let Some(v) = value::json_of(item) else {
            return Ok(None);
        };
        let codings: Vec<&Value> = match v.get("coding").and_then(Value::as_array) {
            Some(cs) => cs.iter().collect(),
            None => vec![v],
        };
        let mut any_code = false;
        for c in codings {
            if let Some(code) = c.get("code").and_then(Value::as_str) {
                any_code = true;
                if ask(c.get("system").and_then(Value::as_str), code)? {
                    return Ok(Some(true));
                }
            }
        }
        Ok(if any_code { Some(false) } else { None })
    }

    fn resolve(&self, input: &[Item<'a>]) -> Items<'a> {
        let mut out = Vec::new();
        let bundle = self
            .env
            .variable("resource")
            .unwrap_or_else(|| self.context.clone());
        for i in input {
            let reference = match as_str(i) {
                Some(r) => r.to_string(),
                None => match value::json_of(i)
                    .and_then(|v| v.get("reference"))
                    .and_then(Value::as_str)
                {
                    Some(r) => r.to_string(),
                    None => continue,
                },
            };
            for b in &bundle {
                let is_bundle = value::json_of(b)
                    .and_then(|v| v.get("resourceType"))
                    .and_then(Value::as_str)
                    == Some("Bundle");
                if !is_bundle {
                    continue;
                }
                for entry in self.members(std::slice::from_ref(b), "entry") {
                    let Some(ev) = value::json_of(&entry) else {
                        continue;
                    };
                    let full = ev.get("fullUrl").and_then(Value::as_str);
                    let res = ev.get("resource");
                    let typed = res.and_then(|r| {
                        Some(format!(
                            "{}/{}",
                            r.get("resourceType")?.as_str()?,
                            r.get("id")?.as_str()?
                        ))
                    });
                    let hit = full == Some(reference.as_str())
                        || typed.as_deref().is_some_and(|t| {
                            reference == t || reference.ends_with(&format!("/{t}"))
                        });
                    if hit {
                        out.extend(self.members(std::slice::from_ref(&entry), "resource"));
                    }
                }
            }
        }
        out
    }
}

/// UTC now as an ISO dateTime with milliseconds.
fn system_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let base = Temporal::parse_date_time("1970-01-01T00:00:00.000+00:00")
        .and_then(|t| t.add(ms as f64, "ms"));
    base.map(|t| t.format())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000+00:00".into())
}

#[cfg(test)]
mod tests {
    use super::js_replacement;

    #[test]
    fn replacement_syntax_maps_to_the_regex_crate() {
        for (js, ours) in [
            ("$1-$2", "${1}-${2}"),
            ("$<year>", "${year}"),
            ("${year}", "${year}"),
            ("$&!", "${0}!"),
            ("$$", "$$"),
            // Not a group name: the `$` is literal and the rest stays text.
            ("${bad-name}", "$${bad-name}"),
            ("${}", "$${}"),
            ("$<>", "$$<>"),
            ("$<open", "$$<open"),
            ("${open", "$${open"),
            ("a$", "a$$"),
        ] {
            assert_eq!(js_replacement(js), ours, "{js}");
        }
    }
}
