//! adiff-tests: the parity harness over the reference fixtures (`../shared/fixtures`), and helpers
//! for the cross-crate tests in `tests/tests/`.

pub mod fixtures;
pub mod runners;
pub mod tiny;
