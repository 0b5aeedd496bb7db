//! Steering the virtual clock (issue 10, item 3): `wait_until` moves it in auto mode,
//! `run_until_idle` stops where only time or the test can move a workflow on, and
//! `next_timer` reads what a workflow will see next. The guide's testing chapter shows
//! `a_saga_stopped_half_way`.

use std::time::Duration;

use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, InstanceStatus, OrchestrationContext, RetryPolicy,
    RuntimeStatus, TaskError,
};
use durable_tests::{finished, matrix, Setup, PATIENCE};

const THREE_DAYS: Duration = Duration::from_secs(3 * 24 * 3600);

#[activity]
async fn charge(ctx: ActivityContext, cents: u64) -> Result<String, String> {
    if ctx.attempt() < 3 {
        return Err("the bank timed out".into());
    }
    Ok(format!("charged {cents}"))
}

#[activity]
async fn refund(_ctx: ActivityContext, cents: u64) -> Result<String, String> {
    Ok(format!("refunded {cents}"))
}

/// Charges (two failures: back-offs of 1 s and 2 s), then waits three days for `shipped`;
/// refunds if it never comes.
#[orchestrator]
async fn order(ctx: OrchestrationContext, cents: u64) -> Result<String, TaskError> {
    let receipt = ctx
        .call(charge, cents)
        .retry(RetryPolicy::new(5, Duration::from_secs(1)).backoff_coefficient(2.0))
        .await?;
    ctx.set_custom_status("waiting for shipped");
    match ctx
        .wait_for_event::<String>("shipped")
        .timeout(THREE_DAYS)
        .await
    {
        Ok(carrier) => Ok(format!("{receipt}, shipped by {carrier}")),
        Err(TaskError::EventTimedOut { .. }) => ctx.call(refund, cents).await,
        Err(other) => Err(other),
    }
}

fn waiting_for_shipped(status: &InstanceStatus) -> bool {
    status
        .custom_status_as::<String>()
        .ok()
        .flatten()
        .as_deref()
        == Some("waiting for shipped")
}

// Auto: one `wait_until` runs through both back-offs and stops at the wait for `shipped`,
// before its three-day timeout.
matrix!(wait_until_moves_the_clock, |setup: Setup| async move {
    let runtime = setup
        .builder_with(Advance::Auto)
        .orchestrator(order)
        .activity(charge)
        .activity(refund)
        .start()
        .unwrap();
    let client = runtime.client();
    let start = setup.clock.now();
    let id = client.start(order, 500).await.unwrap();

    let status = client
        .wait_until(&id, PATIENCE, waiting_for_shipped)
        .await
        .unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(3));
    assert_eq!(
        client.next_timer().await.unwrap(),
        Some(start + Duration::from_secs(3) + THREE_DAYS),
        "the wait's timeout is what falls due next"
    );

    client
        .raise_event(&id, "shipped", "a pigeon")
        .await
        .unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(
        status.output_as::<String>().unwrap().as_deref(),
        Some("charged 500, shipped by a pigeon")
    );
    assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(3));
    assert_eq!(
        client.next_timer().await.unwrap(),
        None,
        "the timeout was cancelled"
    );
    runtime.shutdown().await;
});

// Manual: `run_until_idle` runs what is ready and stops; `next_timer` says what to advance
// to; the saga is stepped through its back-offs and its timeout.
matrix!(a_saga_stopped_half_way, |setup: Setup| async move {
    let clock = setup.clock.clone();
    let runtime = setup
        .builder_with(Advance::Manual)
        .orchestrator(order)
        .activity(charge)
        .activity(refund)
        .start()
        .unwrap();
    let client = runtime.client();
    let start = clock.now();
    let id = client.start(order, 500).await.unwrap();

    // The first attempt failed; the retry waits for its 1 s back-off.
    runtime.run_until_idle().await;
    let due = client.next_timer().await.unwrap();
    assert_eq!(due, Some(start + Duration::from_secs(1)));
    clock.advance_to(due.unwrap());
    runtime.run_until_idle().await;
    // The second attempt failed too: a 2 s back-off.
    let due = client.next_timer().await.unwrap();
    assert_eq!(due, Some(start + Duration::from_secs(3)));
    clock.advance_to(due.unwrap());
    runtime.run_until_idle().await;

    // Half way: charged, waiting for `shipped`, the timeout three days away.
    let status = client.status(&id).await.unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    assert!(waiting_for_shipped(&status), "{status:?}");
    assert_eq!(
        client.next_timer().await.unwrap(),
        Some(clock.now() + THREE_DAYS)
    );

    // Nobody ships: the timeout fires and the saga refunds.
    clock.advance(THREE_DAYS);
    runtime.run_until_idle().await;
    let status = client.status(&id).await.unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(
        status.output_as::<String>().unwrap().as_deref(),
        Some("refunded 500")
    );
    assert_eq!(client.next_timer().await.unwrap(), None);
    runtime.shutdown().await;
});

#[orchestrator]
async fn nap(ctx: OrchestrationContext) -> Result<u64, TaskError> {
    let before = ctx.now();
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(ctx.now().duration_since(before).unwrap().as_secs())
}

// Manual: `start` returns once the start is durable, before the first turn. Advancing at
// once would let the first turn run after the advance, so the timer would start late;
// `run_until_idle` first makes the timer start when the test expects.
matrix!(manual_start_then_advance, |setup: Setup| async move {
    let clock = setup.clock.clone();
    let runtime = setup
        .builder_with(Advance::Manual)
        .orchestrator(nap)
        .start()
        .unwrap();
    let client = runtime.client();
    let start = clock.now();
    let id = client.start(nap, ()).await.unwrap();
    runtime.run_until_idle().await;
    assert_eq!(
        client.next_timer().await.unwrap(),
        Some(start + Duration::from_secs(3600))
    );
    clock.advance(Duration::from_secs(3600));
    runtime.run_until_idle().await;
    let status = client.status(&id).await.unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(status.output_as::<u64>().unwrap(), Some(3600));
    assert_eq!(clock.elapsed_since(start), Duration::from_secs(3600));
    runtime.shutdown().await;
});
