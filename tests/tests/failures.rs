//! What goes wrong in user code fails one attempt or one instance, with a message that says
//! why, and never takes the runtime down.

use std::time::Duration;

use durable_runtime::history::kinds;
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, ClientError, OrchestrationContext, RetryPolicy,
    RuntimeStatus, TaskError,
};
use durable_tests::{custom_status_is, finished, matrix, tally};

#[activity]
async fn step_a(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    Ok(n)
}

#[activity]
async fn step_b(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    Ok(n * 10)
}

#[orchestrator(name = "evolving")]
async fn evolving_v1(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let a = ctx.call(step_a, 1).await?;
    ctx.set_custom_status("waiting");
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(a + go)
}

#[orchestrator(name = "evolving")]
async fn evolving_renamed_call(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let a = ctx.call(step_b, 1).await?;
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(a + go)
}

#[orchestrator(name = "evolving")]
async fn evolving_changed_input(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let a = ctx.call(step_a, 2).await?;
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(a + go)
}

#[orchestrator(name = "evolving")]
async fn evolving_timer_first(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.sleep(Duration::from_secs(1)).await;
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(go)
}

fn hash(input: u32) -> String {
    format!(
        "{:#018x}",
        durable_runtime::history::stable_hash(&serde_json::json!(input))
    )
}

/// Starts `evolving_v1` until it waits, then lets a runtime with other code under the same
/// name pick it up; returns the failure message.
async fn run_changed_code(
    setup: durable_tests::Setup,
    second: impl FnOnce(durable_runtime::RuntimeBuilder) -> durable_runtime::RuntimeBuilder,
) -> String {
    let first = setup
        .builder()
        .orchestrator(evolving_v1)
        .activity(step_a)
        .start()
        .unwrap();
    let client = first.client();
    let id = client.start(evolving_v1, ()).await.unwrap();
    custom_status_is(&client, &id, "waiting").await;
    first.shutdown().await;

    let builder = setup.builder().activity(step_a).activity(step_b);
    let second = second(builder).start().unwrap();
    let client = second.client();
    client.raise_event(&id, "go", 5).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let failure = status.failure.unwrap();
    assert_eq!(failure.kind, kinds::NONDETERMINISM);
    failure.message
}

matrix!(
    changed_activity_is_caught_on_replay,
    |setup: durable_tests::Setup| async move {
        let message = run_changed_code(setup, |b| b.orchestrator(evolving_renamed_call)).await;
        let one = hash(1);
        assert!(
            message.starts_with(&format!(
                "expected activity `step_a` (input hash {one}) at seq 0, \
             found activity `step_b` (input hash {one}) (turn 1 of the history)"
            )),
            "{message}"
        );
    }
);

matrix!(
    changed_input_is_caught_on_replay,
    |setup: durable_tests::Setup| async move {
        let message = run_changed_code(setup, |b| b.orchestrator(evolving_changed_input)).await;
        assert!(
        message.starts_with(&format!(
            "expected activity `step_a` (input hash {}) at seq 0, found activity `step_a` (input hash {})",
            hash(1),
            hash(2)
        )),
        "{message}"
    );
    }
);

matrix!(
    reordered_call_is_caught_on_replay,
    |setup: durable_tests::Setup| async move {
        let message = run_changed_code(setup, |b| b.orchestrator(evolving_timer_first)).await;
        assert!(
            message.starts_with(&format!(
                "expected activity `step_a` (input hash {}) at seq 0, found a timer",
                hash(1)
            )),
            "{message}"
        );
    }
);

#[orchestrator]
async fn panicking(ctx: OrchestrationContext, after_step: bool) -> Result<(), TaskError> {
    if after_step {
        ctx.call(step_a, 1).await?;
    }
    panic!("the orchestrator gave up");
}

#[orchestrator]
async fn healthy(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(step_a, 7).await
}

matrix!(
    orchestrator_panic_fails_only_its_instance,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(panicking)
            .orchestrator(healthy)
            .activity(step_a)
            .start()
            .unwrap();
        let client = runtime.client();
        for after_step in [false, true] {
            let id = client.start(panicking, after_step).await.unwrap();
            let status = finished(&client, &id).await;
            assert_eq!(status.runtime_status, RuntimeStatus::Failed);
            let failure = status.failure.unwrap();
            assert_eq!(failure.kind, kinds::PANIC);
            assert_eq!(failure.message, "the orchestrator gave up");
        }
        let id = client.start(healthy, ()).await.unwrap();
        assert_eq!(
            finished(&client, &id).await.output_as::<u32>().unwrap(),
            Some(7)
        );
    }
);

