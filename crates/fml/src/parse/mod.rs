//! FHIR Mapping Language parser: FML text → `StructureMap` resource (R4 JSON).
//!
//! The output has the shape the HL7 IG Publisher and Matchbox store for the same
//! text: `structure`, `import`, `group[].input`, `group[].rule[]` with `source`,
//! `target`, nested `rule` and `dependent`, plus contained `ConceptMap`s for
//! `conceptmap` blocks. FHIRPath expressions are kept as strings, in the canonical
//! form the compiler prints (`ExpressionNode.toString()`: single quotes, one space
//! around operators, parentheses made explicit where precedences mix); they are
//! not evaluated here.
//!
//! [`to_fml`] renders a StructureMap back to FML text that re-parses to the same
//! resource.
//!
//! The parser accepts what the IG Publisher accepts, including its quirks:
//! optional and trailing commas between group parameters, quoted element names
//! (`src."-260"`), single-quoted `uses` URLs, unnamed rules, `};`, comments beside
//! URLs, a trailing empty `translate(…, )` argument, `/* */` comments,
//! `map "url" = name`, headerless maps with `/// url = …` metadata, `imports` and
//! `uses … as produced`.

mod fhirpath;
mod lexer;
mod parser;
mod render;

use serde_json::Value;

pub use parser::MAX_RULE_DEPTH;
pub use render::to_fml;

/// Which compiler's output to reproduce where the two reference compilers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The current HL7 compiler (IG Publisher 2025, Matchbox 3.x): a comment on
    /// the same line after a rule's `;` becomes its documentation, and a bare
    /// target variable (`-> bundle`) is recorded as the target's context.
    #[default]
    IgPublisher,
    /// The compiler in Matchbox as of 2022 (`maps-2022-06/matchbox-compiled`):
    /// comments before a rule become its documentation, and a bare target
    /// variable is recorded as `copy(variable)`.
    Matchbox2022,
}

/// Options for [`parse_map_with_options`].
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    pub dialect: Dialect,
}

/// A syntax error, positioned at the offending token (1-based line and column,
/// columns counted in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Parses FML text into a `StructureMap` resource, as the IG Publisher compiles it.
pub fn parse_map(src: &str) -> Result<Value, ParseError> {
    parse_map_with_options(src, &ParseOptions::default())
}

/// Parses FML text into a `StructureMap` resource in the chosen [`Dialect`].
pub fn parse_map_with_options(src: &str, options: &ParseOptions) -> Result<Value, ParseError> {
    let tokens = lexer::tokenize(src)?;
    parser::Parser::new(&tokens, options).parse_map()
}

/// Parses FML text and sets the resource `id` (as a server does when it stores
/// the compiled map). The caller supplies a valid FHIR id.
pub fn parse_map_with_id(src: &str, id: &str) -> Result<Value, ParseError> {
    let mut map = parse_map(src)?;
    if let Value::Object(obj) = &mut map {
        let mut out = serde_json::Map::new();
        for (k, v) in std::mem::take(obj) {
            out.insert(k.clone(), v);
            if k == "resourceType" {
                out.insert("id".to_string(), Value::String(id.to_string()));
            }
        }
        *obj = out;
    }
    Ok(map)
}
