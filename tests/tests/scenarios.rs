//! The conformance scenarios of durabletask-go's own test suite that need no fan-out, on
//! every store with the instance cache on and off, asserting on virtual time and history.

use std::time::Duration;

use durable_runtime::history::Event;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, RuntimeStatus,
    TaskError,
};
use durable_tests::{finished, matrix, tally};

#[orchestrator]
async fn empty(_ctx: OrchestrationContext) -> Result<(), TaskError> {
    Ok(())
}

// 1. An empty orchestration completes.
matrix!(
    empty_orchestration_completes,
    |setup: durable_tests::Setup| async move {
        let runtime = setup.builder().orchestrator(empty).start().unwrap();
        let client = runtime.client();
        let id = client.start(empty, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert!(status.output.unwrap_or_default().is_null());
        let history = client.history(&id).await.unwrap();
        let kinds: Vec<_> = history.iter().map(|e| kind(&e.event)).collect();
        assert_eq!(
            kinds,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "ExecutionCompleted"
            ]
        );
    }
);

#[orchestrator]
async fn zero_timer(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.sleep(Duration::ZERO).await;
    Ok(())
}

// 2. A zero-length timer fires.
matrix!(
    zero_length_timer,
    |setup: durable_tests::Setup| async move {
        let runtime = setup.builder().orchestrator(zero_timer).start().unwrap();
        let client = runtime.client();
        let start = setup.clock.now();
        let id = client.start(zero_timer, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(setup.clock.elapsed_since(start), Duration::ZERO);
        let history = client.history(&id).await.unwrap();
        assert!(history
            .iter()
            .any(|e| matches!(e.event, Event::TimerFired { .. })));
    }
);

#[orchestrator]
async fn replay_flags(ctx: OrchestrationContext) -> Result<Vec<bool>, TaskError> {
    let mut flags = vec![ctx.is_replaying()];
    ctx.sleep(Duration::from_secs(1)).await;
    flags.push(ctx.is_replaying());
    ctx.sleep(Duration::from_secs(1)).await;
    flags.push(ctx.is_replaying());
    Ok(flags)
}

// 4. `is_replaying` across two timers: true only for turns re-run from history.
matrix!(
    is_replaying_across_two_timers,
    |setup: durable_tests::Setup| async move {
        let runtime = setup.builder().orchestrator(replay_flags).start().unwrap();
        let client = runtime.client();
        let start = setup.clock.now();
        let id = client.start(replay_flags, ()).await.unwrap();
        let status = finished(&client, &id).await;
        let flags: Vec<bool> = status.output_as().unwrap().unwrap();
        if setup.cached() {
            assert_eq!(
                flags,
                [false, false, false],
                "a cached instance never replays"
            );
        } else {
            assert_eq!(
                flags,
                [true, true, false],
                "the last turn is live, the others replayed"
            );
        }
        assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(2));
    }
);

#[activity]
async fn greet(_ctx: ActivityContext, name: String) -> Result<String, String> {
    Ok(format!("Hello, {name}!"))
}

#[orchestrator]
async fn greeting(ctx: OrchestrationContext, name: String) -> Result<String, TaskError> {
    ctx.call(greet, name).await
}

// 5. A single activity with a Unicode input.
matrix!(
    single_activity_unicode,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(greeting)
            .activity(greet)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client
            .start(greeting, "世界 🌍 Ünïcödé".to_string())
            .await
            .unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(
            status.output_as::<String>().unwrap().unwrap(),
            "Hello, 世界 🌍 Ünïcödé!"
        );
    }
);

#[activity]
async fn plus_one(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    Ok(n + 1)
}

#[orchestrator]
async fn chain_of_ten(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let mut n = 0;
    for _ in 0..10 {
        n = ctx.call(plus_one, n).await?;
    }
    Ok(n)
}

