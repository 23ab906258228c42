//! Oracle (c): the runnable scenarios of the IG's Karate feature
//! `ddcc-ig/structuremap-tests/structuremap-tests.feature`, read directly from the
//! feature file: every scenario that transforms a fixture (`@matchbox`:
//! `param source` + `request read(...)`; `@validator`: `transform(fixture, out, map)`)
//! is run with the IG's compiled maps and `terminology-2023-11/`, and each of its
//! `match` assertions is checked (Karate semantics for `==`, `contains`,
//! `contains only`, `'#[n]'`). Commented-out assertions (`### NOT MAPPED ###`) stay
//! skipped, as in the feature.

mod transform_support;

use fml::exec::{transform, MapRegistry};
use serde_json::{Map, Value};
use std::path::Path;
use transform_support::*;

#[derive(Debug)]
enum Op {
    Eq,
    Contains,
    ContainsOnly,
}

#[derive(Debug)]
struct Assertion {
    line: usize,
    text: String,
    path: Vec<PathSeg>,
    op: Op,
    expected: Value,
}

#[derive(Debug)]
enum PathSeg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Default)]
struct Scenario {
    line: usize,
    name: String,
    tags: Vec<String>,
    map: Option<String>,
    fixture: Option<String>,
    expects_ok: bool,
    assertions: Vec<Assertion>,
    other_steps: Vec<String>,
}

// ---- a tiny reader for the JavaScript-ish literals Karate uses -------------------

struct Lit<'s> {
    s: &'s [u8],
    i: usize,
}

impl Lit<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'\'') | Some(b'"') => self.string().map(Value::String),
            Some(b'{') => self.object(),
            Some(b'[') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(out));
                    }
                    out.push(self.value()?);
                    self.ws();
                    if self.s.get(self.i) == Some(&b',') {
                        self.i += 1;
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && !matches!(self.s[self.i], b',' | b'}' | b']')
                    && !self.s[self.i].is_ascii_whitespace()
                {
                    self.i += 1;
                }
                let tok = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                serde_json::from_str(tok).map_err(|_| format!("cannot read literal '{tok}'"))
            }
            None => Err("unexpected end of literal".into()),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let q = self.s[self.i];
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        let out = std::str::from_utf8(&self.s[start..self.i])
            .map_err(|e| e.to_string())?
            .to_string();
        self.i += 1;
        Ok(out)
    }
    fn object(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut m = Map::new();
        loop {
            self.ws();
            match self.s.get(self.i) {
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(m));
                }
                Some(b',') => self.i += 1,
                Some(b'\'') | Some(b'"') => {
                    let k = self.string()?;
                    self.colon()?;
                    m.insert(k, self.value()?);
                }
                Some(_) => {
                    let start = self.i;
                    while self.i < self.s.len()
                        && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                    {
                        self.i += 1;
                    }
                    if start == self.i {
                        return Err("bad object key".into());
                    }
                    let k = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    self.colon()?;
                    m.insert(k, self.value()?);
                }
                None => return Err("unterminated object".into()),
            }
        }
    }
    fn colon(&mut self) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&b':') {
            self.i += 1;
            Ok(())
        } else {
            Err("expected ':'".into())
        }
    }
}

fn literal(s: &str) -> Result<Value, String> {
    let mut l = Lit {
        s: s.as_bytes(),
        i: 0,
    };
    let v = l.value()?;
    l.ws();
    if l.i != s.len() {
        return Err(format!("trailing text in literal: {}", &s[l.i..]));
    }
    Ok(v)
}

fn path(p: &str) -> Result<Vec<PathSeg>, String> {
    let rest = p
        .strip_prefix("response")
        .ok_or_else(|| format!("path does not start at response: {p}"))?;
    let mut out = Vec::new();
    for part in rest.split('.').filter(|x| !x.is_empty()) {
        let (key, idx) = match part.split_once('[') {
            Some((k, i)) => (k, Some(i.trim_end_matches(']'))),
            None => (part, None),
        };
        if !key.is_empty() {
            out.push(PathSeg::Key(key.to_string()));
        }
        if let Some(i) = idx {
            out.push(PathSeg::Index(
                i.parse().map_err(|_| format!("bad index in {p}"))?,
            ));
        }
    }
    Ok(out)
}

fn quoted_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut l = Lit {
        s: s.as_bytes(),
        i: 0,
    };
    while l.i < l.s.len() {
        if matches!(l.s[l.i], b'\'' | b'"') {
            if let Ok(x) = l.string() {
                out.push(x);
            }
        } else {
            l.i += 1;
        }
    }
    out
}

