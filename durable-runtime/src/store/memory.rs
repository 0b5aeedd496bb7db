//! The in-memory store: the contract kept in one process's memory, as serialized bytes.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use foldhash::{HashMap, HashMapExt};
use tokio::sync::watch;

use super::paging::{self, Candidate};
use super::{
    ActivityLease, ActivityTask, ActivityWork, Delivery, InstancePage, InstanceQuery,
    InstanceStatus, LeaseToken, MessageId, NewInstance, OrchestrationWork, Store, StoreError,
    TurnCommit, WorkSignals,
};
use crate::history::{Event, HistoryEvent};
use crate::instance_id::InstanceId;

/// A store that keeps everything in memory: fast, and gone with the process.
///
/// Like a real store it keeps events and payloads as serialized bytes, so serialization bugs
/// show up in tests and benchmarks pay what a durable store pays.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    signals: Arc<WorkSignals>,
}

#[derive(Default)]
struct Inner {
    next_token: LeaseToken,
    instances: HashMap<InstanceId, Instance>,
    /// Unleased instances that may have deliverable messages.
    ready: VecDeque<InstanceId>,
    /// Messages not deliverable yet (timers), by due time.
    delayed: BTreeSet<(SystemTime, InstanceId, MessageId)>,
    /// Instance leases, by expiry.
    leases: BTreeSet<(SystemTime, InstanceId)>,
    activity_queue: VecDeque<(InstanceId, u64)>,
    activity_leases: BTreeSet<(SystemTime, InstanceId, u64)>,
    watchers: HashMap<InstanceId, watch::Sender<u64>>,
}

struct Instance {
    history: Vec<Vec<u8>>,
    inbox: Vec<Message>,
    next_message: MessageId,
    status: InstanceStatus,
    lease: Option<(LeaseToken, SystemTime)>,
    queued: bool,
    activities: HashMap<u64, ActivityRecord>,
}

struct Message {
    id: MessageId,
    visible_at: Option<SystemTime>,
    timer: Option<u64>,
    event: Vec<u8>,
}

struct ActivityRecord {
    task: Vec<u8>,
    lease: Option<(LeaseToken, SystemTime)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave half a commit behind: every write
        // below is checked before the first mutation.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("instances", &inner.instances.len())
            .finish_non_exhaustive()
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Inner {
    fn instance(&mut self, id: &InstanceId) -> Result<&mut Instance, StoreError> {
        self.instances
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    fn token(&mut self) -> LeaseToken {
        self.next_token += 1;
        self.next_token
    }

    fn make_ready(&mut self, id: &InstanceId, now: Option<SystemTime>) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        let deliverable = instance.inbox.iter().any(|m| {
            m.visible_at
                .is_none_or(|at| now.is_some_and(|now| at <= now))
        });
        if !instance.queued && instance.lease.is_none() && deliverable {
            instance.queued = true;
            self.ready.push_back(id.clone());
        }
    }

    fn push_message(
        &mut self,
        id: &InstanceId,
        event: Vec<u8>,
        visible_at: Option<SystemTime>,
        timer: Option<u64>,
    ) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        let message_id = instance.next_message;
        instance.next_message += 1;
        instance.inbox.push(Message {
            id: message_id,
            visible_at,
            timer,
            event,
        });
        match visible_at {
            Some(at) => {
                self.delayed.insert((at, id.clone(), message_id));
            }
            None => self.make_ready(id, None),
        }
    }

    fn promote_due(&mut self, now: SystemTime) {
        while let Some(first) = self.delayed.first() {
            if first.0 > now {
                break;
            }
            let (_, id, message_id) = self.delayed.pop_first().expect("first exists");
            // Due now and for good: from here on it is an ordinary deliverable message.
            if let Some(message) = self
                .instances
                .get_mut(&id)
                .and_then(|i| i.inbox.iter_mut().find(|m| m.id == message_id))
            {
                message.visible_at = None;
            }
            self.make_ready(&id, Some(now));
        }
        while let Some(first) = self.leases.first() {
            if first.0 > now {
                break;
            }
            let (_, id) = self.leases.pop_first().expect("first exists");
            if let Some(instance) = self.instances.get_mut(&id) {
                instance.lease = None;
            }
            self.make_ready(&id, Some(now));
        }
        while let Some(first) = self.activity_leases.first() {
            if first.0 > now {
                break;
            }
            let (_, id, seq) = self.activity_leases.pop_first().expect("first exists");
            if let Some(record) = self
                .instances
                .get_mut(&id)
                .and_then(|i| i.activities.get_mut(&seq))
            {
                record.lease = None;
                self.activity_queue.push_back((id, seq));
            }
        }
    }

