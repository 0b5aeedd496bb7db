//! `#[activity(blocking)]`: a plain `fn` run on tokio's blocking pool. It does not hold up the
//! runtime, a panic in it fails the attempt, a timeout fails the attempt while the thread runs
//! on, and its logs carry the activity's span.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use durable_runtime::future::join;
use durable_runtime::history::{kinds, Event};
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, RuntimeStatus,
    TaskError,
};
use durable_tests::{eventually, finished, matrix, tally, CapturedLog, PATIENCE};

/// Gates a blocking body waits on, by key, so that a test decides when it may go on.
mod gate {
    use super::*;

    type Gates = Mutex<HashMap<String, Arc<(Mutex<bool>, Condvar)>>>;

    fn gate(key: &str) -> Arc<(Mutex<bool>, Condvar)> {
        static GATES: OnceLock<Gates> = OnceLock::new();
        let gates = GATES.get_or_init(Default::default);
        Arc::clone(gates.lock().unwrap().entry(key.to_owned()).or_default())
    }

    /// Blocks the calling thread until `key` is opened; false if that took longer than the
    /// tests' patience.
    pub fn wait(key: &str) -> bool {
        let gate = gate(key);
        let (open, changed) = &*gate;
        let (open, _) = changed
            .wait_timeout_while(open.lock().unwrap(), PATIENCE, |open| !*open)
            .unwrap();
        *open
    }

    pub fn open(key: &str) {
        let gate = gate(key);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }
}

/// Blocks its thread until `key` is opened by another activity.
#[activity(blocking)]
fn wait_for_gate(_ctx: ActivityContext, key: String) -> Result<String, String> {
    if gate::wait(&key) {
        Ok(format!("{key} passed"))
    } else {
        Err(format!("{key} was never opened"))
    }
}

#[activity]
async fn open_gate(_ctx: ActivityContext, key: String) -> Result<(), String> {
    gate::open(&key);
    Ok(())
}

#[orchestrator]
async fn gate_keeper(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let key = format!("{}/gate", ctx.instance_id());
    // The blocking body waits for the async activity: on a runtime with one thread, as the
    // tests' is, that works only if the body runs elsewhere.
    let (passed, opened) = join(
        ctx.call(wait_for_gate, key.clone()),
        ctx.call(open_gate, key),
    )
    .await;
    opened?;
    passed
}

matrix!(
    a_blocking_activity_does_not_hold_up_the_runtime,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(gate_keeper)
            .activity(wait_for_gate)
            .activity(open_gate)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(gate_keeper, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(
            status.output_as::<String>().unwrap().unwrap(),
            format!("{id}/gate passed")
        );
        runtime.shutdown().await;
    }
);

#[activity(blocking)]
fn panics_once(ctx: ActivityContext) -> Result<String, String> {
    tally::bump(format!("{}/panics_once", ctx.instance_id()));
    if ctx.attempt() == 1 {
        panic!("blocking activity blew up on attempt {}", ctx.attempt());
    }
    Ok("recovered".into())
}

#[orchestrator]
async fn survives_a_blocking_panic(
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
    a_panic_in_a_blocking_activity_fails_that_attempt,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(survives_a_blocking_panic)
            .activity(panics_once)
            .start()
            .unwrap();
        let client = runtime.client();

        let id = client.start(survives_a_blocking_panic, true).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<String>().unwrap().unwrap(), "recovered");
        assert_eq!(tally::get(&format!("{id}/panics_once")), 2);

        let id = client
            .start(survives_a_blocking_panic, false)
            .await
            .unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let failure = status.failure.unwrap();
        assert_eq!(
            failure.message,
            "activity `panics_once` failed after 1 attempt(s): blocking activity blew up on attempt 1"
        );
        let history = client.history(&id).await.unwrap();
        let panicked = history.iter().any(|e| {
            matches!(&e.event, Event::TaskFailed { failure, .. } if failure.kind == kinds::PANIC)
        });
        assert!(panicked, "the attempt is recorded as a panic");
        runtime.shutdown().await;
    }
);

/// Marks that it started, then blocks until its gate opens, then marks that it finished.
#[activity(blocking)]
fn stuck(ctx: ActivityContext) -> Result<String, String> {
    let key = format!("{}/stuck", ctx.instance_id());
    tally::bump(format!("{key}/started"));
    let opened = gate::wait(&key);
    tally::bump(format!("{key}/finished"));
    if opened {
        Ok("late".into())
    } else {
        Err("never released".into())
    }
}

#[orchestrator]
async fn bounded_stuck(ctx: OrchestrationContext) -> Result<String, TaskError> {
    ctx.call(stuck, ()).timeout(Duration::from_secs(5)).await
}

matrix!(
    a_blocking_activity_past_its_timeout_fails_while_its_thread_runs_on,
    |setup: durable_tests::Setup| async move {
        let runtime = setup
            .builder_with(Advance::Manual)
            .orchestrator(bounded_stuck)
            .activity(stuck)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(bounded_stuck, ()).await.unwrap();
        let key = format!("{id}/stuck");
        eventually(|| tally::get(&format!("{key}/started")) == 1).await;
        // The attempt's deadline was set before its body started: this passes it.
        setup.clock.advance(Duration::from_secs(5));

        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        assert_eq!(
            status.failure.unwrap().message,
            "activity `stuck` failed after 1 attempt(s): activity `stuck` ran longer than its timeout of 5s"
        );
        // The thread could not be stopped: it is still blocked, and finishes once released.
        assert_eq!(tally::get(&format!("{key}/finished")), 0);
        gate::open(&key);
        eventually(|| tally::get(&format!("{key}/finished")) == 1).await;

        // Its late result changes nothing: one attempt, recorded as timed out.
        runtime.shutdown().await;
        let history = client.history(&id).await.unwrap();
        let outcomes: Vec<&str> = history
            .iter()
            .filter_map(|e| match &e.event {
                Event::TaskCompleted { .. } => Some("completed"),
                Event::TaskFailed { failure, .. } => Some(failure.kind.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(outcomes, [kinds::TIMEOUT]);
        assert_eq!(tally::get(&format!("{key}/started")), 1);
    }
);

#[activity(blocking)]
fn logs(_ctx: ActivityContext) -> Result<(), String> {
    tracing::info!("from the blocking pool");
    Ok(())
}

#[orchestrator]
async fn calls_logs(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.call(logs, ()).await
}

matrix!(
    a_blocking_activity_logs_under_its_span_and_dispatcher,
    |setup: durable_tests::Setup| async move {
        let captured = CapturedLog::default();
        // Scoped to the test's thread: the blocking pool's thread sees it only if the
        // activity hands it over.
        let _guard = captured.set_default();

        let runtime = setup
            .builder()
            .orchestrator(calls_logs)
            .activity(logs)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(calls_logs, ()).await.unwrap();
        finished(&client, &id).await;
        runtime.shutdown().await;

        let output = captured.text();
        let line = output
            .lines()
            .find(|line| line.contains("from the blocking pool"))
            .unwrap_or_else(|| panic!("the blocking body's event is missing from:\n{output}"));
        assert!(
            line.contains(&format!(
                "activity{{instance_id={id} name=\"logs\" attempt=1}}"
            )),
            "{line}"
        );
    }
);
