//! The issuing core.
