//! Every activity result records when its attempt started and ended, on the runtime's clock:
//! successes, errors and panics, on every store, through replays.

use std::time::{Duration, SystemTime};

use durable_runtime::history::{AttemptTimes, Event};
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, RuntimeStatus,
    TaskError,
};
use durable_tests::{finished, matrix};

/// Fails its first attempt with an error, panics in its second, succeeds in its third.
#[activity]
async fn flaky(ctx: ActivityContext, _input: ()) -> Result<u32, String> {
    match ctx.attempt() {
        1 => Err("not yet".into()),
        2 => panic!("not yet either"),
        attempt => Ok(attempt),
    }
}

#[orchestrator]
async fn calls_flaky(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(flaky, ())
        .retry(RetryPolicy::new(3, Duration::from_secs(1)).backoff_coefficient(2.0))
        .await
}

matrix!(
    each_attempt_records_when_it_ran,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(calls_flaky)
            .activity(flaky)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(calls_flaky, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );

        let mut turn_time = SystemTime::UNIX_EPOCH;
        let mut scheduled_at = Vec::new();
        let mut attempts: Vec<(&str, AttemptTimes)> = Vec::new();
        let history = client.history(&id).await.unwrap();
        for entry in &history {
            match &entry.event {
                Event::OrchestratorStarted { timestamp } => turn_time = *timestamp,
                Event::TaskScheduled { .. } => scheduled_at.push(turn_time),
                Event::TaskCompleted { .. } | Event::TaskFailed { .. } => {
                    let times = entry.attempt.unwrap_or_else(|| {
                        panic!("an activity result without its attempt times: {entry:?}")
                    });
                    attempts.push((entry.event.name(), times));
                }
                _ => assert_eq!(entry.attempt, None, "{entry:?}"),
            }
        }
        let kinds: Vec<&str> = attempts.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, ["TaskFailed", "TaskFailed", "TaskCompleted"]);
        for ((_, times), scheduled) in attempts.iter().zip(&scheduled_at) {
            assert!(
                times.started_at >= *scheduled,
                "{times:?} before {scheduled:?}"
            );
            assert!(times.ended_at >= times.started_at, "{times:?}");
        }
        // The back-offs (1 s, then 2 s, on the virtual clock) lie between the attempts.
        let gap = |i: usize| {
            attempts[i + 1]
                .1
                .started_at
                .duration_since(attempts[i].1.ended_at)
                .unwrap()
        };
        assert!(gap(0) >= Duration::from_secs(1), "{:?}", gap(0));
        assert!(gap(1) >= Duration::from_secs(2), "{:?}", gap(1));
        runtime.shutdown().await;
    }
);
