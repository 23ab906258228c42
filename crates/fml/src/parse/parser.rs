//! Recursive-descent parser for the FHIR Mapping Language, following the HL7
//! `StructureMapUtilities.parse` grammar so the JSON it builds matches what the IG
//! Publisher (and Matchbox) store for the same text.

use serde_json::{json, Map, Value};

use super::fhirpath::parse_expression;
use super::lexer::{unquote, Comment, Token};
use super::{Dialect, ParseError, ParseOptions};

/// Deepest `then { … }` nesting accepted. Real maps nest fewer than ten levels;
/// the limit keeps recursion (and the recursive drop of the result) far from the
/// stack's end even on small thread stacks.
pub const MAX_RULE_DEPTH: usize = 100;

const TRANSFORMS: &[&str] = &[
    "create",
    "copy",
    "truncate",
    "escape",
    "cast",
    "append",
    "translate",
    "reference",
    "dateOp",
    "uuid",
    "pointer",
    "evaluate",
    "cc",
    "c",
    "qty",
    "id",
    "cp",
];

const SOURCE_LIST_MODES: &[&str] = &["first", "not_first", "last", "not_last", "only_one"];

/// Name and variable the compiler uses for the short form `src.a -> tgt.b;`.
const AUTO_VAR_NAME: &str = "vvv";
const DEFAULT_GROUP_NAME: &str = "DefaultMappingGroup";

pub(crate) struct TokenStream<'a> {
    tokens: &'a [Token<'a>],
    pos: usize,
}

impl<'a> TokenStream<'a> {
    pub(crate) fn new(tokens: &'a [Token<'a>]) -> Self {
        Self { tokens, pos: 0 }
    }

    pub(crate) fn current(&self) -> &'a Token<'a> {
        // The tokenizer always ends the list with an end-of-input token, and
        // `take` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    pub(crate) fn at_end(&self) -> bool {
        self.current().text.is_empty()
    }

    pub(crate) fn has(&self, text: &str) -> bool {
        self.current().text == text
    }

    pub(crate) fn peek_next(&self) -> &'a Token<'a> {
        &self.tokens[(self.pos + 1).min(self.tokens.len() - 1)]
    }

    /// Takes a constant, joining a sign with the number after it (`-1`), which the
    /// lexer keeps apart because `-` is also an operator.
    fn take_constant(&mut self) -> Token<'a> {
        let sign = self.current();
        if matches!(sign.str(), "-" | "+")
            && self
                .peek_next()
                .text
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_digit())
        {
            let sign = self.take();
            let number = self.take();
            return Token {
                text: format!("{}{}", sign.text, number.text).into(),
                line: sign.line,
                column: sign.column,
                comments: sign.comments.clone(),
            };
        }
        self.take().clone()
    }

    pub(crate) fn take(&mut self) -> &'a Token<'a> {
        let tok = self.current();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    pub(crate) fn error_here(&self, message: impl Into<String>) -> ParseError {
        let tok = self.current();
        ParseError::new(tok.line, tok.column, message)
    }

    pub(crate) fn expected(&self, what: &str) -> ParseError {
        let found = if self.at_end() {
            "end of input".to_string()
        } else {
            format!("'{}'", self.current().text)
        };
        self.error_here(format!("expected {what} but found {found}"))
    }

    pub(crate) fn expect(&mut self, text: &str) -> Result<&'a Token<'a>, ParseError> {
        if self.has(text) {
            Ok(self.take())
        } else {
            Err(self.expected(&format!("'{text}'")))
        }
    }

    /// A name token (identifier or quoted name).
    fn take_name(&mut self, what: &str) -> Result<&'a Token<'a>, ParseError> {
        let tok = self.current();
        if tok.is_name() || tok.text.starts_with(['"', '`']) {
            Ok(self.take())
        } else {
            Err(self.expected(what))
        }
    }

    /// A string constant, or (leniently) a bare name where HAPI wants a string.
    fn read_constant(&mut self, what: &str) -> Result<String, ParseError> {
        let tok = self.current();
        if tok.is_string() {
            let tok = self.take();
            unquote(tok)
        } else if tok.is_name() {
            Ok(self.take().text.to_string())
        } else {
            Err(self.expected(what))
        }
    }
}

