//! The store conformance kit run on [`MemoryStore`]: one test per check, so a failure names it.

use durable_runtime::store::{conformance, MemoryStore};

durable_runtime::store_conformance_tests!(MemoryStore::new());

/// The runner an implementer uses in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_kit_through_run_all() {
    conformance::run_all(|| async { MemoryStore::new() }).await;
}

/// A skip list naming no check is a mistake, reported as such.
#[tokio::test]
#[should_panic(expected = "`no_such_check` in the skip list is not a check of the kit")]
async fn run_all_except_refuses_unknown_names() {
    conformance::run_all_except(|| async { MemoryStore::new() }, &["no_such_check"]).await;
}
