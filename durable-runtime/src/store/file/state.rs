//! The live state: what the log's records build, and the queues and leases (never logged: a
//! restarted process owns nothing) that hand work out. Everything is in memory except the
//! histories: an instance keeps its history's length and where its events are in the files
//! (the events of a turn not yet written are kept in memory until the writer places them).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::io::ReadableFile;
use super::record::{
    nanos, raw, time, CommitRecord, CreateRecord, Dec, Enc, Events, InstanceImage, Raw, Record,
    IMAGE,
};
use crate::history::{Event, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::store::{
    ActivityLease, ActivityTask, Delivery, InstanceStatus, LeaseToken, MessageId, NewInstance,
    OrchestrationWork, RuntimeStatus, StoreError, TurnCommit,
};

/// Log sequence number: the position of a record, counted from 1 in this process (records
/// recovered at open count as 0: they are durable).
pub(crate) type Lsn = u64;

#[derive(Default)]
pub(crate) struct State {
    /// The last record's position.
    pub(crate) last_lsn: Lsn,
    next_token: LeaseToken,
    /// Numbers the generations of histories (a new instance, a continue-as-new), so that a
    /// checkpoint replaces the file positions of a history only if it is still the one imaged.
    next_generation: u64,
    pub(crate) instances: HashMap<InstanceId, Instance>,
    /// Unleased instances that may have deliverable messages.
    ready: VecDeque<InstanceId>,
    /// Messages not deliverable yet (timers, scheduled starts), by due time.
    delayed: BTreeSet<(SystemTime, InstanceId, MessageId)>,
    /// Instance leases, by expiry.
    leases: BTreeSet<(SystemTime, InstanceId)>,
    activity_queue: VecDeque<(InstanceId, u64)>,
    activity_leases: BTreeSet<(SystemTime, InstanceId, u64)>,
    watchers: HashMap<InstanceId, watch::Sender<u64>>,
    /// Watchers of statuses the last record changed: told once it is durable.
    pub(crate) changed: Vec<watch::Sender<u64>>,
}

/// Where some of a history's events are.
#[derive(Clone)]
pub(crate) enum Part {
    /// The events of a turn whose record (at `lsn`) the writer has not placed yet.
    Mem { lsn: Lsn, events: Arc<Vec<Raw>> },
    /// `count` events, encoded as strings, in `len` bytes at `offset` of `file`.
    Disk {
        file: ReadableFile,
        offset: u64,
        len: u32,
        count: u32,
    },
}

/// The file a record or checkpoint batch was read from, and where its payload starts.
pub(crate) struct Source {
    pub(crate) file: ReadableFile,
    pub(crate) base: u64,
}

/// Where the writer placed the events of the turn at `lsn` of `id`.
pub(crate) struct Placed {
    pub(crate) id: InstanceId,
    pub(crate) lsn: Lsn,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) count: u32,
}

/// Where a checkpoint put the first `parts` parts of a history of generation `generation`.
pub(crate) struct Imaged {
    id: InstanceId,
    generation: u64,
    parts: usize,
    offset: u64,
    len: u32,
    count: u32,
}

fn part(events: Events, lsn: Lsn, source: Option<&Source>) -> Result<Option<Part>, StoreError> {
    Ok(match events {
        Events::Mem(events) if events.is_empty() => None,
        Events::Mem(events) => Some(Part::Mem {
            lsn,
            events: Arc::new(events),
        }),
        Events::At { count: 0, .. } => None,
        Events::At { offset, len, count } => {
            let source = source
                .ok_or_else(|| StoreError::Corrupt("events read back without their file".into()))?;
            Some(Part::Disk {
                file: Arc::clone(&source.file),
                offset: source.base + offset as u64,
                len: len as u32,
                count: count as u32,
            })
        }
    })
}

