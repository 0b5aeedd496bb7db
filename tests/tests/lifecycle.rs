//! Restarts, shutdowns and timeouts: work in flight is finished or handed back, never lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use durable_runtime::history::kinds;
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, RuntimeStatus,
    TaskError,
};
use durable_tests::{custom_status_is, eventually, finished, matrix, tally, PATIENCE};

#[activity]
async fn record(ctx: ActivityContext, step: String) -> Result<String, String> {
    tally::bump(format!("{}/{step}", ctx.instance_id()));
    Ok(step)
}

#[activity]
async fn flaky(ctx: ActivityContext) -> Result<u32, String> {
    tally::bump(format!("{}/flaky#{}", ctx.instance_id(), ctx.attempt()));
    if ctx.attempt() < 3 {
        Err(format!("attempt {} failed", ctx.attempt()))
    } else {
        Ok(ctx.attempt())
    }
}

#[orchestrator]
async fn survives_restart(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(record, "one".to_string()).await?;
    ctx.call(record, "two".to_string()).await?;
    ctx.set_custom_status("retrying");
    let attempt = ctx
        .call(flaky, ())
        .retry(RetryPolicy::new(5, Duration::from_secs(1)).backoff_coefficient(2.0))
        .await?;
    ctx.call(record, "three".to_string()).await?;
    Ok(attempt)
}

/// Waits until the history of `id` holds `count` back-off timers.
async fn back_offs_recorded(client: &durable_runtime::Client, id: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let history = client.history(id).await.unwrap();
        let timers = history
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    durable_runtime::history::Event::TimerCreated { .. }
                )
            })
            .count();
        if timers >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "back-off {count} was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// The POC's promise: stop the process mid-back-off, start another on the same store, and it
// carries on with the next attempt; completed activities never run again.
matrix!(
    a_restart_mid_backoff_carries_on,
    |setup: durable_tests::Setup| async move {
        let build = || {
            setup
                .builder_with(Advance::Manual)
                .orchestrator(survives_restart)
                .activity(record)
                .activity(flaky)
        };
        let first = build().start().unwrap();
        let client = first.client();
        let id = client.start(survives_restart, ()).await.unwrap();
        custom_status_is(&client, &id, "retrying").await;
        // Wait for attempt 1 to fail and its back-off timer to be recorded.
        // A tally is not a status: poll it (no status change follows an activity starting).
        eventually(|| tally::get(&format!("{id}/flaky#1")) == 1).await;
        back_offs_recorded(&client, &id, 1).await;
        first.shutdown().await;

        let second = build().start().unwrap();
        let client = second.client();
        setup.clock.advance(Duration::from_secs(1));
        custom_status_is(&client, &id, "retrying").await;
        // A tally is not a status: poll it (no status change follows an activity starting).
        eventually(|| tally::get(&format!("{id}/flaky#2")) == 1).await;
        // The next back-off starts when the failure's turn runs: only then move the clock.
        back_offs_recorded(&client, &id, 2).await;
        setup.clock.advance(Duration::from_secs(2));
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<u32>().unwrap(), Some(3));
        for step in ["one", "two", "three", "flaky#1", "flaky#2", "flaky#3"] {
            assert_eq!(tally::get(&format!("{id}/{step}")), 1, "{step} ran once");
        }
        if !setup.cached() {
            // A turn is counted once its commit resolves, which may be just after the client
            // sees the status it wrote (a durable store wakes both at the same fsync).
            eventually(|| {
                let stats = second.stats();
                stats.replays == stats.turns
            })
            .await;
        }
        let stats = second.stats();
        if setup.cached() {
            assert_eq!(
                stats.replays, 1,
                "only the first turn after the restart replays: {stats:?}"
            );
        } else {
            assert_eq!(stats.replays, stats.turns, "{stats:?}");
        }
    }
);

static RELEASE: AtomicBool = AtomicBool::new(false);

#[activity]
async fn slow(ctx: ActivityContext) -> Result<String, String> {
    let run = tally::bump(format!("{}/slow", ctx.instance_id()));
    // The first run never finishes by itself: shutdown must hand it back.
    if run == 1 && !RELEASE.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    Ok(format!("run {run}"))
}

#[orchestrator]
async fn waits_on_slow(ctx: OrchestrationContext) -> Result<String, TaskError> {
    ctx.call(slow, ()).await
}

matrix!(
    shutdown_hands_back_unfinished_activities,
    |setup: durable_tests::Setup| async move {
        let first = setup
            .builder()
            .shutdown_grace(Duration::ZERO)
            .orchestrator(waits_on_slow)
            .activity(slow)
            .start()
            .unwrap();
        let client = first.client();
        let id = client.start(waits_on_slow, ()).await.unwrap();
        // A tally is not a status: poll it (no status change follows an activity starting).
        eventually(|| tally::get(&format!("{id}/slow")) == 1).await;
        first.shutdown().await;

        let second = setup
            .builder()
            .orchestrator(waits_on_slow)
            .activity(slow)
            .start()
            .unwrap();
        let status = finished(&second.client(), &id).await;
        assert_eq!(status.output_as::<String>().unwrap().unwrap(), "run 2");
    }
);

#[activity]
async fn hangs(_ctx: ActivityContext) -> Result<(), String> {
    std::future::pending().await
}

#[orchestrator]
async fn bounded(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.call(hangs, ()).timeout(Duration::from_secs(5)).await
}

matrix!(
    an_activity_past_its_timeout_fails_the_attempt,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder_with(Advance::Manual)
            .orchestrator(bounded)
            .activity(hangs)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(bounded, ()).await.unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while runtime.stats().activities == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the activity never started"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let the attempt register its deadline, then pass it.
        while setup.clock.next_deadline().is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the attempt never armed its timeout"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        setup.clock.advance(Duration::from_secs(5));
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let message = status.failure.unwrap().message;
        assert_eq!(
        message,
        "activity `hangs` failed after 1 attempt(s): activity `hangs` ran longer than its timeout of 5s"
    );
        let history = client.history(&id).await.unwrap();
        let timed_out = history.iter().any(|e| {
        matches!(&e.event, durable_runtime::history::Event::TaskFailed { failure, .. } if failure.kind == kinds::TIMEOUT)
    });
        assert!(timed_out, "the attempt is recorded as timed out");
    }
);
