//! StructureMap JSON (R4) -> the executor's compiled form, with every FHIRPath
//! expression parsed once.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Why a StructureMap could not be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("not a StructureMap")]
    NotAStructureMap,
    #[error("StructureMap has no url")]
    NoUrl,
    #[error("StructureMap {map}: {message}")]
    Invalid { map: String, message: String },
    #[error("StructureMap {map}, group {group}, rule {rule}: FHIRPath '{expression}': {error}")]
    FhirPath {
        map: String,
        group: String,
        rule: String,
        expression: String,
        error: Box<fhirpath::Error>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelMode {
    Source,
    Queried,
    Target,
    Produced,
}

#[derive(Debug, Clone)]
pub struct Structure {
    pub url: String,
    pub mode: ModelMode,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeMode {
    None,
    Types,
    TypeAndTypes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    Source,
    Target,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub type_: Option<String>,
    pub mode: InputMode,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub extends: Option<String>,
    pub type_mode: TypeMode,
    pub inputs: Vec<Input>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceListMode {
    First,
    NotFirst,
    Last,
    NotLast,
    OnlyOne,
}

/// A FHIRPath expression with its text (for error messages).
#[derive(Debug, Clone)]
pub struct Expr {
    pub text: Arc<str>,
    pub expr: fhirpath::Expression,
    /// `name.path.to.element = 'literal'`, the shape of most `where` conditions in
    /// the IG maps; evaluated natively when the data allows (see engine), else by
    /// the FHIRPath evaluator.
    pub fast_eq: Option<FastEq>,
}

/// A condition of the form `root.seg1.seg2 = 'literal'`.
#[derive(Debug, Clone, PartialEq)]
pub struct FastEq {
    pub root: String,
    pub path: Vec<String>,
    pub literal: String,
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Recognise `a.b.c = 'text'` (no escapes, no functions, lower-case root so it
/// cannot be a type name).
pub fn fast_eq(text: &str) -> Option<FastEq> {
    let (lhs, rhs) = text.split_once(" = ")?;
    let rhs = rhs.trim();
    let literal = rhs.strip_prefix('\'')?.strip_suffix('\'')?;
    if literal.contains(['\'', '\\']) {
        return None;
    }
    let mut parts = lhs.trim().split('.');
    let root = parts.next()?;
    if !is_ident(root) || !root.starts_with(|c: char| c.is_ascii_lowercase()) {
        return None;
    }
    let path: Vec<String> = parts.map(str::to_string).collect();
    if !path.iter().all(|p| is_ident(p)) {
        return None;
    }
    // Reserved words and functions cannot appear without parentheses, but `as`,
    // `is`, `and`... as path segments would be parsed differently by FHIRPath.
    const RESERVED: [&str; 12] = [
        "and", "or", "xor", "implies", "as", "is", "div", "mod", "in", "contains", "true", "false",
    ];
    if RESERVED.contains(&root) || path.iter().any(|p| RESERVED.contains(&p.as_str())) {
        return None;
    }
    Some(FastEq {
        root: root.to_string(),
        path,
        literal: literal.to_string(),
    })
}

#[derive(Debug, Clone)]
pub struct Source {
    pub context: String,
    pub min: Option<i64>,
    pub max: Option<String>,
    pub type_: Option<String>,
    pub default_value: Option<Value>,
    pub element: Option<String>,
    pub list_mode: Option<SourceListMode>,
    pub variable: Option<String>,
    pub condition: Option<Expr>,
    pub check: Option<Expr>,
    pub log_message: Option<Expr>,
}

impl Source {
    /// A source that names a variable and nothing else (`src` / `src as s`): it
    /// binds exactly once.
    pub fn is_plain(&self) -> bool {
        self.element.is_none()
            && self.type_.is_none()
            && self.condition.is_none()
            && self.check.is_none()
            && self.list_mode.is_none()
            && self.min.is_none_or(|m| m <= 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetListMode {
    First,
    Share,
    Last,
    Collate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Create,
    Copy,
    Truncate,
    Escape,
    Cast,
    Append,
    Translate,
    Reference,
    DateOp,
    Uuid,
    Pointer,
    Evaluate,
    Cc,
    C,
    Qty,
    Id,
    Cp,
}

#[derive(Debug, Clone)]
pub enum Param {
    Id(String),
    String(String),
    Boolean(bool),
    Integer(i64),
    Decimal(Value),
}

#[derive(Debug, Clone)]
pub struct Target {
    pub context: Option<String>,
    pub element: Option<String>,
    pub variable: Option<String>,
    pub list_modes: Vec<TargetListMode>,
    pub list_rule_id: Option<String>,
    pub transform: Option<Transform>,
    pub parameters: Vec<Param>,
    /// For `evaluate`: the expression (last parameter), parsed once.
    pub expression: Option<Expr>,
    /// Unique within the map; keys the `share` list mode.
    pub id: usize,
}

#[derive(Debug, Clone)]
pub struct Dependent {
    pub name: String,
    pub variables: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub sources: Vec<Source>,
    pub targets: Vec<Target>,
    pub rules: Vec<Rule>,
    pub dependents: Vec<Dependent>,
}

/// A StructureMap ready to run.
#[derive(Debug, Clone)]
pub struct CompiledMap {
    pub url: String,
    pub name: String,
    /// The StructureMap resource it was compiled from (for `GET StructureMap`).
    pub resource: Arc<Value>,
    pub structures: Vec<Structure>,
    pub imports: Vec<String>,
    pub groups: Vec<Group>,
    group_index: HashMap<String, usize>,
}

impl CompiledMap {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.group_index.get(name).map(|&i| &self.groups[i])
    }

    /// The StructureDefinition URL behind a `uses ... alias X` declaration.
    pub fn alias_url(&self, alias: &str) -> Option<&str> {
        self.structures
            .iter()
            .find(|s| s.alias.as_deref() == Some(alias))
            .map(|s| s.url.as_str())
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn arr<'v>(v: &'v Value, k: &str) -> impl Iterator<Item = &'v Value> {
    v.get(k).and_then(Value::as_array).into_iter().flatten()
}

struct Ctx<'m> {
    map: &'m str,
    group: String,
    next_target: usize,
}

impl Ctx<'_> {
    fn expr(&self, rule: &str, text: &str) -> Result<Expr, CompileError> {
        let expr = fhirpath::parse(text).map_err(|error| CompileError::FhirPath {
            map: self.map.to_string(),
            group: self.group.clone(),
            rule: rule.to_string(),
            expression: text.to_string(),
            error: Box::new(error),
        })?;
        Ok(Expr {
            text: Arc::from(text),
            expr,
            fast_eq: fast_eq(text),
        })
    }

    fn invalid(&self, message: String) -> CompileError {
        CompileError::Invalid {
            map: self.map.to_string(),
            message: format!("group {}: {message}", self.group),
        }
    }
}

fn param(p: &Value) -> Option<Param> {
    if let Some(x) = p.get("valueId").and_then(Value::as_str) {
        return Some(Param::Id(x.to_string()));
    }
    if let Some(x) = p.get("valueString").and_then(Value::as_str) {
        return Some(Param::String(x.to_string()));
    }
    if let Some(x) = p.get("valueBoolean").and_then(Value::as_bool) {
        return Some(Param::Boolean(x));
    }
    if let Some(x) = p.get("valueInteger").and_then(Value::as_i64) {
        return Some(Param::Integer(x));
    }
    p.get("valueDecimal").map(|x| Param::Decimal(x.clone()))
}

fn transform(name: &str) -> Option<Transform> {
    Some(match name {
        "create" => Transform::Create,
        "copy" => Transform::Copy,
        "truncate" => Transform::Truncate,
        "escape" => Transform::Escape,
        "cast" => Transform::Cast,
        "append" => Transform::Append,
        "translate" => Transform::Translate,
        "reference" => Transform::Reference,
        "dateOp" => Transform::DateOp,
        "uuid" => Transform::Uuid,
        "pointer" => Transform::Pointer,
        "evaluate" => Transform::Evaluate,
        "cc" => Transform::Cc,
        "c" => Transform::C,
        "qty" => Transform::Qty,
        "id" => Transform::Id,
        "cp" => Transform::Cp,
        _ => return None,
    })
}

fn rule(cx: &mut Ctx<'_>, r: &Value, depth: usize) -> Result<Rule, CompileError> {
    if depth > 200 {
        return Err(cx.invalid("rules nested too deeply".into()));
    }
    let name = s(r, "name").unwrap_or_default();
    let mut sources = Vec::new();
    for src in arr(r, "source") {
        let context = s(src, "context")
            .ok_or_else(|| cx.invalid(format!("rule {name}: source without context")))?;
        let list_mode = match src.get("listMode").and_then(Value::as_str) {
            None => None,
            Some("first") => Some(SourceListMode::First),
            Some("not_first") => Some(SourceListMode::NotFirst),
            Some("last") => Some(SourceListMode::Last),
            Some("not_last") => Some(SourceListMode::NotLast),
            Some("only_one") => Some(SourceListMode::OnlyOne),
            Some(other) => {
                return Err(cx.invalid(format!("rule {name}: unknown source listMode {other}")))
            }
        };
        let default_value = src
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("defaultValue")))
            .map(|(_, v)| v.clone());
        sources.push(Source {
            context,
            min: src.get("min").and_then(Value::as_i64),
            max: s(src, "max"),
            type_: s(src, "type"),
            default_value,
            element: s(src, "element"),
            list_mode,
            variable: s(src, "variable"),
            condition: s(src, "condition")
                .map(|c| cx.expr(&name, &c))
                .transpose()?,
            check: s(src, "check").map(|c| cx.expr(&name, &c)).transpose()?,
            log_message: s(src, "logMessage")
                .map(|c| cx.expr(&name, &c))
                .transpose()?,
        });
    }
    if sources.is_empty() {
        return Err(cx.invalid(format!("rule {name}: no source")));
    }
    let mut targets = Vec::new();
    for t in arr(r, "target") {
        let tr = match t.get("transform").and_then(Value::as_str) {
            None => None,
            Some(x) => Some(
                transform(x)
                    .ok_or_else(|| cx.invalid(format!("rule {name}: unknown transform {x}")))?,
            ),
        };
        let mut list_modes = Vec::new();
        for m in arr(t, "listMode") {
            list_modes.push(match m.as_str() {
                Some("first") => TargetListMode::First,
                Some("share") => TargetListMode::Share,
                Some("last") => TargetListMode::Last,
                Some("collate") => TargetListMode::Collate,
                other => {
                    return Err(
                        cx.invalid(format!("rule {name}: unknown target listMode {other:?}"))
                    )
                }
            });
        }
        let mut parameters = Vec::new();
        for p in arr(t, "parameter") {
            parameters.push(
                param(p).ok_or_else(|| cx.invalid(format!("rule {name}: bad parameter {p}")))?,
            );
        }
        let expression = if tr == Some(Transform::Evaluate) {
            match parameters.last() {
                Some(Param::String(e)) => Some(cx.expr(&name, e)?),
                _ => {
                    return Err(cx.invalid(format!(
                        "rule {name}: evaluate needs an expression as its last parameter"
                    )))
                }
            }
        } else {
            None
        };
        cx.next_target += 1;
        targets.push(Target {
            context: s(t, "context"),
            element: s(t, "element"),
            variable: s(t, "variable"),
            list_modes,
            list_rule_id: s(t, "listRuleId"),
            transform: tr,
            parameters,
            expression,
            id: cx.next_target,
        });
    }
    let mut rules = Vec::new();
    for sub in arr(r, "rule") {
        rules.push(rule(cx, sub, depth + 1)?);
    }
    let mut dependents = Vec::new();
    for d in arr(r, "dependent") {
        let dn = s(d, "name")
            .ok_or_else(|| cx.invalid(format!("rule {name}: dependent without name")))?;
        let mut variables = Vec::new();
        // R4 has `variable: [string]`; R5 has `parameter: [{valueId|valueString}]`.
        for v in arr(d, "variable") {
            if let Some(x) = v.as_str() {
                variables.push(x.to_string());
            }
        }
        for p in arr(d, "parameter") {
            match param(p) {
                Some(Param::Id(x)) | Some(Param::String(x)) => variables.push(x),
                _ => return Err(cx.invalid(format!("rule {name}: bad dependent parameter {p}"))),
            }
        }
        dependents.push(Dependent {
            name: dn,
            variables,
        });
    }
    Ok(Rule {
        name,
        sources,
        targets,
        rules,
        dependents,
    })
}

/// Compile a StructureMap resource.
pub fn compile(sm: &Value) -> Result<CompiledMap, CompileError> {
    if sm.get("resourceType").and_then(Value::as_str) != Some("StructureMap") {
        return Err(CompileError::NotAStructureMap);
    }
    let url = s(sm, "url").ok_or(CompileError::NoUrl)?;
    let name = s(sm, "name").unwrap_or_default();
    let mut structures = Vec::new();
    for st in arr(sm, "structure") {
        let mode = match st.get("mode").and_then(Value::as_str) {
            Some("source") => ModelMode::Source,
            Some("queried") => ModelMode::Queried,
            Some("target") => ModelMode::Target,
            Some("produced") => ModelMode::Produced,
            _ => {
                return Err(CompileError::Invalid {
                    map: url,
                    message: "structure without a valid mode".into(),
                })
            }
        };
        structures.push(Structure {
            url: s(st, "url").unwrap_or_default(),
            mode,
            alias: s(st, "alias"),
        });
    }
    let imports = arr(sm, "import")
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let mut cx = Ctx {
        map: &url,
        group: String::new(),
        next_target: 0,
    };
    let mut groups = Vec::new();
    let mut group_index = HashMap::new();
    for g in arr(sm, "group") {
        let gname = s(g, "name").unwrap_or_default();
        cx.group = gname.clone();
        let type_mode = match g.get("typeMode").and_then(Value::as_str) {
            Some("types") => TypeMode::Types,
            Some("type-and-types") => TypeMode::TypeAndTypes,
            _ => TypeMode::None,
        };
        let mut inputs = Vec::new();
        for i in arr(g, "input") {
            inputs.push(Input {
                name: s(i, "name").ok_or_else(|| cx.invalid("input without name".into()))?,
                type_: s(i, "type"),
                mode: match i.get("mode").and_then(Value::as_str) {
                    Some("source") => InputMode::Source,
                    Some("target") => InputMode::Target,
                    other => return Err(cx.invalid(format!("input mode {other:?}"))),
                },
            });
        }
        let mut rules = Vec::new();
        for r in arr(g, "rule") {
            rules.push(rule(&mut cx, r, 0)?);
        }
        group_index.entry(gname.clone()).or_insert(groups.len());
        groups.push(Group {
            name: gname,
            extends: s(g, "extends"),
            type_mode,
            inputs,
            rules,
        });
    }
    Ok(CompiledMap {
        url,
        name,
        resource: Arc::new(sm.clone()),
        structures,
        imports,
        groups,
        group_index,
    })
}