// 6. A chain of 10 activities; with the cache on, the instance is never replayed.
matrix!(
    chain_of_ten_activities,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(chain_of_ten)
            .activity(plus_one)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(chain_of_ten, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<u32>().unwrap(), Some(10));
        // The last turn is counted once its commit resolves, which a durable store may report
        // just after the client sees the status it wrote.
        durable_tests::eventually(|| runtime.stats().turns >= 11).await;
        let stats = runtime.stats();
        assert_eq!(stats.turns, 11);
        if setup.cached() {
            assert_eq!(stats.replays, 0, "{stats:?}");
        } else {
            assert_eq!(stats.replays, 10, "{stats:?}");
        }
    }
);

#[activity]
async fn always_fails(ctx: ActivityContext) -> Result<(), String> {
    tally::bump(format!("{}/always_fails", ctx.instance_id()));
    Err(format!("kaboom on attempt {}", ctx.attempt()))
}

#[orchestrator]
async fn doomed(ctx: OrchestrationContext) -> Result<(), TaskError> {
    let policy = RetryPolicy::new(3, Duration::from_secs(1)).backoff_coefficient(2.0);
    ctx.call(always_fails, ()).retry(policy).await
}

// 7. Retries with interleaved timers, ending in Failed after 3 attempts.
matrix!(
    retries_end_in_failure,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(doomed)
            .activity(always_fails)
            .start()
            .unwrap();
        let client = runtime.client();
        let start = setup.clock.now();
        let id = client.start(doomed, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let failure = status.failure.unwrap();
        assert_eq!(
            failure.message,
            "activity `always_fails` failed after 3 attempt(s): kaboom on attempt 3"
        );
        assert_eq!(tally::get(&format!("{id}/always_fails")), 3);
        assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(3));
        let history = client.history(&id).await.unwrap();
        let sequence: Vec<_> = history
            .iter()
            .map(|e| kind(&e.event))
            .filter(|k| ["TaskScheduled", "TaskFailed", "TimerCreated", "TimerFired"].contains(k))
            .collect();
        assert_eq!(
            sequence,
            [
                "TaskScheduled",
                "TaskFailed",
                "TimerCreated",
                "TimerFired",
                "TaskScheduled",
                "TaskFailed",
                "TimerCreated",
                "TimerFired",
                "TaskScheduled",
                "TaskFailed",
            ]
        );
    }
);

#[orchestrator]
async fn ten_events(ctx: OrchestrationContext) -> Result<Vec<u32>, TaskError> {
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(ctx.wait_for_event::<u32>("item").await?);
    }
    Ok(seen)
}

// 15. Ten events raised before the waits are consumed in order.
matrix!(
    ten_early_events_in_order,
    |setup: durable_tests::Setup| async move {
        let runtime = setup.builder().orchestrator(ten_events).start().unwrap();
        let client = runtime.client();
        let id = client.start(ten_events, ()).await.unwrap();
        for i in 0..10u32 {
            client.raise_event(&id, "item", i).await.unwrap();
        }
        let status = finished(&client, &id).await;
        assert_eq!(
            status.output_as::<Vec<u32>>().unwrap().unwrap(),
            (0..10).collect::<Vec<_>>()
        );
    }
);

#[orchestrator]
async fn approval(ctx: OrchestrationContext) -> Result<String, TaskError> {
    ctx.wait_for_event::<String>("approve")
        .timeout(Duration::from_secs(1))
        .await
}

// 16. An event wait with a timeout: Completed with the event, Failed without it.
matrix!(event_timeout, |setup: durable_tests::Setup| async move {
    let runtime = setup.builder().orchestrator(approval).start().unwrap();
    let client = runtime.client();

    let id = client.start(approval, ()).await.unwrap();
    client.raise_event(&id, "approve", "yes").await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(status.output_as::<String>().unwrap().unwrap(), "yes");

    let start = setup.clock.now();
    let id = client.start(approval, ()).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    assert_eq!(
        status.failure.unwrap().message,
        "no event `approve` arrived within 1s"
    );
    assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(1));
});

fn kind(event: &Event) -> &'static str {
    event.name()
}
