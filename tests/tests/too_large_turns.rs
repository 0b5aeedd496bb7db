//! A turn larger than the store can write in one piece (the file store: one 4 GiB batch of
//! its log, lowered here through the hidden `FileStoreOptions::max_batch`; PostgreSQL: one
//! protocol message of 1 GiB, lowered through the hidden `PostgresOptions::max_turn_bytes`)
//! fails its own instance with a clear reason, instead of panicking the store's writer or
//! being retried forever; other instances go on.

use std::sync::Arc;

use durable_runtime::future::join_all;
use durable_runtime::history::kinds;
use durable_runtime::store::{FileStore, FileStoreOptions};
use durable_runtime::testing::VirtualClock;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::{finished, Cache, Setup};

/// The largest batch the store writes in these tests.
const MAX_BATCH: usize = 64 << 10;

#[activity]
async fn measure(_ctx: ActivityContext, text: String) -> Result<usize, String> {
    Ok(text.len())
}

/// Schedules `n` activities at once in one turn, each with 10 KB of input.
#[orchestrator]
async fn fan_out(ctx: OrchestrationContext, n: usize) -> Result<usize, TaskError> {
    let calls = (0..n).map(|i| ctx.call(measure, format!("{i:0>10000}")));
    let sizes: Result<Vec<usize>, TaskError> = join_all(calls).await.into_iter().collect();
    Ok(sizes?.into_iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_turn_too_large_for_the_file_store_fails_only_its_instance() {
    for cache in [Cache::On, Cache::Off] {
        let dir = tempfile::tempdir().unwrap();
        let options = FileStoreOptions::default().max_batch(MAX_BATCH);
        let store = FileStore::open_with(dir.path(), options).await.unwrap();
        let setup = Setup {
            cache,
            store: Arc::new(store),
            clock: VirtualClock::new(),
            dir: Some(Arc::new(dir)),
            postgres: None,
        };
        only_the_large_turn_fails(setup).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_turn_too_large_for_postgresql_fails_only_its_instance() {
    let Some(url) = durable_postgres::testing::url() else {
        return;
    };
    for cache in [Cache::On, Cache::Off] {
        let schema = durable_postgres::testing::TestSchema::new(&url).await;
        let name = schema.name().to_string();
        let store = durable_postgres::PostgresStore::connect_with(
            &url,
            schema.options().max_turn_bytes(MAX_BATCH),
        )
        .await
        .unwrap();
        let setup = Setup {
            cache,
            store: Arc::new(store),
            clock: VirtualClock::new(),
            dir: None,
            postgres: Some((url.clone(), name)),
        };
        only_the_large_turn_fails(setup).await;
        drop(schema);
    }
}

/// A fan-out over the limit fails with `too_large`, naming its turn and the limit, and
/// writes nothing of that turn; a smaller one, and one started after, complete.
async fn only_the_large_turn_fails(setup: Setup) {
    let runtime = setup
        .builder()
        .orchestrator(fan_out)
        .activity(measure)
        .start()
        .unwrap();
    let client = runtime.client();
    // 20 inputs of 10 KB, each in the history and in the attempt: over 64 KiB.
    let large = client.start(fan_out, 20).await.unwrap();
    let small = client.start(fan_out, 2).await.unwrap();

    let status = finished(&client, &large).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    let failure = status.failure.expect("a failure");
    assert_eq!(failure.kind, kinds::TOO_LARGE, "{failure:?}");
    assert!(
        failure.message.contains(&format!("turn of `{large}`"))
            && failure
                .message
                .contains(&format!("at most {MAX_BATCH} bytes")),
        "names the turn and the limit: {failure}"
    );
    let history = client.history(&large).await.unwrap();
    assert!(
        !history.iter().any(|e| e.event.name() == "TaskScheduled"),
        "nothing of the refused turn was written: {history:?}"
    );

    let status = finished(&client, &small).await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "{status:?}"
    );
    assert_eq!(status.output, Some(serde_json::json!(20_000)));
    // The store still takes work.
    let after = client.start(fan_out, 1).await.unwrap();
    let status = finished(&client, &after).await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "{status:?}"
    );
    runtime.shutdown().await;
}
