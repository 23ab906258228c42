//! The evaluator: walks the syntax tree over borrowed FHIR JSON.

use crate::ast::{BinOp, Expr, Kind, Literal, TypeSpec, MAX_DEPTH};
use crate::model::{self, ElemType};
use crate::temporal::Temporal;
use crate::value::{self, prim, type_from_suffix};
use crate::{Decimal, Environment, Error, Item, ModelInfo};
use serde_json::Value;
use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;
use std::sync::Arc;

pub(crate) type Items<'a> = Vec<Item<'a>>;
pub(crate) type R<T> = Result<T, Error>;

pub(crate) fn eval_err<T>(msg: impl Into<String>) -> R<T> {
    Err(Error::Eval(msg.into()))
}

/// Iteration variables of the innermost lambda (`$this`, `$index`, `$total`).
#[derive(Clone)]
pub(crate) struct Frame<'a> {
    pub this: Items<'a>,
    pub index: Option<i64>,
    pub total: Option<Items<'a>>,
}

pub(crate) struct Evaluator<'e, 'a> {
    pub env: &'e dyn Environment<'a>,
    pub context: Items<'a>,
    depth: Cell<u32>,
    /// Items produced so far: bounds the work of pathological expressions
    /// (`aggregate($total.combine($total))` doubles per item).
    produced: Cell<usize>,
}

/// Most items one evaluation may produce in total, and the longest string.
const MAX_PRODUCED: usize = 10_000_000;
pub(crate) const MAX_STRING: usize = 64 * 1024 * 1024;

pub(crate) fn check_len(s: &str) -> R<()> {
    if s.len() > MAX_STRING {
        return eval_err("string result larger than 64 MiB");
    }
    Ok(())
}

impl<'e, 'a> Evaluator<'e, 'a> {
    pub fn new(env: &'e dyn Environment<'a>, context: Items<'a>) -> Self {
        Evaluator {
            env,
            context,
            depth: Cell::new(0),
            produced: Cell::new(0),
        }
    }

