//! Nothing but a home for `tests/ui.rs`: trybuild compiles each case in a crate of the edition
//! of the package that runs it, and this package is edition 2024.

#![forbid(unsafe_code)]
