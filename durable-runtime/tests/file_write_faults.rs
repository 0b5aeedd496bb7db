//! The file store's writer when the disk fails: a full disk and a checkpoint that keeps
//! failing cost a bounded amount of work and files, and nothing acknowledged is lost.

mod support;

use std::path::Path;
use std::time::Duration;

use durable_runtime::store::{FileStore, Store, StoreError};
use serde_json::json;

use support::mem_fs::MemFs;
use support::workload::{id, new_instance, options, DIR};

fn files_starting(fs: &MemFs, prefix: &str) -> Vec<String> {
    fs.names(Path::new(DIR))
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .collect()
}

async fn create(store: &FileStore, name: &str) -> Result<(), StoreError> {
    store
        .create_instance(new_instance(name, json!(name), None))
        .await
}

/// Retries `name`'s creation until the store takes work again.
async fn create_when_back(store: &FileStore, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match create(store, name).await {
            Ok(()) => return,
            Err(StoreError::Unavailable(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(2)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn a_full_disk_does_not_leave_a_new_segment_at_every_retry() {
    let fs = MemFs::default();
    let options = options(&fs).retry_interval(Duration::from_millis(1));
    let store = FileStore::open_with(DIR, options).await.unwrap();
    create(&store, "before").await.unwrap();
    let before = files_starting(&fs, "wal-");

    // On a real full disk an empty file can still be created; writes fail.
    fs.set_full(true);
    let refused = create(&store, "on-full-disk").await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    let writes = fs.writes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fs.writes() < writes + 50 {
        assert!(tokio::time::Instant::now() < deadline, "the writer retries");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let during = files_starting(&fs, "wal-");
    assert!(
        during.len() <= before.len() + 1,
        "{} retries left {during:?}",
        fs.writes() - writes
    );

    fs.set_full(false);
    create_when_back(&store, "after").await;
    store.close().await;
    fs.power_cut();
    let store = FileStore::open_with(DIR, support::workload::options(&fs))
        .await
        .unwrap();
    for name in ["before", "on-full-disk", "after"] {
        assert!(store.status(&id(name)).await.unwrap().is_some(), "{name}");
    }
}

#[tokio::test]
async fn a_failing_checkpoint_is_retried_after_more_log_not_after_every_commit() {
    let fs = MemFs::default();
    let is_checkpoint = |path: &Path| path.to_string_lossy().ends_with(".ckpt.tmp");
    fs.break_paths(Some(Box::new(is_checkpoint)));
    let threshold = 2_000;
    let options = options(&fs).checkpoint_bytes(threshold);
    let store = FileStore::open_with(DIR, options).await.unwrap();
    let log_bytes = |fs: &MemFs| -> u64 {
        fs.files()
            .iter()
            .filter(|(path, _)| path.to_string_lossy().ends_with(".log"))
            .map(|(_, bytes)| bytes.len() as u64)
            .sum()
    };
    let attempts = |fs: &MemFs| {
        fs.created()
            .into_iter()
            .filter(|p| is_checkpoint(p))
            .count()
    };

    for i in 0..200 {
        create(&store, &format!("i{i}")).await.unwrap();
    }
    // Asked for, a checkpoint is tried at once (and the writer is done with what came before).
    let asked = store.checkpoint().await;
    assert!(
        matches!(&asked, Err(StoreError::Unavailable(e)) if e.contains("injected failure")),
        "{asked:?}"
    );
    let log = log_bytes(&fs);
    let automatic = attempts(&fs) as u64 - 1;
    assert!(log > 20 * threshold, "{log} bytes of log");
    assert!(automatic >= 1, "a checkpoint was due");
    assert!(
        automatic <= log / threshold + 1,
        "{automatic} checkpoint attempts for {log} bytes of log (200 commits)"
    );

    // Once the disk takes checkpoints again, the next one due compacts the log.
    fs.break_paths(None);
    let mut i = 200;
    while files_starting(&fs, "checkpoint-").is_empty() {
        assert!(
            i < 400,
            "a checkpoint after another {threshold} bytes of log"
        );
        create(&store, &format!("i{i}")).await.unwrap();
        i += 1;
    }
    store.close().await;
    assert!(log_bytes(&fs) < log, "the log was compacted");
    fs.power_cut();
    let store = FileStore::open_with(DIR, support::workload::options(&fs))
        .await
        .unwrap();
    for n in 0..i {
        let name = format!("i{n}");
        assert!(store.status(&id(&name)).await.unwrap().is_some(), "{name}");
    }
}