/// Reads a history's events (from memory and from the page cache or disk).
pub(crate) fn read_history(parts: &[Part]) -> Result<Vec<HistoryEvent>, StoreError> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for part in parts {
        match part {
            Part::Mem { events, .. } => {
                for event in events.iter() {
                    out.push(decode(event)?);
                }
            }
            Part::Disk {
                file,
                offset,
                len,
                count,
            } => {
                buf.resize(*len as usize, 0);
                file.read_exact_at(&mut buf, *offset)
                    .map_err(|e| StoreError::Unavailable(format!("cannot read a history: {e}")))?;
                let mut d = Dec::new(&buf);
                for _ in 0..*count {
                    let event = d.raw().map_err(StoreError::Corrupt)?;
                    out.push(decode(&event)?);
                }
            }
        }
    }
    Ok(out)
}

pub(crate) struct Instance {
    /// Where the history's events are, in order.
    history: Vec<Part>,
    history_len: u64,
    generation: u64,
    inbox: Vec<Message>,
    next_message: MessageId,
    pub(crate) runtime_status: RuntimeStatus,
    pub(crate) name: String,
    pub(crate) created_at: SystemTime,
    pub(crate) status: Raw,
    lease: Option<(LeaseToken, SystemTime)>,
    queued: bool,
    activities: HashMap<u64, ActivityRecord>,
    /// The record that last changed this instance's status: readers wait until it is durable.
    pub(crate) lsn: Lsn,
}

struct Message {
    id: MessageId,
    visible_at: Option<SystemTime>,
    /// Deliverable: sent without a time, or its time has come. Kept on the message so a due
    /// timer that meets a leased instance is delivered once the lease is released.
    visible: bool,
    timer: Option<u64>,
    event: Raw,
}

struct ActivityRecord {
    task: Raw,
    lease: Option<(LeaseToken, SystemTime)>,
    /// The record that scheduled it: the attempt is handed out only once that is durable.
    lsn: Lsn,
}

/// What applying a record made ready, to signal workers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Woken {
    pub(crate) orchestrations: bool,
    pub(crate) activities: bool,
}

fn decode<T: serde::de::DeserializeOwned>(raw: &Raw) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn conflict(id: &InstanceId, reason: impl Into<String>) -> StoreError {
    StoreError::Conflict {
        id: id.clone(),
        reason: reason.into(),
    }
}

impl CreateRecord {
    pub(crate) fn new(new: &NewInstance) -> Self {
        CreateRecord {
            id: new.status.instance_id.clone(),
            name: new.status.name.clone(),
            created_at: nanos(new.status.created_at),
            runtime_status: new.status.runtime_status,
            status: raw(&new.status),
            start: raw(&new.start),
            at: new.start_at.map(nanos),
            replace: new.replace_finished,
        }
    }
}

