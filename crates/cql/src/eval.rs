//! The ELM interpreter: evaluates a library's expression definitions for one patient.
//!
//! Semantics follow the CQL specification as the reference engine (cql-execution
//! 3.3.2 with cql-exec-fhir 2.2.0) implements it, because that engine is this
//! crate's oracle: FHIR data is navigated through the R4 model (choice types by their
//! JSON suffix, primitives as objects with a `value`), a query over a null source is
//! null, a query without a return clause is distinct, `Exists` ignores null elements.
//! FHIRHelpers conversions are native; other libraries' functions run from their ELM.

use crate::data::PatientData;
use crate::elm::{ElmLibrary, FunctionDef};
use crate::value::{
    self, code_list, codes_match, distinct_key, Code, CodeOrString, Concept, CqlDateTime, CqlValue,
    FhirValue, ValueSetRef,
};
use crate::CqlError;
use serde_json::{Map, Value};
use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Nesting bound for expression evaluation (ELM trees, function calls, definitions
/// referring to definitions).
pub const MAX_DEPTH: usize = 100;
/// Bound on evaluated nodes per evaluation: a small rule over a certificate needs a
/// few thousand; a hostile library must not run unbounded.
pub const MAX_STEPS: u64 = 2_000_000;

const FHIR_NS: &str = "{http://hl7.org/fhir}";
const SYSTEM_NS: &str = "{urn:hl7-org:elm-types:r1}";

/// Libraries an evaluation can reach through `include`, by library name.
#[derive(Debug, Clone, Default)]
pub struct Libraries {
    by_name: HashMap<String, Arc<ElmLibrary>>,
}

impl Libraries {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, library: Arc<ElmLibrary>) {
        self.by_name.insert(library.name.clone(), library);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ElmLibrary>> {
        self.by_name.get(name)
    }
}

/// Everything an evaluation may consult besides the patient's data.
#[derive(Default, Clone, Copy)]
pub struct EvalParams<'a> {
    /// Included libraries (FHIRHelpers need not be here: it is native).
    pub libraries: Option<&'a Libraries>,
    /// Value set membership; a value set a rule needs but this cannot answer is an error.
    pub terminology: Option<&'a terminology::Terminology>,
    /// Values for the library's parameters (defaults apply to the others).
    pub parameters: Option<&'a BTreeMap<String, CqlValue>>,
}

/// Evaluates every expression definition of `library` for the patient in `data`,
/// in declaration order, and returns them by name (functions are not evaluated).
pub fn evaluate(
    library: &ElmLibrary,
    data: &PatientData,
    params: &EvalParams<'_>,
) -> Result<BTreeMap<String, CqlValue>, CqlError> {
    let engine = Engine::new(library, data, params);
    let mut out = BTreeMap::new();
    for (name, _) in &library.expressions {
        out.insert(name.clone(), engine.expression_ref(library, name, 0)?);
    }
    Ok(out)
}

/// Evaluates one definition (and what it depends on).
///
/// The patient context is established first, as a full evaluation would: data that is
/// not one patient's (two Patient resources) fails every expression, not only those
/// that mention the Patient.
pub fn evaluate_expression(
    library: &ElmLibrary,
    name: &str,
    data: &PatientData,
    params: &EvalParams<'_>,
) -> Result<CqlValue, CqlError> {
    let engine = Engine::new(library, data, params);
    if library.expression(CONTEXT_PATIENT).is_some() {
        engine.expression_ref(library, CONTEXT_PATIENT, 0)?;
    }
    engine.expression_ref(library, name, 0)
}

/// The definition the translator writes for `context Patient`.
const CONTEXT_PATIENT: &str = "Patient";

/// Bound names in scope: query aliases, let clauses, function operands.
struct Scope<'s> {
    name: &'s str,
    value: CqlValue,
    parent: Option<&'s Scope<'s>>,
}

fn lookup<'s>(scope: Option<&'s Scope<'s>>, name: &str) -> Option<&'s CqlValue> {
    let mut cur = scope;
    while let Some(s) = cur {
        if s.name == name {
            return Some(&s.value);
        }
        cur = s.parent;
    }
    None
}

struct Engine<'a> {
    main: &'a ElmLibrary,
    data: &'a PatientData,
    params: &'a EvalParams<'a>,
    cache: RefCell<HashMap<(String, String), CqlValue>>,
    in_progress: RefCell<HashSet<(String, String)>>,
    steps: Cell<u64>,
}

fn node_type(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
}

fn operands(node: &Value) -> Vec<&Value> {
    match node.get("operand") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    }
}

fn str_field<'v>(node: &'v Value, key: &str) -> Result<&'v str, CqlError> {
    node.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| CqlError::Elm(format!("{} without {key}", node_type(node))))
}

impl<'a> Engine<'a> {
    fn new(main: &'a ElmLibrary, data: &'a PatientData, params: &'a EvalParams<'a>) -> Self {
        Engine {
            main,
            data,
            params,
            cache: RefCell::new(HashMap::new()),
            in_progress: RefCell::new(HashSet::new()),
            steps: Cell::new(0),
        }
    }

