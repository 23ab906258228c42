//! The StructureMap interpreter, following the HL7 Java engine as Matchbox runs it
//! (org.hl7.fhir StructureMapUtilities): rules bind source items (type filter ->
//! `where` -> `check` -> list mode), run targets in order, then nested rules and
//! dependent groups.

use super::compile::{
    CompiledMap, Expr, FastEq, Group, InputMode, Param, Rule, Source, SourceListMode, Target,
    TargetListMode, Transform, TypeMode,
};
use super::terminology::{Coding, Terminology};
use super::tree::{is_choice_of, Content, NodeId, Tree};
use super::{MapRegistry, TransformError, TransformOptions};
use crate::model::{capitalize, eq_capitalized, is_primitive_name, r4, Definitions, TypeCtx};
use fhirpath::Item;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// Groups calling groups and rules nested in rules share this budget; the IG maps
/// need about 20.
const MAX_DEPTH: usize = 100;

/// A value a variable can hold.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    /// A node of the source document (borrowed, never copied).
    Src { v: &'a Value, ty: Option<TypeCtx> },
    /// A value computed during the transform (constants, FHIRPath results, `c()`, ...).
    Json { v: Arc<Value>, ty: Option<TypeCtx> },
    /// A node of the target tree.
    Tgt(NodeId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Input,
    Output,
}

/// Variables in scope: a persistent list, so binding a variable for each source
/// item shares the enclosing scope instead of copying it.
#[derive(Debug, Clone, Default)]
struct Vars<'a, 'r> {
    head: Option<Rc<VarNode<'a, 'r>>>,
}

#[derive(Debug)]
struct VarNode<'a, 'r> {
    name: &'r str,
    mode: Mode,
    val: Val<'a>,
    next: Option<Rc<VarNode<'a, 'r>>>,
}

impl<'a, 'r> Vars<'a, 'r> {
    /// Bind `name`; a newer binding hides an older one of the same name and mode
    /// (Matchbox's Variables.add replaces it).
    fn add(&mut self, name: &'r str, mode: Mode, val: Val<'a>) {
        let next = self.head.take();
        self.head = Some(Rc::new(VarNode {
            name,
            mode,
            val,
            next,
        }));
    }
    fn get(&self, name: &str, mode: Mode) -> Option<&Val<'a>> {
        let mut cur = self.head.as_deref();
        while let Some(n) = cur {
            if n.mode == mode && n.name == name {
                return Some(&n.val);
            }
            cur = n.next.as_deref();
        }
        None
    }
    /// Sources first; a target may be read as a source.
    fn get_any(&self, name: &str) -> Option<&Val<'a>> {
        self.get(name, Mode::Input)
            .or_else(|| self.get(name, Mode::Output))
    }
}

impl Drop for Vars<'_, '_> {
    // Long chains would otherwise drop recursively.
    fn drop(&mut self) {
        let mut cur = self.head.take();
        while let Some(node) = cur {
            match Rc::try_unwrap(node) {
                Ok(mut n) => cur = n.next.take(),
                Err(_) => break,
            }
        }
    }
}

/// Where we are, for error messages.
#[derive(Clone, Copy)]
struct At<'r> {
    map: &'r CompiledMap,
    group: &'r str,
}

pub(crate) struct Engine<'a, 'r, 'o> {
    reg: &'r MapRegistry,
    term: &'r dyn Terminology,
    opts: &'o TransformOptions<'o>,
    pub(crate) tree: Tree<'a>,
    shared: HashMap<(usize, usize, NodeId), NodeId>,
}

fn str_val(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

fn prim(v: Value, ty: &str) -> Val<'static> {
    Val::Json {
        v: Arc::new(v),
        ty: Some(TypeCtx::r4(ty)),
    }
}

fn json_type_guess(v: &Value) -> Option<&'static str> {
    match v {
        Value::String(_) => Some("string"),
        Value::Bool(_) => Some("boolean"),
        Value::Number(n) => Some(if n.is_i64() || n.is_u64() {
            "integer"
        } else {
            "decimal"
        }),
        _ => None,
    }
}

/// `String` -> `string`, `DateTime` -> `dateTime`, `Coding` -> `Coding`.
fn type_from_suffix(suffix: &str) -> String {
    let mut c = suffix.chars();
    let lower = match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => return String::new(),
    };
    if r4().has_type(&lower) && is_primitive_name(&lower) {
        lower
    } else {
        suffix.to_string()
    }
}

/// The type of the JSON child `key` of a value at `ctx` (used when exploding copies).
pub(crate) fn json_child_ctx(
    defs: &Definitions,
    ctx: &TypeCtx,
    key: &str,
    first: Option<&Value>,
) -> Option<TypeCtx> {
    if let Some(rt) = first
        .and_then(|f| f.get("resourceType"))
        .and_then(Value::as_str)
    {
        return defs.resolve_resource_type(rt);
    }
    let (def, chosen) = defs.child_by_json_name(ctx, key)?;
    let ty = match chosen {
        Some(t) => t,
        None if def.types.len() == 1 => def.types[0].clone(),
        None => return None,
    };
    defs.child_ctx(ctx, def, &ty)
}

/// Children named `name` of a JSON object whose type is `ctx`, with their types,
/// passed to `out` (so callers build their values without an intermediate list).
fn json_children<'v>(
    defs: &Definitions,
    ctx: Option<&TypeCtx>,
    obj: &'v Map<String, Value>,
    name: &str,
    out: &mut dyn FnMut(&'v Value, Option<TypeCtx>),
) {
    let def = ctx.and_then(|c| defs.child(c, name));
    let mut push = |val: &'v Value, ty: Option<TypeCtx>| match val {
        Value::Array(a) => {
            for it in a {
                out(it, item_ctx(defs, it, ty.clone()));
            }
        }
        other => out(other, item_ctx(defs, other, ty)),
    };
    if let Some(val) = obj.get(name) {
        let ty = match (&def, ctx) {
            (Some(d), Some(c)) if d.types.len() == 1 => defs.child_ctx(c, d, &d.types[0]),
            _ => None,
        };
        push(val, ty);
        return;
    }
    let may_be_choice = def.as_ref().is_none_or(|d| d.choice);
    if may_be_choice {
        for (k, val) in obj {
            if !is_choice_of(k, name) {
                continue;
            }
            let suffix = &k[name.len()..];
            let ty = match (&def, ctx) {
                (Some(d), Some(c)) => d
                    .types
                    .iter()
                    .find(|t| eq_capitalized(t, suffix))
                    .and_then(|t| defs.child_ctx(c, d, t)),
                _ => None,
            }
            .or_else(|| defs.resolve_type(&type_from_suffix(suffix)));
            if def.is_some() && ty.is_none() {
                continue;
            }
            push(val, ty);
        }
    }
}

fn json_len(obj: &Map<String, Value>, name: &str) -> usize {
    match obj.get(name) {
        Some(Value::Array(a)) => a.len(),
        _ => 1,
    }
}

/// A contained resource is typed by its own `resourceType`.
fn item_ctx(defs: &Definitions, v: &Value, declared: Option<TypeCtx>) -> Option<TypeCtx> {
    let abstract_decl = declared
        .as_ref()
        .is_none_or(|d| matches!(d.type_name(), "Resource" | "DomainResource"));
    if abstract_decl {
        if let Some(rt) = v.get("resourceType").and_then(Value::as_str) {
            return defs.resolve_resource_type(rt).or(declared);
        }
    }
    declared
}

