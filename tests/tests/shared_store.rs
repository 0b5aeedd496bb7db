//! Two runtimes on one store: leases and fencing make sure no turn ever runs twice, even
//! when one runtime stalls past its lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::*;
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, InstanceId, OrchestrationContext, RuntimeStatus,
    TaskError,
};
use durable_tests::{finished, matrix, tally};
use tokio::sync::{watch, Notify, Semaphore};

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

/// A store whose first turn commit waits at a gate: the runtime using it stalls mid-turn.
#[derive(Debug)]
struct StallingStore {
    inner: Arc<dyn Store>,
    gate: Arc<Semaphore>,
    stalled: Arc<Notify>,
    first: AtomicBool,
}

#[async_trait]
impl Store for StallingStore {
    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError> {
        self.inner.create_instance(instance).await
    }
    async fn send(
        &self,
        id: &InstanceId,
        event: HistoryEvent,
        at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.inner.send(id, event, at).await
    }
    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.inner.fetch_orchestration(now, lease).await
    }
    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.inner.lease_orchestration(id, now, lease).await
    }
    async fn load_history(&self, id: &InstanceId) -> Result<Vec<HistoryEvent>, StoreError> {
        self.inner.load_history(id).await
    }
    async fn load_history_page(
        &self,
        id: &InstanceId,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.inner.load_history_page(id, from, limit).await
    }
    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        if self.first.swap(false, Ordering::SeqCst) {
            self.stalled.notify_one();
            let _pass = self.gate.acquire().await.unwrap();
        }
        self.inner.commit_turn(commit).await
    }
    async fn abandon_orchestration(
        &self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        self.inner.abandon_orchestration(id, lease).await
    }
    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease: Duration,
    ) -> Result<Option<ActivityWork>, StoreError> {
        self.inner.fetch_activity(now, lease).await
    }
    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError> {
        self.inner.complete_activity(lease, result).await
    }
    async fn renew_activity(
        &self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        self.inner.renew_activity(lease, now, lease_for).await
    }
    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError> {
        self.inner.abandon_activity(lease).await
    }
    async fn status(&self, id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError> {
        self.inner.status(id).await
    }
    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        self.inner.list(query).await
    }
    async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError> {
        self.inner.count(query).await
    }
    async fn purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        self.inner.purge(id).await
    }
    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError> {
        self.inner.next_wakeup().await
    }
    async fn next_timer(&self, now: SystemTime) -> Result<Option<SystemTime>, StoreError> {
        self.inner.next_timer(now).await
    }
    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        self.inner.has_work(now).await
    }
    fn signals(&self) -> Arc<WorkSignals> {
        self.inner.signals()
    }
    fn watch_status(&self, id: &InstanceId) -> watch::Receiver<u64> {
        self.inner.watch_status(id)
    }
}

matrix!(
    a_stalled_runtime_never_commits_a_turn_twice,
    |setup: durable_tests::Setup| async move {
        let gate = Arc::new(Semaphore::new(0));
        let stalled = Arc::new(Notify::new());
        let stalling = StallingStore {
            inner: Arc::clone(&setup.store),
            gate: Arc::clone(&gate),
            stalled: Arc::clone(&stalled),
            first: AtomicBool::new(true),
        };
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
        stalled.notified().await;

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
        gate.add_permits(1);
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