    fn library(
        &self,
        from: &'a ElmLibrary,
        alias: Option<&str>,
    ) -> Result<&'a ElmLibrary, CqlError> {
        let Some(alias) = alias else { return Ok(from) };
        let include = from
            .includes
            .iter()
            .find(|i| i.alias == alias)
            .ok_or_else(|| CqlError::Elm(format!("no include called {alias}")))?;
        if include.path == self.main.name {
            return Ok(self.main);
        }
        self.params
            .libraries
            .and_then(|l| l.get(&include.path))
            .map(|l| &**l)
            .ok_or_else(|| CqlError::MissingLibrary(include.path.clone()))
    }

    fn expression_ref(
        &self,
        lib: &'a ElmLibrary,
        name: &str,
        depth: usize,
    ) -> Result<CqlValue, CqlError> {
        let key = (lib.name.clone(), name.to_string());
        if let Some(v) = self.cache.borrow().get(&key) {
            return Ok(v.clone());
        }
        let body = lib
            .expression(name)
            .ok_or_else(|| CqlError::Elm(format!("no definition {name} in {}", lib.name)))?;
        if !self.in_progress.borrow_mut().insert(key.clone()) {
            return Err(CqlError::Elm(format!("definition {name} refers to itself")));
        }
        let result = self.eval(lib, body, None, depth + 1);
        self.in_progress.borrow_mut().remove(&key);
        let v = result?;
        self.cache.borrow_mut().insert(key, v.clone());
        Ok(v)
    }

    fn eval_all(
        &self,
        lib: &'a ElmLibrary,
        nodes: &[&Value],
        scope: Option<&Scope<'_>>,
        depth: usize,
    ) -> Result<Vec<CqlValue>, CqlError> {
        nodes
            .iter()
            .map(|n| self.eval(lib, n, scope, depth))
            .collect()
    }

    fn unary(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        depth: usize,
    ) -> Result<CqlValue, CqlError> {
        let ops = operands(node);
        match ops.as_slice() {
            [one] => self.eval(lib, one, scope, depth),
            _ => Err(CqlError::Elm(format!(
                "{} needs one operand",
                node_type(node)
            ))),
        }
    }

    fn binary(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        depth: usize,
    ) -> Result<(CqlValue, CqlValue), CqlError> {
        let ops = operands(node);
        match ops.as_slice() {
            [a, b] => Ok((
                self.eval(lib, a, scope, depth)?,
                self.eval(lib, b, scope, depth)?,
            )),
            _ => Err(CqlError::Elm(format!(
                "{} needs two operands",
                node_type(node)
            ))),
        }
    }

    fn sub(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        key: &str,
        scope: Option<&Scope<'_>>,
        depth: usize,
    ) -> Result<CqlValue, CqlError> {
        match node.get(key) {
            Some(n) => self.eval(lib, n, scope, depth),
            None => Err(CqlError::Elm(format!("{} without {key}", node_type(node)))),
        }
    }

    fn eval(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        depth: usize,
    ) -> Result<CqlValue, CqlError> {
        if depth > MAX_DEPTH {
            return Err(CqlError::Limit("expression nesting too deep".into()));
        }
        let steps = self.steps.get() + 1;
        if steps > MAX_STEPS {
            return Err(CqlError::Limit("evaluation step budget exhausted".into()));
        }
        self.steps.set(steps);
        let d = depth + 1;
        let t = node_type(node);
        for group in [
            Self::eval_core,
            Self::eval_logic,
            Self::eval_compare,
            Self::eval_lists,
            Self::eval_types,
            Self::eval_terminology,
            Self::eval_arith,
        ] {
            if let Some(v) = group(self, lib, node, scope, d, t)? {
                return Ok(v);
            }
        }
        Err(CqlError::Unsupported(format!("ELM node {t:?}")))
    }

    #[inline(never)]
    fn eval_core(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
        t: &str,
    ) -> Result<Option<CqlValue>, CqlError> {
        use CqlValue as V;
        Ok(Some(match t {
            "Null" => V::Null,
            "Literal" => literal(node)?,
            "ExpressionRef" => {
                let target = self.library(lib, node.get("libraryName").and_then(Value::as_str))?;
                self.expression_ref(target, str_field(node, "name")?, d)?
            }
            "FunctionRef" => self.function_ref(lib, node, scope, d)?,
            "OperandRef" | "AliasRef" | "QueryLetRef" | "IdentifierRef" => {
                let name = str_field(node, "name")?;
                lookup(scope, name)
                    .cloned()
                    .ok_or_else(|| CqlError::Elm(format!("{name} is not in scope")))?
            }
            "ParameterRef" => {
                let name = str_field(node, "name")?;
                let target = self.library(lib, node.get("libraryName").and_then(Value::as_str))?;
                match self.params.parameters.and_then(|p| p.get(name)) {
                    Some(v) if std::ptr::eq(target, self.main) => v.clone(),
                    _ => match target.parameters.get(name) {
                        Some(Some(default)) => self.eval(target, default, None, d)?,
                        Some(None) => V::Null,
                        None => return Err(CqlError::Elm(format!("no parameter {name}"))),
                    },
                }
            }
            "Property" => {
                let source = match node.get("scope").and_then(Value::as_str) {
                    Some(alias) => lookup(scope, alias)
                        .cloned()
                        .ok_or_else(|| CqlError::Elm(format!("{alias} is not in scope")))?,
                    None => self.sub(lib, node, "source", scope, d)?,
                };
                let path = str_field(node, "path")?;
                let mut cur = source;
                for part in path.split('.') {
                    cur = property(&cur, part)?;
                }
                cur
            }
            "Retrieve" => self.retrieve(lib, node, scope, d)?,
            "Query" => self.query(lib, node, scope, d)?,
            "List" => {
                let items: Vec<&Value> = node
                    .get("element")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                V::List(self.eval_all(lib, &items, scope, d)?)
            }
            "Tuple" => {
                let mut out = BTreeMap::new();
                for el in node
                    .get("element")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = str_field(el, "name")?;
                    out.insert(name.to_string(), self.sub(lib, el, "value", scope, d)?);
                }
                V::Tuple(out)
            }
            "Instance" => self.instance(lib, node, scope, d)?,
            _ => return Ok(None),
        }))
    }

    #[inline(never)]
    fn eval_logic(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
        t: &str,
    ) -> Result<Option<CqlValue>, CqlError> {
        use CqlValue as V;
        Ok(Some(match t {
            // Logic, three-valued.
            "And" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                V::from_bool(match (truth(&a)?, truth(&b)?) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                })
            }
            "Or" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                V::from_bool(match (truth(&a)?, truth(&b)?) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                })
            }
            "Xor" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                V::from_bool(match (truth(&a)?, truth(&b)?) {
                    (Some(x), Some(y)) => Some(x != y),
                    _ => None,
                })
            }
            "Implies" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                V::from_bool(match (truth(&a)?, truth(&b)?) {
                    (Some(false), _) | (_, Some(true)) => Some(true),
                    (Some(true), Some(false)) => Some(false),
                    _ => None,
                })
            }
            "Not" => V::from_bool(truth(&self.unary(lib, node, scope, d)?)?.map(|b| !b)),
            "IsNull" => V::Boolean(self.unary(lib, node, scope, d)?.is_null()),
            "IsTrue" => V::Boolean(self.unary(lib, node, scope, d)? == V::Boolean(true)),
            "IsFalse" => V::Boolean(self.unary(lib, node, scope, d)? == V::Boolean(false)),
            "Coalesce" => {
                for op in operands(node) {
                    let v = self.eval(lib, op, scope, d)?;
                    match v {
                        V::Null => {}
                        V::List(items) if operands(node).len() == 1 => {
                            return Ok(Some(
                                items.into_iter().find(|i| !i.is_null()).unwrap_or(V::Null),
                            ));
                        }
                        other => return Ok(Some(other)),
                    }
                }
                V::Null
            }
            "If" => {
                if self.sub(lib, node, "condition", scope, d)? == V::Boolean(true) {
                    self.sub(lib, node, "then", scope, d)?
                } else {
                    self.sub(lib, node, "else", scope, d)?
                }
            }
            "Case" => self.case(lib, node, scope, d)?,
            _ => return Ok(None),
        }))
    }

    #[inline(never)]
    fn eval_compare(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
        t: &str,
    ) -> Result<Option<CqlValue>, CqlError> {
        use CqlValue as V;
        Ok(Some(match t {
            // Comparison.
            "Equal" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                V::from_bool(value::equal(&a, &b))
            }
            "NotEqual" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                V::from_bool(value::equal(&a, &b).map(|x| !x))
            }
            "Equivalent" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                V::Boolean(value::equivalent(&a, &b))
            }
            "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                if a.is_null() || b.is_null() {
                    V::Null
                } else {
                    V::from_bool(value::compare(&a, &b).map(|o| match t {
                        "Less" => o == Ordering::Less,
                        "LessOrEqual" => o != Ordering::Greater,
                        "Greater" => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    }))
                }
            }
            _ => return Ok(None),
        }))
    }

    #[inline(never)]
    fn eval_lists(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
        t: &str,
    ) -> Result<Option<CqlValue>, CqlError> {
        use CqlValue as V;
        Ok(Some(match t {
            // Lists and aggregates.
            "Exists" => match self.unary(lib, node, scope, d)? {
                V::List(items) => V::Boolean(items.iter().any(|i| !i.is_null())),
                V::Null => V::Boolean(false),
                _ => return Err(CqlError::Type("Exists of a non-list".into())),
            },
            "Count" => match self.sub(lib, node, "source", scope, d)? {
                V::List(items) => V::Integer(items.iter().filter(|i| !i.is_null()).count() as i64),
                _ => V::Integer(0),
            },
            "Max" | "Min" => match self.sub(lib, node, "source", scope, d)? {
                V::List(items) => {
                    let mut best: Option<CqlValue> = None;
                    for item in items.into_iter().filter(|i| !i.is_null()) {
                        best = Some(match best {
                            None => item,
                            Some(b) => {
                                let better = match value::compare(&item, &b) {
                                    Some(Ordering::Greater) => t == "Max",
                                    Some(Ordering::Less) => t == "Min",
                                    _ => false,
                                };
                                if better {
                                    item
                                } else {
                                    b
                                }
                            }
                        });
                    }
                    best.unwrap_or(V::Null)
                }
                _ => V::Null,
            },
            "Sum" => match self.sub(lib, node, "source", scope, d)? {
                V::List(items) => {
                    let nums: Vec<CqlValue> = items.into_iter().filter(|i| !i.is_null()).collect();
                    if nums.is_empty() {
                        V::Null
                    } else {
                        let mut acc = V::Integer(0);
                        for n in &nums {
                            acc = add(&acc, n)?;
                        }
                        acc
                    }
                }
                _ => V::Null,
            },
            "First" | "Last" => match self.sub(lib, node, "source", scope, d)? {
                V::List(items) => {
                    let pick = if t == "First" {
                        items.first()
                    } else {
                        items.last()
                    };
                    pick.cloned().unwrap_or(V::Null)
                }
                _ => V::Null,
            },
            "SingletonFrom" => match self.unary(lib, node, scope, d)? {
                V::List(mut items) => match items.len() {
                    0 => V::Null,
                    1 => items.pop().unwrap_or_default(),
                    n => return Err(CqlError::Type(format!("singleton from a list of {n}"))),
                },
                V::Null => V::Null,
                _ => return Err(CqlError::Type("singleton from a non-list".into())),
            },
            "ToList" => match self.unary(lib, node, scope, d)? {
                V::Null => V::List(Vec::new()),
                v => V::List(vec![v]),
            },
            "Distinct" => match self.unary(lib, node, scope, d)? {
                V::List(items) => V::List(distinct(items)),
                _ => V::Null,
            },
            "Flatten" => match self.unary(lib, node, scope, d)? {
                V::List(items) if items.iter().all(|i| matches!(i, V::List(_))) => V::List(
                    items
                        .into_iter()
                        .flat_map(|i| match i {
                            V::List(inner) => inner,
                            _ => Vec::new(),
                        })
                        .collect(),
                ),
                other => other,
            },
            "Union" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                match (a, b) {
                    (V::List(x), V::List(y)) => {
                        V::List(dedup_nulls(distinct(x.into_iter().chain(y).collect())))
                    }
                    (V::List(x), V::Null) | (V::Null, V::List(x)) => V::List(x),
                    (V::Null, V::Null) => {
                        let list_typed = operands(node).iter().any(|o| {
                            o.get("asTypeSpecifier").map(node_type) == Some("ListTypeSpecifier")
                        });
                        if list_typed {
                            V::List(Vec::new())
                        } else {
                            V::Null
                        }
                    }
                    _ => return Err(CqlError::Unsupported("Union of intervals".into())),
                }
            }
            "Except" | "Intersect" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                match (a, b) {
                    (V::List(x), V::List(y)) => {
                        let keep_if_in = t == "Intersect";
                        V::List(
                            dedup_nulls(distinct(x))
                                .into_iter()
                                .filter(|i| list_contains(&y, i) == keep_if_in)
                                .collect(),
                        )
                    }
                    (V::List(x), V::Null) if t == "Except" => V::List(x),
                    _ => V::Null,
                }
            }
            "Contains" => {
                let (container, item) = self.binary(lib, node, scope, d)?;
                match container {
                    V::Null => V::Boolean(false),
                    V::List(items) => V::Boolean(list_contains(&items, &item)),
                    V::Interval(i) => V::from_bool(interval_contains(&i, &item)),
                    _ => return Err(CqlError::Type("Contains of a non-collection".into())),
                }
            }
            "In" => {
                let (item, container) = self.binary(lib, node, scope, d)?;
                match container {
                    V::Null => V::Boolean(false),
                    V::List(items) => V::Boolean(list_contains(&items, &item)),
                    V::Interval(i) => V::from_bool(interval_contains(&i, &item)),
                    _ => return Err(CqlError::Type("In of a non-collection".into())),
                }
            }
            _ => return Ok(None),
        }))
    }

    #[inline(never)]
    fn eval_types(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
        t: &str,
    ) -> Result<Option<CqlValue>, CqlError> {
        use CqlValue as V;
        Ok(Some(match t {
            // Types and conversions.
            "Is" => {
                let v = self.unary(lib, node, scope, d)?;
                let spec = type_spec(node, "isTypeSpecifier", "isType")?;
                V::Boolean(!v.is_null() && matches_type(&v, &spec)?)
            }
            "As" => {
                let v = self.unary(lib, node, scope, d)?;
                let spec = type_spec(node, "asTypeSpecifier", "asType")?;
                if v.is_null() || matches_type(&v, &spec)? {
                    v
                } else if node.get("strict").and_then(Value::as_bool) == Some(true) {
                    return Err(CqlError::Type("strict cast failed".into()));
                } else {
                    V::Null
                }
            }
            "ToInteger" => match self.unary(lib, node, scope, d)? {
                V::String(s) => parse_integer(&s).map_or(V::Null, V::Integer),
                V::Boolean(b) => V::Integer(i64::from(b)),
                _ => V::Null,
            },
            "ToDecimal" => match self.unary(lib, node, scope, d)? {
                V::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map_or(V::Null, V::Decimal),
                V::Integer(i) => V::Decimal(i as f64),
                V::Decimal(x) => V::Decimal(x),
                V::Boolean(b) => V::Decimal(if b { 1.0 } else { 0.0 }),
                _ => V::Null,
            },
            "ToString" => match self.unary(lib, node, scope, d)? {
                V::Null => V::Null,
                V::String(s) => V::String(s),
                V::Boolean(b) => V::String(b.to_string()),
                V::Integer(i) => V::String(i.to_string()),
                V::Decimal(x) => V::String(x.to_string()),
                V::Date(x) | V::DateTime(x) => V::String(x.to_string()),
                _ => {
                    return Err(CqlError::Unsupported(
                        "ToString of a structured value".into(),
                    ))
                }
            },
            "ToBoolean" => match self.unary(lib, node, scope, d)? {
                V::String(s) => match s.to_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "1" => V::Boolean(true),
                    "false" | "f" | "no" | "n" | "0" => V::Boolean(false),
                    _ => V::Null,
                },
                V::Boolean(b) => V::Boolean(b),
                V::Integer(1) => V::Boolean(true),
                V::Integer(0) => V::Boolean(false),
                _ => V::Null,
            },
            "ToDateTime" | "ToDate" => match self.unary(lib, node, scope, d)? {
                V::String(s) => CqlDateTime::parse(&s, t == "ToDate").map_or(V::Null, |x| {
                    if t == "ToDate" {
                        V::Date(x)
                    } else {
                        V::DateTime(x)
                    }
                }),
                V::DateTime(mut x) | V::Date(mut x) if t == "ToDate" => {
                    x.is_date = true;
                    x.parts[3..].iter_mut().for_each(|p| *p = None);
                    x.offset_minutes = None;
                    V::Date(x)
                }
                V::Date(mut x) | V::DateTime(mut x) => {
                    x.is_date = false;
                    V::DateTime(x)
                }
                _ => V::Null,
            },
            "ToConcept" => match self.unary(lib, node, scope, d)? {
                V::Null => V::Null,
                V::Code(c) => V::Concept(Concept {
                    display: c.display.clone(),
                    codes: vec![c],
                }),
                V::List(items) => V::Concept(Concept {
                    codes: items
                        .into_iter()
                        .filter_map(|i| match i {
                            V::Code(c) => Some(c),
                            _ => None,
                        })
                        .collect(),
                    display: None,
                }),
                V::Concept(c) => V::Concept(c),
                _ => return Err(CqlError::Type("ToConcept of a non-code".into())),
            },
            _ => return Ok(None),
        }))
    }

    #[inline(never)]
    fn eval_terminology(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
        t: &str,
    ) -> Result<Option<CqlValue>, CqlError> {
        use CqlValue as V;
        Ok(Some(match t {
            // Terminology.
            "CodeSystemRef" => {
                let target = self.library(lib, node.get("libraryName").and_then(Value::as_str))?;
                let name = str_field(node, "name")?;
                let cs = target
                    .code_systems
                    .get(name)
                    .ok_or_else(|| CqlError::Elm(format!("no codesystem {name}")))?;
                V::Tuple(BTreeMap::from([
                    ("id".to_string(), V::String(cs.id.clone())),
                    (
                        "version".to_string(),
                        cs.version.clone().map_or(V::Null, V::String),
                    ),
                ]))
            }
            "CodeRef" => {
                let target = self.library(lib, node.get("libraryName").and_then(Value::as_str))?;
                V::Code(code_ref(target, str_field(node, "name")?)?)
            }
            "ConceptRef" => {
                let target = self.library(lib, node.get("libraryName").and_then(Value::as_str))?;
                let name = str_field(node, "name")?;
                let (codes, display) = target
                    .concepts
                    .get(name)
                    .ok_or_else(|| CqlError::Elm(format!("no concept {name}")))?;
                V::Concept(Concept {
                    codes: codes
                        .iter()
                        .map(|c| code_ref(target, c))
                        .collect::<Result<_, _>>()?,
                    display: display.clone(),
                })
            }
            "Code" => {
                let system_name = node
                    .get("system")
                    .and_then(|s| s.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| CqlError::Elm("Code without system".into()))?;
                let target = self.library(
                    lib,
                    node.get("system")
                        .and_then(|s| s.get("libraryName"))
                        .and_then(Value::as_str),
                )?;
                let cs = target
                    .code_systems
                    .get(system_name)
                    .ok_or_else(|| CqlError::Elm(format!("no codesystem {system_name}")))?;
                V::Code(Code {
                    code: Some(str_field(node, "code")?.to_string()),
                    system: Some(cs.id.clone()),
                    version: cs.version.clone(),
                    display: node
                        .get("display")
                        .and_then(Value::as_str)
                        .map(String::from),
                })
            }
            "ValueSetRef" => {
                let target = self.library(lib, node.get("libraryName").and_then(Value::as_str))?;
                let name = str_field(node, "name")?;
                let vs = target
                    .value_sets
                    .get(name)
                    .ok_or_else(|| CqlError::Elm(format!("no valueset {name}")))?;
                V::ValueSet(ValueSetRef {
                    id: vs.id.clone(),
                    version: vs.version.clone(),
                })
            }
            "InValueSet" | "AnyInValueSet" => {
                let code = self
                    .sub(lib, node, "code", scope, d)
                    .or_else(|_| self.unary(lib, node, scope, d))?;
                let vs = match node.get("valueset") {
                    Some(n) if n.get("type").is_some() => self.eval(lib, n, scope, d)?,
                    Some(n) => {
                        let name = str_field(n, "name")?;
                        let target =
                            self.library(lib, n.get("libraryName").and_then(Value::as_str))?;
                        let vs = target
                            .value_sets
                            .get(name)
                            .ok_or_else(|| CqlError::Elm(format!("no valueset {name}")))?;
                        V::ValueSet(ValueSetRef {
                            id: vs.id.clone(),
                            version: vs.version.clone(),
                        })
                    }
                    None => self.sub(lib, node, "valuesetExpression", scope, d)?,
                };
                match (&code, &vs) {
                    (V::Null, _) => V::Boolean(false),
                    (_, V::ValueSet(r)) => V::Boolean(self.in_value_set(&code_list(&code), r)?),
                    _ => return Err(CqlError::Type("InValueSet without a value set".into())),
                }
            }
            _ => return Ok(None),
        }))
    }

    #[inline(never)]
    fn eval_arith(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
        t: &str,
    ) -> Result<Option<CqlValue>, CqlError> {
        use CqlValue as V;
        Ok(Some(match t {
            // Arithmetic the rules use.
            "Add" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                add(&a, &b)?
            }
            "Subtract" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                match (&a, &b) {
                    (V::Null, _) | (_, V::Null) => V::Null,
                    (V::Integer(x), V::Integer(y)) => x.checked_sub(*y).map_or(V::Null, V::Integer),
                    _ => match (number(&a), number(&b)) {
                        (Some(x), Some(y)) => V::Decimal(x - y),
                        _ => return Err(CqlError::Unsupported("Subtract of non-numbers".into())),
                    },
                }
            }
            "Date" | "DateTime" => {
                let mut parts = [None; 7];
                let keys = [
                    "year",
                    "month",
                    "day",
                    "hour",
                    "minute",
                    "second",
                    "millisecond",
                ];
                for (i, k) in keys.iter().enumerate() {
                    if let Some(n) = node.get(*k) {
                        match self.eval(lib, n, scope, d)? {
                            V::Integer(x) => parts[i] = u32::try_from(x).ok(),
                            V::Null => {}
                            _ => return Err(CqlError::Type(format!("{t} {k} is not an Integer"))),
                        }
                    }
                }
                let offset = match node.get("timezoneOffset") {
                    Some(n) => match self.eval(lib, n, scope, d)? {
                        V::Decimal(h) => Some((h * 60.0).round() as i32),
                        V::Integer(h) => i32::try_from(h).ok().map(|h| h * 60),
                        _ => None,
                    },
                    None => None,
                };
                match CqlDateTime::from_parts(parts, offset, t == "Date") {
                    Some(x) if t == "Date" => V::Date(x),
                    Some(x) => V::DateTime(x),
                    None => V::Null,
                }
            }
            "SameAs" | "SameOrBefore" | "SameOrAfter" | "Before" | "After" => {
                let (a, b) = self.binary(lib, node, scope, d)?;
                let precision = node.get("precision").and_then(Value::as_str);
                match (&a, &b) {
                    (V::Date(x), V::Date(y))
                    | (V::DateTime(x), V::DateTime(y))
                    | (V::Date(x), V::DateTime(y))
                    | (V::DateTime(x), V::Date(y)) => {
                        V::from_bool(x.compare_at(y, precision)?.map(|o| match t {
                            "SameAs" => o == Ordering::Equal,
                            "SameOrBefore" => o != Ordering::Greater,
                            "SameOrAfter" => o != Ordering::Less,
                            "Before" => o == Ordering::Less,
                            _ => o == Ordering::Greater,
                        }))
                    }
                    (V::Null, _) | (_, V::Null) => V::Null,
                    _ => return Err(CqlError::Unsupported(format!("{t} on these types"))),
                }
            }
            "Concatenate" => {
                let mut out = String::new();
                for v in self.eval_all(lib, &operands(node), scope, d)? {
                    match v {
                        V::String(x) => out.push_str(&x),
                        V::Null => return Ok(Some(V::Null)),
                        _ => return Err(CqlError::Type("Concatenate of a non-string".into())),
                    }
                }
                V::String(out)
            }
            "DateTimeComponentFrom" => {
                let idx = match node.get("precision").and_then(Value::as_str) {
                    Some("Year") => 0,
                    Some("Month") => 1,
                    Some("Day") => 2,
                    Some("Hour") => 3,
                    Some("Minute") => 4,
                    Some("Second") => 5,
                    Some("Millisecond") => 6,
                    other => return Err(CqlError::Unsupported(format!("component {other:?}"))),
                };
                match self.unary(lib, node, scope, d)? {
                    V::Date(x) | V::DateTime(x) => {
                        x.parts[idx].map_or(V::Null, |p| V::Integer(i64::from(p)))
                    }
                    _ => V::Null,
                }
            }
            "Interval" => {
                let flag = |k: &str| node.get(k).and_then(Value::as_bool).unwrap_or(true);
                V::Interval(Box::new(value::Interval {
                    low: self.sub(lib, node, "low", scope, d)?,
                    high: self.sub(lib, node, "high", scope, d)?,
                    low_closed: flag("lowClosed"),
                    high_closed: flag("highClosed"),
                }))
            }
            "Negate" => match self.unary(lib, node, scope, d)? {
                V::Integer(i) => i.checked_neg().map_or(V::Null, V::Integer),
                V::Decimal(x) => V::Decimal(-x),
                _ => V::Null,
            },
            "Length" => match self.unary(lib, node, scope, d)? {
                V::String(s) => V::Integer(s.encode_utf16().count() as i64),
                V::List(items) => V::Integer(items.len() as i64),
                _ => V::Null,
            },
            _ => return Ok(None),
        }))
    }

    fn function_ref(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<CqlValue, CqlError> {
        let name = str_field(node, "name")?;
        let alias = node.get("libraryName").and_then(Value::as_str);
        let args = self.eval_all(lib, &operands(node), scope, d)?;
        if let Some(alias) = alias {
            let path = lib
                .includes
                .iter()
                .find(|i| i.alias == alias)
                .map(|i| i.path.as_str())
                .ok_or_else(|| CqlError::Elm(format!("no include called {alias}")))?;
            if path == "FHIRHelpers" {
                return fhir_helpers(name, &args);
            }
        }
        let target = self.library(lib, alias)?;
        let overloads = target
            .functions
            .get(name)
            .ok_or_else(|| CqlError::Elm(format!("no function {name} in {}", target.name)))?;
        let def = pick_overload(overloads, node, &args)
            .ok_or_else(|| CqlError::Elm(format!("no overload of {name} for these arguments")))?;
        let body = def
            .body
            .as_ref()
            .ok_or_else(|| CqlError::Unsupported(format!("external function {name}")))?;
        // A function sees its operands, not the caller's aliases.
        let mut frames: Vec<Scope<'_>> = Vec::new();
        for ((pname, _), v) in def.operands.iter().zip(args) {
            frames.push(Scope {
                name: pname,
                value: v,
                parent: None,
            });
        }
        self.eval_in_frames(target, body, frames, d)
    }

    /// Evaluates `body` with `frames` chained as its scope.
    fn eval_in_frames(
        &self,
        lib: &'a ElmLibrary,
        body: &Value,
        frames: Vec<Scope<'_>>,
        d: usize,
    ) -> Result<CqlValue, CqlError> {
        fn go<'e, 's>(
            engine: &Engine<'e>,
            lib: &'e ElmLibrary,
            body: &Value,
            mut rest: std::vec::IntoIter<Scope<'s>>,
            parent: Option<&Scope<'_>>,
            d: usize,
        ) -> Result<CqlValue, CqlError> {
            match rest.next() {
                None => engine.eval(lib, body, parent, d),
                Some(frame) => {
                    let s = Scope {
                        name: frame.name,
                        value: frame.value,
                        parent,
                    };
                    go(engine, lib, body, rest, Some(&s), d)
                }
            }
        }
        go(self, lib, body, frames.into_iter(), None, d)
    }

    fn instance(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<CqlValue, CqlError> {
        let class = str_field(node, "classType")?;
        let mut fields = BTreeMap::new();
        for el in node
            .get("element")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            fields.insert(
                str_field(el, "name")?.to_string(),
                self.sub(lib, el, "value", scope, d)?,
            );
        }
        let s = |f: &mut BTreeMap<String, CqlValue>, k: &str| match f.remove(k) {
            Some(CqlValue::String(x)) => Some(x),
            _ => None,
        };
        Ok(match class.strip_prefix(SYSTEM_NS) {
            Some("Code") => CqlValue::Code(Code {
                code: s(&mut fields, "code"),
                system: s(&mut fields, "system"),
                version: s(&mut fields, "version"),
                display: s(&mut fields, "display"),
            }),
            Some("Concept") => {
                let codes = match fields.remove("codes") {
                    Some(CqlValue::List(items)) => items
                        .into_iter()
                        .filter_map(|i| match i {
                            CqlValue::Code(c) => Some(c),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                CqlValue::Concept(Concept {
                    codes,
                    display: s(&mut fields, "display"),
                })
            }
            _ => return Err(CqlError::Unsupported(format!("Instance of {class}"))),
        })
    }

    fn case(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<CqlValue, CqlError> {
        let comparand = match node.get("comparand") {
            Some(c) => Some(self.eval(lib, c, scope, d)?),
            None => None,
        };
        for item in node
            .get("caseItem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let when = self.sub(lib, item, "when", scope, d)?;
            let hit = match &comparand {
                Some(c) => value::equal(c, &when) == Some(true),
                None => when == CqlValue::Boolean(true),
            };
            if hit {
                return self.sub(lib, item, "then", scope, d);
            }
        }
        match node.get("else") {
            Some(e) => self.eval(lib, e, scope, d),
            None => Ok(CqlValue::Null),
        }
    }

    fn retrieve(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<CqlValue, CqlError> {
        let data_type = str_field(node, "dataType")?;
        let resource_type = data_type
            .strip_prefix(FHIR_NS)
            .ok_or_else(|| CqlError::Unsupported(format!("retrieve of {data_type}")))?;
        if !fml::model::r4().is_resource(resource_type) {
            return Err(CqlError::Elm(format!(
                "retrieve of {resource_type}, not an R4 resource"
            )));
        }
        let records: Vec<CqlValue> = self
            .data
            .of_type(resource_type)
            .map(|r| {
                CqlValue::Fhir(FhirValue {
                    type_name: Arc::from(resource_type),
                    json: r.clone(),
                })
            })
            .collect();
        let Some(codes_node) = node.get("codes") else {
            return Ok(CqlValue::List(records));
        };
        let codes = self.eval(lib, codes_node, scope, d)?;
        if codes.is_null() {
            return Ok(CqlValue::List(Vec::new()));
        }
        let code_property = str_field(node, "codeProperty")?;
        let mut out = Vec::new();
        for r in records {
            let record_codes = code_list(&to_code_value(&property(&r, code_property)?));
            let hit = match &codes {
                CqlValue::ValueSet(vs) => self.in_value_set(&record_codes, vs)?,
                other => codes_match(&record_codes, &code_list(other)),
            };
            if hit {
                out.push(r);
            }
        }
        Ok(CqlValue::List(out))
    }

    fn in_value_set(&self, codes: &[CodeOrString], vs: &ValueSetRef) -> Result<bool, CqlError> {
        let term = self
            .params
            .terminology
            .ok_or_else(|| CqlError::ValueSet(vs.id.clone(), "no terminology configured".into()))?;
        for c in codes {
            let hit = match c {
                CodeOrString::Code(c) => match &c.code {
                    Some(code) => term
                        .contains(&vs.id, c.system.as_deref(), code)
                        .map_err(|e| CqlError::ValueSet(vs.id.clone(), e.to_string()))?,
                    None => false,
                },
                CodeOrString::String(s) => term
                    .contains(&vs.id, None, s)
                    .map_err(|e| CqlError::ValueSet(vs.id.clone(), e.to_string()))?,
            };
            if hit {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn query(
        &self,
        lib: &'a ElmLibrary,
        node: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<CqlValue, CqlError> {
        // A query level costs several frames (sources, scopes, clauses): it counts as
        // four levels of nesting so the bound holds for the stack, not just the tree.
        let d = d + 3;
        let sources = node
            .get("source")
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CqlError::Elm("Query without sources".into()))?;
        let mut aliases = Vec::new();
        let mut results = Vec::new();
        for s in sources {
            aliases.push(str_field(s, "alias")?);
            results.push(self.sub(lib, s, "expression", scope, d)?);
        }
        if results.iter().all(CqlValue::is_null) {
            return Ok(CqlValue::Null);
        }
        let is_list = results.iter().any(|r| matches!(r, CqlValue::List(_)));
        let lists: Vec<Vec<CqlValue>> = results
            .into_iter()
            .map(|r| match r {
                CqlValue::Null => Vec::new(),
                CqlValue::List(items) => items,
                other => vec![other],
            })
            .collect();
        let lets = node
            .get("let")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let relationships = node
            .get("relationship")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let ret = node.get("return");
        if node.get("aggregate").is_some() {
            return Err(CqlError::Unsupported("query aggregate clause".into()));
        }
        let total: usize = lists
            .iter()
            .map(Vec::len)
            .try_fold(1usize, |acc, n| acc.checked_mul(n))
            .unwrap_or(usize::MAX);
        if total > 1_000_000 {
            return Err(CqlError::Limit("query cross product too large".into()));
        }
        let mut returned = Vec::new();
        for combo in cartesian(&lists) {
            let mut frames: Vec<(String, CqlValue)> = aliases
                .iter()
                .zip(combo)
                .map(|(a, v)| (a.to_string(), v))
                .collect();
            for l in lets {
                let id = str_field(l, "identifier")?;
                let v =
                    self.with_frames(scope, &frames, |s| self.sub(lib, l, "expression", s, d))?;
                frames.push((id.to_string(), v));
            }
            let passed = self.with_frames(scope, &frames, |s| {
                for rel in relationships {
                    if !self.relationship(lib, rel, s, d)? {
                        return Ok(false);
                    }
                }
                match node.get("where") {
                    Some(w) => Ok(self.eval(lib, w, s, d)? == CqlValue::Boolean(true)),
                    None => Ok(true),
                }
            })?;
            if !passed {
                continue;
            }
            let v = match ret {
                Some(r) => {
                    self.with_frames(scope, &frames, |s| self.sub(lib, r, "expression", s, d))?
                }
                None if aliases.len() == 1 => frames.swap_remove(0).1,
                None => CqlValue::Tuple(frames.into_iter().take(aliases.len()).collect()),
            };
            returned.push(v);
        }
        let distinct_result = ret
            .and_then(|r| r.get("distinct"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if distinct_result {
            returned = distinct(returned);
        }
        if let Some(sort) = node.get("sort") {
            returned = self.sort(lib, sort, returned, scope, d)?;
        }
        Ok(if is_list {
            CqlValue::List(returned)
        } else {
            returned.into_iter().next().unwrap_or(CqlValue::Null)
        })
    }

    fn with_frames<R>(
        &self,
        scope: Option<&Scope<'_>>,
        frames: &[(String, CqlValue)],
        f: impl FnOnce(Option<&Scope<'_>>) -> Result<R, CqlError>,
    ) -> Result<R, CqlError> {
        fn go<R>(
            scope: Option<&Scope<'_>>,
            frames: &[(String, CqlValue)],
            f: impl FnOnce(Option<&Scope<'_>>) -> Result<R, CqlError>,
        ) -> Result<R, CqlError> {
            match frames.split_first() {
                None => f(scope),
                Some(((name, value), rest)) => {
                    let s = Scope {
                        name,
                        value: value.clone(),
                        parent: scope,
                    };
                    go(Some(&s), rest, f)
                }
            }
        }
        go(scope, frames, f)
    }

    fn relationship(
        &self,
        lib: &'a ElmLibrary,
        rel: &Value,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<bool, CqlError> {
        let alias = str_field(rel, "alias")?;
        let records = match self.sub(lib, rel, "expression", scope, d)? {
            CqlValue::List(items) => items,
            other => vec![other],
        };
        let mut any = false;
        for r in records {
            let s = Scope {
                name: alias,
                value: r,
                parent: scope,
            };
            if self.sub(lib, rel, "suchThat", Some(&s), d)? == CqlValue::Boolean(true) {
                any = true;
                break;
            }
        }
        match node_type(rel) {
            "With" => Ok(any),
            "Without" => Ok(!any),
            other => Err(CqlError::Unsupported(format!("relationship {other}"))),
        }
    }

    fn sort(
        &self,
        lib: &'a ElmLibrary,
        sort: &Value,
        values: Vec<CqlValue>,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<Vec<CqlValue>, CqlError> {
        let by = sort
            .get("by")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let mut keyed = Vec::new();
        for v in values {
            let mut keys = Vec::new();
            for item in by {
                let k = match node_type(item) {
                    "ByDirection" => v.clone(),
                    "ByExpression" => {
                        let s = Scope {
                            name: "$this",
                            value: v.clone(),
                            parent: scope,
                        };
                        match &v {
                            CqlValue::Fhir(_) | CqlValue::Tuple(_) => {
                                self.eval_sort_expr(lib, item, &v, Some(&s), d)?
                            }
                            _ => self.sub(lib, item, "expression", Some(&s), d)?,
                        }
                    }
                    "ByColumn" => {
                        let path = str_field(item, "path")?;
                        let mut cur = v.clone();
                        for part in path.split('.') {
                            cur = property(&cur, part)?;
                        }
                        cur
                    }
                    other => return Err(CqlError::Unsupported(format!("sort by {other}"))),
                };
                let desc = matches!(
                    item.get("direction").and_then(Value::as_str),
                    Some("desc" | "descending")
                );
                keys.push((k, desc));
            }
            keyed.push((keys, v));
        }
        // A stable sort; nulls first ascending, as the reference engine orders them.
        let cmp = |a: &[(CqlValue, bool)], b: &[(CqlValue, bool)]| -> Ordering {
            for ((x, desc), (y, _)) in a.iter().zip(b) {
                let o = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    // Values whose order is uncertain (date-times of different
                    // precisions) sort by their text, as the reference engine does.
                    _ => value::compare(x, y)
                        .unwrap_or_else(|| x.to_json().to_string().cmp(&y.to_json().to_string())),
                };
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        };
        // A merge sort of our own, as the reference engine's: the comparison above is
        // not a total order for every mix of values, and the standard library's sort
        // may panic on such a comparator; this one only yields some stable order.
        let keyed = merge_sort(keyed, &|a, b| cmp(&a.0, &b.0));
        Ok(keyed.into_iter().map(|(_, v)| v).collect())
    }

    /// A sort expression over a structured value: its identifiers name the value's
    /// properties (`sort by occurrence`).
    fn eval_sort_expr(
        &self,
        lib: &'a ElmLibrary,
        item: &Value,
        v: &CqlValue,
        scope: Option<&Scope<'_>>,
        d: usize,
    ) -> Result<CqlValue, CqlError> {
        let expr = item
            .get("expression")
            .ok_or_else(|| CqlError::Elm("ByExpression without expression".into()))?;
        if node_type(expr) == "IdentifierRef" {
            return property(v, str_field(expr, "name")?);
        }
        self.eval(lib, expr, scope, d)
    }
}

fn merge_sort<T>(mut items: Vec<T>, cmp: &dyn Fn(&T, &T) -> Ordering) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let right = items.split_off(items.len() / 2);
    let left = merge_sort(items, cmp);
    let right = merge_sort(right, cmp);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => cmp(a, b) != Ordering::Greater,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { l.next() } else { r.next() };
        out.extend(next);
    }
    out
}

fn cartesian(lists: &[Vec<CqlValue>]) -> Vec<Vec<CqlValue>> {
    let mut acc: Vec<Vec<CqlValue>> = vec![Vec::new()];
    for list in lists {
        let mut next = Vec::new();
        for prefix in &acc {
            for item in list {
                let mut p = prefix.clone();
                p.push(item.clone());
                next.push(p);
            }
        }
        acc = next;
    }
    acc
}

fn distinct(items: Vec<CqlValue>) -> Vec<CqlValue> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(distinct_key(i)))
        .collect()
}

fn dedup_nulls(items: Vec<CqlValue>) -> Vec<CqlValue> {
    let mut seen_null = false;
    items
        .into_iter()
        .filter(|i| {
            if i.is_null() {
                let keep = !seen_null;
                seen_null = true;
                keep
            } else {
                true
            }
        })
        .collect()
}

fn list_contains(items: &[CqlValue], item: &CqlValue) -> bool {
    items
        .iter()
        .any(|e| value::equal(e, item) == Some(true) || (e.is_null() && item.is_null()))
}

/// Point membership: null when the point or a deciding bound is null.
fn interval_contains(i: &value::Interval, item: &CqlValue) -> Option<bool> {
    if item.is_null() {
        return None;
    }
    let above_low = if i.low.is_null() {
        None
    } else {
        value::compare(item, &i.low)
            .map(|o| o == Ordering::Greater || (i.low_closed && o == Ordering::Equal))
    };
    let below_high = if i.high.is_null() {
        None
    } else {
        value::compare(item, &i.high)
            .map(|o| o == Ordering::Less || (i.high_closed && o == Ordering::Equal))
    };
    match (above_low, below_high) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn truth(v: &CqlValue) -> Result<Option<bool>, CqlError> {
    match v {
        CqlValue::Null => Ok(None),
        CqlValue::Boolean(b) => Ok(Some(*b)),
        _ => Err(CqlError::Type("a logical operator on a non-Boolean".into())),
    }
}

fn number(v: &CqlValue) -> Option<f64> {
    match v {
        CqlValue::Integer(i) => Some(*i as f64),
        CqlValue::Decimal(x) => Some(*x),
        _ => None,
    }
}

fn add(a: &CqlValue, b: &CqlValue) -> Result<CqlValue, CqlError> {
    Ok(match (a, b) {
        (CqlValue::Null, _) | (_, CqlValue::Null) => CqlValue::Null,
        (CqlValue::Integer(x), CqlValue::Integer(y)) => {
            x.checked_add(*y).map_or(CqlValue::Null, CqlValue::Integer)
        }
        (CqlValue::String(x), CqlValue::String(y)) => CqlValue::String(format!("{x}{y}")),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => CqlValue::Decimal(x + y),
            _ => return Err(CqlError::Unsupported("Add of these types".into())),
        },
    })
}

/// CQL `ToInteger` on a string: an optional sign and decimal digits, within 32 bits
/// (CQL's Integer); anything else is null.
fn parse_integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = s.parse().ok()?;
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&v)
        .then_some(v)
}

fn literal(node: &Value) -> Result<CqlValue, CqlError> {
    let vt = str_field(node, "valueType")?;
    let raw = node.get("value").and_then(Value::as_str);
    let Some(raw) = raw else {
        return Ok(CqlValue::Null);
    };
    let bad = || CqlError::Elm(format!("bad {vt} literal {raw:?}"));
    Ok(match vt.strip_prefix(SYSTEM_NS) {
        Some("Boolean") => CqlValue::Boolean(match raw {
            "true" => true,
            "false" => false,
            _ => return Err(bad()),
        }),
        Some("Integer") | Some("Long") => CqlValue::Integer(raw.parse().map_err(|_| bad())?),
        Some("Decimal") => CqlValue::Decimal(raw.parse().map_err(|_| bad())?),
        Some("String") => CqlValue::String(raw.to_string()),
        Some("DateTime") => CqlValue::DateTime(
            CqlDateTime::parse(raw.trim_start_matches('@'), false).ok_or_else(bad)?,
        ),
        Some("Date") => {
            CqlValue::Date(CqlDateTime::parse(raw.trim_start_matches('@'), true).ok_or_else(bad)?)
        }
        _ => return Err(CqlError::Unsupported(format!("literal of {vt}"))),
    })
}

fn code_ref(lib: &ElmLibrary, name: &str) -> Result<Code, CqlError> {
    let def = lib
        .codes
        .get(name)
        .ok_or_else(|| CqlError::Elm(format!("no code {name}")))?;
    let cs = lib
        .code_systems
        .get(&def.code_system)
        .ok_or_else(|| CqlError::Elm(format!("no codesystem {}", def.code_system)))?;
    Ok(Code {
        code: Some(def.code.clone()),
        system: Some(cs.id.clone()),
        version: cs.version.clone(),
        display: def.display.clone(),
    })
}

/// A type specifier as the evaluator checks it.
enum TypeSpec {
    Named(String),
    List(Box<TypeSpec>),
    Choice(Vec<TypeSpec>),
}

fn parse_spec(v: &Value) -> Result<TypeSpec, CqlError> {
    match node_type(v) {
        "NamedTypeSpecifier" => Ok(TypeSpec::Named(str_field(v, "name")?.to_string())),
        "ListTypeSpecifier" => Ok(TypeSpec::List(Box::new(parse_spec(
            v.get("elementType")
                .ok_or_else(|| CqlError::Elm("list type without elementType".into()))?,
        )?))),
        "ChoiceTypeSpecifier" => Ok(TypeSpec::Choice(
            v.get("choice")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(parse_spec)
                .collect::<Result<_, _>>()?,
        )),
        other => Err(CqlError::Unsupported(format!("type specifier {other}"))),
    }
}

fn type_spec(node: &Value, spec_key: &str, name_key: &str) -> Result<TypeSpec, CqlError> {
    match (
        node.get(spec_key),
        node.get(name_key).and_then(Value::as_str),
    ) {
        (Some(s), _) => parse_spec(s),
        (None, Some(n)) => Ok(TypeSpec::Named(n.to_string())),
        _ => Err(CqlError::Elm(format!("{} without a type", node_type(node)))),
    }
}

fn matches_type(v: &CqlValue, spec: &TypeSpec) -> Result<bool, CqlError> {
    Ok(match spec {
        TypeSpec::Choice(cs) => {
            for c in cs {
                if matches_type(v, c)? {
                    return Ok(true);
                }
            }
            false
        }
        TypeSpec::List(el) => match v {
            CqlValue::List(items) => {
                for i in items {
                    if !i.is_null() && !matches_type(i, el)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        },
        TypeSpec::Named(name) => {
            if let Some(sys) = name.strip_prefix(SYSTEM_NS) {
                match (sys, v) {
                    ("Any", _) => true,
                    ("Boolean", CqlValue::Boolean(_)) => true,
                    ("Integer", CqlValue::Integer(_)) => true,
                    ("Integer", CqlValue::Decimal(x)) => x.fract() == 0.0,
                    ("Decimal", CqlValue::Integer(_) | CqlValue::Decimal(_)) => true,
                    ("String", CqlValue::String(_)) => true,
                    ("Code", CqlValue::Code(_)) => true,
                    ("Concept", CqlValue::Concept(_)) => true,
                    ("DateTime", CqlValue::DateTime(_)) => true,
                    ("Date", CqlValue::Date(_)) => true,
                    _ => false,
                }
            } else if let Some(fhir) = name.strip_prefix(FHIR_NS) {
                match v {
                    CqlValue::Fhir(f) => {
                        &*f.type_name == fhir || fml::model::r4().is_subtype(&f.type_name, fhir)
                    }
                    _ => false,
                }
            } else {
                return Err(CqlError::Unsupported(format!("type {name}")));
            }
        }
    })
}

/// The CQL System type of a FHIR primitive's `value`.
fn system_type_of_primitive(fhir_type: &str) -> &'static str {
    match fhir_type {
        "boolean" => "Boolean",
        "integer" | "positiveInt" | "unsignedInt" => "Integer",
        "decimal" => "Decimal",
        "date" => "Date",
        "dateTime" | "instant" => "DateTime",
        "time" => "Time",
        _ => "String",
    }
}

/// A JSON scalar as the data model hands it over: strings, numbers and booleans pass
/// through with their JSON type (as cql-exec-fhir does for Boolean, Integer, String
/// and Decimal elements); dates and date-times are parsed.
fn system_value(json: &Value, system_type: &str) -> CqlValue {
    match (system_type, json) {
        (_, Value::Null) => CqlValue::Null,
        ("DateTime" | "Date", Value::String(s)) => {
            let is_date = system_type == "Date";
            match CqlDateTime::parse(s, is_date) {
                Some(d) if is_date => CqlValue::Date(d),
                Some(d) => CqlValue::DateTime(d),
                None => CqlValue::Null,
            }
        }
        ("Time", _) => CqlValue::Null,
        (_, Value::String(s)) => CqlValue::String(s.clone()),
        (_, Value::Bool(b)) => CqlValue::Boolean(*b),
        (_, Value::Number(n)) => match n.as_i64() {
            Some(i) => CqlValue::Integer(i),
            None => n.as_f64().map_or(CqlValue::Null, CqlValue::Decimal),
        },
        _ => CqlValue::Null,
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Property access on any value: FHIR elements through the R4 model, Codes and
/// Concepts and Tuples by field. A list has no properties (null), as in the reference
/// engine; list traversal is explicit in ELM.
pub(crate) fn property(v: &CqlValue, name: &str) -> Result<CqlValue, CqlError> {
    let s = |o: &Option<String>| o.clone().map_or(CqlValue::Null, CqlValue::String);
    Ok(match v {
        CqlValue::Fhir(f) => fhir_property(f, name),
        CqlValue::Code(c) => match name {
            "code" => s(&c.code),
            "system" => s(&c.system),
            "version" => s(&c.version),
            "display" => s(&c.display),
            _ => CqlValue::Null,
        },
        CqlValue::Concept(c) => match name {
            "codes" => CqlValue::List(c.codes.iter().cloned().map(CqlValue::Code).collect()),
            "display" => s(&c.display),
            _ => CqlValue::Null,
        },
        CqlValue::Tuple(t) => t.get(name).cloned().unwrap_or_default(),
        _ => CqlValue::Null,
    })
}

fn fhir_property(f: &FhirValue, name: &str) -> CqlValue {
    let model = fml::model::r4();
    let Some(obj) = f.json.as_object() else {
        return CqlValue::Null;
    };
    if fml::model::is_primitive_name(&f.type_name) && name == "value" {
        return system_value(
            obj.get("value").unwrap_or(&Value::Null),
            system_type_of_primitive(&f.type_name),
        );
    }
    // The element, by its name or by an explicit choice name (`doseNumberPositiveInt`).
    let (element, explicit) = match model.child(&f.type_name, name) {
        Some(e) => (e, None),
        None => {
            let found = (1..name.len())
                .filter(|i| name.is_char_boundary(*i))
                .find_map(|i| {
                    let (base, suffix) = name.split_at(i);
                    let e = model.child(&f.type_name, base)?;
                    let t = e
                        .types
                        .iter()
                        .find(|t| e.choice && capitalize(t) == suffix)?;
                    Some((e, t.clone()))
                });
            match found {
                Some((e, t)) => (e, Some(t)),
                None => return CqlValue::Null,
            }
        }
    };
    let (key, ty): (String, Arc<str>) = if let Some(t) = explicit {
        (name.to_string(), t)
    } else if element.choice {
        let hit = element.types.iter().find(|t| {
            let k = format!("{}{}", element.name, capitalize(t));
            obj.get(&k).is_some_and(|v| !v.is_null())
                || obj.get(&format!("_{k}")).is_some_and(|v| !v.is_null())
        });
        match hit {
            Some(t) => (format!("{}{}", element.name, capitalize(t)), t.clone()),
            None => return CqlValue::Null,
        }
    } else {
        let t = match element.types.as_slice() {
            [t] if &**t == "BackboneElement" || &**t == "Element" => element.path.clone(),
            [t] => t.clone(),
            _ => return CqlValue::Null,
        };
        (name.to_string(), t)
    };
    // The model gives Element.id and Extension.url System.String, not a FHIR primitive.
    let system_string =
        (name == "id" && &*ty != "id") || (name == "url" && &*f.type_name == "Extension");
    if system_string {
        return system_value(obj.get(&key).unwrap_or(&Value::Null), "String");
    }
    let wrap = |json: Value| -> CqlValue {
        if json.is_null() {
            CqlValue::Null
        } else {
            CqlValue::Fhir(FhirValue {
                type_name: ty.clone(),
                json,
            })
        }
    };
    let value = obj.get(&key).filter(|v| !v.is_null());
    if fml::model::is_primitive_name(&ty) {
        let extra = obj.get(&format!("_{key}")).filter(|v| !v.is_null());
        if value.is_none() && extra.is_none() {
            return CqlValue::Null;
        }
        let merge = |v: Option<&Value>, e: Option<&Value>| -> Value {
            if v.is_none_or(Value::is_null) && e.is_none_or(Value::is_null) {
                return Value::Null;
            }
            let mut m = Map::new();
            if let Some(v) = v {
                m.insert("value".into(), v.clone());
            }
            if let Some(Value::Object(e)) = e {
                for (k, x) in e {
                    m.insert(k.clone(), x.clone());
                }
            }
            Value::Object(m)
        };
        if element.repeats {
            let vs: Vec<Option<&Value>> = match value {
                Some(Value::Array(a)) => a.iter().map(Some).collect(),
                Some(v) => vec![Some(v)],
                None => Vec::new(),
            };
            let es: Vec<Option<&Value>> = match extra {
                Some(Value::Array(a)) => a.iter().map(Some).collect(),
                Some(e) => vec![Some(e)],
                None => Vec::new(),
            };
            let n = vs.len().max(es.len());
            return CqlValue::List(
                (0..n)
                    .map(|i| {
                        wrap(merge(
                            vs.get(i).copied().flatten(),
                            es.get(i).copied().flatten(),
                        ))
                    })
                    .collect(),
            );
        }
        return wrap(merge(value, extra));
    }
    match value {
        None => CqlValue::Null,
        Some(Value::Array(items)) if element.repeats => {
            CqlValue::List(items.iter().cloned().map(wrap).collect())
        }
        Some(v) if element.repeats => CqlValue::List(vec![wrap(v.clone())]),
        Some(v) => wrap(v.clone()),
    }
}

/// A FHIR coded value (CodeableConcept, Coding, code) as System codes, for retrieve
/// filters: a CodeableConcept's codings, a Coding, a code's string.
fn to_code_value(v: &CqlValue) -> CqlValue {
    match v {
        CqlValue::List(items) => CqlValue::List(items.iter().map(to_code_value).collect()),
        CqlValue::Fhir(f) => match &*f.type_name {
            "CodeableConcept" => match fhir_property(f, "coding") {
                CqlValue::List(codings) => {
                    CqlValue::List(codings.iter().map(to_code_value).collect())
                }
                _ => CqlValue::Null,
            },
            "Coding" => CqlValue::Code(coding_to_code(f)),
            t if fml::model::is_primitive_name(t) => fhir_property(f, "value"),
            _ => CqlValue::Null,
        },
        other => other.clone(),
    }
}

fn coding_to_code(f: &FhirValue) -> Code {
    let field = |n: &str| match property(&fhir_property(f, n), "value") {
        Ok(CqlValue::String(s)) => Some(s),
        _ => None,
    };
    Code {
        code: field("code"),
        system: field("system"),
        version: field("version"),
        display: field("display"),
    }
}

/// The FHIRHelpers (4.0.1) conversions, natively: a primitive converts to its value, a
/// Coding to a Code, a CodeableConcept to a Concept of its (distinct) codings.
fn fhir_helpers(name: &str, args: &[CqlValue]) -> Result<CqlValue, CqlError> {
    let [arg] = args else {
        return Err(CqlError::Elm(format!(
            "FHIRHelpers.{name} takes one argument"
        )));
    };
    if arg.is_null() {
        return Ok(CqlValue::Null);
    }
    let CqlValue::Fhir(f) = arg else {
        // Already a System value (the translator converts once; this is defensive).
        return Ok(arg.clone());
    };
    Ok(match name {
        "ToString" | "ToInteger" | "ToDecimal" | "ToBoolean" | "ToDate" | "ToDateTime"
        | "ToTime" => fhir_property(f, "value"),
        "ToCode" => CqlValue::Code(coding_to_code(f)),
        "ToConcept" => {
            let codes = match fhir_property(f, "coding") {
                CqlValue::List(items) => {
                    let codes: Vec<CqlValue> = items
                        .iter()
                        .map(|c| match c {
                            CqlValue::Fhir(cf) => CqlValue::Code(coding_to_code(cf)),
                            _ => CqlValue::Null,
                        })
                        .collect();
                    distinct(codes)
                        .into_iter()
                        .filter_map(|c| match c {
                            CqlValue::Code(c) => Some(c),
                            _ => None,
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            let display = match property(&fhir_property(f, "text"), "value")? {
                CqlValue::String(s) => Some(s),
                _ => None,
            };
            CqlValue::Concept(Concept { codes, display })
        }
        other => return Err(CqlError::Unsupported(format!("FHIRHelpers.{other}"))),
    })
}

fn pick_overload<'f>(
    overloads: &'f [FunctionDef],
    node: &Value,
    args: &[CqlValue],
) -> Option<&'f FunctionDef> {
    let arity: Vec<&FunctionDef> = overloads
        .iter()
        .filter(|f| f.operands.len() == args.len())
        .collect();
    if arity.len() <= 1 {
        return arity.into_iter().next();
    }
    // Several overloads of one arity: the translator records the resolved signature.
    let sig: Vec<&Value> = node
        .get("signature")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        strip_ids(&mut v);
        v
    };
    arity.into_iter().find(|f| {
        sig.len() == f.operands.len()
            && f.operands
                .iter()
                .zip(&sig)
                .all(|((_, t), s)| t.as_ref().map(strip) == Some(strip(s)))
    })
}

fn strip_ids(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in [
                "localId",
                "locator",
                "annotation",
                "resultTypeName",
                "resultTypeSpecifier",
            ] {
                m.remove(k);
            }
            m.values_mut().for_each(strip_ids);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_ids),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lib(expr: Value) -> ElmLibrary {
        ElmLibrary::from_json(
            &json!({"library": {"identifier": {"id": "T", "version": "1"},
            "statements": {"def": [{"name": "X", "expression": expr}]}}}),
        )
        .expect("library")
    }

    fn run_on(expr: Value, resources: Vec<Value>) -> Result<CqlValue, CqlError> {
        let data = PatientData::from_resources(resources).expect("data");
        evaluate_expression(&lib(expr), "X", &data, &EvalParams::default())
    }

    fn run(expr: Value) -> Result<CqlValue, CqlError> {
        run_on(expr, Vec::new())
    }

    fn lit(vt: &str, v: &str) -> Value {
        json!({"type": "Literal", "valueType": format!("{SYSTEM_NS}{vt}"), "value": v})
    }

    fn b(v: Option<bool>) -> Value {
        match v {
            Some(x) => lit("Boolean", &x.to_string()),
            None => json!({"type": "Null"}),
        }
    }

    #[test]
    fn logic_is_three_valued() {
        let vals = [Some(true), Some(false), None];
        for x in vals {
            for y in vals {
                let and = run(json!({"type": "And", "operand": [b(x), b(y)]})).expect("and");
                let want = match (x, y) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                assert_eq!(and, CqlValue::from_bool(want), "{x:?} and {y:?}");
                let or = run(json!({"type": "Or", "operand": [b(x), b(y)]})).expect("or");
                let want = match (x, y) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                };
                assert_eq!(or, CqlValue::from_bool(want), "{x:?} or {y:?}");
            }
        }
    }

    #[test]
    fn sorting_mixed_values_never_panics() {
        let mut items = Vec::new();
        for i in 0..60 {
            items.push(match i % 6 {
                0 => lit("Integer", &(i * 7 % 13).to_string()),
                1 => lit("String", &format!("s{}", i % 5)),
                2 => lit("Decimal", "2.5"),
                3 => json!({"type": "Null"}),
                4 => json!({"type": "ToDateTime", "operand": lit("String", if i % 4 == 0 { "2021" } else { "2021-05-02" })}),
                _ => lit("Boolean", "true"),
            });
        }
        for dir in ["asc", "desc"] {
            let q = json!({"type": "Query", "source": [{"alias": "x", "expression": {"type": "List", "element": items}}],
                "return": {"distinct": false, "expression": {"type": "AliasRef", "name": "x"}},
                "sort": {"by": [{"type": "ByDirection", "direction": dir}]}});
            match run(q).expect("sorted") {
                CqlValue::List(v) => assert_eq!(v.len(), 60),
                other => panic!("{other:?}"),
            }
        }
        let nums = json!({"type": "Query", "source": [{"alias": "x", "expression": {"type": "List", "element": [
            lit("Integer", "3"), lit("Integer", "1"), lit("Integer", "2")]}}],
            "sort": {"by": [{"type": "ByDirection", "direction": "desc"}]}});
        assert_eq!(
            run(nums).expect("sorted"),
            CqlValue::List(vec![
                CqlValue::Integer(3),
                CqlValue::Integer(2),
                CqlValue::Integer(1)
            ])
        );
    }

    #[test]
    fn to_integer_follows_the_specification() {
        // cql-execution uses JavaScript's parseInt here ("2nd" -> 2); the CQL
        // specification makes a malformed string null, and so do we.
        for (s, want) in [
            ("2", Some(2)),
            ("-7", Some(-7)),
            ("+3", Some(3)),
            ("2nd", None),
            (" 2", None),
            ("", None),
            ("99999999999", None),
        ] {
            let v = run(json!({"type": "ToInteger", "operand": lit("String", s)})).expect("eval");
            assert_eq!(v, want.map_or(CqlValue::Null, CqlValue::Integer), "{s:?}");
        }
    }

    #[test]
    fn fhir_choices_primitives_and_code_filters() {
        let imm = json!({"resourceType": "Immunization", "id": "i", "status": "completed",
            "vaccineCode": {"coding": [{"system": "s", "code": "c"}]},
            "protocolApplied": [{"doseNumberString": "2",
                "_seriesDosesPositiveInt": {"extension": [{"url": "u"}]}}]});
        let pa = json!({"type": "SingletonFrom", "operand": {"type": "Property", "path": "protocolApplied",
            "source": {"type": "SingletonFrom", "operand": {"type": "Retrieve", "dataType": "{http://hl7.org/fhir}Immunization"}}}});
        let dose = run_on(
            json!({"type": "Property", "path": "doseNumber", "source": pa.clone()}),
            vec![imm.clone()],
        )
        .expect("dose");
        assert!(
            matches!(&dose, CqlValue::Fhir(f) if &*f.type_name == "string" && f.json == json!({"value": "2"})),
            "{dose:?}"
        );
        let explicit = run_on(
            json!({"type": "Property", "path": "doseNumberString.value", "source": pa.clone()}),
            vec![imm.clone()],
        )
        .expect("explicit");
        assert_eq!(explicit, CqlValue::String("2".into()));
        let series = run_on(
            json!({"type": "Property", "path": "seriesDoses", "source": pa}),
            vec![imm.clone()],
        )
        .expect("series");
        assert!(
            matches!(&series, CqlValue::Fhir(f) if &*f.type_name == "positiveInt" && f.json.get("value").is_none()),
            "{series:?}"
        );
        let code = |c: &str| {
            json!({"type": "Instance", "classType": format!("{SYSTEM_NS}Code"), "element": [
            {"name": "code", "value": lit("String", c)}, {"name": "system", "value": lit("String", "s")}]})
        };
        for (c, n) in [("c", 1), ("d", 0)] {
            let r = run_on(json!({"type": "Count", "source": {"type": "Retrieve", "dataType": "{http://hl7.org/fhir}Immunization",
                "codeProperty": "vaccineCode", "codes": {"type": "ToList", "operand": code(c)}}}), vec![imm.clone()]).expect("retrieve");
            assert_eq!(r, CqlValue::Integer(n), "code {c}");
        }
        let no_vs = run_on(
            json!({"type": "Retrieve", "dataType": "{http://hl7.org/fhir}Immunization",
            "codeProperty": "vaccineCode", "codes": {"type": "ValueSetRef", "name": "V"}}),
            vec![imm],
        );
        assert!(no_vs.is_err(), "an undeclared value set is an error");
    }
}
