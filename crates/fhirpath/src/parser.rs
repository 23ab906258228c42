//! Lexer and recursive-descent parser for the FHIRPath N1 grammar.

use crate::ast::{BinOp, Expr, Kind, Literal, TypeSpec, MAX_DEPTH, MAX_NESTING};
use crate::{Error, Position};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// Backtick-delimited identifier: never a keyword.
    Delimited(String),
    Str(String),
    Number(String),
    Long(String),
    Date(String),
    DateTime(String),
    Time(String),
    External(String),
    Special(&'static str),
    Op(&'static str),
    Eof,
}

struct Lexer<'s> {
    src: &'s str,
    bytes: &'s [u8],
    pos: usize,
}

fn position(src: &str, offset: usize) -> Position {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Position { line, column }
}

fn syntax(src: &str, offset: usize, message: impl Into<String>) -> Error {
    Error::Syntax {
        message: message.into(),
        at: position(src, offset),
    }
}

impl<'s> Lexer<'s> {
    fn err(&self, at: usize, msg: impl Into<String>) -> Error {
        syntax(self.src, at, msg)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_whitespace() => self.pos += 1,
                Some(b'/') if self.bytes.get(self.pos + 1) == Some(&b'/') => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                Some(b'/') if self.bytes.get(self.pos + 1) == Some(&b'*') => {
                    let start = self.pos;
                    match self.src[self.pos + 2..].find("*/") {
                        Some(end) => self.pos += end + 4,
                        None => return Err(self.err(start, "unterminated comment")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `hh(:mm(:ss(.fff)?)?)?` after a date or `@T`.
    fn time_part(&mut self) {
        if self.digits() != 2 {
            return;
        }
        if self.peek() == Some(b':') && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            self.digits();
            if self.peek() == Some(b':')
                && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
            {
                self.pos += 1;
                self.digits();
                if self.peek() == Some(b'.')
                    && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
                {
                    self.pos += 1;
                    self.digits();
                }
            }
        }
    }

    fn timezone(&mut self) {
        match self.peek() {
            Some(b'Z') => self.pos += 1,
            Some(b'+') | Some(b'-') => {
                let b = self.bytes;
                let p = self.pos;
                let ok = b.len() >= p + 6
                    && b[p + 1].is_ascii_digit()
                    && b[p + 2].is_ascii_digit()
                    && b[p + 3] == b':'
                    && b[p + 4].is_ascii_digit()
                    && b[p + 5].is_ascii_digit();
                if ok {
                    self.pos += 6;
                }
            }
            _ => {}
        }
    }

    fn date_time(&mut self, start: usize) -> Result<Tok, Error> {
        // after '@'
        if self.peek() == Some(b'T') {
            self.pos += 1;
            let s = self.pos;
            self.time_part();
            if self.pos == s {
                return Err(self.err(start, "invalid time literal"));
            }
            return Ok(Tok::Time(self.src[s..self.pos].to_string()));
        }
        let s = self.pos;
        if self.digits() != 4 {
            return Err(self.err(start, "invalid date literal"));
        }
        for _ in 0..2 {
            if self.peek() == Some(b'-')
                && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
            {
                self.pos += 1;
                if self.digits() != 2 {
                    return Err(self.err(start, "invalid date literal"));
                }
            } else {
                break;
            }
        }
        if self.peek() == Some(b'T') {
            let date = self.src[s..self.pos].to_string();
            self.pos += 1;
            let ts = self.pos;
            self.time_part();
            if self.pos == ts {
                // `@2020-01-01T` is a dateTime with date precision
                self.timezone();
                return Ok(Tok::DateTime(date));
            }
            self.timezone();
            return Ok(Tok::DateTime(self.src[s..self.pos].to_string()));
        }
        Ok(Tok::Date(self.src[s..self.pos].to_string()))
    }

    fn quoted(&mut self, quote: u8, start: usize) -> Result<String, Error> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.src[self.pos..];
            let mut chars = rest.chars();
            let Some(c) = chars.next() else {
                return Err(self.err(start, "unterminated string"));
            };
            self.pos += c.len_utf8();
            if c as u32 == quote as u32 {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.src[self.pos..].chars().next() else {
                return Err(self.err(start, "unterminated string"));
            };
            self.pos += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex = self.src.get(self.pos..self.pos + 4).unwrap_or("");
                    let code = u32::from_str_radix(hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 4)
                        .ok_or_else(|| self.err(self.pos, "invalid \\u escape"))?;
                    self.pos += 4;
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), Error> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok((Tok::Eof, start));
        };
        let tok = match c {
            b'\'' => Tok::Str(self.quoted(b'\'', start)?),
            b'`' => Tok::Delimited(self.quoted(b'`', start)?),
            b'0'..=b'9' => {
                self.digits();
                if self.peek() == Some(b'.')
                    && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
                {
                    self.pos += 1;
                    self.digits();
                    Tok::Number(self.src[start..self.pos].to_string())
                } else if self.peek() == Some(b'L') {
                    self.pos += 1;
                    Tok::Long(self.src[start..self.pos - 1].to_string())
                } else {
                    Tok::Number(self.src[start..self.pos].to_string())
                }
            }
            b'@' => {
                self.pos += 1;
                self.date_time(start)?
            }
            b'%' => {
                self.pos += 1;
                match self.peek() {
                    Some(b'`') => Tok::External(self.quoted(b'`', start)?),
                    Some(b'\'') => Tok::External(self.quoted(b'\'', start)?),
                    _ => {
                        let s = self.pos;
                        self.ident_chars();
                        if s == self.pos {
                            return Err(self.err(start, "expected a name after '%'"));
                        }
                        Tok::External(self.src[s..self.pos].to_string())
                    }
                }
            }
            b'$' => {
                self.pos += 1;
                let s = self.pos;
                self.ident_chars();
                match &self.src[s..self.pos] {
                    "this" => Tok::Special("this"),
                    "index" => Tok::Special("index"),
                    "total" => Tok::Special("total"),
                    other => {
                        return Err(self.err(start, format!("unknown special variable ${other}")))
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                self.ident_chars();
                Tok::Ident(self.src[start..self.pos].to_string())
            }
            _ => {
                let two = self.src.get(self.pos..self.pos + 2).unwrap_or("");
                let op: &'static str = match two {
                    "<=" => "<=",
                    ">=" => ">=",
                    "!=" => "!=",
                    "!~" => "!~",
                    _ => match c {
                        b'.' => ".",
                        b'(' => "(",
                        b')' => ")",
                        b'[' => "[",
                        b']' => "]",
                        b'{' => "{",
                        b'}' => "}",
                        b',' => ",",
                        b'=' => "=",
                        b'~' => "~",
                        b'<' => "<",
                        b'>' => ">",
                        b'|' => "|",
                        b'+' => "+",
                        b'-' => "-",
                        b'*' => "*",
                        b'/' => "/",
                        b'&' => "&",
                        _ => {
                            let ch = self.src[self.pos..].chars().next().unwrap_or('?');
                            return Err(self.err(start, format!("unexpected character '{ch}'")));
                        }
                    },
                };
                self.pos += op.len();
                Tok::Op(op)
            }
        };
        Ok((tok, start))
    }

    fn ident_chars(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, usize)>,
    i: usize,
    nesting: u32,
}

pub(crate) fn parse(src: &str) -> Result<Expr, Error> {
    let mut lexer = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
    };
    let mut toks = Vec::new();
    loop {
        let (t, at) = lexer.next()?;
        let end = t == Tok::Eof;
        toks.push((t, at));
        if end {
            break;
        }
    }
    let mut p = Parser {
        src,
        toks,
        i: 0,
        nesting: 0,
    };
    let e = p.expression()?;
    if p.peek() != &Tok::Eof {
        return Err(p.err("unexpected input after expression"));
    }
    Ok(e)
}

fn op_of(t: &Tok, level: u8) -> Option<BinOp> {
    let word = match t {
        Tok::Ident(w) => w.as_str(),
        Tok::Op(o) => o,
        _ => return None,
    };
    let op = match (level, word) {
        (0, "implies") => BinOp::Implies,
        (1, "or") => BinOp::Or,
        (1, "xor") => BinOp::Xor,
        (2, "and") => BinOp::And,
        (3, "in") => BinOp::In,
        (3, "contains") => BinOp::Contains,
        (4, "=") => BinOp::Eq,
        (4, "~") => BinOp::Equiv,
        (4, "!=") => BinOp::Ne,
        (4, "!~") => BinOp::NotEquiv,
        (5, "<") => BinOp::Lt,
        (5, "<=") => BinOp::Le,
        (5, ">") => BinOp::Gt,
        (5, ">=") => BinOp::Ge,
        (6, "|") => BinOp::Union,
        (8, "+") => BinOp::Add,
        (8, "-") => BinOp::Sub,
        (8, "&") => BinOp::Concat,
        (9, "*") => BinOp::Mul,
        (9, "/") => BinOp::Div,
        (9, "div") => BinOp::IntDiv,
        (9, "mod") => BinOp::Mod,
        _ => return None,
    };
    Some(op)
}

impl<'s> Parser<'s> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }
    fn offset(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn err(&self, msg: &str) -> Error {
        syntax(self.src, self.offset(), msg)
    }
    fn expect(&mut self, op: &str) -> Result<(), Error> {
        if self.peek() == &Tok::Op(leak(op)) {
            self.bump();
            Ok(())
        } else {
            Err(self.err(&format!("expected '{op}'")))
        }
    }

    fn node(&self, kind: Kind) -> Result<Expr, Error> {
        let e = Expr::new(kind);
        if e.depth > MAX_DEPTH {
            Err(Error::TooDeep)
        } else {
            Ok(e)
        }
    }

    fn expression(&mut self) -> Result<Expr, Error> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Error::TooDeep);
        }
        let r = self.binary(0);
        self.nesting -= 1;
        r
    }

    /// Precedence climbing: levels 0 (implies) … 9 (multiplicative), 7 being the
    /// `is`/`as` type operators. One loop per operand keeps the recursion per
    /// nesting level small (the parser's stack use bounds what fits in 2 MiB).
    fn binary(&mut self, min_level: u8) -> Result<Expr, Error> {
        let mut left = self.unary()?;
        loop {
            let t = self.peek();
            if let Tok::Ident(w) = t {
                if (w == "is" || w == "as") && min_level <= 7 {
                    let is = w == "is";
                    self.bump();
                    let ty = self.type_spec()?;
                    left = if is {
                        self.node(Kind::Is(Box::new(left), ty))?
                    } else {
                        self.node(Kind::As(Box::new(left), ty))?
                    };
                    continue;
                }
            }
            let Some((op, level)) = (min_level..10)
                .rev()
                .find_map(|l| op_of(t, l).map(|o| (o, l)))
            else {
                return Ok(left);
            };
            self.bump();
            let right = self.binary(level + 1)?;
            left = self.node(Kind::Binary(op, Box::new(left), Box::new(right)))?;
        }
    }

    fn type_spec(&mut self) -> Result<TypeSpec, Error> {
        let first = match self.bump() {
            Tok::Ident(s) | Tok::Delimited(s) => s,
            _ => return Err(self.err("expected a type name")),
        };
        if self.peek() == &Tok::Op(".") {
            if let Some((Tok::Ident(n) | Tok::Delimited(n), _)) = self.toks.get(self.i + 1) {
                let n = n.clone();
                self.bump();
                self.bump();
                return Ok(TypeSpec {
                    namespace: Some(first),
                    name: n,
                });
            }
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        match self.peek() {
            Tok::Op("-") => {
                self.bump();
                self.nesting += 1;
                if self.nesting > MAX_NESTING {
                    return Err(Error::TooDeep);
                }
                let inner = self.unary();
                self.nesting -= 1;
                let inner = inner?;
                // fold negative literals so `-1` stays an Integer literal
                match inner.kind {
                    Kind::Literal(Literal::Integer(i)) => {
                        Ok(Expr::new(Kind::Literal(Literal::Integer(i.wrapping_neg()))))
                    }
                    Kind::Literal(Literal::Decimal(d)) => Ok(Expr::new(Kind::Literal(
                        Literal::Decimal(crate::decimal::negate_text(&d)),
                    ))),
                    Kind::Literal(Literal::Quantity(v, u)) => Ok(Expr::new(Kind::Literal(
                        Literal::Quantity(crate::decimal::negate_text(&v), u),
                    ))),
                    _ => self.node(Kind::Negate(Box::new(inner))),
                }
            }
            Tok::Op("+") => {
                self.bump();
                self.nesting += 1;
                if self.nesting > MAX_NESTING {
                    return Err(Error::TooDeep);
                }
                let r = self.unary();
                self.nesting -= 1;
                r
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, Error> {
        let mut e = self.term()?;
        loop {
            match self.peek() {
                Tok::Op(".") => {
                    self.bump();
                    let name = match self.bump() {
                        Tok::Ident(s) | Tok::Delimited(s) => s,
                        _ => return Err(self.err("expected a name after '.'")),
                    };
                    if self.peek() == &Tok::Op("(") {
                        let args = self.args()?;
                        e = self.node(Kind::Function(Some(Box::new(e)), name, args))?;
                    } else {
                        e = self.node(Kind::Member(Box::new(e), name))?;
                    }
                }
                Tok::Op("[") => {
                    self.bump();
                    let idx = self.expression()?;
                    self.expect("]")?;
                    e = self.node(Kind::Indexer(Box::new(e), Box::new(idx)))?;
                }
                _ => return Ok(e),
            }
        }
    }

    fn args(&mut self) -> Result<Vec<Expr>, Error> {
        self.expect("(")?;
        let mut args = Vec::new();
        if self.peek() == &Tok::Op(")") {
            self.bump();
            return Ok(args);
        }
        loop {
            args.push(self.expression()?);
            match self.bump() {
                Tok::Op(",") => {}
                Tok::Op(")") => return Ok(args),
                _ => {
                    self.i = self.i.saturating_sub(1);
                    return Err(self.err("expected ',' or ')'"));
                }
            }
        }
    }

    /// The recursive terms (parentheses, function calls) live here; everything
    /// else is in [`Parser::simple_term`], off the recursion path.
    fn term(&mut self) -> Result<Expr, Error> {
        match self.peek() {
            Tok::Op("(") => {
                self.bump();
                let e = self.expression()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident(w) | Tok::Delimited(w)
                if w != "true"
                    && w != "false"
                    && self.toks.get(self.i + 1).map(|t| &t.0) == Some(&Tok::Op("(")) =>
            {
                let w = w.clone();
                self.bump();
                let args = self.args()?;
                self.node(Kind::Function(None, w, args))
            }
            _ => self.simple_term(),
        }
    }

    #[inline(never)]
    fn simple_term(&mut self) -> Result<Expr, Error> {
        let t = self.bump();
        let t_copy = std::mem::discriminant(&t);
        let kind = match t {
            Tok::Op("{") => {
                self.expect("}")?;
                Kind::Literal(Literal::Empty)
            }
            Tok::Str(s) => Kind::Literal(Literal::String(s)),
            Tok::Number(n) => {
                let unit = match self.peek() {
                    Tok::Str(u) => Some(u.clone()),
                    Tok::Ident(w) if crate::units::CALENDAR_UNITS.contains(&w.as_str()) => {
                        Some(w.clone())
                    }
                    _ => None,
                };
                if let Some(u) = unit {
                    self.bump();
                    Kind::Literal(Literal::Quantity(n, u))
                } else if n.contains('.') {
                    Kind::Literal(Literal::Decimal(n))
                } else {
                    match n.parse::<i64>() {
                        Ok(i) => Kind::Literal(Literal::Integer(i)),
                        Err(_) => Kind::Literal(Literal::Decimal(n)),
                    }
                }
            }
            Tok::Long(n) => match n.parse::<i64>() {
                Ok(i) => Kind::Literal(Literal::Integer(i)),
                Err(_) => {
                    self.i = self.i.saturating_sub(1);
                    return Err(self.err("long literal out of range"));
                }
            },
            Tok::Date(d) | Tok::DateTime(d) | Tok::Time(d) if !valid_temporal(&t_copy, &d) => {
                self.i = self.i.saturating_sub(1);
                return Err(self.err(&format!("invalid date/time literal @{d}")));
            }
            Tok::Date(d) => Kind::Literal(Literal::Date(d)),
            Tok::DateTime(d) => Kind::Literal(Literal::DateTime(d)),
            Tok::Time(d) => Kind::Literal(Literal::Time(d)),
            Tok::External(n) => Kind::External(n),
            Tok::Special("this") => Kind::This,
            Tok::Special("index") => Kind::Index,
            Tok::Special("total") => Kind::Total,
            Tok::Ident(w) if w == "true" => Kind::Literal(Literal::Boolean(true)),
            Tok::Ident(w) if w == "false" => Kind::Literal(Literal::Boolean(false)),
            Tok::Ident(w) | Tok::Delimited(w) => Kind::Ident(w),
            _ => {
                self.i = self.i.saturating_sub(1);
                return Err(self.err("expected an expression"));
            }
        };
        self.node(kind)
    }
}

/// Operator tokens are `&'static str`; comparing needs the same type.
fn leak(op: &str) -> &'static str {
    match op {
        ")" => ")",
        "]" => "]",
        "}" => "}",
        "(" => "(",
        _ => ",",
    }
}

/// Month 13 or 25 o'clock lex like dates; they are rejected here, at parse time.
fn valid_temporal(kind: &std::mem::Discriminant<Tok>, text: &str) -> bool {
    use crate::temporal::Temporal;
    if *kind == std::mem::discriminant(&Tok::Time(String::new())) {
        Temporal::parse_time(text).is_some()
    } else {
        Temporal::parse_date_time(text).is_some()
    }
}