fn parse_feature(text: &str) -> Result<Vec<Scenario>, String> {
    let mut out: Vec<Scenario> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let no = n + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('@') {
            tags.extend(line.split_whitespace().map(str::to_string));
            continue;
        }
        if let Some(name) = line
            .strip_prefix("Scenario Outline:")
            .or_else(|| line.strip_prefix("Scenario:"))
        {
            out.push(Scenario {
                line: no,
                name: name.trim().to_string(),
                tags: std::mem::take(&mut tags),
                ..Scenario::default()
            });
            continue;
        }
        let Some(sc) = out.last_mut() else { continue };
        let step = line
            .split_once(' ')
            .map(|(kw, rest)| {
                if matches!(kw, "Given" | "When" | "Then" | "And" | "But" | "*") {
                    rest.trim()
                } else {
                    line
                }
            })
            .unwrap_or(line);
        if let Some(rest) = step.strip_prefix("param source =") {
            sc.map = quoted_args(rest).into_iter().next();
        } else if let Some(rest) = step.strip_prefix("request read(") {
            sc.fixture = quoted_args(rest).into_iter().next();
        } else if let Some(rest) = step.strip_prefix("def response = transform(") {
            let a = quoted_args(rest);
            sc.fixture = a.first().cloned();
            sc.map = a.get(2).cloned();
            sc.expects_ok = true;
        } else if step == "status 200" {
            sc.expects_ok = true;
        } else if let Some(rest) = step.strip_prefix("match ") {
            let (lhs, op, rhs) = if let Some((l, r)) = rest.split_once(" contains only ") {
                (l, Op::ContainsOnly, r)
            } else if let Some((l, r)) = rest.split_once(" contains ") {
                (l, Op::Contains, r)
            } else if let Some((l, r)) = rest.split_once(" == ") {
                (l, Op::Eq, r)
            } else {
                return Err(format!("line {no}: unsupported match: {line}"));
            };
            sc.assertions.push(Assertion {
                line: no,
                text: line.to_string(),
                path: path(lhs.trim()).map_err(|e| format!("line {no}: {e}"))?,
                op,
                expected: literal(rhs.trim()).map_err(|e| format!("line {no}: {e}"))?,
            });
        } else {
            sc.other_steps.push(step.to_string());
        }
    }
    Ok(out)
}

