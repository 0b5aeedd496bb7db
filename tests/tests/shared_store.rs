//! Two runtimes on one store: leases and fencing make sure no turn ever runs twice, even
//! when one runtime stalls past its lease.

use std::sync::Arc;
use std::time::Duration;

use durable_runtime::history::Event;
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::roles::RoleStore;
use durable_tests::{finished, matrix, tally};

#[activity]
async fn count_me(ctx: ActivityContext, step: u32) -> Result<u32, String> {
    tally::bump(format!("{}/{step}", ctx.instance_id()));
    Ok(step)
}

#[orchestrator]
async fn three_steps(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let mut sum = 0;
    for step in 1..=3 {
        sum += ctx.call(count_me, step).await?;
    }
    Ok(sum)
}

#[activity]
async fn echo(_ctx: ActivityContext, millis: u64) -> Result<u64, String> {
    Ok(millis)
}

/// Schedules `echo` with the turn's time, and returns what it believes it scheduled: two
/// runs of its first turn at different times write different histories of the same length.
#[orchestrator]
async fn stamped(ctx: OrchestrationContext) -> Result<u64, TaskError> {
    let at = ctx
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let echoed = ctx.call(echo, at).await?;
    assert_eq!(echoed, at, "the activity got what this execution scheduled");
    Ok(at)
}

matrix!(
    a_stalled_runtime_never_commits_a_turn_twice,
    |setup: durable_tests::Setup| async move {
        // Its first turn commit waits at a gate: the runtime using it stalls mid-turn.
        let (stalling, stall) = RoleStore::new(Arc::clone(&setup.store)).stall_first_commit();
        let lease = Duration::from_secs(30);
        let slow = setup
            .builder_with(Advance::Manual)
            .store(stalling)
            .orchestration_lease(lease)
            .orchestrator(three_steps)
            .activity(count_me)
            .start()
            .unwrap();
        let id = slow.client().start(three_steps, ()).await.unwrap();
        // The slow runtime ran the first turn and now hangs in its commit, holding the lease.
        stall.stalled().await;

        // On PostgreSQL, as a process of its own would: its own store on the same schema.
        let fast = setup
            .builder_with(Advance::Manual)
            .shared_store(setup.another_process().await)
            .orchestration_lease(lease)
            .orchestrator(three_steps)
            .activity(count_me)
            .start()
            .unwrap();
        let client = fast.client();
        // Until the lease expires, the fast runtime must leave the instance alone.
        tokio::task::yield_now().await;
        assert_eq!(fast.stats().turns, 0);
        setup.clock.advance(lease + Duration::from_secs(1));
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(status.output_as::<u32>().unwrap(), Some(6));

        // The slow runtime wakes up: its commit must be refused.
        stall.release();
        let deadline = tokio::time::Instant::now() + durable_tests::PATIENCE;
        while slow.stats().conflicts == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stale commit never came back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(slow.stats().conflicts, 1);
        slow.shutdown().await;
        let history = client.history(&id).await.unwrap();
        let starts = history
            .iter()
            .filter(|e| matches!(e.event, Event::ExecutionStarted { .. }))
            .count();
        assert_eq!(starts, 1, "the first turn was committed exactly once");
        let mut scheduled: Vec<u64> = history
            .iter()
            .filter_map(|e| match e.event {
                Event::TaskScheduled { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        let total = scheduled.len();
        scheduled.dedup();
        assert_eq!(
            (total, scheduled.len()),
            (3, 3),
            "no step was scheduled twice"
        );
        for step in 1..=3 {
            assert_eq!(
                tally::get(&format!("{id}/{step}")),
                1,
                "step {step} ran once"
            );
        }
    }
);

matrix!(
    a_runtime_never_continues_from_a_turn_whose_commit_failed,
    |setup: durable_tests::Setup| async move {
        // The slow runtime runs the first turn at one time, and its commit waits at a gate,
        // holding its only turn permit: it can lease the instance again only as an activity
        // finishing does.
        let (stalling, stall) = RoleStore::new(Arc::clone(&setup.store)).stall_first_commit();
        let leases = stalling.leases();
        let lease = Duration::from_secs(30);
        let slow = setup
            .builder_with(Advance::Manual)
            .store(stalling)
            .orchestration_lease(lease)
            .max_concurrent_turns(1)
            .orchestrator(stamped)
            .activity(echo)
            .start()
            .unwrap();
        let id = slow.client().start(stamped, ()).await.unwrap();
        stall.stalled().await;

        // Past the lease, the fast runtime (turns only) runs the first turn again, later:
        // a history of the same length, scheduling `echo` with another time.
        setup.clock.advance(lease + Duration::from_secs(1));
        let fast = setup
            .builder_with(Advance::Manual)
            .shared_store(Arc::new(
                RoleStore::new(setup.another_process().await).turns_only(),
            ))
            .orchestration_lease(lease)
            .orchestrator(stamped)
            .activity(echo)
            .start()
            .unwrap();
        // The slow runtime runs `echo` and leases the instance for the turn its result
        // triggers while its own first commit is still held: its cached execution (the
        // first turn as it ran it) must not be taken on trust.
        durable_tests::eventually(|| leases.load(std::sync::atomic::Ordering::SeqCst) > 0).await;
        stall.release();
        let client = fast.client();
        let status = finished(&client, &id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        let history = client.history(&id).await.unwrap();
        let scheduled: Vec<u64> = history
            .iter()
            .filter_map(|e| match &e.event {
                Event::TaskScheduled { input, .. } => input.as_u64(),
                _ => None,
            })
            .collect();
        assert_eq!(scheduled.len(), 1, "{history:?}");
        assert_eq!(
            status.output_as::<u64>().unwrap(),
            Some(scheduled[0]),
            "the instance ended on the turn its history holds"
        );
        slow.shutdown().await;
        fast.shutdown().await;
    }
);