    fn lease(
        &mut self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<OrchestrationWork, StoreError> {
        let token = self.token();
        let expires = now + lease_for;
        let instance = self.instance(id)?;
        instance.lease = Some((token, expires));
        instance.queued = false;
        let mut messages = Vec::new();
        for message in &instance.inbox {
            if message.visible_at.is_none_or(|at| at <= now) {
                messages.push(Delivery {
                    id: message.id,
                    event: decode(&message.event)?,
                });
            }
        }
        let history_len = instance.history.len() as u64;
        self.leases.insert((expires, id.clone()));
        Ok(OrchestrationWork {
            instance_id: id.clone(),
            lease: token,
            history_len,
            messages,
        })
    }

    fn release(&mut self, id: &InstanceId, now: Option<SystemTime>) {
        if let Some(instance) = self.instances.get_mut(id) {
            if let Some((_, expires)) = instance.lease.take() {
                self.leases.remove(&(expires, id.clone()));
            }
        }
        self.make_ready(id, now);
    }

    fn check_lease(&self, id: &InstanceId, lease: LeaseToken) -> Result<&Instance, StoreError> {
        let instance = self
            .instances
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        match instance.lease {
            Some((token, _)) if token == lease => Ok(instance),
            _ => Err(StoreError::Conflict {
                id: id.clone(),
                reason: "the instance lease was lost to another worker".into(),
            }),
        }
    }

    fn create(&mut self, new: NewInstance) -> Result<(), StoreError> {
        let id = new.status.instance_id.clone();
        if let Some(existing) = self.instances.get(&id) {
            if !(new.replace_finished && existing.status.runtime_status.is_finished()) {
                return Err(StoreError::AlreadyExists(id));
            }
            self.remove(&id);
        }
        self.instances.insert(
            id.clone(),
            Instance {
                history: Vec::new(),
                inbox: Vec::new(),
                next_message: 0,
                status: new.status,
                lease: None,
                queued: false,
                activities: HashMap::new(),
            },
        );
        self.push_message(&id, encode(&new.start), new.start_at, None);
        self.notify_status(&id);
        Ok(())
    }

    /// Drops an instance and everything that refers to it.
    fn remove(&mut self, id: &InstanceId) {
        if let Some(instance) = self.instances.remove(id) {
            if let Some((_, expires)) = instance.lease {
                self.leases.remove(&(expires, id.clone()));
            }
            for message in instance.inbox {
                if let Some(at) = message.visible_at {
                    self.delayed.remove(&(at, id.clone(), message.id));
                }
            }
            for (seq, record) in instance.activities {
                if let Some((_, expires)) = record.lease {
                    self.activity_leases.remove(&(expires, id.clone(), seq));
                }
            }
        }
    }

    fn notify_status(&mut self, id: &InstanceId) {
        if let Some(sender) = self.watchers.get(id) {
            if sender.receiver_count() == 0 {
                self.watchers.remove(id);
            } else {
                sender.send_modify(|revision| *revision += 1);
            }
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_instance(&self, new: NewInstance) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.create(new)?;
        drop(inner);
        self.signals.orchestrations.notify_waiters();
        Ok(())
    }

    async fn send(
        &self,
        id: &InstanceId,
        event: HistoryEvent,
        visible_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let instance = inner.instance(id)?;
        if instance.status.runtime_status.is_finished() {
            return Err(StoreError::Finished {
                id: id.clone(),
                status: instance.status.runtime_status,
            });
        }
        inner.push_message(id, encode(&event), visible_at, None);
        drop(inner);
        self.signals.orchestrations.notify_waiters();
        Ok(())
    }

    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        let mut inner = self.lock();
        inner.promote_due(now);
        while let Some(id) = inner.ready.pop_front() {
            let Some(instance) = inner.instances.get_mut(&id) else {
                continue;
            };
            instance.queued = false;
            let deliverable = instance
                .inbox
                .iter()
                .any(|m| m.visible_at.is_none_or(|at| at <= now));
            if instance.lease.is_some() || !deliverable {
                continue;
            }
            return inner.lease(&id, now, lease_for).map(Some);
        }
        Ok(None)
    }

    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        let mut inner = self.lock();
        inner.promote_due(now);
        let instance = inner.instance(id)?;
        if instance.lease.is_some() || instance.status.runtime_status.is_finished() {
            return Ok(None);
        }
        inner.lease(id, now, lease_for).map(Some)
    }

