//! OpenHIM core test double.
