//! Tokeniser modelled on the HL7 `FHIRLexer` (the lexer shared by the FHIRPath and
//! FHIR Mapping Language parsers of the Java reference implementation), so that token
//! boundaries, and therefore the accepted quirks, match what the IG Publisher accepts.

use std::borrow::Cow;

use super::ParseError;

/// A comment skipped before a token. The compiler keeps some comments as
/// documentation depending on where they sit, so their line matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comment {
    pub text: String,
    pub line: usize,
    /// `///` comments carry `key = value` metadata in headerless maps.
    pub metadata: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// The raw token text (strings keep their quotes), borrowed from the source.
    pub text: Cow<'a, str>,
    pub line: usize,
    pub column: usize,
    /// Comments between the previous token and this one.
    pub comments: Vec<Comment>,
}

impl Token<'_> {
    pub fn str(&self) -> &str {
        &self.text
    }

    pub fn is_string(&self) -> bool {
        matches!(self.text.as_bytes().first(), Some(b'\'' | b'"' | b'`'))
    }

    /// HAPI `isConstant`: strings (not back-ticked names), numbers, dates,
    /// `%` constants, signs, booleans and `{}`.
    pub fn is_constant(&self) -> bool {
        match self.text.as_bytes().first() {
            Some(b'\'' | b'"' | b'@' | b'%' | b'0'..=b'9') => true,
            // A sign, not `->` or `--`.
            Some(b'-' | b'+') => self.text.len() == 1,
            Some(_) => matches!(self.str(), "true" | "false" | "{}"),
            None => false,
        }
    }

    /// A name token: starts with an ASCII letter or `_` (HAPI `isToken`), or a
    /// back-ticked name, `$this`-style or `%`-constant.
    pub fn is_name(&self) -> bool {
        matches!(
            self.text.as_bytes().first(),
            Some(b'a'..=b'z' | b'A'..=b'Z' | b'_')
        )
    }
}

struct Cursor<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    column: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        // ASCII fast path: all of the grammar's own characters are ASCII.
        let b = *self.src.as_bytes().get(self.pos)?;
        if b.is_ascii() {
            Some(char::from(b))
        } else {
            self.src.get(self.pos..)?.chars().next()
        }
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.pos..)?.chars().nth(n)
    }

    fn starts_with(&self, s: &str) -> bool {
        self.src
            .as_bytes()
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(s.as_bytes()))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else if c == '\r' {
            // A lone CR is a line end too; CRLF counts once (at the LF).
            if self.peek() != Some('\n') {
                self.line += 1;
                self.column = 1;
            }
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, self.column, message)
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_date_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '-' | ':' | 'T' | '+' | '.' | 'Z')
}

/// Splits `src` into tokens, attaching skipped comments to the following token. A
/// final pseudo-token with empty text marks the end of input (and carries trailing
/// comments).
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut cur = Cursor {
        src,
        pos: 0,
        line: 1,
        column: 1,
    };
    // Maps average a little over four bytes per token; the cap keeps a huge input
    // from reserving memory up front.
    let mut tokens = Vec::with_capacity((src.len() / 4).min(1 << 16));
    loop {
        let comments = skip_whitespace_and_comments(&mut cur)?;
        let (line, column, start) = (cur.line, cur.column, cur.pos);
        let Some(ch) = cur.peek() else {
            tokens.push(Token {
                text: Cow::Borrowed(""),
                line,
                column,
                comments,
            });
            return Ok(tokens);
        };
        cur.bump();
        match ch {
            '!' | '>' | '<' | ':' | '-' | '=' => {
                if let Some(n) = cur.peek() {
                    if matches!(n, '=' | '~' | '-') || (ch == '-' && n == '>') {
                        cur.bump();
                    }
                }
            }
            '.' if cur.peek() == Some('.') => {
                cur.bump();
            }
            '0'..='9' => {
                let mut dotted = false;
                while let Some(c) = cur.peek() {
                    if c.is_ascii_digit() {
                        cur.bump();
                    } else if c == '.'
                        && !dotted
                        && cur.peek_at(1).is_some_and(|d| d.is_ascii_digit())
                    {
                        // A dot belongs to the number only when a digit follows, so
                        // `0..*` lexes as `0`, `..`, `*`.
                        dotted = true;
                        cur.bump();
                    } else {
                        break;
                    }
                }
            }
            'a'..='z' | 'A'..='Z' | '_' => {
                while cur.peek().is_some_and(is_ident_char) {
                    cur.bump();
                }
            }
            '%' => {
                if cur.peek() == Some('`') {
                    cur.bump();
                    read_quoted(&mut cur, '`', line, column)?;
                } else if matches!(cur.peek(), Some('\'' | '"')) {
                    let q = cur.bump().unwrap_or('\'');
                    read_quoted(&mut cur, q, line, column)?;
                } else {
                    while cur
                        .peek()
                        .is_some_and(|c| is_ident_char(c) || c == ':' || c == '-')
                    {
                        cur.bump();
                    }
                }
            }
            '$' => {
                while cur.peek().is_some_and(|c| c.is_ascii_lowercase()) {
                    cur.bump();
                }
            }
            '{' if cur.peek() == Some('}') => {
                cur.bump();
            }
            '"' | '\'' | '`' => read_quoted(&mut cur, ch, line, column)?,
            '@' => {
                while cur.peek().is_some_and(is_date_char) {
                    cur.bump();
                }
            }
            _ => {}
        }
        tokens.push(Token {
            text: Cow::Borrowed(&src[start..cur.pos]),
            line,
            column,
            comments,
        });
    }
}