    async fn load_history(&self, id: &InstanceId) -> Result<Vec<HistoryEvent>, StoreError> {
        let mut inner = self.lock();
        let instance = inner.instance(id)?;
        instance.history.iter().map(|bytes| decode(bytes)).collect()
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        // Serialize outside the lock: it is most of a commit's work.
        let history: Vec<Vec<u8>> = commit.history.iter().map(encode).collect();
        let timers: Vec<Vec<u8>> = commit
            .timers
            .iter()
            .map(|timer| {
                encode(&HistoryEvent::new(Event::TimerFired {
                    id: timer.id,
                    fire_at: timer.fire_at,
                }))
            })
            .collect();
        let tasks: Vec<Vec<u8>> = commit.activities.iter().map(encode).collect();
        let messages: Vec<Vec<u8>> = commit.messages.iter().map(|m| encode(&m.event)).collect();
        let turn_started = commit.history.iter().find_map(|e| match e.event {
            Event::OrchestratorStarted { timestamp } => Some(timestamp),
            _ => None,
        });
        let mut inner = self.lock();
        let id = &commit.instance_id;
        let instance = inner.check_lease(id, commit.lease)?;
        if instance.history.len() as u64 != commit.expected_history_len {
            return Err(StoreError::Conflict {
                id: id.clone(),
                reason: format!(
                    "the history has {} events, the turn expected {}",
                    instance.history.len(),
                    commit.expected_history_len
                ),
            });
        }
        for lease in &commit.completed_activities {
            let held = instance
                .activities
                .get(&lease.id)
                .and_then(|a| a.lease)
                .is_some_and(|(token, _)| token == lease.token);
            if !held {
                return Err(StoreError::Conflict {
                    id: id.clone(),
                    reason: format!("the lease on activity attempt {} was lost", lease.id),
                });
            }
        }

        let update = &commit.status;
        let finished = update.runtime_status.is_finished();
        let old = &instance.status;
        let status_changed = old.runtime_status != update.runtime_status
            || old.output != update.output
            || old.custom_status != update.custom_status
            || old.failure != update.failure
            || update.input.is_some()
            || turn_started.is_some_and(|at| at != old.last_updated_at);

        let instance = inner.instance(id)?;
        let status = &mut instance.status;
        status.runtime_status = update.runtime_status;
        status.output.clone_from(&update.output);
        status.custom_status.clone_from(&update.custom_status);
        status.failure.clone_from(&update.failure);
        if let Some(input) = &update.input {
            status.input = input.clone();
        }
        if let Some(started) = turn_started {
            status.last_updated_at = started;
        }
        let mut dropped = Vec::new();
        let mut stale_activities = Vec::new();
        if commit.replace_history {
            instance.history.clear();
            instance.inbox.retain(|m| match (m.timer, m.visible_at) {
                (Some(_), Some(at)) => {
                    dropped.push((at, m.id));
                    false
                }
                (Some(_), None) => false,
                _ => true,
            });
            for (seq, record) in instance.activities.drain() {
                if let Some((_, expires)) = record.lease {
                    stale_activities.push((expires, seq));
                }
            }
        }
        instance.history.extend(history);
        for lease in &commit.completed_activities {
            if let Some((_, expires)) = instance.activities.remove(&lease.id).and_then(|a| a.lease)
            {
                stale_activities.push((expires, lease.id));
            }
        }
        if !commit.consumed.is_empty() || !commit.cancelled_timers.is_empty() || finished {
            instance.inbox.retain(|m| {
                let keep = !finished
                    && !commit.consumed.contains(&m.id)
                    && !m
                        .timer
                        .is_some_and(|t| commit.cancelled_timers.contains(&t));
                if !keep {
                    if let Some(at) = m.visible_at {
                        dropped.push((at, m.id));
                    }
                }
                keep
            });
        }
        if finished {
            for (seq, record) in instance.activities.drain() {
                if let Some((_, expires)) = record.lease {
                    stale_activities.push((expires, seq));
                }
            }
        }
        for (at, message) in dropped {
            inner.delayed.remove(&(at, id.clone(), message));
        }
        for (expires, seq) in stale_activities {
            inner.activity_leases.remove(&(expires, id.clone(), seq));
        }
        if !finished {
            for (timer, fired) in commit.timers.iter().zip(timers) {
                inner.push_message(id, fired, Some(timer.fire_at), Some(timer.id));
            }
            let instance = inner.instance(id)?;
            for (task, bytes) in commit.activities.iter().zip(tasks) {
                instance.activities.insert(
                    task.id,
                    ActivityRecord {
                        task: bytes,
                        lease: None,
                    },
                );
            }
            inner
                .activity_queue
                .extend(commit.activities.iter().map(|task| (id.clone(), task.id)));
        }
        for child in commit.sub_instances {
            // `create` only refuses an instance it leaves untouched.
            let _ = inner.create(child);
        }
        for (message, bytes) in commit.messages.iter().zip(messages) {
            let open = inner
                .instances
                .get(&message.instance_id)
                .is_some_and(|i| !i.status.runtime_status.is_finished());
            if open {
                inner.push_message(&message.instance_id, bytes, None, None);
            }
        }
        inner.release(id, None);
        if status_changed {
            inner.notify_status(id);
        }
        drop(inner);
        self.signals.orchestrations.notify_waiters();
        if !commit.activities.is_empty() && !finished {
            self.signals.activities.notify_waiters();
        }
        Ok(())
    }

