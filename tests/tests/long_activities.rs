//! Long activities: an attempt is owned for as long as it runs (issue 9, item 1). The worker
//! renews the lease while the attempt runs, so an attempt several leases long runs once and
//! its result counts; a renewal that finds the lease lost says so.
//!
//! The attempts here run in virtual time that they move themselves: each step of work
//! advances the shared clock by a tenth of the lease and then lets the runtime's tasks run
//! until the lease ends at least a quarter of a lease ahead. Renewals keep it so; without them
//! the lease runs out, another worker takes the attempt, and it runs twice (or the wait never
//! ends).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use durable_runtime::store::Store;
use durable_runtime::testing::{Advance, VirtualClock};
use durable_runtime::{
    activity, orchestrator, ActivityContext, Client, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::{finished, matrix, tally, CapturedLog, PATIENCE};

const LEASE: Duration = Duration::from_secs(60);
/// How long the long attempts run, in leases.
const LEASES_OF_WORK: u32 = 5;

/// What an attempt needs to move time: the test's clock and store, by instance id.
#[derive(Clone)]
struct Drive {
    clock: VirtualClock,
    store: Arc<dyn Store>,
}

fn drives() -> &'static Mutex<HashMap<String, Drive>> {
    static DRIVES: OnceLock<Mutex<HashMap<String, Drive>>> = OnceLock::new();
    DRIVES.get_or_init(Default::default)
}

fn drive(id: &str) -> Drive {
    drives().lock().unwrap()[id].clone()
}

/// The earliest lease expiry (nothing else is due in these tests).
async fn lease_end(store: &dyn Store) -> std::time::SystemTime {
    store
        .next_wakeup()
        .await
        .unwrap()
        .expect("a running attempt holds a lease")
}

/// `LEASES_OF_WORK` leases of virtual work, in steps of a tenth of a lease.
async fn work_for_leases(drive: &Drive) {
    for _ in 0..LEASES_OF_WORK * 10 {
        drive.clock.advance(LEASE / 10);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            tokio::task::yield_now().await;
            if lease_end(&*drive.store).await > drive.clock.now() + LEASE / 4 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the attempt's lease was never renewed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[activity]
async fn long_work(ctx: ActivityContext, _input: ()) -> Result<u32, String> {
    let id = ctx.instance_id().as_str();
    tally::bump(format!("{id}/runs"));
    work_for_leases(&drive(id)).await;
    Ok(ctx.attempt())
}

#[orchestrator]
async fn calls_long_work(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(long_work, ()).await
}

#[orchestrator]
async fn calls_long_work_with_timeout(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(long_work, ())
        .timeout(LEASE * LEASES_OF_WORK * 2)
        .await
}

async fn runs_once(setup: durable_tests::Setup, with_timeout: bool) {
    let runtime = setup
        .builder_with(Advance::Manual)
        .activity_lease(LEASE)
        .orchestrator(calls_long_work)
        .orchestrator(calls_long_work_with_timeout)
        .activity(long_work)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = format!(
        "long-{}-{}-{}",
        if with_timeout {
            "timeout"
        } else {
            "no-timeout"
        },
        setup.cached(),
        setup.store.as_ref() as *const dyn Store as *const () as usize
    );
    drives().lock().unwrap().insert(
        id.clone(),
        Drive {
            clock: setup.clock.clone(),
            store: Arc::clone(&setup.store),
        },
    );
    let started_at = setup.clock.now();
    if with_timeout {
        client
            .start(calls_long_work_with_timeout, ())
            .instance_id(&id)
            .await
            .unwrap();
    } else {
        client
            .start(calls_long_work, ())
            .instance_id(&id)
            .await
            .unwrap();
    }
    let status = finished(&client, &id).await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "{status:?}"
    );
    assert_eq!(status.output, Some(serde_json::json!(1)), "attempt 1");
    assert_eq!(tally::get(&format!("{id}/runs")), 1, "the attempt ran once");
    assert!(
        setup.clock.now().duration_since(started_at).unwrap() >= LEASE * LEASES_OF_WORK,
        "the attempt ran {LEASES_OF_WORK} leases"
    );
    runtime.shutdown().await;
}

matrix!(
    an_activity_five_leases_long_runs_once,
    |setup: durable_tests::Setup| async move { runs_once(setup, false).await }
);

matrix!(
    an_activity_five_leases_long_with_a_timeout_runs_once,
    |setup: durable_tests::Setup| async move { runs_once(setup, true).await }
);

/// What the attempt that loses its lease needs: the client to terminate its own instance,
/// and the log to see the loss reported in.
fn lost() -> &'static Mutex<HashMap<String, (Client, CapturedLog)>> {
    static LOST: OnceLock<Mutex<HashMap<String, (Client, CapturedLog)>>> = OnceLock::new();
    LOST.get_or_init(Default::default)
}

/// Loses its lease while it runs: its instance is terminated, which drops the attempt, and
/// the next renewal finds it gone.
#[activity]
async fn loses_its_lease(ctx: ActivityContext, _input: ()) -> Result<u32, String> {
    let id = ctx.instance_id().as_str().to_string();
    tally::bump(format!("{id}/runs"));
    let drive = drive(&id);
    let (client, log) = lost().lock().unwrap()[&id].clone();
    client.terminate(&id, "stop").await.unwrap();
    client
        .wait_until(&id, PATIENCE, |s| s.runtime_status.is_finished())
        .await
        .unwrap();
    // Past the next renewal: it finds the attempt gone, says so and stops renewing.
    drive.clock.advance(LEASE / 2);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !log.text().contains("activity lease lost") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lost lease was never reported:\n{}",
            log.text()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tally::bump(format!("{id}/reported"));
    Ok(ctx.attempt())
}

#[orchestrator]
async fn calls_loses_its_lease(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(loses_its_lease, ()).await
}

matrix!(
    a_renewal_that_finds_the_lease_lost_says_so,
    |setup: durable_tests::Setup| async move {
        let captured = CapturedLog::default();
        let _guard = captured.set_default();
        let runtime = setup
            .builder_with(Advance::Manual)
            .activity_lease(LEASE)
            .orchestrator(calls_loses_its_lease)
            .activity(loses_its_lease)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = format!(
            "lost-{}-{}",
            setup.cached(),
            setup.store.as_ref() as *const dyn Store as *const () as usize
        );
        drives().lock().unwrap().insert(
            id.clone(),
            Drive {
                clock: setup.clock.clone(),
                store: Arc::clone(&setup.store),
            },
        );
        lost()
            .lock()
            .unwrap()
            .insert(id.clone(), (client.clone(), captured.clone()));
        client
            .start(calls_loses_its_lease, ())
            .instance_id(&id)
            .await
            .unwrap();
        durable_tests::eventually(|| tally::get(&format!("{id}/reported")) == 1).await;
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
        assert_eq!(tally::get(&format!("{id}/runs")), 1, "the attempt ran once");
        let log = captured.text();
        let line = log
            .lines()
            .find(|l| l.contains("activity lease lost"))
            .unwrap();
        assert!(line.contains(&id), "the report names the instance: {line}");
        runtime.shutdown().await;
    }
);
