//! A store that wraps any other and injects faults drawn from the run's seed: transient
//! errors on any call, writes that are applied but reported failed (unknown outcome), delays
//! on the virtual clock, reordered scheduling (yields), and works that carry only a prefix
//! of their messages. Everything it does stays within the store contract's documented
//! duplicated and reordered deliveries (`durable_runtime::store`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use durable_runtime::history::HistoryEvent;
use durable_runtime::store::{
    ActivityLease, ActivityWork, HistoryPage, InstancePage, InstanceQuery, LeaseToken, NewInstance,
    OrchestrationWork, StatusCounts, Store, StoreError, TurnCommit, WorkSignals,
};
use durable_runtime::{Clock, InstanceId, InstanceStatus};
use tokio::sync::watch;

use crate::faults::{Fault, FaultPlan};
use crate::workload::StepInput;
use crate::world::{AttemptKey, World};

/// The runtime's back-off after a store error (`worker.rs`), on the tokio clock.
const STORE_RETRY: Duration = Duration::from_millis(100);

/// Which store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Send,
    Fetch,
    Lease,
    History,
    Commit,
    Abandon,
    FetchActivity,
    Complete,
    AbandonActivity,
    Status,
    List,
    Count,
    Purge,
    Wakeup,
    HasWork,
    NextTimer,
    Renew,
}

impl Kind {
    fn writes(self) -> bool {
        !matches!(
            self,
            Kind::History
                | Kind::Status
                | Kind::List
                | Kind::Wakeup
                | Kind::HasWork
                | Kind::Count
                | Kind::NextTimer
        )
    }
}

/// A store wrapped with faults (see the module docs).
#[derive(Clone)]
pub(crate) struct FaultStore {
    inner: Arc<dyn Store>,
    world: Arc<World>,
}

impl std::fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn unavailable(kind: Kind, when: &str) -> StoreError {
    StoreError::Unavailable(format!("simulated fault: {kind:?} {when}"))
}

impl FaultStore {
    pub(crate) fn new(inner: Arc<dyn Store>, world: Arc<World>) -> Self {
        FaultStore { inner, world }
    }

    /// Numbers the call and decides its fault.
    fn decide(&self, kind: Kind) -> (u64, Option<Fault>) {
        let mut state = self.world.lock();
        state.calls += 1;
        let call = state.calls;
        let fault = match &state.plan {
            FaultPlan::Script(faults) => faults.get(&call).copied(),
            FaultPlan::Random(rates) => {
                let rates = *rates;
                let rng = &mut state.faults;
                if rng.chance(rates.fail_before) {
                    Some(Fault::FailBefore)
                } else if kind.writes() && rng.chance(rates.fail_after) {
                    Some(Fault::FailAfter)
                } else if rng.chance(rates.delay) {
                    Some(Fault::Delay(
                        rng.range(1, u64::from(rates.max_delay_ms.max(1))) as u32,
                    ))
                } else if rng.chance(rates.yields) {
                    Some(Fault::Yield(rng.range(1, 6) as u32))
                } else if kind == Kind::Fetch && rng.chance(rates.prefix) {
                    Some(Fault::Prefix(rng.range(1, 3) as u32))
                } else {
                    None
                }
            }
        };
        // A prefix only means something for a fetch; a write-fault on a read is none.
        let fault = match fault {
            Some(Fault::Prefix(_)) if kind != Kind::Fetch => None,
            Some(Fault::FailAfter) if !kind.writes() => None,
            other => other,
        };
        if let Some(fault) = fault {
            state.injected.push((call, fault));
        }
        state.record(&format!("call {call} {kind:?} {fault:?}"));
        (call, fault)
    }

    /// Runs `op` on the inner store under the call's fault.
    async fn call<T, F>(&self, kind: Kind, op: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let (call, fault) = self.decide(kind);
        self.run(kind, call, fault, op).await
    }

