//! Compile-time behaviour of `#[activity]` and `#[orchestrator]`: the shapes they accept, and
//! the message a user gets for each misuse.
//!
//! Each file under `ui/fail` breaks one rule; its `.stderr` is the reviewed message. After
//! changing a message, re-record with
//! `TRYBUILD=overwrite cargo test -p durable-runtime --test ui` and read the diff.
//! The `.stderr` files depend on the compiler version pinned in `rust-toolchain.toml`.
//!
//! These cases compile as edition 2021, this package's edition. `ui/edition2024/` is a package
//! of edition 2024 (the default of a new crate) that compiles every `ui/pass` case again, and
//! its own twins of the cases whose messages depend on the edition:
//! `TRYBUILD=overwrite cargo test -p durable-ui-edition2024` re-records those.

#![forbid(unsafe_code)]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
