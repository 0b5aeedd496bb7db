//! The macros' UI tests under edition 2024, the default of a new crate: every passing case of
//! `../pass`, and in `fail/` the edition 2024 twins of the cases whose messages depend on the
//! edition or that a new crate meets first (a macro error without `unused` warnings beside it,
//! for an activity and an orchestrator; a future that is not `Send`).
//!
//! Re-record with `TRYBUILD=overwrite cargo test -p durable-ui-edition2024` and read the diff.

#![forbid(unsafe_code)]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("../pass/*.rs");
    t.compile_fail("fail/*.rs");
}
