//! One store seen by a process with a role: the tests split a store's work between runtimes
//! (one takes only turns, another only activity attempts, as separate processes would), count
//! the histories a process loads, and pause a process at chosen points (its first turn
//! commit held at a gate; its activity leases never renewed).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use durable_runtime::history::HistoryEvent;
use durable_runtime::store::*;
use durable_runtime::{InstanceId, InstanceStatus};
use tokio::sync::{watch, Notify, Semaphore};

/// A store that passes every call to another, except what its role leaves out.
#[derive(Debug)]
pub struct RoleStore {
    inner: Arc<dyn Store>,
    turns: bool,
    activities: bool,
    renews: bool,
    strips_task_spans: bool,
    loads_fail: bool,
    loads: Arc<AtomicUsize>,
    leases: Arc<AtomicUsize>,
    stall: Option<Stall>,
}

/// A first turn commit held at a gate: [`Stall::stalled`] resolves once it waits there,
/// [`Stall::release`] lets it through.
#[derive(Debug, Clone)]
pub struct Stall {
    gate: Arc<Semaphore>,
    stalled: Arc<Notify>,
    first: Arc<AtomicBool>,
}

impl Stall {
    /// Waits until the commit is held.
    pub async fn stalled(&self) {
        self.stalled.notified().await;
    }

    /// Lets the held commit through.
    pub fn release(&self) {
        self.gate.add_permits(1);
    }
}

impl RoleStore {
    /// Every call passed on.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        RoleStore {
            inner,
            turns: true,
            activities: true,
            renews: true,
            strips_task_spans: false,
            loads_fail: false,
            loads: Arc::default(),
            leases: Arc::default(),
            stall: None,
        }
    }

    /// Takes turns only: no activity attempt is handed out to this process.
    pub fn turns_only(mut self) -> Self {
        self.activities = false;
        self
    }

    /// Runs activity attempts only: no instance is leased by this process (a result goes
    /// to the instance's inbox).
    pub fn activities_only(mut self) -> Self {
        self.turns = false;
        self
    }

    /// Never renews an activity lease, as a paused process: its attempts' leases run out.
    pub fn never_renews(mut self) -> Self {
        self.renews = false;
        self
    }

    /// Hands out activity tasks without their parent span, as tasks stored before it was
    /// carried.
    pub fn strips_task_spans(mut self) -> Self {
        self.strips_task_spans = true;
        self
    }

    /// Fails every history load with `Unavailable` (still counted), as a store whose reads
    /// keep failing.
    pub fn loads_fail(mut self) -> Self {
        self.loads_fail = true;
        self
    }

    /// Holds this process's first turn commit at a gate.
    pub fn stall_first_commit(mut self) -> (Self, Stall) {
        let stall = Stall {
            gate: Arc::new(Semaphore::new(0)),
            stalled: Arc::new(Notify::new()),
            first: Arc::new(AtomicBool::new(true)),
        };
        self.stall = Some(stall.clone());
        (self, stall)
    }

    /// A count of the histories this process loads (whole, not by page).
    pub fn loads(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.loads)
    }

    /// A count of the instances this process leased by id (`lease_orchestration`, as when
    /// an activity's result goes straight to the turn it triggers), counted as the call
    /// returns them.
    pub fn leases(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.leases)
    }
}

#[async_trait]
impl Store for RoleStore {
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
        if !self.turns {
            return Ok(None);
        }
        self.inner.fetch_orchestration(now, lease).await
    }
    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        if !self.turns {
            return Ok(None);
        }
        let work = self.inner.lease_orchestration(id, now, lease).await;
        if let Ok(Some(_)) = &work {
            self.leases.fetch_add(1, Ordering::SeqCst);
        }
        work
    }
    async fn load_history(&self, id: &InstanceId) -> Result<Vec<HistoryEvent>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.loads_fail {
            return Err(StoreError::Unavailable(
                "reads fail (RoleStore::loads_fail)".into(),
            ));
        }
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
        if let Some(stall) = &self.stall {
            if stall.first.swap(false, Ordering::SeqCst) {
                stall.stalled.notify_one();
                let _pass = stall.gate.acquire().await.expect("never closed");
            }
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
        if !self.activities {
            return Ok(None);
        }
        let mut work = self.inner.fetch_activity(now, lease).await?;
        if let Some(work) = work.as_mut().filter(|_| self.strips_task_spans) {
            work.task.parent_span = None;
        }
        Ok(work)
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
        if !self.renews {
            return std::future::pending().await;
        }
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