    pub fn run(&self, e: &Expr) -> R<Items<'a>> {
        let frame = Frame {
            this: self.context.clone(),
            index: None,
            total: None,
        };
        let focus = self.context.clone();
        self.eval(e, &focus, &frame)
    }

    pub fn eval(&self, e: &Expr, focus: &[Item<'a>], frame: &Frame<'a>) -> R<Items<'a>> {
        let d = self.depth.get() + 1;
        // lambdas re-enter the tree, so the evaluator keeps its own bound
        if d > MAX_DEPTH * 2 {
            return Err(Error::TooDeep);
        }
        self.depth.set(d);
        let r = self.eval_inner(e, focus, frame);
        self.depth.set(d - 1);
        if let Ok(items) = &r {
            let n = self.produced.get().saturating_add(items.len());
            if n > MAX_PRODUCED {
                return eval_err("evaluation produced too many items");
            }
            self.produced.set(n);
        }
        r
    }

    fn eval_inner(&self, e: &Expr, focus: &[Item<'a>], frame: &Frame<'a>) -> R<Items<'a>> {
        match &e.kind {
            Kind::Literal(l) => Ok(literal(l)),
            Kind::Ident(name) => {
                if let Some(v) = self.env.bare_identifier(name) {
                    return Ok(v);
                }
                if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    let typed: Items<'a> = focus
                        .iter()
                        .filter(|i| self.node_is_type(i, name))
                        .cloned()
                        .collect();
                    if !typed.is_empty() {
                        return Ok(typed);
                    }
                }
                Ok(self.members(focus, name))
            }
            Kind::External(name) => self.external(name),
            Kind::This => Ok(frame.this.clone()),
            Kind::Index => Ok(frame.index.map(Item::Integer).into_iter().collect()),
            Kind::Total => Ok(frame.total.clone().unwrap_or_default()),
            Kind::Member(recv, name) => {
                let base = self.eval(recv, focus, frame)?;
                Ok(self.members(&base, name))
            }
            Kind::Function(recv, name, args) => {
                let input = match recv {
                    Some(r) => self.eval(r, focus, frame)?,
                    None => focus.to_vec(),
                };
                self.call(name, input, args, frame)
            }
            Kind::Indexer(recv, idx) => {
                let base = self.eval(recv, focus, frame)?;
                let i = self.eval(idx, focus, frame)?;
                let Some(i) = singleton(&i)? else {
                    return Ok(vec![]);
                };
                match prim(&i) {
                    Item::Integer(n) if n >= 0 => {
                        Ok(base.into_iter().nth(n as usize).into_iter().collect())
                    }
                    Item::Integer(_) => Ok(vec![]),
                    _ => eval_err("indexer must be an integer"),
                }
            }
            Kind::Negate(inner) => {
                let v = self.eval(inner, focus, frame)?;
                let Some(v) = singleton(&v)? else {
                    return Ok(vec![]);
                };
                Ok(vec![match prim(&v) {
                    Item::Integer(i) => Item::Integer(
                        i.checked_neg()
                            .ok_or_else(|| Error::Eval("integer overflow".into()))?,
                    ),
                    Item::Decimal(d) => Item::Decimal(d.negated()),
                    Item::Quantity { value, unit } => Item::Quantity {
                        value: value.negated(),
                        unit,
                    },
                    _ => return eval_err("unary minus needs a number or quantity"),
                }])
            }
            Kind::Is(inner, ty) => {
                let v = self.eval(inner, focus, frame)?;
                if v.len() != 1 {
                    return Ok(vec![]);
                }
                Ok(vec![Item::Boolean(self.is_type(&v[0], ty))])
            }
            Kind::As(inner, ty) => {
                let v = self.eval(inner, focus, frame)?;
                Ok(v.into_iter().filter(|i| self.is_type(i, ty)).collect())
            }
            Kind::Binary(op, l, r) => self.binary(*op, l, r, focus, frame),
        }
    }

    fn external(&self, name: &str) -> R<Items<'a>> {
        if let Some(v) = self.env.variable(name) {
            return Ok(v);
        }
        let s = |t: &str| Ok(vec![Item::String(Cow::Owned(t.to_string()))]);
        match name {
            "context" | "resource" | "rootResource" => Ok(self.context.clone()),
            "ucum" => s(value::UCUM),
            "sct" => s("http://snomed.info/sct"),
            "loinc" => s("http://loinc.org"),
            _ => {
                if let Some(v) = name.strip_prefix("vs-") {
                    return s(&format!("http://hl7.org/fhir/ValueSet/{v}"));
                }
                if let Some(v) = name.strip_prefix("ext-") {
                    return s(&format!("http://hl7.org/fhir/StructureDefinition/{v}"));
                }
                eval_err(format!("undefined variable %{name}"))
            }
        }
    }

    /// The FHIR type of an item, from its record or its JSON shape.
    pub fn item_type<'i>(&self, item: &'i Item<'a>) -> Option<Cow<'i, str>> {
        match item {
            Item::Node { value, type_name } => match type_name {
                Some(t) => Some(Cow::Borrowed(t.as_ref())),
                None => guess_type(value).map(Cow::Borrowed),
            },
            Item::Owned { value, type_name } => match type_name {
                Some(t) => Some(Cow::Borrowed(t.as_str())),
                None => guess_type(value).map(|t| Cow::Owned(t.to_string())),
            },
            _ => None,
        }
    }

    fn node_is_type(&self, item: &Item<'a>, name: &str) -> bool {
        match self.item_type(item) {
            // the model types `id` elements as System.String
            Some(t) if t.starts_with("System.") => false,
            Some(t) => self.subtype(&t, name),
            None => false,
        }
    }

    fn subtype(&self, ty: &str, base: &str) -> bool {
        if ty == base {
            return true;
        }
        if let Some(b) = self.env.model().and_then(|m| m.is_subtype(ty, base)) {
            return b;
        }
        model::r4().is_subtype(ty, base).unwrap_or(false)
    }

    pub fn is_type(&self, item: &Item<'a>, ty: &TypeSpec) -> bool {
        let ns = ty.namespace.as_deref();
        if let Some(sys) = value::system_type(item) {
            return ns != Some("FHIR") && sys == ty.name;
        }
        if let Some(t) = self.item_type(item).filter(|t| t.starts_with("System.")) {
            return ns != Some("FHIR") && t["System.".len()..] == ty.name;
        }
        if ns == Some("System") {
            return false;
        }
        self.node_is_type(item, &ty.name)
    }

    /// Child elements named `name` of every item, arrays flattened; a missing name
    /// is looked up as a choice element (`value` -> `valueString`).
    pub fn members(&self, items: &[Item<'a>], name: &str) -> Items<'a> {
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Node {
                    value: Value::Object(map),
                    ..
                } => {
                    let parent = self.item_type(item);
                    if let Some(v) = map.get(name) {
                        let ty = self.child_type(parent.as_deref(), name);
                        push_borrowed(&mut out, v, ty);
                    } else {
                        for (k, v) in map {
                            if let Some(ty) = self.choice_type(parent.as_deref(), k, name) {
                                push_borrowed(&mut out, v, Some(ty));
                            }
                        }
                    }
                }
                Item::Owned { value, .. } => {
                    if let Value::Object(map) = &**value {
                        let parent = self.item_type(item);
                        if let Some(v) = map.get(name) {
                            let ty = self.child_type(parent.as_deref(), name);
                            push_owned(&mut out, v, ty);
                        } else {
                            for (k, v) in map {
                                if let Some(ty) = self.choice_type(parent.as_deref(), k, name) {
                                    push_owned(&mut out, v, Some(ty));
                                }
                            }
                        }
                    }
                }
                // a System Quantity exposes its parts like a FHIR Quantity
                Item::Quantity { value, unit } => match name {
                    "value" => out.push(Item::Decimal(value.clone())),
                    "unit" | "code" => out.push(Item::String(Cow::Owned(unit.clone()))),
                    _ => {}
                },
                _ => {}
            }
        }
        out
    }

    /// The type when `key` is the choice element `name[x]` (`valueString` for
    /// `value`): the suffix must name a type the element allows, or, when the
    /// parent type is unknown, a FHIR type at all (so `resourceType` is no `resource[x]`).
    fn choice_type(
        &self,
        parent: Option<&str>,
        key: &str,
        name: &str,
    ) -> Option<Cow<'static, str>> {
        let suffix = choice_suffix(key, name)?;
        if let Some(p) = parent {
            if let Some(types) = self.env.model().and_then(|m| m.element_types(p, name)) {
                let ty = type_from_suffix(suffix);
                return types.contains(&ty).then_some(Cow::Owned(ty));
            }
            if let Some(et) = model::r4().lookup(p, name) {
                return match et {
                    ElemType::Choice(list) => list
                        .iter()
                        .find(|t| suffix_names(t, suffix))
                        .map(|t| Cow::Borrowed(t.as_str())),
                    ElemType::One(t) => suffix_names(t, suffix).then_some(Cow::Borrowed(t)),
                };
            }
        }
        let ty = type_from_suffix(suffix);
        model::r4().is_type_name(&ty).then_some(Cow::Owned(ty))
    }

    fn child_type(&self, parent: Option<&str>, name: &str) -> Option<Cow<'static, str>> {
        let parent = parent?;
        if let Some(types) = self.env.model().and_then(|m| m.element_types(parent, name)) {
            return if types.len() == 1 {
                types.into_iter().next().map(Cow::Owned)
            } else {
                None
            };
        }
        match model::r4().lookup(parent, name)? {
            ElemType::One(t) => Some(Cow::Borrowed(t)),
            ElemType::Choice(_) => None,
        }
    }

    fn binary(
        &self,
        op: BinOp,
        l: &Expr,
        r: &Expr,
        focus: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> R<Items<'a>> {
        match op {
            BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies => {
                let a = to_bool(&self.eval(l, focus, frame)?)?;
                // short-circuit where three-valued logic allows
                match (op, a) {
                    (BinOp::And, Some(false)) => return Ok(vec![Item::Boolean(false)]),
                    (BinOp::Or, Some(true)) => return Ok(vec![Item::Boolean(true)]),
                    (BinOp::Implies, Some(false)) => return Ok(vec![Item::Boolean(true)]),
                    _ => {}
                }
                let b = to_bool(&self.eval(r, focus, frame)?)?;
                let res = match op {
                    BinOp::And => match (a, b) {
                        (Some(true), Some(true)) => Some(true),
                        (_, Some(false)) => Some(false),
                        _ => None,
                    },
                    BinOp::Or => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    BinOp::Xor => match (a, b) {
                        (Some(x), Some(y)) => Some(x != y),
                        _ => None,
                    },
                    _ => match (a, b) {
                        (Some(true), x) => x,
                        (None, Some(true)) => Some(true),
                        _ => None,
                    },
                };
                Ok(res.map(Item::Boolean).into_iter().collect())
            }
            _ => {
                let a = self.eval(l, focus, frame)?;
                let b = self.eval(r, focus, frame)?;
                crate::ops::binary(op, a, b, self.env.whole_seconds_in_date_arithmetic())
            }
        }
    }
}

