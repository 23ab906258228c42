//! FHIRPath (N1) over FHIR JSON.
//!
//! This file fixes the public API that the FML executor (`crates/fml`) and the
//! validator build on. Implementations live in private modules; the shapes below
//! change only together with their callers.
//!
//! Design points callers rely on:
//! - Evaluation borrows the input: nodes are `&'a serde_json::Value` into the
//!   caller's document, never copies (the DDCC QuestionnaireResponses carry a
//!   31 kB narrative that must not be cloned per expression).
//! - Parsing is separate from evaluation; an [`Expression`] is immutable, `Send +
//!   Sync`, and cheap to clone, so compiled maps cache them.
//! - Everything the evaluator needs from outside (variables, terminology, type
//!   information) comes through [`Environment`]; the crate does no I/O.

use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

mod ast;
pub mod calendar;
mod decimal;
mod eval;
mod functions;
pub mod model;
mod ops;
mod parser;
mod temporal;
mod units;
pub use units::CALENDAR_UNITS;
mod value;

/// A parsed FHIRPath expression.
#[derive(Debug, Clone)]
pub struct Expression {
    src: Arc<str>,
    tree: Arc<ast::Expr>,
}

impl Expression {
    /// The source text this expression was parsed from.
    pub fn source(&self) -> &str {
        &self.src
    }
}

/// Where an error sits in the expression text (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("FHIRPath syntax error at {}:{}: {message}", at.line, at.column)]
    Syntax { message: String, at: Position },
    #[error("FHIRPath evaluation error: {0}")]
    Eval(String),
    #[error("unknown FHIRPath function '{0}'")]
    UnknownFunction(String),
    #[error("FHIRPath expression nested too deeply")]
    TooDeep,
}

/// One element of a FHIRPath collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    Boolean(bool),
    Integer(i64),
    /// Kept as text with its written precision (`1.0` and `1` differ in FHIRPath).
    Decimal(Decimal),
    String(Cow<'a, str>),
    /// Partial dates allowed: `2021`, `2021-07`, `2021-07-08`.
    Date(String),
    /// ISO 8601 with optional precision and offset, without the `@`/`T` prefix rules of literals.
    DateTime(String),
    Time(String),
    Quantity {
        value: Decimal,
        unit: String,
    },
    /// A node of a FHIR JSON document. `type_name` is the FHIR type when known
    /// (resource type, or derived from the element definition / choice suffix).
    Node {
        value: &'a Value,
        type_name: Option<Cow<'a, str>>,
    },
    /// A node built during evaluation (e.g. from a variable holding an FML target).
    Owned {
        value: std::sync::Arc<Value>,
        type_name: Option<String>,
    },
}

/// A FHIRPath decimal: the canonical text plus its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Decimal {
    pub text: String,
}

impl<'a> Item<'a> {
    /// The FHIR type name used to name a choice element (`doseNumber` + `Integer`)
    /// and for `is`/`ofType`: `boolean`, `integer`, `decimal`, `string`, `date`,
    /// `dateTime`, `time`, `Quantity`, or the node's type.
    pub fn fhir_type(&self) -> Option<Cow<'_, str>> {
        let t = match self {
            Item::Boolean(_) => "boolean",
            Item::Integer(_) => "integer",
            Item::Decimal(_) => "decimal",
            Item::String(_) => "string",
            Item::Date(_) => "date",
            Item::DateTime(_) => "dateTime",
            Item::Time(_) => "time",
            Item::Quantity { .. } => "Quantity",
            Item::Node { value, type_name } => {
                return match type_name {
                    Some(t) => Some(Cow::Borrowed(fhir_name(t.as_ref()))),
                    None => json_type(value).map(Cow::Borrowed),
                }
            }
            Item::Owned { value, type_name } => {
                return match type_name {
                    Some(t) => Some(Cow::Borrowed(fhir_name(t.as_str()))),
                    None => json_type(value).map(|t| Cow::Owned(t.to_string())),
                }
            }
        };
        Some(Cow::Borrowed(t))
    }

    /// The text of a string item or of a JSON string node.
    pub fn as_str(&self) -> Option<&str> {
        value::as_str(self)
    }

    /// The System value of the item: a JSON primitive node becomes Boolean,
    /// Integer, Decimal, String, Date, DateTime or Time; other items are returned as they are.
    pub fn to_primitive(&self) -> Item<'a> {
        value::prim(self)
    }

    /// The JSON node behind a `Node`/`Owned` item.
    pub fn as_json(&self) -> Option<&Value> {
        value::json_of(self)
    }

    /// FHIRPath's text form (`toString()`): `5 'mg'`, `2021-07-08`, `true`; `None` for complex nodes.
    pub fn to_fhirpath_string(&self) -> Option<String> {
        match value::prim(self) {
            Item::String(s) => Some(s.into_owned()),
            Item::Boolean(b) => Some(b.to_string()),
            Item::Integer(i) => Some(i.to_string()),
            Item::Decimal(d) => Some(d.text),
            Item::Date(d) | Item::DateTime(d) | Item::Time(d) => Some(d),
            Item::Quantity { value, unit } => Some(value::quantity_text(&value, &unit)),
            _ => None,
        }
    }

    /// The value as FHIR JSON (a primitive becomes a JSON scalar, a Quantity an object).
    pub fn to_json(&self) -> Value {
        match self {
            Item::Boolean(b) => Value::Bool(*b),
            Item::Integer(i) => Value::from(*i),
            Item::Decimal(d) => decimal_json(d),
            Item::String(s) => Value::String(s.to_string()),
            Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Value::String(s.clone()),
            Item::Quantity { value, unit } => {
                let mut m = serde_json::Map::new();
                m.insert("value".into(), decimal_json(value));
                m.insert("unit".into(), Value::String(unit.clone()));
                if !is_calendar_word(unit) {
                    m.insert("system".into(), Value::String(value::UCUM.into()));
                    m.insert("code".into(), Value::String(unit.clone()));
                }
                Value::Object(m)
            }
            Item::Node { value, .. } => (*value).clone(),
            Item::Owned { value, .. } => (**value).clone(),
        }
    }
}