struct Env<'e, 'a, 'r, 'o> {
    vars: &'e Vars<'a, 'r>,
    eng: &'e Engine<'a, 'r, 'o>,
}

impl<'a> fhirpath::Environment<'a> for Env<'_, 'a, '_, '_> {
    /// Matchbox's engine adds whole seconds only; the IG maps' epoch conversions
    /// (`@1970-01-01T00:00:00.000+00:00 + epoch.toQuantity()`) rely on it.
    fn whole_seconds_in_date_arithmetic(&self) -> bool {
        true
    }
    fn variable(&self, name: &str) -> Option<Vec<Item<'a>>> {
        self.vars.get_any(name).map(|v| self.eng.to_items(v))
    }
    fn bare_identifier(&self, name: &str) -> Option<Vec<Item<'a>>> {
        self.vars.get_any(name).map(|v| self.eng.to_items(v))
    }
    fn member_of(&self, system: Option<&str>, code: &str, value_set: &str) -> Option<bool> {
        self.eng.term.member_of(system, code, value_set)
    }
    fn model(&self) -> Option<&dyn fhirpath::ModelInfo> {
        Some(&self.eng.reg.definitions)
    }
    fn now(&self) -> Option<String> {
        self.eng.opts.now.clone()
    }
}

fn scalar_item<'a>(v: &Value, ty: Option<&str>) -> Item<'a> {
    match (v, ty.unwrap_or("")) {
        (Value::Bool(b), _) => Item::Boolean(*b),
        (Value::Number(n), t) => {
            if let (Some(i), false) = (n.as_i64(), t == "decimal") {
                Item::Integer(i)
            } else {
                Item::Decimal(fhirpath::Decimal {
                    text: n.to_string(),
                })
            }
        }
        (Value::String(s), "date") => Item::Date(s.clone()),
        (Value::String(s), "dateTime" | "instant") => Item::DateTime(s.clone()),
        (Value::String(s), "time") => Item::Time(s.clone()),
        (Value::String(s), _) => Item::String(Cow::Owned(s.clone())),
        (other, t) => Item::Owned {
            value: Arc::new(other.clone()),
            type_name: (!t.is_empty()).then(|| t.to_string()),
        },
    }
}

type R<T> = Result<T, String>;

impl<'a, 'r, 'o> Engine<'a, 'r, 'o> {
    pub(crate) fn new(
        reg: &'r MapRegistry,
        term: &'r dyn Terminology,
        opts: &'o TransformOptions<'o>,
    ) -> Self {
        Engine {
            reg,
            term,
            opts,
            tree: Tree::default(),
            shared: HashMap::new(),
        }
    }