fn choice_suffix<'k>(key: &'k str, name: &str) -> Option<&'k str> {
    let suffix = key.strip_prefix(name)?;
    if suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
        Some(suffix)
    } else {
        None
    }
}

fn guess_type(v: &Value) -> Option<&str> {
    v.get("resourceType").and_then(Value::as_str)
}

/// Does a choice suffix (`DateTime`) name the type (`dateTime`)?
fn suffix_names(ty: &str, suffix: &str) -> bool {
    let (mut a, mut b) = (ty.chars(), suffix.chars());
    match (a.next(), b.next()) {
        (Some(x), Some(y)) => x.to_ascii_uppercase() == y && a.as_str() == b.as_str(),
        _ => false,
    }
}

fn push_borrowed<'a>(out: &mut Items<'a>, v: &'a Value, ty: Option<Cow<'static, str>>) {
    let one = |v: &'a Value| Item::Node {
        value: v,
        type_name: match v.get("resourceType").and_then(Value::as_str) {
            Some(rt) => Some(Cow::Borrowed(rt)),
            None => ty.clone(),
        },
    };
    match v {
        Value::Array(a) => out.extend(a.iter().filter(|x| !x.is_null()).map(one)),
        Value::Null => {}
        _ => out.push(one(v)),
    }
}

