//! End-to-end tests of the durable workspace live in `tests/`.