    fn defs(&self) -> &'r Definitions {
        &self.reg.definitions
    }

    // ---- values ---------------------------------------------------------------

    fn to_items(&self, v: &Val<'a>) -> Vec<Item<'a>> {
        self.to_item(v).into_iter().collect()
    }

    fn to_item(&self, v: &Val<'a>) -> Option<Item<'a>> {
        Some(match v {
            Val::Src { v, ty } => Item::Node {
                value: v,
                type_name: ty.as_ref().map(|t| match t.static_name() {
                    Some(n) => Cow::Borrowed(n),
                    None => Cow::Owned(t.fhirpath_name().to_string()),
                }),
            },
            Val::Json { v, ty } => {
                let tn = ty.as_ref().map(|t| t.fhirpath_name().to_string());
                if v.is_object() {
                    Item::Owned {
                        value: v.clone(),
                        type_name: tn,
                    }
                } else {
                    scalar_item(v, tn.as_deref())
                }
            }
            Val::Tgt(id) => {
                let json = self.tree.to_json(*id).ok()?;
                let tn = self
                    .tree
                    .node(*id)
                    .and_then(|n| n.ctx.as_ref())
                    .map(|t| t.fhirpath_name().to_string());
                if json.is_object() {
                    Item::Owned {
                        value: Arc::new(json),
                        type_name: tn,
                    }
                } else {
                    scalar_item(&json, tn.as_deref())
                }
            }
        })
    }

    fn item_to_val(&self, it: Item<'a>) -> Val<'a> {
        match it {
            Item::Node { value, type_name } => Val::Src {
                v: value,
                ty: type_name
                    .and_then(|t| self.defs().resolve_fhirpath_name(&t))
                    .or_else(|| {
                        value
                            .get("resourceType")
                            .and_then(Value::as_str)
                            .and_then(|rt| self.defs().resolve_resource_type(rt))
                    })
                    .or_else(|| json_type_guess(value).map(TypeCtx::r4)),
            },
            Item::Owned { value, type_name } => Val::Json {
                ty: type_name.and_then(|t| self.defs().resolve_fhirpath_name(&t)),
                v: value,
            },
            other => {
                let ty = other.fhir_type().map(|t| t.into_owned());
                Val::Json {
                    v: Arc::new(other.to_json()),
                    ty: ty.map(|t| TypeCtx::r4(&t)),
                }
            }
        }
    }

    /// The FHIR type name of a value (for type filters and choice names).
    fn type_name<'v>(&'v self, v: &'v Val<'_>) -> Option<Cow<'v, str>> {
        match v {
            Val::Src { v, ty } => ty
                .as_ref()
                .map(|t| Cow::Borrowed(t.type_name()))
                .or_else(|| json_type_guess(v).map(Cow::Borrowed))
                .or_else(|| {
                    v.get("resourceType")
                        .and_then(Value::as_str)
                        .map(Cow::Borrowed)
                }),
            Val::Json { v, ty } => ty
                .as_ref()
                .map(|t| Cow::Borrowed(t.type_name()))
                .or_else(|| json_type_guess(v).map(Cow::Borrowed)),
            Val::Tgt(id) => {
                let n = self.tree.node(*id)?;
                match (&n.ctx, &n.content) {
                    (Some(c), _) => Some(Cow::Borrowed(c.type_name())),
                    (None, Content::Prim(p)) => json_type_guess(p).map(Cow::Borrowed),
                    (None, Content::Src(p)) => json_type_guess(p).map(Cow::Borrowed),
                    _ => None,
                }
            }
        }
    }

    /// A primitive value as JSON (for `append`, `translate`, ...).
    fn json_of<'v>(&self, v: &'v Val<'_>) -> R<Cow<'v, Value>> {
        Ok(match v {
            Val::Src { v, .. } => Cow::Borrowed(*v),
            Val::Json { v, .. } => Cow::Borrowed(&**v),
            Val::Tgt(id) => Cow::Owned(self.tree.to_json(*id)?),
        })
    }

    fn string_of(&self, v: &Val<'_>) -> R<String> {
        let j = self.json_of(v)?;
        str_val(&j)
            .map(|s| s.into_owned())
            .ok_or_else(|| format!("expected a primitive value, found {j}"))
    }

    /// Children of a value by element name.
    fn children(&mut self, v: &Val<'a>, name: &str) -> Vec<Val<'a>> {
        match v {
            Val::Src { v, ty } => match v {
                Value::Object(o) => {
                    let mut out = Vec::with_capacity(json_len(o, name));
                    json_children(self.defs(), ty.as_ref(), o, name, &mut |v, ty| {
                        out.push(Val::Src { v, ty })
                    });
                    out
                }
                _ => Vec::new(),
            },
            Val::Json { v, ty } => match &**v {
                Value::Object(o) => {
                    let mut out = Vec::with_capacity(json_len(o, name));
                    json_children(self.defs(), ty.as_ref(), o, name, &mut |v, ty| {
                        out.push(Val::Json {
                            v: Arc::new(v.clone()),
                            ty,
                        })
                    });
                    out
                }
                _ => Vec::new(),
            },
            Val::Tgt(id) => self
                .tree
                .children(*id, name, self.reg.definitions_ref())
                .into_iter()
                .map(Val::Tgt)
                .collect(),
        }
    }

    // ---- FHIRPath --------------------------------------------------------------

    fn eval(
        &self,
        expr: &fhirpath::Expression,
        focus: Option<&Val<'a>>,
        vars: &Vars<'a, 'r>,
    ) -> R<Vec<Val<'a>>> {
        let input = focus.and_then(|f| self.to_item(f));
        let env = Env { vars, eng: self };
        let out = fhirpath::evaluate(expr, input.as_slice(), &env)
            .map_err(|e| format!("FHIRPath '{}': {e}", expr.source()))?;
        Ok(out.into_iter().map(|i| self.item_to_val(i)).collect())
    }

    fn eval_cond(&self, e: &Expr, focus: &Val<'a>, vars: &Vars<'a, 'r>) -> R<bool> {
        if let Some(f) = &e.fast_eq {
            if let Some(b) = self.fast_eq(f, focus, vars) {
                return Ok(b);
            }
        }
        self.eval_bool(&e.expr, focus, vars)
    }

    /// `root.a.b = 'text'` without the evaluator, when the result is certain:
    /// the path ends in at most one string-typed primitive. Anything else (choice
    /// elements, unknown types, several values, target nodes) returns `None` and
    /// goes to FHIRPath. Same rules as FHIRPath: the root is a variable if one has
    /// that name, else a child of the focus; empty compares to nothing (false).
    fn fast_eq(&self, f: &FastEq, focus: &Val<'_>, vars: &Vars<'_, 'r>) -> Option<bool> {
        let var = vars.get_any(&f.root);
        let start = var.unwrap_or(focus);
        let (mut cur, mut ctx): (Option<&Value>, Option<TypeCtx>) = match start {
            Val::Src { v, ty } => (Some(*v), ty.clone()),
            Val::Json { v, ty } => (Some(&**v), ty.clone()),
            Val::Tgt(_) => return None,
        };
        let root_is_path = var.is_none();
        let segs = root_is_path
            .then_some(&f.root)
            .into_iter()
            .chain(f.path.iter());
        let mut string_like = false;
        let mut steps = 0;
        for seg in segs {
            steps += 1;
            let c = ctx.as_ref()?;
            let def = self.defs().child(c, seg)?;
            if def.choice || def.types.len() != 1 {
                return None;
            }
            // One value at most per step; several go to the evaluator.
            cur = match cur.and_then(|v| v.get(seg.as_str())) {
                Some(Value::Array(a)) => match a.as_slice() {
                    [] => None,
                    [x] => Some(x),
                    _ => return None,
                },
                other => other,
            };
            string_like = matches!(
                &*def.types[0],
                "string"
                    | "code"
                    | "id"
                    | "uri"
                    | "url"
                    | "canonical"
                    | "markdown"
                    | "oid"
                    | "uuid"
            );
            let next_ctx = self.defs().child_ctx(c, def, &def.types[0]);
            ctx = next_ctx;
        }
        match cur {
            _ if steps == 0 => None,
            None => Some(false),
            Some(Value::String(s)) if string_like => Some(*s == f.literal),
            _ => None,
        }
    }

    fn eval_bool(
        &self,
        expr: &fhirpath::Expression,
        focus: &Val<'a>,
        vars: &Vars<'a, 'r>,
    ) -> R<bool> {
        let input = self.to_item(focus);
        let env = Env { vars, eng: self };
        let out = fhirpath::evaluate(expr, input.as_slice(), &env)
            .map_err(|e| format!("FHIRPath '{}': {e}", expr.source()))?;
        Ok(match out.as_slice() {
            [] => false,
            [Item::Boolean(b)] => *b,
            [Item::Node { value, .. }] => value.as_bool().unwrap_or(true),
            _ => true,
        })
    }

    // ---- groups and rules ------------------------------------------------------

    /// Run `map` on `source`: its first group gets the source and a new target
    /// object typed from the group's target parameter.
    pub(crate) fn run(
        &mut self,
        map: &'r CompiledMap,
        source: &'a Value,
    ) -> Result<Value, TransformError> {
        let setup = |cause: String| TransformError::Setup {
            map: map.url.clone(),
            cause,
        };
        let group = map
            .groups
            .first()
            .ok_or_else(|| setup("the map has no group".into()))?;
        let src_in = group
            .inputs
            .iter()
            .find(|i| i.mode == InputMode::Source)
            .ok_or_else(|| setup(format!("group {} has no source parameter", group.name)))?;
        let tgt_in = group
            .inputs
            .iter()
            .find(|i| i.mode == InputMode::Target)
            .ok_or_else(|| setup(format!("group {} has no target parameter", group.name)))?;
        if group.inputs.len() != 2 {
            return Err(setup(format!(
                "group {} takes {} parameters; a transform supplies one source and one target",
                group.name,
                group.inputs.len()
            )));
        }
        let declared_src = src_in
            .type_
            .as_deref()
            .and_then(|t| self.resolve_type_ref(map, t));
        let rt = source.get("resourceType").and_then(Value::as_str);
        let src_ctx = match (&declared_src, rt) {
            (Some(d), Some(rt)) if d.resource_type() == Some(rt) => declared_src.clone(),
            (_, Some(rt)) => self.defs().resolve_resource_type(rt).or(declared_src),
            (d, None) => d.clone(),
        };
        let tgt_ctx = match tgt_in.type_.as_deref() {
            Some(t) => self.resolve_type_ref(map, t).ok_or_else(|| {
                setup(format!(
                    "target type {t} is not known (load its StructureDefinition)"
                ))
            })?,
            None => {
                let mut targets = map
                    .structures
                    .iter()
                    .filter(|s| s.mode == super::compile::ModelMode::Target);
                match (targets.next(), targets.next()) {
                    (Some(s), None) => self
                        .defs()
                        .resolve_type(&s.url)
                        .ok_or_else(|| setup(format!("target type {} is not known", s.url)))?,
                    _ => {
                        return Err(setup(format!(
                            "group {} does not declare its target type",
                            group.name
                        )))
                    }
                }
            }
        };
        let root = self.new_object(tgt_ctx);
        let mut vars = Vars::default();
        vars.add(
            &src_in.name,
            Mode::Input,
            Val::Src {
                v: source,
                ty: src_ctx,
            },
        );
        vars.add(&tgt_in.name, Mode::Output, Val::Tgt(root));
        self.execute_group(map, group, &vars, 0)?;
        drop(vars);
        std::mem::take(&mut self.tree)
            .into_json(root)
            .map_err(setup)
    }

    fn err(at: At<'_>, rule: &str, cause: String) -> TransformError {
        TransformError::Rule {
            map: at.map.url.clone(),
            group: at.group.to_string(),
            rule: rule.to_string(),
            cause,
        }
    }

    fn execute_group(
        &mut self,
        map: &'r CompiledMap,
        group: &'r Group,
        vars: &Vars<'a, 'r>,
        depth: usize,
    ) -> Result<(), TransformError> {
        let at = At {
            map,
            group: &group.name,
        };
        if depth > MAX_DEPTH {
            return Err(TransformError::TooDeep {
                map: map.url.clone(),
                group: group.name.clone(),
            });
        }
        if let Some(ext) = &group.extends {
            let (m, g) = self
                .resolve_group(map, ext)
                .map_err(|c| Self::err(at, "(extends)", c))?;
            self.execute_group(m, g, vars, depth + 1)?;
        }
        for rule in &group.rules {
            self.execute_rule(at, rule, vars, depth + 1)?;
        }
        Ok(())
    }

    fn execute_rule(
        &mut self,
        at: At<'r>,
        rule: &'r Rule,
        vars: &Vars<'a, 'r>,
        depth: usize,
    ) -> Result<(), TransformError> {
        if depth > MAX_DEPTH {
            return Err(TransformError::TooDeep {
                map: at.map.url.clone(),
                group: at.group.to_string(),
            });
        }
        // The common `src -> ...` / `src as s -> ...` rule binds exactly once: no
        // source list to build.
        if let [only] = rule.sources.as_slice() {
            if only.is_plain() {
                let base = vars.get_any(&only.context).cloned().ok_or_else(|| {
                    Self::err(
                        at,
                        &rule.name,
                        format!("unknown source variable '{}'", only.context),
                    )
                })?;
                let mut v = vars.clone();
                if let Some(name) = &only.variable {
                    v.add(name, Mode::Input, base);
                }
                return self.run_rule_body(at, rule, v, depth);
            }
        }
        let mut bindings = match rule.sources.split_first() {
            Some((first, _)) => self
                .process_source(first, vars)
                .map_err(|c| Self::err(at, &rule.name, c))?,
            None => return Ok(()),
        };
        // Further sources multiply the bindings (Matchbox: each combination runs).
        for src in &rule.sources[1..] {
            let mut next = Vec::new();
            for b in &bindings {
                next.extend(
                    self.process_source(src, b)
                        .map_err(|c| Self::err(at, &rule.name, c))?,
                );
            }
            bindings = next;
        }
        for v in bindings {
            self.run_rule_body(at, rule, v, depth)?;
        }
        Ok(())
    }

    /// Targets, dependent groups, nested rules (or the default type mapping) for
    /// one binding of the rule's sources.
    fn run_rule_body(
        &mut self,
        at: At<'r>,
        rule: &'r Rule,
        mut v: Vars<'a, 'r>,
        depth: usize,
    ) -> Result<(), TransformError> {
        for tgt in &rule.targets {
            self.process_target(at, tgt, &mut v)
                .map_err(|c| Self::err(at, &rule.name, c))?;
        }
        for dep in &rule.dependents {
            self.execute_dependent(at, &rule.name, dep, &v, depth)?;
        }
        for child in &rule.rules {
            self.execute_rule(at, child, &v, depth + 1)?;
        }
        if rule.rules.is_empty() && rule.dependents.is_empty() {
            self.default_mapping(at, rule, &v, depth)?;
        }
        Ok(())
    }

    /// `src.a as s -> tgt.b as t` with no `then`: the compiled form has a `create`
    /// without parameters; the group whose input types match does the work.
    fn default_mapping(
        &mut self,
        at: At<'r>,
        rule: &'r Rule,
        vars: &Vars<'a, 'r>,
        depth: usize,
    ) -> Result<(), TransformError> {
        let ([src], [tgt]) = (rule.sources.as_slice(), rule.targets.as_slice()) else {
            return Ok(());
        };
        let (Some(sv), Some(tv)) = (&src.variable, &tgt.variable) else {
            return Ok(());
        };
        if tgt.transform != Some(Transform::Create) || !tgt.parameters.is_empty() {
            return Ok(());
        }
        let (Some(s), Some(t)) = (vars.get(sv, Mode::Input), vars.get(tv, Mode::Output)) else {
            return Ok(());
        };
        let (s, t) = (s.clone(), t.clone());
        let st = self.type_name(&s).unwrap_or_default().into_owned();
        let tt = self.type_name(&t).unwrap_or_default().into_owned();
        match self.resolve_group_by_types(at.map, &st, &tt) {
            Some((m, g)) => {
                let mut nv = Vars::default();
                nv.add(&g.inputs[0].name, Mode::Input, s);
                nv.add(&g.inputs[1].name, Mode::Output, t);
                self.execute_group(m, g, &nv, depth + 1)
            }
            None => {
                // Primitive to primitive needs no group: the value is copied.
                let (Val::Tgt(id), true) = (&t, is_primitive_name(&tt)) else {
                    return Err(Self::err(
                        at,
                        &rule.name,
                        format!("no default mapping group for types {st} -> {tt}"),
                    ));
                };
                let val = self
                    .json_of(&s)
                    .map_err(|c| Self::err(at, &rule.name, c))?
                    .into_owned();
                if let Some(n) = self.tree.nodes.get_mut(*id) {
                    n.content = Content::Prim(val);
                }
                Ok(())
            }
        }
    }

    fn execute_dependent(
        &mut self,
        at: At<'r>,
        rule: &str,
        dep: &'r super::compile::Dependent,
        vars: &Vars<'a, 'r>,
        depth: usize,
    ) -> Result<(), TransformError> {
        let (m, g) = self
            .resolve_group(at.map, &dep.name)
            .map_err(|c| Self::err(at, rule, c))?;
        if g.inputs.len() != dep.variables.len() {
            return Err(Self::err(
                at,
                rule,
                format!(
                    "group {} takes {} parameters, called with {}",
                    g.name,
                    g.inputs.len(),
                    dep.variables.len()
                ),
            ));
        }
        let mut nv = Vars::default();
        for (input, var) in g.inputs.iter().zip(&dep.variables) {
            let (mode, val) = match input.mode {
                InputMode::Source => (Mode::Input, vars.get_any(var)),
                InputMode::Target => (Mode::Output, vars.get(var, Mode::Output)),
            };
            let val =
                val.ok_or_else(|| {
                    Self::err(
                        at,
                        rule,
                        format!(
                        "calling group {}: {} variable '{var}' (for parameter '{}') has no value",
                        g.name,
                        if mode == Mode::Input { "source" } else { "target" },
                        input.name
                    ),
                    )
                })?;
            nv.add(&input.name, mode, val.clone());
        }
        self.execute_group(m, g, &nv, depth + 1)
    }

    /// A group by name: in `map`, then in the maps it imports (transitively).
    fn resolve_group(&self, map: &'r CompiledMap, name: &str) -> R<(&'r CompiledMap, &'r Group)> {
        if let Some(g) = map.group(name) {
            return Ok((map, g));
        }
        let mut seen: Vec<&str> = vec![&map.url];
        let mut queue: Vec<&'r CompiledMap> = vec![map];
        let mut found: Option<(&'r CompiledMap, &'r Group)> = None;
        while let Some(m) = queue.pop() {
            for imp in &m.imports {
                for im in self.reg.imported(imp) {
                    if seen.contains(&im.url.as_str()) {
                        continue;
                    }
                    seen.push(&im.url);
                    if let Some(g) = im.group(name) {
                        if let Some((fm, _)) = found {
                            if !std::ptr::eq(fm, im) {
                                return Err(format!(
                                    "group {name} is defined in both {} and {}",
                                    fm.url, im.url
                                ));
                            }
                        }
                        found = Some((im, g));
                    }
                    queue.push(im);
                }
                if seen.len() > 256 {
                    break;
                }
            }
        }
        found.ok_or_else(|| format!("no group named {name} in {} or its imports", map.url))
    }

    fn group_input_type_matches(&self, map: &CompiledMap, declared: &str, actual: &str) -> bool {
        if declared == actual {
            return true;
        }
        let url = map.alias_url(declared).unwrap_or(declared);
        self.defs()
            .resolve_type(url)
            .is_some_and(|c| c.type_name() == actual)
    }

    fn resolve_group_by_types(
        &self,
        map: &'r CompiledMap,
        src: &str,
        tgt: &str,
    ) -> Option<(&'r CompiledMap, &'r Group)> {
        let mut maps: Vec<&'r CompiledMap> = vec![map];
        for imp in &map.imports {
            maps.extend(self.reg.imported(imp));
        }
        for m in maps {
            for g in &m.groups {
                if g.type_mode == TypeMode::None || g.inputs.len() != 2 {
                    continue;
                }
                let (Some(a), Some(b)) = (&g.inputs[0].type_, &g.inputs[1].type_) else {
                    continue;
                };
                if self.group_input_type_matches(m, a, src)
                    && self.group_input_type_matches(m, b, tgt)
                {
                    return Some((m, g));
                }
            }
        }
        None
    }

    // ---- sources ---------------------------------------------------------------

    fn process_source(&mut self, src: &'r Source, vars: &Vars<'a, 'r>) -> R<Vec<Vars<'a, 'r>>> {
        let base = vars
            .get_any(&src.context)
            .cloned()
            .ok_or_else(|| format!("unknown source variable '{}'", src.context))?;
        let mut items = match &src.element {
            Some(e) => self.children(&base, e),
            None => vec![base],
        };
        if items.is_empty() {
            if let Some(d) = &src.default_value {
                items.push(Val::Json {
                    v: Arc::new(d.clone()),
                    ty: json_type_guess(d).map(TypeCtx::r4),
                });
            }
        }
        if let Some(t) = &src.type_ {
            // Literal compare, as Matchbox does: `: DDCCPatient` never matches a Patient.
            items.retain(|it| self.type_name(it).as_deref() == Some(t.as_str()));
        }
        let bind = |vars: &Vars<'a, 'r>, it: &Val<'a>| {
            let mut v = vars.clone();
            if let Some(name) = &src.variable {
                v.add(name, Mode::Input, it.clone());
            }
            v
        };
        // The rule's own variable is not bound while `where`/`check` run (Matchbox
        // evaluates them with the enclosing variables and the item as focus): in
        // `src.dt as docType where (docType = 'P')` the name `docType` is a path on
        // the item, which is empty, so the condition is false. The IG's feature
        // expectations (ICAO identifier without system) depend on this.
        if let Some(cond) = &src.condition {
            let mut kept = Vec::with_capacity(items.len());
            for it in items {
                if self.eval_cond(cond, &it, vars)? {
                    kept.push(it);
                }
            }
            items = kept;
        }
        if let Some(check) = &src.check {
            for it in &items {
                if !self.eval_cond(check, it, vars)? {
                    return Err(format!("check failed: {}", check.text));
                }
            }
        }
        match src.list_mode {
            Some(SourceListMode::First) => items.truncate(1),
            Some(SourceListMode::NotFirst) if !items.is_empty() => {
                items.remove(0);
            }
            Some(SourceListMode::Last) if items.len() > 1 => {
                items.drain(..items.len() - 1);
            }
            Some(SourceListMode::NotLast) => {
                items.pop();
            }
            Some(SourceListMode::OnlyOne) if items.len() > 1 => {
                return Err(format!(
                    "only_one: source {} has {} items",
                    src.element.as_deref().unwrap_or(&src.context),
                    items.len()
                ));
            }
            _ => {}
        }
        if let Some(min) = src.min {
            if (items.len() as i64) < min {
                return Err(format!("source has {} items, min is {min}", items.len()));
            }
        }
        Ok(items.iter().map(|it| bind(vars, it)).collect())
    }

    // ---- targets ---------------------------------------------------------------

    fn process_target(&mut self, at: At<'r>, tgt: &'r Target, vars: &mut Vars<'a, 'r>) -> R<()> {
        let dest = match &tgt.context {
            Some(c) => match vars.get(c, Mode::Output) {
                Some(Val::Tgt(id)) => Some(*id),
                Some(_) => return Err(format!("target context '{c}' is not a target object")),
                None => return Err(format!("unknown target variable '{c}'")),
            },
            None => None,
        };
        let value: Option<Val<'a>> = match (tgt.transform, dest, &tgt.element) {
            (Some(tr), _, _) => {
                let v = self.run_transform(at, tr, tgt, dest, vars)?;
                match (v, dest, &tgt.element) {
                    (Some(v), Some(d), Some(e)) => {
                        Some(Val::Tgt(self.set_property(d, e, v, &tgt.list_modes)?))
                    }
                    (v, _, _) => v,
                }
            }
            (None, Some(d), Some(e)) => {
                let shared = tgt
                    .list_modes
                    .iter()
                    .any(|m| matches!(m, TargetListMode::Share | TargetListMode::Collate));
                let key = (at.map as *const CompiledMap as usize, tgt.id, d);
                match self.shared.get(&key) {
                    Some(&id) if shared => Some(Val::Tgt(id)),
                    _ => {
                        let id = self.make_property(d, e)?;
                        if shared {
                            self.shared.insert(key, id);
                        }
                        Some(Val::Tgt(id))
                    }
                }
            }
            // `-> tgt` with neither element nor transform names the target only.
            (None, Some(d), None) => Some(Val::Tgt(d)),
            (None, None, _) => None,
        };
        if let (Some(name), Some(v)) = (&tgt.variable, value) {
            vars.add(name, Mode::Output, v);
        }
        Ok(())
    }

    fn param(&self, p: &Param, vars: &Vars<'a, 'r>) -> R<Val<'a>> {
        Ok(match p {
            Param::Id(name) => vars
                .get_any(name)
                .cloned()
                .ok_or_else(|| format!("variable '{name}' not found"))?,
            Param::String(s) => prim(Value::String(s.clone()), "string"),
            Param::Boolean(b) => prim(Value::Bool(*b), "boolean"),
            Param::Integer(i) => prim(Value::from(*i), "integer"),
            Param::Decimal(d) => prim(d.clone(), "decimal"),
        })
    }

    fn param_string(&self, tgt: &Target, i: usize, vars: &Vars<'_, 'r>) -> R<String> {
        let p = tgt
            .parameters
            .get(i)
            .ok_or_else(|| format!("missing parameter {}", i + 1))?;
        let v = self.param(p, vars)?;
        self.string_of(&v)
    }

    fn resolve_type_ref(&self, map: &CompiledMap, t: &str) -> Option<TypeCtx> {
        let url = map.alias_url(t).unwrap_or(t);
        self.defs().resolve_type(url)
    }

    fn new_object(&mut self, ctx: TypeCtx) -> NodeId {
        self.tree.add(Some(ctx), Content::Obj(Vec::new()))
    }

    fn run_transform(
        &mut self,
        at: At<'r>,
        tr: Transform,
        tgt: &'r Target,
        dest: Option<NodeId>,
        vars: &Vars<'a, 'r>,
    ) -> R<Option<Val<'a>>> {
        let ps = &tgt.parameters;
        Ok(match tr {
            Transform::Copy => {
                let p = ps.first().ok_or("copy needs a parameter")?;
                Some(self.param(p, vars)?)
            }
            Transform::Create => {
                let ctx = match ps.first() {
                    Some(_) => {
                        // Matchbox creates by type name or StructureDefinition URL;
                        // a `uses` alias is only a fallback (CertICAOtoDDCC declares
                        // an ICAO model as alias `Patient` and means FHIR Patient).
                        let t = self.param_string(tgt, 0, vars)?;
                        self.defs()
                            .resolve_type(&t)
                            .or_else(|| self.resolve_type_ref(at.map, &t))
                            .ok_or_else(|| format!("create: unknown type {t}"))?
                    }
                    None => self.infer_element_type(dest, tgt.element.as_deref())?,
                };
                Some(Val::Tgt(self.new_object(ctx)))
            }
            Transform::Append => {
                let mut s = String::new();
                for p in ps {
                    let v = self.param(p, vars)?;
                    s.push_str(&self.string_of(&v)?);
                }
                Some(prim(Value::String(s), "string"))
            }
            Transform::Truncate => {
                let v = self.param_string(tgt, 0, vars)?;
                let n: usize = self
                    .param_string(tgt, 1, vars)?
                    .parse()
                    .map_err(|_| "truncate: length is not an integer".to_string())?;
                Some(prim(Value::String(v.chars().take(n).collect()), "string"))
            }
            Transform::Cast => {
                let v = self.param_string(tgt, 0, vars)?;
                let ty = if ps.len() > 1 {
                    self.param_string(tgt, 1, vars)?
                } else {
                    "string".to_string()
                };
                Some(cast(&v, &ty)?)
            }
            Transform::Uuid => {
                let id = match &self.opts.uuid {
                    Some(f) => f(),
                    None => random_uuid(),
                };
                Some(prim(Value::String(id), "id"))
            }
            Transform::Evaluate => {
                let expr = tgt
                    .expression
                    .as_ref()
                    .ok_or("evaluate without expression")?;
                let focus = if ps.len() >= 2 {
                    Some(self.param(&ps[0], vars)?)
                } else {
                    None
                };
                let mut out = self.eval(&expr.expr, focus.as_ref(), vars)?;
                match out.len() {
                    0 => None,
                    1 => out.pop(),
                    n => {
                        return Err(format!(
                            "evaluate '{}' returned {n} values, expected one",
                            expr.text
                        ))
                    }
                }
            }
            Transform::Translate => {
                let p = ps.first().ok_or("translate needs a source")?;
                let v = self.param(p, vars)?;
                let cm = self.param_string(tgt, 1, vars)?;
                let field = if ps.len() > 2 {
                    Some(self.param_string(tgt, 2, vars)?)
                } else {
                    None
                };
                self.translate(&v, &cm, field.as_deref())?
            }
            Transform::C => {
                let system = self.param_string(tgt, 0, vars)?;
                let code = self.param_string(tgt, 1, vars)?;
                let mut m = Map::new();
                m.insert("system".into(), Value::String(system));
                m.insert("code".into(), Value::String(code));
                if ps.len() > 2 {
                    m.insert(
                        "display".into(),
                        Value::String(self.param_string(tgt, 2, vars)?),
                    );
                }
                Some(Val::Json {
                    v: Arc::new(Value::Object(m)),
                    ty: Some(TypeCtx::r4("Coding")),
                })
            }
            Transform::Cc => {
                let v = if ps.len() == 1 {
                    serde_json::json!({"text": self.param_string(tgt, 0, vars)?})
                } else {
                    let mut c = Map::new();
                    c.insert(
                        "system".into(),
                        Value::String(self.param_string(tgt, 0, vars)?),
                    );
                    c.insert(
                        "code".into(),
                        Value::String(self.param_string(tgt, 1, vars)?),
                    );
                    if ps.len() > 2 {
                        c.insert(
                            "display".into(),
                            Value::String(self.param_string(tgt, 2, vars)?),
                        );
                    }
                    serde_json::json!({"coding": [Value::Object(c)]})
                };
                Some(Val::Json {
                    v: Arc::new(v),
                    ty: Some(TypeCtx::r4("CodeableConcept")),
                })
            }
            Transform::Id => {
                let mut m = Map::new();
                m.insert(
                    "system".into(),
                    Value::String(self.param_string(tgt, 0, vars)?),
                );
                m.insert(
                    "value".into(),
                    Value::String(self.param_string(tgt, 1, vars)?),
                );
                if ps.len() > 2 {
                    m.insert(
                        "type".into(),
                        serde_json::json!({"text": self.param_string(tgt, 2, vars)?}),
                    );
                }
                Some(Val::Json {
                    v: Arc::new(Value::Object(m)),
                    ty: Some(TypeCtx::r4("Identifier")),
                })
            }
            Transform::Cp => {
                let mut m = Map::new();
                if ps.len() > 1 {
                    m.insert(
                        "system".into(),
                        Value::String(self.param_string(tgt, 0, vars)?),
                    );
                    m.insert(
                        "value".into(),
                        Value::String(self.param_string(tgt, 1, vars)?),
                    );
                } else {
                    m.insert(
                        "value".into(),
                        Value::String(self.param_string(tgt, 0, vars)?),
                    );
                }
                Some(Val::Json {
                    v: Arc::new(Value::Object(m)),
                    ty: Some(TypeCtx::r4("ContactPoint")),
                })
            }
            Transform::Qty => {
                let text = self.param_string(tgt, 0, vars)?;
                Some(Val::Json {
                    v: Arc::new(quantity(&text)?),
                    ty: Some(TypeCtx::r4("Quantity")),
                })
            }
            Transform::Reference => {
                let p = ps.first().ok_or("reference needs a parameter")?;
                let v = self.param(p, vars)?;
                Some(prim(Value::String(self.reference_of(&v)?), "string"))
            }
            Transform::DateOp => {
                let date = self.param_string(tgt, 0, vars)?;
                let op = self.param_string(tgt, 1, vars)?;
                let amount = self.param_string(tgt, 2, vars)?;
                if op != "+" && op != "-" {
                    return Err(format!("dateOp: unsupported operation '{op}'"));
                }
                let src = format!("@{date} {op} {amount}");
                let expr = fhirpath::parse(&src).map_err(|e| format!("dateOp: {e}"))?;
                let mut out = self.eval(&expr, None, vars)?;
                out.pop()
            }
            Transform::Escape | Transform::Pointer => {
                return Err(format!("transform {tr:?} is not supported"));
            }
        })
    }

    fn translate(&self, v: &Val<'a>, map: &str, field: Option<&str>) -> R<Option<Val<'a>>> {
        let j = self.json_of(v)?;
        let coding = match &*j {
            Value::Object(o) => match o.get("coding").and_then(Value::as_array) {
                Some(cs) => cs.first().cloned().unwrap_or(Value::Null),
                None => Value::Object(o.clone()),
            },
            other => other.clone(),
        };
        let (system, code) = match &coding {
            Value::Object(o) => (
                o.get("system").and_then(Value::as_str).map(str::to_string),
                o.get("code").and_then(Value::as_str).map(str::to_string),
            ),
            other => (None, str_val(other).map(|s| s.into_owned())),
        };
        let Some(code) = code else {
            return Ok(None);
        };
        let Some(Coding {
            system,
            code,
            display,
        }) = self.term.translate(system.as_deref(), &code, map)?
        else {
            return Ok(None);
        };
        // Matchbox's translate builds the Coding from the target system and code only.
        let mut c = Map::new();
        if let Some(s) = &system {
            c.insert("system".into(), Value::String(s.clone()));
        }
        c.insert("code".into(), Value::String(code.clone()));
        Ok(Some(match field {
            Some("code") => prim(Value::String(code), "code"),
            Some("system") => prim(Value::String(system.unwrap_or_default()), "uri"),
            Some("display") => prim(Value::String(display.unwrap_or_default()), "string"),
            Some("CodeableConcept") => Val::Json {
                v: Arc::new(serde_json::json!({"coding": [Value::Object(c)]})),
                ty: Some(TypeCtx::r4("CodeableConcept")),
            },
            None | Some("Coding") => Val::Json {
                v: Arc::new(Value::Object(c)),
                ty: Some(TypeCtx::r4("Coding")),
            },
            Some(other) => return Err(format!("translate: unknown output '{other}'")),
        }))
    }

    fn reference_of(&mut self, v: &Val<'_>) -> R<String> {
        let json = self.json_of(v)?.into_owned();
        let rt = json
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or("reference: the value is not a resource")?
            .to_string();
        if let Some(id) = json.get("id").and_then(Value::as_str) {
            return Ok(format!("{rt}/{id}"));
        }
        let Val::Tgt(node) = v else {
            return Err("reference: the resource has no id".into());
        };
        let id = match &self.opts.uuid {
            Some(f) => f(),
            None => random_uuid(),
        };
        self.set_property(*node, "id", prim(Value::String(id.clone()), "id"), &[])?;
        Ok(format!("{rt}/{id}"))
    }

    fn infer_element_type(&self, dest: Option<NodeId>, element: Option<&str>) -> R<TypeCtx> {
        let (Some(d), Some(e)) = (dest, element) else {
            return Err("create() without a type needs a target element".into());
        };
        let pctx = self
            .tree
            .node(d)
            .and_then(|n| n.ctx.clone())
            .ok_or("create(): the target's type is unknown")?;
        let def = self
            .defs()
            .child(&pctx, e)
            .ok_or_else(|| format!("element '{e}' is not defined on {}", pctx.type_name()))?;
        match def.types.as_slice() {
            [t] => self
                .defs()
                .child_ctx(&pctx, def, t)
                .ok_or_else(|| format!("create(): unknown type {t}")),
            _ => Err(format!(
                "create(): element '{e}' has several types; name one"
            )),
        }
    }

    /// Add `value` as element `element` of `parent` (replacing a single-valued one).
    fn set_property(
        &mut self,
        parent: NodeId,
        element: &str,
        value: Val<'a>,
        modes: &[TargetListMode],
    ) -> R<NodeId> {
        let defs = self.reg.definitions_ref();
        self.tree.explode(parent, defs);
        let pctx = self.tree.node(parent).and_then(|n| n.ctx.clone());
        let (json_name, repeats, slot, def_ctx) = match &pctx {
            Some(c) => {
                let (def, chosen) = defs.child_by_json_name(c, element).ok_or_else(|| {
                    format!(
                        "element '{element}' is not defined on type {}",
                        c.type_name()
                    )
                })?;
                let name = if def.choice && chosen.is_none() {
                    let t = self.type_name(&value).ok_or_else(|| {
                        format!("cannot name choice element '{element}[x]': value type unknown")
                    })?;
                    format!("{element}{}", capitalize(&t))
                } else {
                    element.to_string()
                };
                let ty = chosen.or_else(|| {
                    (def.types.len() == 1 && !def.choice).then(|| def.types[0].clone())
                });
                let dctx = ty.and_then(|t| defs.child_ctx(c, def, &t));
                (
                    name,
                    def.repeats && !def.choice,
                    is_resource_slot(def),
                    dctx,
                )
            }
            None => (element.to_string(), false, false, None),
        };
        let (v, ty) = match value {
            Val::Tgt(id) => {
                self.insert_child(parent, &json_name, element, repeats, slot, id, modes)?;
                return Ok(id);
            }
            Val::Src { v, ty } => {
                // Source values are referenced, not copied, unless the element's
                // type changes their JSON form.
                let (content, ty) = match def_ctx {
                    Some(d) if d.is_primitive() && !v.is_object() => {
                        let c = coerce(v, d.type_name());
                        if c == *v {
                            (Content::Src(v), Some(d))
                        } else {
                            (Content::Prim(c), Some(d))
                        }
                    }
                    Some(d)
                        if !v.is_object()
                            && d.resource_type().is_none()
                            && d.type_name() != "Resource" =>
                    {
                        return Err(format!(
                            "element '{element}' has type {}; cannot set it to the primitive value {v}",
                            d.type_name()
                        ));
                    }
                    d => (Content::Src(v), ty.or(d)),
                };
                let id = self.tree.add(ty, content);
                self.insert_child(parent, &json_name, element, repeats, slot, id, modes)?;
                return Ok(id);
            }
            Val::Json { v, ty } => (v, ty),
        };
        let (content, ty) = if v.is_object() {
            (Content::Json(v), ty.or(def_ctx))
        } else {
            // A primitive takes the declared type of a non-choice element (Matchbox
            // stores the text and writes it as that type: integer 1 into a string
            // element is "1").
            match def_ctx {
                Some(d) if d.is_primitive() => (Content::Prim(coerce(&v, d.type_name())), Some(d)),
                // A primitive cannot become a complex element (a string is no Coding).
                Some(d) if d.resource_type().is_none() && d.type_name() != "Resource" => {
                    return Err(format!(
                        "element '{element}' has type {}; cannot set it to the primitive value {v}",
                        d.type_name()
                    ));
                }
                _ => (Content::Prim(Arc::unwrap_or_clone(v)), ty),
            }
        };
        let id = self.tree.add(ty, content);
        self.insert_child(parent, &json_name, element, repeats, slot, id, modes)?;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_child(
        &mut self,
        parent: NodeId,
        json_name: &str,
        base: &str,
        repeats: bool,
        resource_slot: bool,
        id: NodeId,
        modes: &[TargetListMode],
    ) -> R<()> {
        if resource_slot {
            if let Some(n) = self.tree.nodes.get_mut(id) {
                n.resource_slot = true;
            }
        }
        let node = self
            .tree
            .nodes
            .get_mut(parent)
            .ok_or("dangling target node")?;
        let Content::Obj(kids) = &mut node.content else {
            return Err(format!("cannot set '{json_name}' on a primitive value"));
        };
        if !repeats {
            // A single-valued element, and for a choice any other type of it, is replaced.
            kids.retain(|(n, _, _)| n == json_name || !(n == base || is_choice_of(n, base)));
        }
        match kids.iter_mut().find(|(n, _, _)| n == json_name) {
            Some((_, _, ids)) => {
                if repeats {
                    if modes.contains(&TargetListMode::First) {
                        ids.insert(0, id);
                    } else {
                        ids.push(id);
                    }
                } else {
                    *ids = vec![id];
                }
            }
            None => kids.push((json_name.to_string(), repeats, vec![id])),
        }
        Ok(())
    }

    /// Get (single-valued) or add (repeating) an element object, typed from the model.
    fn make_property(&mut self, parent: NodeId, element: &str) -> R<NodeId> {
        let defs = self.reg.definitions_ref();
        self.tree.explode(parent, defs);
        let pctx = self
            .tree
            .node(parent)
            .and_then(|n| n.ctx.clone())
            .ok_or_else(|| format!("cannot create '{element}': the target's type is unknown"))?;
        let (def, chosen) = defs.child_by_json_name(&pctx, element).ok_or_else(|| {
            format!(
                "element '{element}' is not defined on type {}",
                pctx.type_name()
            )
        })?;
        let ty = match (chosen, def.types.as_slice()) {
            (Some(t), _) => t,
            (None, [t]) if !def.choice => t.clone(),
            _ => {
                return Err(format!(
                    "element '{element}' of {} is a choice; create it with a type",
                    pctx.type_name()
                ))
            }
        };
        if !def.repeats {
            let existing = self.tree.children(parent, element, defs);
            if let Some(&id) = existing.last() {
                return Ok(id);
            }
        }
        let ctx = defs
            .child_ctx(&pctx, def, &ty)
            .ok_or_else(|| format!("unknown type {ty} of element '{element}'"))?;
        let id = self.new_object(ctx);
        let slot = is_resource_slot(def);
        self.insert_child(parent, element, element, def.repeats, slot, id, &[])?;
        Ok(id)
    }
}

fn is_resource_slot(def: &crate::model::ElementDef) -> bool {
    def.types
        .iter()
        .any(|t| matches!(&**t, "Resource" | "DomainResource"))
}

/// A random (version 4) UUID. The OS random source is read 4 KiB at a time per
/// thread: one system call per 256 UUIDs instead of one each (a document bundle
/// needs six).
fn random_uuid() -> String {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<([u8; 4096], usize)> = const { RefCell::new(([0; 4096], 4096)) };
    }
    let bytes = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let (buf, pos) = &mut *p;
        if *pos + 16 > buf.len() {
            if getrandom::fill(buf).is_err() {
                return None;
            }
            *pos = 0;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&buf[*pos..*pos + 16]);
        // Used bytes are not kept around.
        buf[*pos..*pos + 16].fill(0);
        *pos += 16;
        Some(b)
    });
    match bytes {
        Some(b) => uuid::Builder::from_random_bytes(b).into_uuid().to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    }
}