fn read_quoted(
    cur: &mut Cursor<'_>,
    quote: char,
    line: usize,
    column: usize,
) -> Result<(), ParseError> {
    let mut escape = false;
    loop {
        match cur.bump() {
            None => {
                return Err(ParseError::new(
                    line,
                    column,
                    "unterminated string or quoted name",
                ));
            }
            Some(c) if escape => {
                let _ = c;
                escape = false;
            }
            Some('\\') => escape = true,
            Some(c) if c == quote => return Ok(()),
            Some(_) => {}
        }
    }
}

fn skip_whitespace_and_comments(cur: &mut Cursor<'_>) -> Result<Vec<Comment>, ParseError> {
    let mut comments = Vec::new();
    loop {
        if cur.starts_with("//") {
            let line = cur.line;
            let metadata = cur.starts_with("///");
            let skip = if metadata { 3 } else { 2 };
            for _ in 0..skip {
                cur.bump();
            }
            let start = cur.pos;
            while cur.peek().is_some_and(|c| c != '\n' && c != '\r') {
                cur.bump();
            }
            comments.push(Comment {
                text: cur.src[start..cur.pos].trim().to_string(),
                line,
                metadata,
            });
        } else if cur.starts_with("/*") {
            let line = cur.line;
            cur.bump();
            cur.bump();
            let start = cur.pos;
            loop {
                if cur.starts_with("*/") {
                    break;
                }
                if cur.bump().is_none() {
                    return Err(cur.error("unterminated /* comment"));
                }
            }
            comments.push(Comment {
                text: cur.src[start..cur.pos].trim().to_string(),
                line,
                metadata: false,
            });
            cur.bump();
            cur.bump();
        } else if cur.peek().is_some_and(char::is_whitespace) {
            cur.bump();
        } else {
            return Ok(comments);
        }
    }
}

/// Unescapes a quoted token (`'…'`, `"…"` or `` `…` ``) the way HAPI's
/// `processConstant` does.
pub(crate) fn unquote(token: &Token<'_>) -> Result<String, ParseError> {
    let s: &str = &token.text;
    let inner = s
        .get(1..s.len().saturating_sub(1))
        .ok_or_else(|| ParseError::new(token.line, token.column, "malformed quoted text"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let bad = |e: &str| {
            ParseError::new(
                token.line,
                token.column,
                format!("unknown character escape \\{e}"),
            )
        };
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('f') => out.push('\u{c}'),
            Some(c @ ('\'' | '"' | '`' | '\\' | '/')) => out.push(c),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| bad(&format!("u{hex}")))?;
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            Some(other) => return Err(bad(&other.to_string())),
            None => return Err(bad("")),
        }
    }
    Ok(out)
}