    async fn abandon_orchestration(
        &self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_lease(id, lease)?;
        inner.release(id, None);
        drop(inner);
        self.signals.orchestrations.notify_waiters();
        Ok(())
    }

    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError> {
        let mut inner = self.lock();
        inner.promote_due(now);
        while let Some((id, seq)) = inner.activity_queue.pop_front() {
            let token = inner.token();
            let expires = now + lease_for;
            let Some(record) = inner
                .instances
                .get_mut(&id)
                .and_then(|i| i.activities.get_mut(&seq))
            else {
                continue;
            };
            if record.lease.is_some() {
                continue;
            }
            record.lease = Some((token, expires));
            let task: ActivityTask = decode(&record.task)?;
            inner.activity_leases.insert((expires, id.clone(), seq));
            return Ok(Some(ActivityWork {
                task,
                lease: ActivityLease {
                    instance_id: id,
                    id: seq,
                    token,
                },
            }));
        }
        Ok(None)
    }

    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Some(instance) = inner.instances.get_mut(&lease.instance_id) else {
            return Ok(()); // purged: nobody waits for the result
        };
        let held = match instance.activities.get(&lease.id) {
            None if instance.status.runtime_status.is_finished() => return Ok(()),
            None => None,
            Some(record) => record.lease,
        };
        let Some((token, expires)) = held.filter(|(token, _)| *token == lease.token) else {
            return Err(StoreError::Conflict {
                id: lease.instance_id.clone(),
                reason: format!("the lease on activity attempt {} was lost", lease.id),
            });
        };
        let _ = token;
        instance.activities.remove(&lease.id);
        inner
            .activity_leases
            .remove(&(expires, lease.instance_id.clone(), lease.id));
        inner.push_message(&lease.instance_id, encode(&result), None, None);
        drop(inner);
        self.signals.orchestrations.notify_waiters();
        Ok(())
    }

    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Some(record) = inner
            .instances
            .get_mut(&lease.instance_id)
            .and_then(|i| i.activities.get_mut(&lease.id))
        else {
            return Ok(());
        };
        if let Some((token, expires)) = record.lease {
            if token == lease.token {
                record.lease = None;
                inner
                    .activity_leases
                    .remove(&(expires, lease.instance_id.clone(), lease.id));
                inner
                    .activity_queue
                    .push_back((lease.instance_id.clone(), lease.id));
            }
        }
        drop(inner);
        self.signals.activities.notify_waiters();
        Ok(())
    }

    async fn status(&self, id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError> {
        let inner = self.lock();
        inner
            .instances
            .get(id)
            .map(|instance| Ok(instance.status.clone()))
            .transpose()
    }

    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let inner = self.lock();
        let candidates = inner.instances.iter().map(|(id, i)| Candidate {
            created_at: i.status.created_at,
            id,
            status: i.status.runtime_status,
            name: &i.status.name,
            record: &i.status,
        });
        let (statuses, continuation) = paging::page(query, candidates)?;
        Ok(InstancePage {
            instances: statuses.into_iter().cloned().collect(),
            continuation,
        })
    }

    async fn purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let instance = inner.instance(id)?;
        if !instance.status.runtime_status.is_finished() {
            return Err(StoreError::NotFinished(id.clone()));
        }
        inner.remove(id);
        inner.notify_status(id);
        inner.watchers.remove(id);
        Ok(())
    }

    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError> {
        let inner = self.lock();
        Ok([
            inner.delayed.first().map(|d| d.0),
            inner.leases.first().map(|l| l.0),
            inner.activity_leases.first().map(|l| l.0),
        ]
        .into_iter()
        .flatten()
        .min())
    }

    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        inner.promote_due(now);
        let inner = &*inner;
        let instance_ready = inner.ready.iter().any(|id| {
            inner.instances.get(id).is_some_and(|i| {
                i.lease.is_none()
                    && i.inbox
                        .iter()
                        .any(|m| m.visible_at.is_none_or(|at| at <= now))
            })
        });
        let activity_ready = inner.activity_queue.iter().any(|(id, seq)| {
            inner
                .instances
                .get(id)
                .and_then(|i| i.activities.get(seq))
                .is_some_and(|a| a.lease.is_none())
        });
        Ok(instance_ready || activity_ready)
    }

    fn signals(&self) -> Arc<WorkSignals> {
        Arc::clone(&self.signals)
    }

    fn watch_status(&self, id: &InstanceId) -> watch::Receiver<u64> {
        let mut inner = self.lock();
        inner
            .watchers
            .entry(id.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}