/// Type information the evaluator may ask for. All methods have a "don't know"
/// default, in which case the evaluator falls back to JSON shape (e.g. a missing
/// `value` element is looked up as `value[x]` by suffix).
pub trait ModelInfo: Send + Sync {
    /// The type of `element` on `parent_type` (`("Immunization","occurrence")` ->
    /// the choice types), as FHIR type names.
    fn element_types(&self, _parent_type: &str, _element: &str) -> Option<Vec<String>> {
        None
    }
    /// Is `ty` (or a type derived from it) a subtype of `base`?
    fn is_subtype(&self, _ty: &str, _base: &str) -> Option<bool> {
        None
    }
}

/// The evaluation context.
pub trait Environment<'a> {
    /// `%name` variables (`%resource`, `%context` and `%ucum` are provided by the
    /// evaluator unless this returns them).
    fn variable(&self, _name: &str) -> Option<Vec<Item<'a>>> {
        None
    }
    /// Matchbox/FML rule: a bare identifier at the start of a path is first looked
    /// up as a map variable. Plain FHIRPath returns `None` here.
    fn bare_identifier(&self, _name: &str) -> Option<Vec<Item<'a>>> {
        None
    }
    /// `memberOf(valueSetUrl)` for one code. `None` = unknown value set (an error).
    fn member_of(&self, _system: Option<&str>, _code: &str, _value_set: &str) -> Option<bool> {
        None
    }
    fn model(&self) -> Option<&dyn ModelInfo> {
        None
    }
    /// Matchbox compatibility: HL7's Java FHIRPath engine adds only the integer part
    /// of a seconds quantity to a date/time (`@1970-01-01T00:00:00Z + 1.5 's'` is
    /// one second later), where the FHIRPath spec keeps milliseconds. The FML
    /// executor turns this on so IG maps give the results Matchbox gives.
    fn whole_seconds_in_date_arithmetic(&self) -> bool {
        false
    }
    /// The clock for `now()`, `today()`, `timeOfDay()` (ISO 8601 dateTime). `None` = system clock.
    fn now(&self) -> Option<String> {
        None
    }
}

/// An environment with nothing in it: plain FHIRPath over a resource.
pub struct EmptyEnvironment;
impl<'a> Environment<'a> for EmptyEnvironment {}

/// Parse an expression. Never panics; deep nesting gives [`Error::TooDeep`].
pub fn parse(src: &str) -> Result<Expression, Error> {
    let tree = parser::parse(src)?;
    Ok(Expression {
        src: Arc::from(src),
        tree: Arc::new(tree),
    })
}

/// Evaluate `expr` with `input` as the focus (`$this`, `%context`, `%resource`).
pub fn evaluate<'a>(
    expr: &Expression,
    input: &[Item<'a>],
    env: &dyn Environment<'a>,
) -> Result<Vec<Item<'a>>, Error> {
    let ev = eval::Evaluator::new(env, input.to_vec());
    ev.run(&expr.tree)
}

/// FHIRPath's singleton evaluation of a result as a Boolean (what `where`,
/// `check` and FML conditions need): empty -> `None`, a single Boolean -> its
/// value, any other single item -> `true`, more than one item -> an error.
pub fn to_boolean(items: &[Item<'_>]) -> Result<Option<bool>, Error> {
    eval::to_bool(items)
}

/// Convenience: parse and evaluate against one JSON resource with no environment.
pub fn evaluate_str<'a>(src: &str, resource: &'a Value) -> Result<Vec<Item<'a>>, Error> {
    let expr = parse(src)?;
    let root = Item::Node {
        value: resource,
        type_name: resource
            .get("resourceType")
            .and_then(Value::as_str)
            .map(Cow::Borrowed),
    };
    evaluate(&expr, &[root], &EmptyEnvironment)
}

/// The R4 model types element ids and `Extension.url` as `System.String`; as a
/// FHIR type (e.g. to name a choice element) that is `string`.
fn fhir_name(t: &str) -> &str {
    match t {
        "System.String" => "string",
        "System.Boolean" => "boolean",
        "System.Integer" => "integer",
        "System.Decimal" => "decimal",
        "System.Date" => "date",
        "System.DateTime" => "dateTime",
        "System.Time" => "time",
        other => other,
    }
}

fn json_type(v: &Value) -> Option<&str> {
    match v {
        Value::Object(o) => o.get("resourceType").and_then(Value::as_str),
        Value::Bool(_) => Some("boolean"),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
        Value::Number(_) => Some("decimal"),
        Value::String(_) => Some("string"),
        _ => None,
    }
}

fn is_calendar_word(u: &str) -> bool {
    matches!(
        u,
        "year"
            | "years"
            | "month"
            | "months"
            | "week"
            | "weeks"
            | "day"
            | "days"
            | "hour"
            | "hours"
            | "minute"
            | "minutes"
            | "second"
            | "seconds"
            | "millisecond"
            | "milliseconds"
    )
}

/// A decimal as a JSON number with its written digits where serde_json allows.
fn decimal_json(d: &Decimal) -> Value {
    if let Some(i) = d.as_integer().filter(|_| d.scale() == 0) {
        return Value::from(i);
    }
    serde_json::Number::from_f64(d.to_f64()).map_or(Value::Null, Value::Number)
}