    /// Runs `op` under an already decided fault.
    async fn run<T, F>(
        &self,
        kind: Kind,
        call: u64,
        fault: Option<Fault>,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        match fault {
            Some(Fault::FailBefore) => {
                self.finish(call, "err-before", true);
                return Err(unavailable(kind, "failed"));
            }
            Some(Fault::Delay(ms)) => {
                let until = self.world.clock.now() + Duration::from_millis(u64::from(ms));
                self.world.clock.sleep_until(until).await;
            }
            Some(Fault::Yield(n)) => {
                for _ in 0..n {
                    // Progress, so the driver does not take the yields for quiet.
                    self.world.lock().progress += 1;
                    tokio::task::yield_now().await;
                }
            }
            _ => {}
        }
        let result = op.await;
        match (fault, &result) {
            (Some(Fault::FailAfter), Ok(_)) => {
                self.finish(call, "err-after", true);
                Err(unavailable(kind, "applied, answer lost"))
            }
            _ => {
                let tag = match &result {
                    Ok(_) => "ok".to_string(),
                    Err(e) => format!("err {e}"),
                };
                self.finish(call, &tag, result.is_err());
                result
            }
        }
    }

    fn finish(&self, call: u64, tag: &str, error: bool) {
        let now = self.world.clock.now();
        let mut state = self.world.lock();
        if error {
            state.backoffs.insert(now + STORE_RETRY);
        }
        state.record(&format!("done {call} {tag}"));
    }

    fn prefix(&self, call_no_fault: Option<Fault>, work: &mut OrchestrationWork) {
        if let Some(Fault::Prefix(n)) = call_no_fault {
            work.messages.truncate((n as usize).max(1));
        }
    }

    /// Marks the attempts of `leases` as accepted.
    fn accept(&self, leases: &[ActivityLease]) {
        let mut state = self.world.lock();
        for lease in leases {
            if let Some(key) = state.leases.get(&lease.token).cloned() {
                state.accepted.insert(key);
            }
        }
    }
}

/// The attempt an activity task runs, from its input.
pub(crate) fn attempt_key(
    instance_id: &str,
    input: &serde_json::Value,
    attempt: u32,
) -> Option<AttemptKey> {
    let step: StepInput = serde_json::from_value(input.clone()).ok()?;
    Some((
        instance_id.to_string(),
        step.generation,
        step.call.k,
        attempt,
    ))
}

#[async_trait]
impl Store for FaultStore {
    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError> {
        self.call(Kind::Create, self.inner.create_instance(instance))
            .await
    }