fn insert(obj: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    obj.insert(key.to_string(), value.into());
}

fn comments_text(comments: &[Comment]) -> Option<String> {
    let texts: Vec<&str> = comments
        .iter()
        .filter(|c| !c.metadata && !c.text.is_empty())
        .map(|c| c.text.as_str())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\r\n"))
}

/// Element names may be quoted (`src."-260"`): double quotes and back-ticks are
/// removed, as the compiler's `readAsStringOrProcessedConstant` does.
fn element_name(tok: &Token<'_>) -> Result<String, ParseError> {
    if tok.text.starts_with(['"', '`']) {
        unquote(tok)
    } else {
        Ok(tok.text.to_string())
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A ConceptMap group under construction: one per (source, target) system pair.
struct ConceptMapGroup {
    source: String,
    target: Option<String>,
    unmapped: Map<String, Value>,
    elements: Vec<Value>,
}

impl ConceptMapGroup {
    /// The group for `source` → `target`, created in first-seen order. A group
    /// opened by `unmapped for` (no target yet) adopts the first target seen.
    fn find_or_add(groups: &mut Vec<ConceptMapGroup>, source: &str, target: Option<&str>) -> usize {
        let found = groups.iter().position(|g| {
            g.source == source
                && (target.is_none() || g.target.is_none() || g.target.as_deref() == target)
        });
        match found {
            Some(i) => {
                if groups[i].target.is_none() {
                    groups[i].target = target.map(str::to_string);
                }
                i
            }
            None => {
                groups.push(ConceptMapGroup {
                    source: source.to_string(),
                    target: target.map(str::to_string),
                    unmapped: Map::new(),
                    elements: Vec::new(),
                });
                groups.len() - 1
            }
        }
    }
}

pub(crate) struct Parser<'a> {
    ts: TokenStream<'a>,
    options: &'a ParseOptions,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(tokens: &'a [Token<'a>], options: &'a ParseOptions) -> Self {
        Self {
            ts: TokenStream::new(tokens),
            options,
        }
    }

    pub(crate) fn parse_map(mut self) -> Result<Value, ParseError> {
        if self.ts.at_end() {
            return Err(self.ts.error_here("map input cannot be empty"));
        }
        let mut map = Map::new();
        insert(&mut map, "resourceType", "StructureMap");
        let mut header = Map::new();
        if self.ts.has("map") {
            self.ts.take();
            insert(&mut header, "url", self.ts.read_constant("the map url")?);
            self.ts.expect("=")?;
            insert(&mut header, "name", self.ts.read_constant("the map name")?);
            insert(&mut header, "status", "draft");
            if let Some(doc) = comments_text(&self.ts.current().comments) {
                insert(&mut header, "description", doc);
            }
        } else {
            self.parse_metadata(&mut header)?;
        }

        let mut structures = Vec::new();
        let mut imports = Vec::new();
        let mut contained = Vec::new();
        loop {
            match self.ts.current().str() {
                "uses" => structures.push(self.parse_uses()?),
                "imports" => {
                    self.ts.take();
                    imports.push(Value::from(self.ts.read_constant("an imported map url")?));
                    if self.ts.has(";") {
                        self.ts.take();
                    }
                }
                "conceptmap" => contained.push(self.parse_concept_map()?),
                _ => break,
            }
        }
        let mut groups = Vec::new();
        while !self.ts.at_end() {
            groups.push(self.parse_group()?);
        }

        if !contained.is_empty() {
            insert(&mut map, "contained", contained);
        }
        map.extend(header);
        if !structures.is_empty() {
            insert(&mut map, "structure", structures);
        }
        if !imports.is_empty() {
            insert(&mut map, "import", imports);
        }
        insert(&mut map, "group", groups);
        Ok(Value::Object(map))
    }

    /// Headerless maps open with `/// key = value` lines instead of `map … = …`.
    fn parse_metadata(&mut self, header: &mut Map<String, Value>) -> Result<(), ParseError> {
        let first = self.ts.current();
        let mut url = None;
        let (mut name, mut title, mut status, mut description, mut version) =
            (None, None, None, None, None);
        for c in first.comments.iter().filter(|c| c.metadata) {
            let Some((key, value)) = c.text.split_once('=') else {
                continue;
            };
            let raw = value.trim();
            let value = if raw.len() >= 2
                && ((raw.starts_with('\'') && raw.ends_with('\''))
                    || (raw.starts_with('"') && raw.ends_with('"')))
            {
                let tok = Token {
                    text: raw.to_string().into(),
                    line: c.line,
                    column: 1,
                    comments: Vec::new(),
                };
                unquote(&tok)?
            } else {
                raw.to_string()
            };
            match key.trim() {
                "url" => url = Some(value),
                "name" => name = Some(value),
                "title" => title = Some(value),
                "status" => status = Some(value),
                "description" => description = Some(value),
                "version" => version = Some(value),
                _ => {}
            }
        }
        let Some(url) = url else {
            return Err(self.ts.expected("'map' (or '/// url = …' metadata)"));
        };
        insert(header, "url", url);
        if let Some(v) = version {
            insert(header, "version", v);
        }
        if let Some(v) = name {
            insert(header, "name", v);
        }
        if let Some(v) = title {
            insert(header, "title", v);
        }
        insert(
            header,
            "status",
            status.unwrap_or_else(|| "draft".to_string()),
        );
        if let Some(v) = description {
            insert(header, "description", v);
        }
        Ok(())
    }

    fn parse_uses(&mut self) -> Result<Value, ParseError> {
        self.ts.expect("uses")?;
        let mut st = Map::new();
        insert(&mut st, "url", self.ts.read_constant("a structure url")?);
        let mut alias = None;
        if self.ts.has("alias") {
            self.ts.take();
            alias = Some(self.ts.take_name("an alias name")?);
        }
        self.ts.expect("as")?;
        let mode_tok = self.ts.current();
        let mode = mode_tok.str();
        if !matches!(mode, "source" | "target" | "queried" | "produced") {
            return Err(self
                .ts
                .expected("'source', 'target', 'queried' or 'produced'"));
        }
        self.ts.take();
        insert(&mut st, "mode", mode);
        if let Some(a) = alias {
            insert(&mut st, "alias", element_name(a)?);
        }
        if self.options.dialect == Dialect::IgPublisher {
            if let Some(doc) = self.trailing_comment(mode_tok.line) {
                insert(&mut st, "documentation", doc);
            }
        }
        if self.ts.has(";") {
            self.ts.take();
        }
        Ok(Value::Object(st))
    }

    /// A comment that starts on `line` just after the token consumed last.
    fn trailing_comment(&self, line: usize) -> Option<String> {
        self.ts
            .current()
            .comments
            .first()
            .filter(|c| c.line == line && !c.metadata)
            .map(|c| c.text.to_string())
    }

    fn parse_concept_map(&mut self) -> Result<Value, ParseError> {
        self.ts.expect("conceptmap")?;
        let id_tok = self.ts.current();
        let id = self.ts.read_constant("a concept map id")?;
        if id.starts_with('#') {
            return Err(ParseError::new(
                id_tok.line,
                id_tok.column,
                "a concept map id is written without its leading '#'",
            ));
        }
        self.ts.expect("{")?;
        let mut prefixes: Vec<(String, String)> = Vec::new();
        while self.ts.has("prefix") {
            self.ts.take();
            let n = self.ts.take_name("a prefix name")?.text.to_string();
            self.ts.expect("=")?;
            let v = self.ts.read_constant("a prefix url")?;
            prefixes.push((n, v));
        }
        let mut groups: Vec<ConceptMapGroup> = Vec::new();
        while self.ts.has("unmapped") {
            self.ts.take();
            self.ts.expect("for")?;
            let src = self.read_prefix(&prefixes)?;
            let i = ConceptMapGroup::find_or_add(&mut groups, &src, None);
            self.ts.expect("=")?;
            if !self.ts.has("provided") {
                return Err(self
                    .ts
                    .expected("'provided' (the only supported unmapped mode)"));
            }
            self.ts.take();
            insert(&mut groups[i].unmapped, "mode", "provided");
        }
        while !self.ts.has("}") {
            if self.ts.at_end() {
                return Err(self.ts.expected("'}' closing the concept map"));
            }
            let src = self.read_prefix(&prefixes)?;
            self.ts.expect(":")?;
            let code = self.read_code()?;
            let equivalence = match self.ts.current().str() {
                "-" => "relatedto",
                "=" => "equal",
                "==" => "equivalent",
                "!=" => "disjoint",
                "--" => "unmatched",
                "<=" => "wider",
                "<-" => "subsumes",
                ">=" => "narrower",
                ">-" => "specializes",
                "~" => "inexact",
                _ => {
                    return Err(self.ts.expected(
                        "a concept map equivalence (-, =, ==, !=, --, <=, <-, >=, >-, ~)",
                    ))
                }
            };
            self.ts.take();
            // `--` (unmatched) names no target concept.
            let (tgt, target) = if equivalence == "unmatched" {
                (None, json!({ "equivalence": equivalence }))
            } else {
                let tgt = self.read_prefix(&prefixes)?;
                self.ts.expect(":")?;
                let tcode = self.read_code()?;
                (
                    Some(tgt),
                    json!({ "code": tcode, "equivalence": equivalence }),
                )
            };
            let i = ConceptMapGroup::find_or_add(&mut groups, &src, tgt.as_deref());
            groups[i]
                .elements
                .push(json!({ "code": code, "target": [target] }));
        }
        self.ts.take();
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|g| {
                let mut out = Map::new();
                insert(&mut out, "source", g.source);
                if let Some(t) = g.target {
                    insert(&mut out, "target", t);
                }
                if !g.elements.is_empty() {
                    insert(&mut out, "element", g.elements);
                }
                if !g.unmapped.is_empty() {
                    insert(&mut out, "unmapped", Value::Object(g.unmapped));
                }
                Value::Object(out)
            })
            .collect();
        Ok(json!({"resourceType": "ConceptMap", "id": id, "status": "draft", "group": groups}))
    }

    fn read_prefix(&mut self, prefixes: &[(String, String)]) -> Result<String, ParseError> {
        let tok = self.ts.current();
        match prefixes.iter().find(|(n, _)| *n == tok.text) {
            Some((_, url)) => {
                self.ts.take();
                Ok(url.clone())
            }
            None => Err(ParseError::new(
                tok.line,
                tok.column,
                format!("unknown concept map prefix '{}'", tok.text),
            )),
        }
    }

    fn read_code(&mut self) -> Result<String, ParseError> {
        let tok = self.ts.take();
        if tok.text.is_empty() {
            return Err(ParseError::new(
                tok.line,
                tok.column,
                "expected a code but found end of input",
            ));
        }
        if tok.is_string() {
            unquote(tok)
        } else {
            Ok(tok.text.to_string())
        }
    }

    fn parse_group(&mut self) -> Result<Value, ParseError> {
        self.ts.expect("group")?;
        let mut group = Map::new();
        // The older spelling `group for types Name(…)` / `group for type+ types Name(…)`.
        let mut type_mode = "none";
        if self.ts.has("for") {
            self.ts.take();
            if self.ts.has("type") {
                self.ts.take();
                self.ts.expect("+")?;
                self.ts.expect("types")?;
                type_mode = "type-and-types";
            } else {
                self.ts.expect("types")?;
                type_mode = "types";
            }
        }
        insert(
            &mut group,
            "name",
            self.ts.take_name("a group name")?.text.to_string(),
        );
        self.ts.expect("(")?;
        let mut inputs = Vec::new();
        while !self.ts.has(")") {
            if self.ts.at_end() {
                return Err(self.ts.expected("')' closing the group parameters"));
            }
            let mode = self.ts.current().text.to_string();
            if mode != "source" && mode != "target" {
                return Err(self.ts.expected("'source' or 'target'"));
            }
            self.ts.take();
            let mut input = Map::new();
            insert(
                &mut input,
                "name",
                self.ts.take_name("a parameter name")?.text.to_string(),
            );
            if self.ts.has(":") {
                self.ts.take();
                insert(
                    &mut input,
                    "type",
                    self.ts.take_name("a parameter type")?.text.to_string(),
                );
            }
            insert(&mut input, "mode", mode);
            inputs.push(Value::Object(input));
            // Commas between parameters are optional, a trailing one is allowed.
            if self.ts.has(",") {
                self.ts.take();
            }
        }
        self.ts.take();
        if self.ts.has("extends") {
            self.ts.take();
            insert(
                &mut group,
                "extends",
                self.ts.take_name("a group name")?.text.to_string(),
            );
        }
        if self.ts.has("<") {
            self.ts.take();
            self.ts.expect("<")?;
            if self.ts.has("types") {
                self.ts.take();
                type_mode = "types";
            } else {
                self.ts.expect("type")?;
                self.ts.expect("+")?;
                type_mode = "type-and-types";
            }
            self.ts.expect(">")?;
            self.ts.expect(">")?;
        }
        insert(&mut group, "typeMode", type_mode);
        insert(&mut group, "input", inputs);
        let mut rules = Vec::new();
        if self.ts.has("{}") {
            self.ts.take();
        } else {
            self.ts.expect("{")?;
            while !self.ts.has("}") {
                if self.ts.at_end() {
                    return Err(self.ts.expected("'}' closing the group"));
                }
                rules.push(self.parse_rule(1)?);
            }
            self.ts.take();
        }
        if self.ts.has(";") {
            self.ts.take();
        }
        insert(&mut group, "rule", rules);
        Ok(Value::Object(group))
    }

    fn parse_rule(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_RULE_DEPTH {
            return Err(self
                .ts
                .error_here(format!("rules nested deeper than {MAX_RULE_DEPTH} levels")));
        }
        let leading_doc = self
            .ts
            .current()
            .comments
            .iter()
            .find(|c| !c.metadata)
            .map(|c| c.text.to_string());
        let mut sources = vec![self.parse_source()?];
        while self.ts.has(",") {
            self.ts.take();
            sources.push(self.parse_source()?);
        }
        let mut targets = Vec::new();
        if self.ts.has("->") {
            self.ts.take();
            targets.push(self.parse_target()?);
            while self.ts.has(",") {
                self.ts.take();
                targets.push(self.parse_target()?);
            }
        }
        let mut nested = Vec::new();
        let mut dependents = Vec::new();
        if self.ts.has("then") {
            self.ts.take();
            if self.ts.has("{}") {
                self.ts.take();
            } else if self.ts.has("{") {
                self.ts.take();
                while !self.ts.has("}") {
                    if self.ts.at_end() {
                        return Err(self.ts.expected("'}' closing the nested rules"));
                    }
                    nested.push(self.parse_rule(depth + 1)?);
                }
                self.ts.take();
            } else {
                dependents.push(self.parse_dependent()?);
                while self.ts.has(",") {
                    self.ts.take();
                    dependents.push(self.parse_dependent()?);
                }
            }
        }

        if is_simple_syntax(&sources, &targets, &nested, &dependents) {
            insert(&mut sources[0], "variable", AUTO_VAR_NAME);
            insert(&mut targets[0], "variable", AUTO_VAR_NAME);
            insert(&mut targets[0], "transform", "create");
            dependents.push(
                json!({"name": DEFAULT_GROUP_NAME, "variable": [AUTO_VAR_NAME, AUTO_VAR_NAME]}),
            );
        }

        let name = if self.ts.current().is_constant() {
            let tok = self.ts.take();
            let name = if tok.is_string() {
                unquote(tok)?
            } else {
                tok.text.to_string()
            };
            Some(match self.options.dialect {
                // The current compiler drops '-' from explicit rule names, so that
                // they can serve as ids.
                Dialect::IgPublisher => name.replace('-', ""),
                Dialect::Matchbox2022 => name,
            })
        } else {
            // Both reference compilers refuse to invent a name when there is no
            // single source element to name the rule after.
            Some(generated_rule_name(&sources).ok_or_else(|| {
                self.ts
                    .expected("a rule name (rules without a single source element must be named)")
            })?)
        };
        if !self.ts.has(";") {
            return Err(self.ts.expected("'->', 'then', a rule name or ';'"));
        }
        let semi = self.ts.take();
        let doc = match self.options.dialect {
            Dialect::IgPublisher => self.trailing_comment(semi.line),
            Dialect::Matchbox2022 => leading_doc,
        };

        let mut rule = Map::new();
        if let Some(name) = name {
            insert(&mut rule, "name", name);
        }
        insert(
            &mut rule,
            "source",
            sources.into_iter().map(Value::Object).collect::<Vec<_>>(),
        );
        if !targets.is_empty() {
            insert(
                &mut rule,
                "target",
                targets.into_iter().map(Value::Object).collect::<Vec<_>>(),
            );
        }
        if !nested.is_empty() {
            insert(&mut rule, "rule", nested);
        }
        if !dependents.is_empty() {
            insert(&mut rule, "dependent", dependents);
        }
        if let Some(doc) = doc {
            insert(&mut rule, "documentation", doc);
        }
        Ok(Value::Object(rule))
    }

    fn parse_source(&mut self) -> Result<Map<String, Value>, ParseError> {
        let mut src = Map::new();
        let context = self.ts.take_name("a source variable")?;
        let mut element = None;
        if context.text == "search" && self.ts.has("(") {
            self.ts.take();
            insert(&mut src, "context", "@search");
            element = Some(parse_expression(&mut self.ts)?);
            self.ts.expect(")")?;
        } else {
            insert(&mut src, "context", element_name(context)?);
            if self.ts.has(".") {
                self.ts.take();
                let tok = self.ts.take_name("an element name")?;
                element = Some(element_name(tok)?);
            }
        }
        if self.ts.has(":") {
            self.ts.take();
            let mut ty = self.ts.take_name("a type name")?.text.to_string();
            while self.ts.has(".") {
                self.ts.take();
                ty.push('.');
                ty.push_str(self.ts.take_name("a type name")?.str());
            }
            if self.ts.current().text.bytes().all(|b| b.is_ascii_digit()) && !self.ts.at_end() {
                let min_tok = self.ts.take();
                let min: u64 = min_tok.text.parse().map_err(|_| {
                    ParseError::new(
                        min_tok.line,
                        min_tok.column,
                        "minimum cardinality is too large",
                    )
                })?;
                self.ts.expect("..")?;
                let max = self.ts.take();
                if max.text != "*" && !max.text.bytes().all(|b| b.is_ascii_digit())
                    || max.text.is_empty()
                {
                    return Err(ParseError::new(
                        max.line,
                        max.column,
                        format!("expected a maximum cardinality but found '{}'", max.text),
                    ));
                }
                insert(&mut src, "min", min);
                insert(&mut src, "max", max.text.to_string());
            }
            insert(&mut src, "type", ty);
        }
        if self.ts.has("default") {
            self.ts.take();
            let tok = self.ts.take();
            let value = if tok.is_string() {
                unquote(tok)?
            } else if tok.is_constant() || tok.is_name() {
                tok.text.to_string()
            } else {
                return Err(ParseError::new(
                    tok.line,
                    tok.column,
                    "expected a default value",
                ));
            };
            insert(&mut src, "defaultValueString", value);
        }
        if let Some(e) = element {
            insert(&mut src, "element", e);
        }
        if SOURCE_LIST_MODES.contains(&self.ts.current().str()) {
            insert(&mut src, "listMode", self.ts.take().text.to_string());
        }
        if self.ts.has("as") {
            self.ts.take();
            insert(
                &mut src,
                "variable",
                self.ts.take_name("a variable name")?.text.to_string(),
            );
        }
        for (keyword, key) in [
            ("where", "condition"),
            ("check", "check"),
            ("log", "logMessage"),
        ] {
            if self.ts.has(keyword) {
                self.ts.take();
                insert(&mut src, key, parse_expression(&mut self.ts)?);
            }
        }
        Ok(src)
    }

    fn parse_target(&mut self) -> Result<Map<String, Value>, ParseError> {
        let mut tgt = Map::new();
        let first = self.ts.current();
        if !(first.is_name() || first.text == "(" || first.text.starts_with(['"', '`'])) {
            return Err(self.ts.expected("a target"));
        }
        self.ts.take();
        let mut start = Some(first);
        let mut context = None;
        let mut element = None;
        if self.ts.has(".") {
            context = start.take().cloned();
            self.ts.take();
            element = Some(element_name(self.ts.take_name("an element name")?)?);
        }
        let mut assigned = false;
        let mut is_constant = false;
        let name = if self.ts.has("=") {
            if let Some(s) = start.take() {
                context = Some(s.clone());
            }
            self.ts.take();
            assigned = true;
            is_constant = self.ts.current().is_constant();
            if self.ts.at_end() {
                return Err(self.ts.expected("a value"));
            }
            Some(self.ts.take_constant())
        } else {
            start.take().cloned()
        };

        let mut transform = None;
        let mut params: Vec<Value> = Vec::new();
        match name {
            Some(n) if n.text == "(" => {
                transform = Some("evaluate".to_string());
                let expr = parse_expression(&mut self.ts)?;
                self.ts.expect(")")?;
                params.push(json!({"valueString": expr}));
            }
            Some(n) if self.ts.has("(") => {
                if !TRANSFORMS.contains(&n.str()) {
                    return Err(ParseError::new(
                        n.line,
                        n.column,
                        format!("unknown transform '{}'", n.text),
                    ));
                }
                self.ts.take();
                if n.text == "evaluate" {
                    params.push(self.parse_parameter()?);
                    self.ts.expect(",")?;
                    let expr = parse_expression(&mut self.ts)?;
                    params.push(json!({"valueString": expr}));
                } else {
                    while !self.ts.has(")") {
                        if self.ts.has(",") {
                            // An empty argument (`translate(x, 'url', )`): skipped,
                            // as the IG Publisher does for a trailing one.
                            self.ts.take();
                            continue;
                        }
                        if self.ts.at_end() {
                            return Err(self.ts.expected("')'"));
                        }
                        params.push(self.parse_parameter()?);
                        if !self.ts.has(")") {
                            self.ts.expect(",")?;
                        }
                    }
                }
                self.ts.expect(")")?;
                transform = Some(n.text.to_string());
            }
            Some(n)
                if !assigned
                    && context.is_none()
                    && self.options.dialect == Dialect::IgPublisher =>
            {
                // `-> tgt` alone names a target variable to pass on.
                context = Some(n);
            }
            Some(n) => {
                transform = Some("copy".to_string());
                if is_constant {
                    params.push(constant_parameter(&n)?);
                } else {
                    let mut id = element_name(&n)?;
                    while self.ts.has(".") {
                        self.ts.take();
                        id.push('.');
                        id.push_str(self.ts.take_name("an element name")?.str());
                    }
                    params.push(json!({ "valueId": id }));
                }
            }
            None => {}
        }

        if let Some(c) = context {
            insert(&mut tgt, "context", element_name(&c)?);
        }
        insert(&mut tgt, "contextType", "variable");
        if let Some(e) = element {
            insert(&mut tgt, "element", e);
        }
        if self.ts.has("as") {
            self.ts.take();
            insert(
                &mut tgt,
                "variable",
                self.ts.take_name("a variable name")?.text.to_string(),
            );
        }
        let mut list_modes = Vec::new();
        while matches!(
            self.ts.current().str(),
            "first" | "last" | "share" | "collate"
        ) {
            let mode = self.ts.take().text.to_string();
            if mode == "share" {
                insert(
                    &mut tgt,
                    "listRuleId",
                    self.ts.take_name("a list rule id")?.text.to_string(),
                );
            }
            list_modes.push(Value::from(mode));
        }
        if !list_modes.is_empty() {
            insert(&mut tgt, "listMode", list_modes);
        }
        if let Some(t) = transform {
            insert(&mut tgt, "transform", t);
        }
        if !params.is_empty() {
            insert(&mut tgt, "parameter", params);
        }
        Ok(tgt)
    }

    fn parse_parameter(&mut self) -> Result<Value, ParseError> {
        let tok = self.ts.current();
        if tok.is_string() && !tok.text.starts_with('`') {
            self.ts.take();
            Ok(json!({ "valueString": unquote(tok)? }))
        } else if tok.is_constant() {
            let tok = self.ts.take_constant();
            constant_parameter(&tok)
        } else if tok.is_name() || tok.text.starts_with('`') {
            self.ts.take();
            Ok(json!({ "valueId": element_name(tok)? }))
        } else {
            Err(self.ts.expected("a parameter"))
        }
    }

    fn parse_dependent(&mut self) -> Result<Value, ParseError> {
        let name = self.ts.take_name("a group name")?.text.to_string();
        self.ts.expect("(")?;
        let mut vars = Vec::new();
        if !self.ts.has(")") {
            loop {
                let p = self.parse_parameter()?;
                let v = p
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or(Value::Null);
                vars.push(match v {
                    Value::String(s) => Value::String(s),
                    other => Value::String(other.to_string()),
                });
                if !self.ts.has(",") {
                    break;
                }
                self.ts.take();
            }
        }
        self.ts.expect(")")?;
        Ok(json!({ "name": name, "variable": vars }))
    }
}