#[activity]
async fn panics_once(ctx: ActivityContext) -> Result<String, String> {
    tally::bump(format!("{}/panics_once", ctx.instance_id()));
    if ctx.attempt() == 1 {
        panic!("activity blew up on attempt {}", ctx.attempt());
    }
    Ok("recovered".into())
}

#[orchestrator]
async fn survives_activity_panic(
    ctx: OrchestrationContext,
    retry: bool,
) -> Result<String, TaskError> {
    let call = ctx.call(panics_once, ());
    if retry {
        call.retry(RetryPolicy::new(2, Duration::from_secs(1)))
            .await
    } else {
        call.await
    }
}

matrix!(
    activity_panic_fails_only_that_attempt,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(survives_activity_panic)
            .activity(panics_once)
            .start()
            .unwrap();
        let client = runtime.client();

        let id = client.start(survives_activity_panic, true).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<String>().unwrap().unwrap(), "recovered");
        assert_eq!(tally::get(&format!("{id}/panics_once")), 2);

        let id = client.start(survives_activity_panic, false).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        assert_eq!(
            status.failure.unwrap().message,
            "activity `panics_once` failed after 1 attempt(s): activity blew up on attempt 1"
        );
    }
);

#[orchestrator]
async fn awaits_a_channel(_ctx: OrchestrationContext) -> Result<(), TaskError> {
    let (_keep, never) = tokio::sync::oneshot::channel::<()>();
    let _ = never.await;
    Ok(())
}

matrix!(
    awaiting_something_not_durable_fails_the_instance,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(awaits_a_channel)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(awaits_a_channel, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let failure = status.failure.unwrap();
        assert_eq!(failure.kind, kinds::NOT_DURABLE);
        assert!(
            failure
                .message
                .contains("waiting, but on no durable operation"),
            "{}",
            failure.message
        );
    }
);

#[orchestrator]
async fn wants_a_number(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.wait_for_event::<u32>("number").await
}

matrix!(
    event_with_a_bad_payload_fails_with_a_clear_message,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(wants_a_number)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(wants_a_number, ()).await.unwrap();
        client
            .raise_event(&id, "number", "not a number")
            .await
            .unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        assert_eq!(
        status.failure.unwrap().message,
        "the data of event `number` does not deserialise into `u32`: invalid type: string \"not a number\", expected u32"
    );
    }
);

#[orchestrator]
async fn deterministic_values(
    ctx: OrchestrationContext,
) -> Result<(String, u64, String, u64), TaskError> {
    let first = (ctx.new_uuid().to_string(), ctx.random());
    ctx.set_custom_status(&first);
    ctx.sleep(Duration::from_secs(1)).await;
    let second = (ctx.new_uuid().to_string(), ctx.random());
    Ok((first.0, first.1, second.0, second.1))
}

matrix!(
    uuid_and_random_replay_identically,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder_with(Advance::Manual)
            .orchestrator(deterministic_values)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(deterministic_values, ()).await.unwrap();
        let early = client
            .wait_until(&id, durable_tests::PATIENCE, |s| s.custom_status.is_some())
            .await
            .unwrap();
        let (uuid, random): (String, u64) = early.custom_status_as().unwrap().unwrap();
        setup.clock.advance(Duration::from_secs(1));
        let status = finished(&client, &id).await;
        let (uuid_again, random_again, uuid2, random2): (String, u64, String, u64) =
            status.output_as().unwrap().unwrap();
        // With the cache off, the last turn replayed the first: the same values came back.
        assert_eq!((uuid_again, random_again), (uuid.clone(), random));
        assert_ne!(uuid, uuid2);
        assert_ne!(random, random2);
        assert_eq!(uuid.len(), 36);
    }
);

#[orchestrator]
async fn two_waits(ctx: OrchestrationContext) -> Result<Vec<u32>, TaskError> {
    let first = ctx
        .wait_for_event::<u32>("x")
        .timeout(Duration::from_secs(1))
        .await?;
    ctx.set_custom_status("second wait");
    let second = ctx
        .wait_for_event::<u32>("x")
        .timeout(Duration::from_secs(10))
        .await?;
    Ok(vec![first, second])
}

