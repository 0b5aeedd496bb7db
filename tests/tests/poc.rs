//! The POC's two workflows: retries with back-off where completed activities never run
//! again, and a workflow paused twice by external events.

use std::time::{Duration, SystemTime};

use durable_runtime::history::Event;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, RuntimeStatus,
    TaskError,
};
use durable_tests::{custom_status_is, finished, matrix, tally};

#[activity]
async fn reliable_activity(ctx: ActivityContext, step: String) -> Result<String, String> {
    tally::bump(format!("{}/{step}", ctx.instance_id()));
    Ok(format!("{step} completed"))
}

#[activity]
async fn unreliable_activity(ctx: ActivityContext, step: String) -> Result<String, String> {
    tally::bump(format!("{}/{step}", ctx.instance_id()));
    match ctx.attempt() {
        1 => Err("Network connection error (simulated)".into()),
        2 => Err("Database timeout (simulated)".into()),
        3 => Err("Service temporarily unavailable (simulated)".into()),
        _ => Ok(format!("{step} completed")),
    }
}

fn poc_policy() -> RetryPolicy {
    RetryPolicy::new(5, Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .max_interval(Duration::from_secs(10))
}

#[orchestrator]
async fn retry_orchestrator(ctx: OrchestrationContext) -> Result<Vec<String>, TaskError> {
    let step1 = ctx
        .call(reliable_activity, "Step 1: Initialize".to_string())
        .await?;
    let step2 = ctx
        .call(reliable_activity, "Step 2: Prepare data".to_string())
        .await?;
    let step3 = ctx
        .call(
            unreliable_activity,
            "Step 3: Critical operation".to_string(),
        )
        .retry(poc_policy())
        .await?;
    let step4 = ctx
        .call(reliable_activity, "Step 4: Finalize".to_string())
        .await?;
    Ok(vec![step1, step2, step3, step4])
}

matrix!(
    retry_workflow_never_reruns_completed_activities,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(retry_orchestrator)
            .activity(reliable_activity)
            .activity(unreliable_activity)
            .start()
            .unwrap();
        let client = runtime.client();
        let start = setup.clock.now();
        let id = client.start(retry_orchestrator, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(
            status.output_as::<Vec<String>>().unwrap().unwrap(),
            [
                "Step 1: Initialize completed",
                "Step 2: Prepare data completed",
                "Step 3: Critical operation completed",
                "Step 4: Finalize completed",
            ]
        );
        let runs = |step: &str| tally::get(&format!("{id}/{step}"));
        assert_eq!(runs("Step 1: Initialize"), 1);
        assert_eq!(runs("Step 2: Prepare data"), 1);
        assert_eq!(runs("Step 3: Critical operation"), 4);
        assert_eq!(runs("Step 4: Finalize"), 1);
        assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(7));

        // The back-offs are durable timers in the history: 1 s, 2 s, 4 s after each failure.
        let history = client.history(&id).await.unwrap();
        let mut turn_time = SystemTime::UNIX_EPOCH;
        let mut delays = Vec::new();
        let mut attempts = Vec::new();
        for entry in &history {
            match &entry.event {
                Event::OrchestratorStarted { timestamp } => turn_time = *timestamp,
                Event::TimerCreated { fire_at, .. } => {
                    delays.push(fire_at.duration_since(turn_time).unwrap())
                }
                Event::TaskScheduled { name, attempt, .. } if name == "unreliable_activity" => {
                    attempts.push(*attempt)
                }
                _ => {}
            }
        }
        let secs = Duration::from_secs;
        assert_eq!(delays, [secs(1), secs(2), secs(4)]);
        assert_eq!(attempts, [1, 2, 3, 4]);
    }
);

#[orchestrator]
async fn external_event_orchestrator(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let step1 = ctx
        .call(reliable_activity, "Step 1: Initial processing".to_string())
        .await?;
    ctx.set_custom_status("waiting for step2");
    let step2: String = ctx.wait_for_event("step2").await?;
    let processed = ctx
        .call(reliable_activity, format!("Step 3: Process {step2}"))
        .await?;
    ctx.set_custom_status("waiting for step4");
    let step4: String = ctx.wait_for_event("step4").await?;
    ctx.set_custom_status("finishing");
    let last = ctx
        .call(
            reliable_activity,
            format!("Step 5: Final processing {step4}"),
        )
        .await?;
    Ok(format!("{step1}; {processed}; {last}"))
}

const EXPECTED: &str = "Step 1: Initial processing completed; Step 3: Process ok completed; \
                        Step 5: Final processing done completed";

matrix!(
    external_events_pause_twice,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(external_event_orchestrator)
            .activity(reliable_activity)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(external_event_orchestrator, ()).await.unwrap();

        let paused = custom_status_is(&client, &id, "waiting for step2").await;
        assert_eq!(paused.runtime_status, RuntimeStatus::Running);
        client.raise_event(&id, "step2", "ok").await.unwrap();

        custom_status_is(&client, &id, "waiting for step4").await;
        client.raise_event(&id, "step4", "done").await.unwrap();

        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<String>().unwrap().unwrap(), EXPECTED);
        assert_eq!(tally::get(&format!("{id}/Step 1: Initial processing")), 1);
    }
);

matrix!(
    external_events_raised_early_are_buffered,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(external_event_orchestrator)
            .activity(reliable_activity)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(external_event_orchestrator, ()).await.unwrap();
        // Both events arrive before the orchestration waits for either, step4 first.
        client.raise_event(&id, "step4", "done").await.unwrap();
        client.raise_event(&id, "step2", "ok").await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<String>().unwrap().unwrap(), EXPECTED);
    }
);

// The same workflow with the clock moved by hand: each attempt waits for its full back-off,
// and not a millisecond less.
matrix!(
    retry_backoffs_on_a_manual_clock,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder_with(durable_runtime::testing::Advance::Manual)
            .orchestrator(retry_orchestrator)
            .activity(reliable_activity)
            .activity(unreliable_activity)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(retry_orchestrator, ()).await.unwrap();
        let attempts = |id: &str| tally::get(&format!("{id}/Step 3: Critical operation"));
        let timers = |history: &[durable_runtime::history::HistoryEvent]| {
            history
                .iter()
                .filter(|e| matches!(e.event, Event::TimerCreated { .. }))
                .count()
        };
        for (attempt, backoff) in [(1, 1), (2, 2), (3, 4)] {
            // Wait until this attempt failed and its back-off timer is recorded.
            let deadline = tokio::time::Instant::now() + durable_tests::PATIENCE;
            while timers(&client.history(&id).await.unwrap()) < attempt {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "attempt {attempt} never failed"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(attempts(&id), attempt as u32);
            setup
                .clock
                .advance(Duration::from_secs(backoff) - Duration::from_millis(1));
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(
                attempts(&id),
                attempt as u32,
                "attempt {} ran before its back-off ended",
                attempt + 1
            );
            setup.clock.advance(Duration::from_millis(1));
        }
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(attempts(&id), 4);
    }
);
