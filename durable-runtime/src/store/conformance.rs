//! The store conformance suite: every [`Store`](super::Store) implementation runs it.