// durabletask-go's known bug: a timeout timer outliving its wait cancels a later wait on the
// same name. Here the first wait's timer is cancelled when its event arrives.
matrix!(
    a_late_timer_never_cancels_a_later_wait,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder_with(Advance::Manual)
            .orchestrator(two_waits)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(two_waits, ()).await.unwrap();
        client.raise_event(&id, "x", 1).await.unwrap();
        custom_status_is(&client, &id, "second wait").await;
        setup.clock.advance(Duration::from_secs(2)); // past the first wait's timeout
        client.raise_event(&id, "x", 2).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(status.output_as::<Vec<u32>>().unwrap().unwrap(), [1, 2]);
        let history = client.history(&id).await.unwrap();
        let fired = history
            .iter()
            .filter(|e| matches!(e.event, durable_runtime::history::Event::TimerFired { .. }))
            .count();
        assert_eq!(fired, 0, "the cancelled timer must not fire");
    }
);

#[orchestrator]
async fn parked(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.wait_for_event::<()>("never").await
}

matrix!(
    client_errors_say_what_to_do,
    |setup: durable_tests::Setup| async move {
        let runtime = setup.builder().orchestrator(parked).start().unwrap();
        let client = runtime.client();

        let error = client.raise_event("nobody", "x", 1).await.unwrap_err();
        assert!(matches!(error, ClientError::NotFound(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "no instance `nobody`: check the id, or start it first"
        );

        let error = client.raise_event("bad\nid", "x", 1).await.unwrap_err();
        assert!(
            matches!(error, ClientError::InvalidInstanceId(_)),
            "{error}"
        );

        let id = client.start(parked, ()).instance_id("once").await.unwrap();
        let error = client
            .start(parked, ())
            .instance_id("once")
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::AlreadyExists(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "instance `once` exists already: pick another id, or purge the old one first"
        );
        let error = client.purge(&id).await.unwrap_err();
        assert!(matches!(error, ClientError::NotFinished(_)), "{error}");

        client.terminate(&id, "enough").await.unwrap();
        finished(&client, &id).await;
        let error = client.raise_event(&id, "x", 1).await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Finished {
                    status: RuntimeStatus::Terminated,
                    ..
                }
            ),
            "{error}"
        );

        let error = client.start(wants_a_number, ()).await.unwrap_err();
        assert!(
            matches!(error, ClientError::NotRegistered { .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("add `.orchestrator(wants_a_number)`"),
            "{error}"
        );
    }
);

/// A store whose history reads keep failing is asked again after a pause, not in a tight
/// loop: the turn hands its lease back only after the runtime's back-off (found by the
/// simulator's disk, seed 27389: a runtime spinning at full CPU on `load_history`). The
/// instance waits, unfailed, for the store to come back.
#[tokio::test]
async fn failing_history_reads_are_retried_after_a_pause() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use durable_runtime::store::MemoryStore;
    use durable_runtime::Runtime;
    use durable_tests::roles::RoleStore;

    let store = RoleStore::new(Arc::new(MemoryStore::new())).loads_fail();
    let loads = store.loads();
    let runtime = Runtime::builder()
        .shared_store(Arc::new(store))
        // Without a cache every turn after the first loads the history (a new instance's
        // first turn has none to load).
        .cache_capacity(0)
        .orchestrator(evolving_v1)
        .activity(step_a)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(evolving_v1, ()).await.unwrap();
    durable_tests::eventually(|| loads.load(Ordering::SeqCst) > 0).await;
    let before = loads.load(Ordering::SeqCst);
    let watched = Duration::from_millis(600);
    tokio::time::sleep(watched).await;
    let reads = loads.load(Ordering::SeqCst) - before;
    // One read per 100 ms back-off: about 6 here; 16,194 when retried at once. A slow
    // machine only makes fewer: this bounds a rate from above, it does not time anything.
    assert!(reads <= 20, "{reads} history reads in {watched:?}");
    let status = client.status(&id).await.unwrap();
    assert!(!status.runtime_status.is_finished(), "{status:?}");
    runtime.shutdown().await;
}