impl State {
    pub(crate) fn instance(&self, id: &InstanceId) -> Result<&Instance, StoreError> {
        self.instances
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    fn token(&mut self) -> LeaseToken {
        self.next_token += 1;
        self.next_token
    }

    // ----- checks of the live calls: they change nothing -------------------------------

    pub(crate) fn check_create(&self, new: &NewInstance) -> Result<(), StoreError> {
        let id = &new.status.instance_id;
        match self.instances.get(id) {
            Some(existing) if !(new.replace_finished && existing.runtime_status.is_finished()) => {
                Err(StoreError::AlreadyExists(id.clone()))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn check_send(&self, id: &InstanceId) -> Result<(), StoreError> {
        let instance = self.instance(id)?;
        if instance.runtime_status.is_finished() {
            return Err(StoreError::Finished {
                id: id.clone(),
                status: instance.runtime_status,
            });
        }
        Ok(())
    }

    fn check_lease(&self, id: &InstanceId, lease: LeaseToken) -> Result<&Instance, StoreError> {
        let instance = self.instance(id)?;
        match instance.lease {
            Some((token, _)) if token == lease => Ok(instance),
            _ => Err(conflict(
                id,
                "the instance lease was lost to another worker",
            )),
        }
    }

    /// Checks a turn's fencing and builds its record, the new status computed.
    pub(crate) fn prepare_commit(&self, commit: &TurnCommit) -> Result<CommitRecord, StoreError> {
        let id = &commit.instance_id;
        let instance = self.check_lease(id, commit.lease)?;
        if instance.history_len != commit.expected_history_len {
            return Err(conflict(
                id,
                format!(
                    "the history has {} events, the turn expected {}",
                    instance.history_len, commit.expected_history_len
                ),
            ));
        }
        for lease in &commit.completed_activities {
            let held = instance
                .activities
                .get(&lease.id)
                .and_then(|a| a.lease)
                .is_some_and(|(token, _)| token == lease.token);
            if !held {
                return Err(conflict(
                    id,
                    format!("the lease on activity attempt {} was lost", lease.id),
                ));
            }
        }
        let old: InstanceStatus = decode(&instance.status)?;
        let status = InstanceStatus {
            runtime_status: commit.status.runtime_status,
            output: commit.status.output.clone(),
            custom_status: commit.status.custom_status.clone(),
            failure: commit.status.failure.clone(),
            input: commit.status.input.clone().unwrap_or(old.input),
            last_updated_at: commit
                .history
                .iter()
                .find_map(|e| match e.event {
                    Event::OrchestratorStarted { timestamp } => Some(timestamp),
                    _ => None,
                })
                .unwrap_or(old.last_updated_at),
            ..old
        };
        Ok(CommitRecord {
            id: id.clone(),
            history: Events::Mem(commit.history.iter().map(raw).collect()),
            replace_history: commit.replace_history,
            consumed: commit.consumed.clone(),
            completed: commit.completed_activities.iter().map(|l| l.id).collect(),
            activities: commit.activities.iter().map(|t| (t.id, raw(t))).collect(),
            timers: commit
                .timers
                .iter()
                .map(|t| (t.id, nanos(t.fire_at)))
                .collect(),
            cancelled: commit.cancelled_timers.clone(),
            subs: commit.sub_instances.iter().map(CreateRecord::new).collect(),
            messages: commit
                .messages
                .iter()
                .map(|m| (m.instance_id.clone(), raw(&m.event)))
                .collect(),
            runtime_status: status.runtime_status,
            status: raw(&status),
        })
    }

    /// Checks an activity completion. `Ok(false)`: nothing to record (the instance is gone
    /// or finished, so the result is dropped).
    pub(crate) fn check_complete(&self, lease: &ActivityLease) -> Result<bool, StoreError> {
        let Some(instance) = self.instances.get(&lease.instance_id) else {
            return Ok(false);
        };
        let held = match instance.activities.get(&lease.id) {
            None if instance.runtime_status.is_finished() => return Ok(false),
            None => None,
            Some(record) => record.lease,
        };
        if held.is_some_and(|(token, _)| token == lease.token) {
            Ok(true)
        } else {
            Err(conflict(
                &lease.instance_id,
                format!("the lease on activity attempt {} was lost", lease.id),
            ))
        }
    }

    pub(crate) fn check_purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        if !self.instance(id)?.runtime_status.is_finished() {
            return Err(StoreError::NotFinished(id.clone()));
        }
        Ok(())
    }

    // ----- applying records: the same code live and on recovery --------------------------

    /// Applies one record. Live calls have checked it; on recovery it was checked when first
    /// applied, so only a damaged log can make it fail.
    pub(crate) fn apply(
        &mut self,
        record: Record,
        lsn: Lsn,
        source: Option<&Source>,
    ) -> Result<Woken, StoreError> {
        let mut woken = Woken::default();
        match record {
            Record::Create(create) => {
                self.apply_create(create, lsn);
                woken.orchestrations = true;
            }
            Record::Send { id, event, at } => {
                self.push_message(&id, event, at.map(time), None);
                woken.orchestrations = true;
            }
            Record::Commit(commit) => {
                woken = self.apply_commit(*commit, lsn, source)?;
            }
            Record::Complete { id, seq, event } => {
                self.drop_activity(&id, seq);
                self.push_message(&id, event, None, None);
                woken.orchestrations = true;
            }
            Record::Purge { id } => {
                self.remove(&id);
                self.notify_status(&id);
                self.watchers.remove(&id);
            }
        }
        Ok(woken)
    }

    fn apply_create(&mut self, create: CreateRecord, lsn: Lsn) {
        let id = create.id;
        // Only a replacing create finds an instance here: the check allowed it.
        self.remove(&id);
        self.next_generation += 1;
        self.instances.insert(
            id.clone(),
            Instance {
                history: Vec::new(),
                history_len: 0,
                generation: self.next_generation,
                inbox: Vec::new(),
                next_message: 0,
                runtime_status: create.runtime_status,
                name: create.name,
                created_at: time(create.created_at),
                status: create.status,
                lease: None,
                queued: false,
                activities: HashMap::new(),
                lsn,
            },
        );
        self.push_message(&id, create.start, create.at.map(time), None);
        self.notify_status(&id);
    }

    fn apply_commit(
        &mut self,
        commit: CommitRecord,
        lsn: Lsn,
        source: Option<&Source>,
    ) -> Result<Woken, StoreError> {
        let id = &commit.id;
        let count = commit.history.count() as u64;
        let events = part(commit.history, lsn, source)?;
        self.next_generation += 1;
        let generation = self.next_generation;
        let finished = commit.runtime_status.is_finished();
        let instance = self.instances.get_mut(id).ok_or_else(|| {
            StoreError::Corrupt(format!("a turn of `{id}`, which does not exist"))
        })?;
        let mut dropped = Vec::new();
        let mut stale = Vec::new();
        if commit.replace_history {
            // A new generation: the old one's timers and activity attempts go with it;
            // messages already sent stay.
            instance.history = events.into_iter().collect();
            instance.history_len = count;
            instance.generation = generation;
            instance.inbox.retain(|m| {
                if m.timer.is_some() {
                    if let Some(at) = m.visible_at {
                        dropped.push((at, m.id));
                    }
                }
                m.timer.is_none()
            });
            stale.extend(instance.activities.keys().copied());
        } else {
            instance.history.extend(events);
            instance.history_len += count;
        }
        let status_changed = instance.status != commit.status;
        instance.runtime_status = commit.runtime_status;
        instance.status = commit.status;
        if status_changed {
            instance.lsn = lsn;
        }
        instance.inbox.retain(|m| {
            let keep = !finished
                && !commit.consumed.contains(&m.id)
                && !m.timer.is_some_and(|t| commit.cancelled.contains(&t));
            if !keep {
                if let Some(at) = m.visible_at {
                    dropped.push((at, m.id));
                }
            }
            keep
        });
        for (at, message) in dropped {
            self.delayed.remove(&(at, id.clone(), message));
        }
        for seq in commit.completed.iter().chain(&stale) {
            self.drop_activity(id, *seq);
        }
        let mut woken = Woken {
            orchestrations: true,
            activities: false,
        };
        if finished {
            let instance = self.instances.get_mut(id).expect("checked above");
            let stale: Vec<u64> = instance.activities.keys().copied().collect();
            for seq in stale {
                self.drop_activity(id, seq);
            }
        } else {
            for (timer, at) in commit.timers {
                let fire_at = time(at);
                let fired = raw(&HistoryEvent::new(Event::TimerFired { id: timer, fire_at }));
                self.push_message(id, fired, Some(fire_at), Some(timer));
            }
            let instance = self.instances.get_mut(id).expect("checked above");
            for (seq, task) in commit.activities {
                instance.activities.insert(
                    seq,
                    ActivityRecord {
                        task,
                        lease: None,
                        lsn,
                    },
                );
                self.activity_queue.push_back((id.clone(), seq));
                woken.activities = true;
            }
        }
        for child in commit.subs {
            // As `create_instance` would: an existing instance stays unless it is finished
            // and the child replaces finished ones.
            let create = self
                .instances
                .get(&child.id)
                .is_none_or(|e| child.replace && e.runtime_status.is_finished());
            if create {
                self.apply_create(child, lsn);
            }
        }
        for (to, event) in commit.messages {
            let open = self
                .instances
                .get(&to)
                .is_some_and(|i| !i.runtime_status.is_finished());
            if open {
                self.push_message(&to, event, None, None);
            }
        }
        self.release(id);
        if status_changed {
            self.notify_status(id);
        }
        Ok(woken)
    }

    fn drop_activity(&mut self, id: &InstanceId, seq: u64) {
        let Some(record) = self
            .instances
            .get_mut(id)
            .and_then(|i| i.activities.remove(&seq))
        else {
            return;
        };
        if let Some((_, expires)) = record.lease {
            self.activity_leases.remove(&(expires, id.clone(), seq));
        }
    }

    fn push_message(
        &mut self,
        id: &InstanceId,
        event: Raw,
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
            visible: visible_at.is_none(),
            timer,
            event,
        });
        match visible_at {
            Some(at) => {
                self.delayed.insert((at, id.clone(), message_id));
            }
            None => self.make_ready(id),
        }
    }

    fn make_ready(&mut self, id: &InstanceId) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if !instance.queued && instance.lease.is_none() && instance.inbox.iter().any(|m| m.visible)
        {
            instance.queued = true;
            self.ready.push_back(id.clone());
        }
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
                self.changed.push(sender.clone());
            }
        }
    }

    pub(crate) fn watch(&mut self, id: &InstanceId) -> watch::Receiver<u64> {
        self.watchers
            .entry(id.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    // ----- leases: in memory only --------------------------------------------------------

    /// Makes due timers deliverable and expired leases free.
    pub(crate) fn promote_due(&mut self, now: SystemTime) {
        while let Some(first) = self.delayed.first() {
            if first.0 > now {
                break;
            }
            let (_, id, message_id) = self.delayed.pop_first().expect("first exists");
            if let Some(instance) = self.instances.get_mut(&id) {
                if let Some(m) = instance.inbox.iter_mut().find(|m| m.id == message_id) {
                    m.visible = true;
                }
            }
            self.make_ready(&id);
        }
        while let Some(first) = self.leases.first() {
            if first.0 > now {
                break;
            }
            let (_, id) = self.leases.pop_first().expect("first exists");
            if let Some(instance) = self.instances.get_mut(&id) {
                instance.lease = None;
            }
            self.make_ready(&id);
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
        let instance = self
            .instances
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let mut messages = Vec::new();
        for message in &mut instance.inbox {
            if message.visible || message.visible_at.is_some_and(|at| at <= now) {
                message.visible = true;
                messages.push(Delivery {
                    id: message.id,
                    event: decode(&message.event)?,
                });
            }
        }
        instance.lease = Some((token, expires));
        instance.queued = false;
        let history_len = instance.history_len;
        self.leases.insert((expires, id.clone()));
        Ok(OrchestrationWork {
            instance_id: id.clone(),
            lease: token,
            history_len,
            messages,
        })
    }

    fn release(&mut self, id: &InstanceId) {
        if let Some(instance) = self.instances.get_mut(id) {
            if let Some((_, expires)) = instance.lease.take() {
                self.leases.remove(&(expires, id.clone()));
            }
        }
        self.make_ready(id);
    }

    pub(crate) fn fetch_orchestration(
        &mut self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.promote_due(now);
        while let Some(id) = self.ready.pop_front() {
            let Some(instance) = self.instances.get_mut(&id) else {
                continue;
            };
            instance.queued = false;
            if instance.lease.is_some() || !instance.inbox.iter().any(|m| m.visible) {
                continue;
            }
            return self.lease(&id, now, lease_for).map(Some);
        }
        Ok(None)
    }

    pub(crate) fn lease_orchestration(
        &mut self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.promote_due(now);
        let instance = self.instance(id)?;
        if instance.lease.is_some() || instance.runtime_status.is_finished() {
            return Ok(None);
        }
        self.lease(id, now, lease_for).map(Some)
    }

    pub(crate) fn abandon_orchestration(
        &mut self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        self.check_lease(id, lease)?;
        self.release(id);
        Ok(())
    }

    /// Leases a ready attempt; also returns the position of the record that scheduled it.
    pub(crate) fn fetch_activity(
        &mut self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<(ActivityTask, ActivityLease, Lsn)>, StoreError> {
        self.promote_due(now);
        while let Some((id, seq)) = self.activity_queue.pop_front() {
            let token = self.token();
            let expires = now + lease_for;
            let Some(record) = self
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
            let lsn = record.lsn;
            let task: ActivityTask = decode(&record.task)?;
            self.activity_leases.insert((expires, id.clone(), seq));
            let lease = ActivityLease {
                instance_id: id,
                id: seq,
                token,
            };
            return Ok(Some((task, lease, lsn)));
        }
        Ok(None)
    }

    /// Releases an activity lease; `true` if it was held (the attempt is queued again).
    pub(crate) fn abandon_activity(&mut self, lease: &ActivityLease) -> bool {
        let Some(record) = self
            .instances
            .get_mut(&lease.instance_id)
            .and_then(|i| i.activities.get_mut(&lease.id))
        else {
            return false;
        };
        match record.lease {
            Some((token, expires)) if token == lease.token => {
                record.lease = None;
                self.activity_leases
                    .remove(&(expires, lease.instance_id.clone(), lease.id));
                self.activity_queue
                    .push_back((lease.instance_id.clone(), lease.id));
                true
            }
            _ => false,
        }
    }

    pub(crate) fn next_wakeup(&self) -> Option<SystemTime> {
        [
            self.delayed.first().map(|d| d.0),
            self.leases.first().map(|l| l.0),
            self.activity_leases.first().map(|l| l.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn has_work(&mut self, now: SystemTime) -> bool {
        self.promote_due(now);
        let instance_ready = self.ready.iter().any(|id| {
            self.instances
                .get(id)
                .is_some_and(|i| i.lease.is_none() && i.inbox.iter().any(|m| m.visible))
        });
        let activity_ready = self.activity_queue.iter().any(|(id, seq)| {
            self.instances
                .get(id)
                .and_then(|i| i.activities.get(seq))
                .is_some_and(|a| a.lease.is_none())
        });
        instance_ready || activity_ready
    }

    pub(crate) fn decode_status(instance: &Instance) -> Result<InstanceStatus, StoreError> {
        decode(&instance.status)
    }

    /// Where an instance's history is, to read it without holding the state.
    pub(crate) fn history(&self, id: &InstanceId) -> Result<Vec<Part>, StoreError> {
        Ok(self.instance(id)?.history.clone())
    }

    /// Records where the writer put turns' events, dropping their copies in memory.
    pub(crate) fn place(&mut self, placed: impl IntoIterator<Item = Placed>, file: &ReadableFile) {
        for p in placed {
            let Some(instance) = self.instances.get_mut(&p.id) else {
                continue;
            };
            // Not found: the history was replaced or the instance purged meanwhile.
            if let Some(slot) = instance
                .history
                .iter_mut()
                .find(|part| matches!(part, Part::Mem { lsn, .. } if *lsn == p.lsn))
            {
                *slot = Part::Disk {
                    file: Arc::clone(file),
                    offset: p.offset,
                    len: p.len,
                    count: p.count,
                };
            }
        }
    }

    /// Points histories at the checkpoint that now holds them, so the segments it covers
    /// can go.
    pub(crate) fn rebase(&mut self, imaged: Vec<Imaged>, file: &ReadableFile) {
        for i in imaged {
            let Some(instance) = self.instances.get_mut(&i.id) else {
                continue;
            };
            if instance.generation != i.generation || instance.history.len() < i.parts {
                continue;
            }
            let whole = Part::Disk {
                file: Arc::clone(file),
                offset: i.offset,
                len: i.len,
                count: i.count,
            };
            instance.history.splice(..i.parts, [whole]);
        }
    }

    // ----- checkpoints -------------------------------------------------------------------

    /// Encodes every instance's image, calling `chunk` with about `chunk_size` bytes at a
    /// time; `chunk` returns the file offset at which it puts them. Returns where each
    /// history went.
    pub(crate) fn image(
        &self,
        mut chunk: impl FnMut(&[u8]) -> u64,
        chunk_size: usize,
    ) -> io::Result<Vec<Imaged>> {
        let mut buf = Vec::with_capacity(chunk_size + 4096);
        let mut imaged = Vec::with_capacity(self.instances.len());
        // Those of `imaged` whose offsets are still relative to `buf`.
        let mut in_buf = 0;
        let mut read = Vec::new();
        for (id, instance) in &self.instances {
            let mut e = Enc(&mut buf);
            e.u8(IMAGE);
            e.str(id);
            e.str(&instance.name);
            e.u64(nanos(instance.created_at));
            e.status(instance.runtime_status);
            e.str(&instance.status);
            e.len(instance.history_len as usize);
            let start = e.0.len();
            for part in &instance.history {
                match part {
                    Part::Mem { events, .. } => {
                        for event in events.iter() {
                            e.str(event);
                        }
                    }
                    Part::Disk {
                        file, offset, len, ..
                    } => {
                        read.resize(*len as usize, 0);
                        file.read_exact_at(&mut read, *offset)?;
                        e.0.extend_from_slice(&read);
                    }
                }
            }
            let len = e.0.len() - start;
            if !instance.history.is_empty() {
                imaged.push(Imaged {
                    id: id.clone(),
                    generation: instance.generation,
                    parts: instance.history.len(),
                    offset: start as u64,
                    len: len as u32,
                    count: instance.history_len as u32,
                });
            }
            e.len(instance.inbox.len());
            for m in &instance.inbox {
                e.u64(m.id);
                e.opt(m.visible_at.map(nanos));
                e.opt(m.timer);
                e.str(&m.event);
            }
            e.u64(instance.next_message);
            e.pairs(instance.activities.iter().map(|(seq, a)| (*seq, &*a.task)));
            if buf.len() >= chunk_size {
                let base = chunk(&buf);
                for i in &mut imaged[in_buf..] {
                    i.offset += base;
                }
                in_buf = imaged.len();
                buf.clear();
            }
        }
        if !buf.is_empty() {
            let base = chunk(&buf);
            for i in &mut imaged[in_buf..] {
                i.offset += base;
            }
        }
        Ok(imaged)
    }

    /// Restores one instance from a checkpoint.
    pub(crate) fn restore(
        &mut self,
        image: InstanceImage,
        source: &Source,
    ) -> Result<(), StoreError> {
        let id = image.id;
        let history_len = image.history.count() as u64;
        let history = part(image.history, 0, Some(source))?.into_iter().collect();
        self.next_generation += 1;
        let mut inbox = Vec::with_capacity(image.inbox.len());
        for m in image.inbox {
            let visible_at = m.at.map(time);
            if let Some(at) = visible_at {
                self.delayed.insert((at, id.clone(), m.id));
            }
            inbox.push(Message {
                id: m.id,
                visible_at,
                visible: visible_at.is_none(),
                timer: m.timer,
                event: m.event,
            });
        }
        let mut activities = HashMap::with_capacity(image.activities.len());
        for (seq, task) in image.activities {
            activities.insert(
                seq,
                ActivityRecord {
                    task,
                    lease: None,
                    lsn: 0,
                },
            );
            self.activity_queue.push_back((id.clone(), seq));
        }
        self.instances.insert(
            id.clone(),
            Instance {
                history,
                history_len,
                generation: self.next_generation,
                inbox,
                next_message: image.next_message,
                runtime_status: image.runtime_status,
                name: image.name,
                created_at: time(image.created_at),
                status: image.status,
                lease: None,
                queued: false,
                activities,
                lsn: 0,
            },
        );
        self.make_ready(&id);
        Ok(())
    }
}
