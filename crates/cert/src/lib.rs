//! DDCC certificate encodings.
