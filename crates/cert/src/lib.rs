//! DDCC certificate encodings.
pub mod signer;
pub use signer::{Algorithm, SignError, Signer};
