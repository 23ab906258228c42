//! The issuing core: a QuestionnaireResponse in, a signed DDCC document out.
//!
//! Architecture invariant: this crate knows nothing of HTTP, storage, or where keys
//! live. It receives parsed JSON and a `Signer`, and returns resources; the mediator
//! decides what to store and how to answer.

pub mod input;
pub mod pipeline;
pub mod questionnaire;
