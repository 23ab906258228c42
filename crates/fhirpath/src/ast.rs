//! Syntax tree of a FHIRPath expression.

/// The deepest tree the parser builds. Evaluation recurses once per level, so this
/// bound is what keeps a 2 MiB thread stack safe in debug builds.
pub(crate) const MAX_DEPTH: u32 = 200;

/// The deepest nesting of parentheses, function arguments and unary signs. Each
/// level costs several parser and evaluator frames, hence the lower bound.
pub(crate) const MAX_NESTING: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Empty,
    Boolean(bool),
    String(String),
    Integer(i64),
    Decimal(String),
    Date(String),
    DateTime(String),
    Time(String),
    Quantity(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Equiv,
    Ne,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypeSpec {
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Literal(Literal),
    /// An identifier at the start of a path (type name, FML variable or member).
    Ident(String),
    External(String),
    This,
    Index,
    Total,
    Member(Box<Expr>, String),
    /// `receiver.name(args)`; no receiver = invoked on the current focus.
    Function(Option<Box<Expr>>, String, Vec<Expr>),
    Indexer(Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Is(Box<Expr>, TypeSpec),
    As(Box<Expr>, TypeSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: Kind,
    pub depth: u32,
}

impl Expr {
    pub fn new(kind: Kind) -> Expr {
        let child = |e: &Expr| e.depth;
        let depth = 1 + match &kind {
            Kind::Member(e, _) | Kind::Negate(e) | Kind::Is(e, _) | Kind::As(e, _) => child(e),
            Kind::Function(r, _, args) => r
                .iter()
                .map(|e| child(e))
                .chain(args.iter().map(child))
                .max()
                .unwrap_or(0),
            Kind::Indexer(a, b) | Kind::Binary(_, a, b) => child(a).max(child(b)),
            _ => 0,
        };
        Expr { kind, depth }
    }
}