fn at<'v>(v: &'v Value, p: &[PathSeg]) -> Option<&'v Value> {
    let mut cur = v;
    for s in p {
        cur = match s {
            PathSeg::Key(k) => cur.get(k)?,
            PathSeg::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

/// Karate's match semantics for the forms the feature uses.
fn check(a: &Assertion, actual: Option<&Value>) -> Result<(), String> {
    let Some(actual) = actual else {
        return Err("path not present".into());
    };
    if let (Op::Eq, Value::String(s)) = (&a.op, &a.expected) {
        if let Some(n) = s.strip_prefix("#[").and_then(|x| x.strip_suffix(']')) {
            let n: usize = n.parse().map_err(|_| format!("bad marker {s}"))?;
            return match actual {
                Value::Array(items) if items.len() == n => Ok(()),
                Value::Array(items) => Err(format!("expected {n} items, got {}", items.len())),
                other => Err(format!("expected an array, got {other}")),
            };
        }
    }
    let ok = match (&a.op, actual, &a.expected) {
        (Op::Eq, x, y) => x == y,
        (Op::ContainsOnly, Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && ys.iter().all(|y| xs.contains(y))
        }
        (Op::ContainsOnly, x, y) => x == y,
        (Op::Contains, Value::Object(x), Value::Object(y)) => {
            y.iter().all(|(k, v)| x.get(k) == Some(v))
        }
        (Op::Contains, Value::Array(xs), Value::Array(ys)) => ys.iter().all(|y| xs.contains(y)),
        (Op::Contains, Value::Array(xs), y) => xs.contains(y),
        (Op::Contains, Value::String(x), Value::String(y)) => x.contains(y.as_str()),
        (Op::Contains, x, y) => x == y,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("got {actual}"))
    }
}

fn setup_registry(mut reg: MapRegistry, setup: &Value) -> MapRegistry {
    if let Some(aliases) = setup.get("profile_aliases").and_then(Value::as_object) {
        for (url, base) in aliases {
            if let Some(b) = base.as_str().filter(|_| !url.starts_with('_')) {
                reg.add_profile_alias(url, b);
            }
        }
    }
    let urls: Vec<String> = reg.maps().map(|m| m.url.clone()).collect();
    if let Some(bases) = setup.get("map_url_bases").and_then(Value::as_object) {
        for (old, new) in bases {
            let Some(new) = new.as_str().filter(|_| !old.starts_with('_')) else {
                continue;
            };
            for u in &urls {
                if let Some(name) = u.strip_prefix(new) {
                    reg.add_map_url_alias(&format!("{old}{name}"), u);
                }
            }
        }
    }
    reg
}

#[test]
fn structuremap_feature_scenarios() {
    let Some(conf) = conformance_dir() else {
        return;
    };
    let setup = read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/transform/structuremap-tests-setup.json"),
    );
    let folder = setup
        .get("terminology")
        .and_then(Value::as_str)
        .unwrap_or("terminology-2023-11");
    let mut term = terminology(&conf, folder);
    for f in
        json_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transform/terminology"))
    {
        term.add_resource(&read_json(&f));
    }
    let known: Vec<(usize, String)> = setup
        .get("known_differences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| {
            Some((
                k.get("line")?.as_u64()? as usize,
                k.get("reason")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let feature_dir = conf.join("ddcc-ig/structuremap-tests");
    let text = std::fs::read_to_string(feature_dir.join("structuremap-tests.feature"))
        .expect("feature file");
    let scenarios = parse_feature(&text).unwrap_or_else(|e| panic!("feature: {e}"));

    let mut total_failures = 0;
    for (source, reg) in ig_registries(&conf) {
        let reg = setup_registry(reg, &setup);
        let mut known_seen = Vec::new();
        let (mut run, mut sc_passed, mut sc_known, mut checks, mut checks_passed) = (0, 0, 0, 0, 0);
        let mut not_run = Vec::new();
        let mut failures = Vec::new();
        for sc in &scenarios {
            let (Some(map), Some(fixture)) = (&sc.map, &sc.fixture) else {
                let why = if sc.tags.iter().any(|t| t == "@ignore") {
                    "tagged @ignore (server metadata, not a transform)"
                } else if sc.tags.iter().any(|t| t == "@preload") {
                    "server preload step (upload of IG/maps/definitions); our registry loads them directly"
                } else {
                    "no transform in scenario"
                };
                not_run.push(format!("line {}: {} — {why}", sc.line, sc.name));
                continue;
            };
            run += 1;
            let input = read_json(&feature_dir.join(fixture));
            let result = transform(map, &input, &reg, &term);
            let mut errs = Vec::new();
            let known_before = known_seen.len();
            match &result {
                Err(e) => errs.push(format!("transform failed: {e}")),
                Ok(out) => {
                    for a in &sc.assertions {
                        checks += 1;
                        let reason = known.iter().find(|(l, _)| *l == a.line).map(|(_, r)| r);
                        match (check(a, at(out, &a.path)), reason) {
                            (Ok(()), None) => checks_passed += 1,
                            (Ok(()), Some(_)) => errs.push(format!(
                            "line {}: listed as a known difference but now passes; update the list",
                            a.line
                        )),
                            (Err(e), Some(r)) => known_seen.push(format!(
                                "line {}: {} -> {e}\n      reason: {r}",
                                a.line, a.text
                            )),
                            (Err(e), None) => {
                                errs.push(format!("line {}: {} -> {e}", a.line, a.text))
                            }
                        }
                    }
                }
            }
            if result.is_err() {
                checks += sc.assertions.len();
            }
            if errs.is_empty() && (result.is_ok() || !sc.expects_ok) {
                if known_seen.len() == known_before {
                    sc_passed += 1;
                } else {
                    sc_known += 1;
                }
            } else {
                failures.push(format!(
                    "scenario line {} '{}' ({map} on {fixture}):\n    {}",
                    sc.line,
                    sc.name,
                    errs.join("\n    ")
                ));
            }
        }
        for n in &not_run {
            println!("NOT RUN {n}");
        }
        for k in &known_seen {
            println!("KNOWN [{source}] {k}");
        }
        for f in &failures {
            println!("DIFF [{source}] {f}");
        }
        println!(
        "{source}: {checks_passed} of {checks} assertions passed ({} known differences, listed above)",
        known_seen.len()
    );
        println!(
        "{source}: {sc_passed} of {run} scenarios passed ({sc_known} more pass except for known differences)"
    );
        assert!(
            run >= 16,
            "expected at least 16 runnable scenarios, found {run}"
        );
        total_failures += failures.len();
    }
    assert_eq!(total_failures, 0, "scenario failures listed above");
}