    async fn send(
        &self,
        instance_id: &InstanceId,
        event: HistoryEvent,
        visible_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.call(Kind::Send, self.inner.send(instance_id, event, visible_at))
            .await
    }

    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        // The prefix is decided with the call, applied to what it returns.
        let (call, fault) = self.decide(Kind::Fetch);
        let mut result = self
            .run(
                Kind::Fetch,
                call,
                fault,
                self.inner.fetch_orchestration(now, lease_for),
            )
            .await;
        if let Ok(Some(work)) = &mut result {
            self.prefix(fault, work);
            self.world.record(&format!(
                "work {} {} {}",
                work.instance_id,
                work.history_len,
                work.messages.len()
            ));
        }
        result
    }

    async fn lease_orchestration(
        &self,
        instance_id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.call(
            Kind::Lease,
            self.inner.lease_orchestration(instance_id, now, lease_for),
        )
        .await
    }

    async fn load_history(
        &self,
        instance_id: &InstanceId,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        self.call(Kind::History, self.inner.load_history(instance_id))
            .await
    }

    async fn load_history_page(
        &self,
        instance_id: &InstanceId,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.call(
            Kind::History,
            self.inner.load_history_page(instance_id, from, limit),
        )
        .await
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        let completed = commit.completed_activities.clone();
        let events = commit.history.len() as u64;
        let inner = Arc::clone(&self.inner);
        let world = Arc::clone(&self.world);
        let result = self
            .call(Kind::Commit, async move {
                let result = inner.commit_turn(commit).await;
                if result.is_ok() {
                    // Applied: whatever the caller hears, these results are accepted.
                    let mut state = world.lock();
                    for lease in &completed {
                        if let Some(key) = state.leases.get(&lease.token).cloned() {
                            state.accepted.insert(key);
                        }
                    }
                }
                result
            })
            .await;
        if result.is_ok() {
            let mut state = self.world.lock();
            state.epoch.commits_ok += 1;
            state.epoch.events_ok += events;
        }
        result
    }

    async fn abandon_orchestration(
        &self,
        instance_id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        self.call(
            Kind::Abandon,
            self.inner.abandon_orchestration(instance_id, lease),
        )
        .await
    }

    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError> {
        let result = self
            .call(
                Kind::FetchActivity,
                self.inner.fetch_activity(now, lease_for),
            )
            .await;
        if let Ok(Some(work)) = &result {
            let key = attempt_key(
                work.task.instance_id.as_str(),
                &work.task.input,
                work.task.attempt,
            );
            let mut state = self.world.lock();
            state.record(&format!(
                "activity {} {}",
                work.task.instance_id, work.task.id
            ));
            if let Some(key) = key {
                if state.accepted.contains(&key) {
                    state.violations.push(format!(
                        "activity attempt {key:?} was leased again after its result was accepted"
                    ));
                }
                state.leases.insert(work.lease.token, key);
            }
        }
        result
    }

    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError> {
        let this = self.clone();
        let leases = [lease.clone()];
        self.call(Kind::Complete, async move {
            let applied = this.inner.complete_activity(&leases[0], result).await;
            if applied.is_ok() {
                this.accept(&leases);
            }
            applied
        })
        .await
    }

    async fn renew_activity(
        &self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        // Numbered apart, with faults from a stream of their own (random plans only): the
        // recorded schedules of the regressions number calls as they were before leases
        // were renewed.
        let (renewal, fault) = {
            let mut state = self.world.lock();
            state.renewals += 1;
            let renewal = state.renewals;
            let cut_off = state
                .leases
                .get(&lease.token)
                .is_some_and(|key| state.cut_off.contains(key));
            let fault = match state.plan {
                _ if cut_off => Some(Fault::FailBefore),
                FaultPlan::Script(_) => None,
                FaultPlan::Random(rates) => {
                    let rng = &mut state.renewal_faults;
                    if rng.chance(rates.fail_before) {
                        Some(Fault::FailBefore)
                    } else if rng.chance(rates.fail_after) {
                        Some(Fault::FailAfter)
                    } else if rng.chance(rates.delay) {
                        let ms = rng.range(1, u64::from(rates.max_delay_ms.max(1))) as u32;
                        Some(Fault::Delay(ms))
                    } else {
                        None
                    }
                }
            };
            state.record(&format!("renew {renewal} {fault:?}"));
            (renewal, fault)
        };
        if let Some(Fault::Delay(ms)) = fault {
            let until = self.world.clock.now() + Duration::from_millis(u64::from(ms));
            self.world.clock.sleep_until(until).await;
        }
        let result = match fault {
            Some(Fault::FailBefore) => Err(unavailable(Kind::Renew, "failed")),
            _ => self.inner.renew_activity(lease, now, lease_for).await,
        };
        let result = match (fault, result) {
            (Some(Fault::FailAfter), Ok(())) => {
                Err(unavailable(Kind::Renew, "applied, answer lost"))
            }
            (_, result) => result,
        };
        let tag = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("err {e}"),
        };
        self.world.record(&format!("renewed {renewal} {tag}"));
        result
    }

    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError> {
        self.call(Kind::AbandonActivity, self.inner.abandon_activity(lease))
            .await
    }

    async fn status(&self, instance_id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError> {
        self.call(Kind::Status, self.inner.status(instance_id))
            .await
    }

    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        self.call(Kind::List, self.inner.list(query)).await
    }

    async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError> {
        self.call(Kind::Count, self.inner.count(query)).await
    }

    async fn next_timer(&self, now: SystemTime) -> Result<Option<SystemTime>, StoreError> {
        self.call(Kind::NextTimer, self.inner.next_timer(now)).await
    }

    async fn purge(&self, instance_id: &InstanceId) -> Result<(), StoreError> {
        self.call(Kind::Purge, self.inner.purge(instance_id)).await
    }

    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError> {
        let result = self.call(Kind::Wakeup, self.inner.next_wakeup()).await;
        if let Ok(next) = &result {
            let now = self.world.clock.now();
            let ms = next.map(|t| t.duration_since(now).map_or(-1, |d| d.as_millis() as i128));
            self.world.record(&format!("next wakeup in {ms:?} ms"));
        }
        result
    }

    fn signals(&self) -> Arc<WorkSignals> {
        self.inner.signals()
    }

    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        self.call(Kind::HasWork, self.inner.has_work(now)).await
    }

    fn watch_status(&self, instance_id: &InstanceId) -> watch::Receiver<u64> {
        self.inner.watch_status(instance_id)
    }
}