/// The JSON form of a primitive value in an element of primitive type `ty`.
fn coerce(v: &Value, ty: &str) -> Value {
    let text = match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Number(n) => Cow::Owned(n.to_string()),
        Value::Bool(b) => Cow::Owned(b.to_string()),
        other => return other.clone(),
    };
    match ty {
        "boolean" => match &*text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => v.clone(),
        },
        "integer" | "positiveInt" | "unsignedInt" | "integer64" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.clone()),
        "decimal" => serde_json::from_str::<Value>(&text)
            .ok()
            .filter(Value::is_number)
            .unwrap_or_else(|| v.clone()),
        _ => Value::String(text.into_owned()),
    }
}

fn cast(v: &str, ty: &str) -> R<Val<'static>> {
    Ok(match ty {
        "string" => prim(Value::String(v.to_string()), "string"),
        "integer" => prim(
            Value::from(
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("cast: '{v}' is not an integer"))?,
            ),
            "integer",
        ),
        "decimal" => prim(
            serde_json::from_str::<Value>(v.trim())
                .ok()
                .filter(Value::is_number)
                .ok_or_else(|| format!("cast: '{v}' is not a decimal"))?,
            "decimal",
        ),
        "boolean" => match v.trim() {
            "true" => prim(Value::Bool(true), "boolean"),
            "false" => prim(Value::Bool(false), "boolean"),
            _ => return Err(format!("cast: '{v}' is not a boolean")),
        },
        other if is_primitive_name(other) && r4().has_type(other) => {
            prim(Value::String(v.to_string()), other)
        }
        other => return Err(format!("cast to {other} is not supported")),
    })
}