fn push_owned<'a>(out: &mut Items<'a>, v: &Value, ty: Option<Cow<'static, str>>) {
    let one = |v: &Value| Item::Owned {
        value: Arc::new(v.clone()),
        type_name: v
            .get("resourceType")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| ty.as_ref().map(|t| t.to_string())),
    };
    match v {
        Value::Array(a) => out.extend(a.iter().filter(|x| !x.is_null()).map(one)),
        Value::Null => {}
        _ => out.push(one(v)),
    }
}

pub(crate) fn literal<'a>(l: &Literal) -> Items<'a> {
    let item = match l {
        Literal::Empty => return vec![],
        Literal::Boolean(b) => Item::Boolean(*b),
        Literal::String(s) => Item::String(Cow::Owned(s.clone())),
        Literal::Integer(i) => Item::Integer(*i),
        Literal::Decimal(d) => Item::Decimal(Decimal { text: d.clone() }),
        Literal::Date(d) => Item::Date(d.clone()),
        Literal::DateTime(d) => Item::DateTime(d.clone()),
        Literal::Time(t) => Item::Time(t.clone()),
        Literal::Quantity(v, u) => Item::Quantity {
            value: Decimal { text: v.clone() },
            unit: u.clone(),
        },
    };
    vec![item]
}

/// Singleton evaluation: empty -> `None`, one item -> it, more -> error.
pub(crate) fn singleton<'a>(items: &[Item<'a>]) -> R<Option<Item<'a>>> {
    match items.len() {
        0 => Ok(None),
        1 => Ok(Some(items[0].clone())),
        n => eval_err(format!("expected a single item, got {n}")),
    }
}

/// Singleton evaluation of a collection as a Boolean.
pub(crate) fn to_bool(items: &[Item<'_>]) -> R<Option<bool>> {
    match items.len() {
        0 => Ok(None),
        1 => Ok(Some(match prim(&items[0]) {
            Item::Boolean(b) => b,
            _ => true,
        })),
        n => eval_err(format!("expected a single boolean, got {n} items")),
    }
}

pub(crate) fn cmp_result(o: Option<Ordering>, op: BinOp) -> Option<bool> {
    let o = o?;
    Some(match op {
        BinOp::Lt => o == Ordering::Less,
        BinOp::Le => o != Ordering::Greater,
        BinOp::Gt => o == Ordering::Greater,
        _ => o != Ordering::Less,
    })
}

pub(crate) fn temporal_item<'a>(like: &Item<'_>, t: &Temporal) -> Item<'a> {
    match like {
        Item::Date(_) => Item::Date(t.format()),
        Item::Time(_) => Item::Time(t.format()),
        _ => Item::DateTime(t.format()),
    }
}
