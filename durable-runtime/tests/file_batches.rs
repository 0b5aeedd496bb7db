//! The file store's batches: what its writer takes at once is cut into batches no larger
//! than one batch of the on-disk format can be (4 GiB; lowered here through the hidden
//! `FileStoreOptions::max_batch`, so that no test writes gigabytes), acknowledged once all
//! are durable; a record that alone is larger is refused with `TooLarge`, and nothing of it
//! is written or applied.

mod support;

use std::time::Duration;

use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::{FileStore, StatusUpdate, Store, StoreError, TurnCommit};
use futures::future::join_all;
use serde_json::json;

use support::mem_fs::MemFs;
use support::workload::{id, new_instance, options, snapshot, t, DIR};

/// The largest batch these tests let the store write.
const MAX: usize = 2_000;

/// The batches of every segment in `fs`, in order: (sequence number, payload length).
fn batches(fs: &MemFs) -> Vec<(u64, usize)> {
    let mut found = Vec::new();
    for (path, bytes) in fs.files() {
        let name = path.file_name().unwrap().to_str().unwrap();
        if !name.starts_with("wal-") {
            continue;
        }
        // After the segment's 16-byte header: header CRC, length, sequence number, CRC.
        let mut at = 16;
        while at + 20 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            let seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
            found.push((seq, len));
            at += 20 + len;
        }
        assert_eq!(at, bytes.len(), "{name} ends with a whole batch");
    }
    found
}

#[tokio::test]
async fn writes_taken_at_once_are_cut_into_batches_under_the_limit() {
    let fs = MemFs::default();
    // The writer runs as a task of this test's single thread: it takes the queue only once
    // every create below has queued its record.
    let store = FileStore::open_with(DIR, options(&fs).writer_on_task().max_batch(MAX))
        .await
        .unwrap();
    const N: usize = 40;
    let creates =
        (0..N).map(|i| store.create_instance(new_instance(&format!("i{i:02}"), json!(i), None)));
    for created in join_all(creates).await {
        created.unwrap();
    }
    let written = batches(&fs);
    let total: usize = written.iter().map(|(_, len)| len).sum();
    assert!(
        total > 3 * MAX,
        "the test queues more than three batches' worth: {total} bytes"
    );
    for (seq, len) in &written {
        assert!(*len <= MAX, "batch {seq} holds {len} bytes, over {MAX}");
    }
    for pair in written.windows(2) {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "batches are numbered one after another"
        );
    }
    assert!(
        written.len() < N,
        "the writes were taken together (several records a batch): {written:?}"
    );

    // Turns taken together too: their events are read back from where each batch put them.
    let mut commits = Vec::new();
    for i in 0..N {
        let work = store
            .lease_orchestration(&id(&format!("i{i:02}")), t(1), Duration::from_secs(60))
            .await
            .unwrap()
            .expect("leased");
        let mut commit = TurnCommit::for_work(&work, StatusUpdate::running());
        commit
            .history
            .extend(work.messages.iter().map(|m| m.event.clone()));
        commit.history.push(HistoryEvent::new(Event::TaskCompleted {
            id: i as u64,
            output: json!(format!("output of {i}")),
        }));
        commits.push(commit);
    }
    let expected: Vec<Vec<HistoryEvent>> = commits.iter().map(|c| c.history.clone()).collect();
    let before = written.len();
    for committed in join_all(commits.into_iter().map(|c| store.commit_turn(c))).await {
        committed.unwrap();
    }
    let turns = &batches(&fs)[before..];
    assert!(turns.len() > 2, "the turns took several batches: {turns:?}");
    for (seq, len) in turns {
        assert!(*len <= MAX, "batch {seq} holds {len} bytes, over {MAX}");
    }
    for (i, events) in expected.iter().enumerate() {
        let history = store.load_history(&id(&format!("i{i:02}"))).await.unwrap();
        assert_eq!(
            &history, events,
            "the history of i{i:02}, read from its batch"
        );
    }

    let live = snapshot(&store).await;
    assert_eq!(live.instances.len(), N);
    store.close().await;
    let store = FileStore::open_with(DIR, options(&fs).max_batch(MAX))
        .await
        .unwrap();
    assert_eq!(snapshot(&store).await, live, "every batch recovered");
}

#[tokio::test]
async fn a_record_larger_than_a_batch_is_refused_and_nothing_of_it_is_written() {
    let fs = MemFs::default();
    let store = FileStore::open_with(DIR, options(&fs).max_batch(MAX))
        .await
        .unwrap();
    store
        .create_instance(new_instance("small", json!(1), None))
        .await
        .unwrap();

    // A creation too large for a batch: refused, not applied.
    let refused = store
        .create_instance(new_instance("big", json!("x".repeat(MAX)), None))
        .await;
    match refused {
        Err(StoreError::TooLarge(message)) => {
            assert!(message.contains("`big`"), "names the instance: {message}");
            assert!(
                message.contains(&format!("at most {MAX} bytes")),
                "says the limit: {message}"
            );
        }
        other => panic!("a creation over the batch limit: {other:?}"),
    }
    assert_eq!(store.status(&id("big")).await.unwrap(), None);

    // A turn too large for a batch: refused, not applied, and the lease is still held.
    let work = store
        .lease_orchestration(&id("small"), t(1), Duration::from_secs(60))
        .await
        .unwrap()
        .expect("small can be leased");
    let mut commit = TurnCommit::for_work(&work, StatusUpdate::running());
    commit
        .history
        .extend(work.messages.iter().map(|m| m.event.clone()));
    let mut large = commit.clone();
    for n in 0..3 {
        large.history.push(HistoryEvent::new(Event::TaskCompleted {
            id: n,
            output: json!("y".repeat(MAX / 2)),
        }));
    }
    match store.commit_turn(large).await {
        Err(StoreError::TooLarge(message)) => {
            assert!(message.contains("turn of `small`"), "{message}")
        }
        other => panic!("a turn over the batch limit: {other:?}"),
    }
    assert_eq!(store.load_history(&id("small")).await.unwrap(), vec![]);
    store.commit_turn(commit).await.unwrap();

    let live = snapshot(&store).await;
    assert_eq!(live.instances["small"].1.len(), 1, "the small turn's event");
    store.close().await;
    let store = FileStore::open_with(DIR, options(&fs).max_batch(MAX))
        .await
        .unwrap();
    assert_eq!(snapshot(&store).await, live);
}