/// `qty('5.4 mg')`, `qty("3 'mm[Hg]'")`.
fn quantity(text: &str) -> R<Value> {
    let t = text.trim();
    let (num, unit) = t.split_once(' ').unwrap_or((t, ""));
    let value = serde_json::from_str::<Value>(num)
        .ok()
        .filter(Value::is_number)
        .ok_or_else(|| format!("qty: '{text}' does not start with a number"))?;
    let unit = unit.trim();
    let mut m = Map::new();
    m.insert("value".into(), value);
    if let Some(code) = unit.strip_prefix('\'').and_then(|u| u.strip_suffix('\'')) {
        m.insert("unit".into(), Value::String(code.to_string()));
        m.insert(
            "system".into(),
            Value::String("http://unitsofmeasure.org".into()),
        );
        m.insert("code".into(), Value::String(code.to_string()));
    } else if !unit.is_empty() {
        m.insert("unit".into(), Value::String(unit.to_string()));
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::compile::fast_eq;
    use crate::exec::NoTerminology;
    use serde_json::json;

    #[test]
    fn random_uuids_are_v4_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_uuid()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("uuid");
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
    }

    /// The native `a.b = 'x'` path must agree with the FHIRPath evaluator whenever
    /// it answers, and step aside where it cannot be sure.
    #[test]
    fn fast_equality_agrees_with_fhirpath() {
        let reg = MapRegistry::new();
        let opts = TransformOptions::default();
        let eng = Engine::new(&reg, &NoTerminology, &opts);
        let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "item": [
            {"linkId": "name", "answer": [{"valueString": "A"}]},
            {"linkId": "dose", "answer": [{"valueInteger": 1}, {"valueInteger": 2}]},
            {"text": "no link id"},
            {"linkId": "nested", "item": [{"linkId": "inner"}, {"linkId": "inner2"}]}
        ]});
        let root = Val::Src {
            v: &qr,
            ty: Some(TypeCtx::r4("QuestionnaireResponse")),
        };
        let items = {
            let mut e = Engine::new(&reg, &NoTerminology, &opts);
            e.children(&root, "item")
        };
        let conditions = [
            "item.linkId = 'name'",
            "item.linkId = 'dose'",
            "linkId = 'name'",
            "item.item.linkId = 'inner'",
            "item.answer.valueString = 'A'",
            "status = 'completed'",
            "item.text = 'no link id'",
        ];
        let mut answered = 0;
        for text in conditions {
            let f = fast_eq(text).expect("recognised");
            let expr = fhirpath::parse(text).expect("parses");
            for it in &items {
                for focus in [it, &root] {
                    let mut vars = Vars::default();
                    vars.add("item", Mode::Input, it.clone());
                    let full = eng.eval_bool(&expr, focus, &vars);
                    if let Some(fast) = eng.fast_eq(&f, focus, &vars) {
                        answered += 1;
                        assert_eq!(Ok(fast), full, "{text}");
                    }
                }
            }
        }
        assert!(answered > 20, "fast path answered only {answered} cases");
        for not_fast in [
            "Patient.id = 'x'",
            "a.b = \"x\"",
            "a.where(b) = 'x'",
            "a.b = 'it''s'",
        ] {
            assert_eq!(fast_eq(not_fast), None, "{not_fast}");
        }
    }
}
