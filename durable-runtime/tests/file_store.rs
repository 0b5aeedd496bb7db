//! The file store: the conformance kit, recovery, torn tails, damage, locking, hostile ids,
//! injected disk faults and simulated power loss.

use std::sync::Arc;

use durable_runtime::store::{conformance, Durability, FileStore, FileStoreOptions};
use futures::FutureExt;

/// Every check of the store conformance kit, each on a new directory, with fsync on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_kit() {
    let mut failures = Vec::new();
    for check in conformance::checks::<FileStore>() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).await.unwrap();
        let outcome = std::panic::AssertUnwindSafe(check.run(Arc::new(store)))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", check.name));
        }
    }
    assert!(
        failures.is_empty(),
        "failed checks:\n{}",
        failures.join("\n")
    );
}

/// The kit again without fsync: the knob changes durability, not behaviour.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_kit_without_fsync() {
    let mut failures = Vec::new();
    for check in conformance::checks::<FileStore>() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileStoreOptions::default().durability(Durability::None);
        let store = FileStore::open_with(dir.path(), options).await.unwrap();
        let outcome = std::panic::AssertUnwindSafe(check.run(Arc::new(store)))
            .catch_unwind()
            .await;
        if outcome.is_err() {
            failures.push(check.name);
        }
    }
    assert!(failures.is_empty(), "failed checks: {failures:?}");
}