/// A constant parameter: integer, decimal, boolean or (otherwise) string.
fn constant_parameter(tok: &Token<'_>) -> Result<Value, ParseError> {
    if tok.is_string() {
        return Ok(json!({ "valueString": unquote(tok)? }));
    }
    let t = tok.str();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let numeric = !digits.is_empty() && digits.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if numeric && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = t.parse::<i32>() {
            return Ok(json!({ "valueInteger": i }));
        }
    }
    if numeric && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        if let Ok(d) = t.parse::<f64>() {
            return Ok(json!({ "valueDecimal": d }));
        }
    }
    Ok(match t {
        "true" => json!({ "valueBoolean": true }),
        "false" => json!({ "valueBoolean": false }),
        _ => json!({ "valueString": t }),
    })
}

/// The IG Publisher names an unnamed rule after its single source element (plus
/// the type filter, capitalised).
fn generated_rule_name(sources: &[Map<String, Value>]) -> Option<String> {
    let [src] = sources else { return None };
    let element = src.get("element")?.as_str()?;
    Some(match src.get("type").and_then(Value::as_str) {
        Some(ty) => format!("{element}{}", capitalize(ty)),
        None => element.to_string(),
    })
}

/// `src.a -> tgt.b;`: the short form that delegates to the default type-mapping
/// group.
fn is_simple_syntax(
    sources: &[Map<String, Value>],
    targets: &[Map<String, Value>],
    nested: &[Value],
    dependents: &[Value],
) -> bool {
    let [src] = sources else { return false };
    let [tgt] = targets else { return false };
    src.contains_key("element")
        && !src.contains_key("variable")
        && tgt.contains_key("context")
        && tgt.contains_key("element")
        && !tgt.contains_key("variable")
        && !tgt.contains_key("parameter")
        && !tgt.contains_key("transform")
        && nested.is_empty()
        && dependents.is_empty()
}
