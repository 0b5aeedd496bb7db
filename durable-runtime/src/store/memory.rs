//! The in-memory store: the store engine behind a mutex, histories kept as serialized bytes
//! (a turn's events in one buffer).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::watch;

use super::engine::{decode_event, raw_event, Commit, Create, Engine, TextHistory, Texts};
use super::{
    ActivityLease, ActivityWork, HistoryPage, InstancePage, InstanceQuery, LeaseToken, NewInstance,
    OrchestrationWork, StatusCounts, Store, StoreError, TurnCommit, WorkSignals,
};
use crate::history::HistoryEvent;
use crate::instance_id::InstanceId;
use crate::status::InstanceStatus;

/// A store that keeps everything in memory: fast, and gone with the process.
///
/// Like a real store it keeps events and payloads as serialized bytes, so serialization bugs
/// show up in tests and benchmarks pay what a durable store pays.
#[derive(Default)]
pub struct MemoryStore {
    engine: Mutex<Engine<TextHistory>>,
    signals: Arc<WorkSignals>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Engine<TextHistory>> {
        // A panic while holding the lock cannot leave half a change behind: every change
        // is checked before its first mutation.
        self.engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MemoryStore {
    /// Runs a call that may find work fallen due, and signals that work.
    fn promoting<T>(&self, call: impl FnOnce(&mut Engine<TextHistory>) -> T) -> T {
        let mut engine = self.lock();
        let result = call(&mut engine);
        let woken = engine.take_promoted();
        drop(engine);
        woken.signal(&self.signals);
        result
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("instances", &self.lock().instances().len())
            .finish_non_exhaustive()
    }
}

/// Decodes the first `count` of `texts` into a vector allocated once (the texts come turn by
/// turn, and do not say how many there are).
fn decode_events<'a>(
    texts: impl Iterator<Item = &'a str>,
    count: usize,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let mut events = Vec::with_capacity(count);
    for text in texts.take(count) {
        events.push(decode_event(text)?);
    }
    Ok(events)
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_instance(&self, new: NewInstance) -> Result<(), StoreError> {
        let create = Create::new(new);
        let mut engine = self.lock();
        engine.check_create(create.status.instance_id(), create.replace_finished)?;
        let woken = engine.create(create, 0);
        engine.tell_watchers();
        drop(engine);
        woken.signal(&self.signals);
        Ok(())
    }

    async fn send(
        &self,
        id: &InstanceId,
        event: HistoryEvent,
        visible_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let event = raw_event(&event);
        let mut engine = self.lock();
        engine.check_send(id)?;
        let woken = engine.send(id, event, visible_at);
        drop(engine);
        woken.signal(&self.signals);
        Ok(())
    }

    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.promoting(|engine| engine.fetch_orchestration(now, lease_for))
    }

    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.promoting(|engine| engine.lease_orchestration(id, now, lease_for))
    }

    async fn load_history(&self, id: &InstanceId) -> Result<Vec<HistoryEvent>, StoreError> {
        let engine = self.lock();
        let history = engine.instance(id)?.history();
        decode_events(history.events_from(0), history.len())
    }

    async fn load_history_page(
        &self,
        id: &InstanceId,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let engine = self.lock();
        let history = engine.instance(id)?.history();
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(history.len());
        let end = start.saturating_add(limit).min(history.len());
        let events = decode_events(history.events_from(start), end - start)?;
        Ok(HistoryPage {
            events,
            len: history.len() as u64,
        })
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        let (fence, turn) = Commit::from_turn_with(commit, Texts::of);
        let mut engine = self.lock();
        engine.check_commit(&turn.id, &fence)?;
        let woken = engine.commit(turn, 0)?;
        engine.tell_watchers();
        drop(engine);
        woken.signal(&self.signals);
        Ok(())
    }

    async fn abandon_orchestration(
        &self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        let woken = self.lock().abandon_orchestration(id, lease)?;
        woken.signal(&self.signals);
        Ok(())
    }

    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError> {
        // Durable at once: the position of the turn that scheduled it does not matter.
        let work = self.promoting(|engine| engine.fetch_activity(now, lease_for))?;
        Ok(work.map(|(work, _)| work))
    }

    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError> {
        let result = raw_event(&result);
        let mut engine = self.lock();
        if !engine.check_complete(lease)? {
            return Ok(());
        }
        let woken = engine.complete(&lease.instance_id, lease.id, result);
        drop(engine);
        woken.signal(&self.signals);
        Ok(())
    }

    async fn renew_activity(
        &self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        self.lock().renew_activity(lease, now, lease_for)
    }

    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError> {
        let woken = self.lock().abandon_activity(lease);
        woken.signal(&self.signals);
        Ok(())
    }

    async fn status(&self, id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError> {
        let engine = self.lock();
        let status = engine.get(id).map(|i| i.status().get()).transpose()?;
        Ok(status.map(Cow::into_owned))
    }

    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        self.lock().list(query)
    }

    async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError> {
        self.lock().count(query)
    }

    async fn purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        let mut engine = self.lock();
        engine.check_purge(id)?;
        engine.purge(id);
        engine.tell_watchers();
        Ok(())
    }

    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError> {
        Ok(self.lock().next_wakeup())
    }

    async fn next_timer(&self, now: SystemTime) -> Result<Option<SystemTime>, StoreError> {
        Ok(self.lock().next_timer(now))
    }

    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        Ok(self.promoting(|engine| engine.has_work(now)))
    }

    fn signals(&self) -> Arc<WorkSignals> {
        Arc::clone(&self.signals)
    }

    fn watch_status(&self, id: &InstanceId) -> watch::Receiver<u64> {
        self.lock().watch(id)
    }
}
