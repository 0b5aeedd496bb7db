//! The live state, all in memory: what the log's records build, and the queues and leases
//! (never logged: a restarted process owns nothing) that hand work out.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::record::{
    nanos, raw, time, CommitRecord, CreateRecord, Enc, InstanceImage, Raw, Record, IMAGE,
};
use crate::history::{Event, HistoryEvent};
use crate::store::{
    ActivityLease, ActivityTask, Delivery, InstanceStatus, LeaseToken, MessageId, NewInstance,
    OrchestrationWork, RuntimeStatus, StoreError, TurnCommit,
};
use crate::InstanceId;

/// Log sequence number: the position of a record, counted from 1 in this process (records
/// recovered at open count as 0: they are durable).
pub(crate) type Lsn = u64;

#[derive(Default)]
pub(crate) struct State {
    /// The last record's position.
    pub(crate) last_lsn: Lsn,
    next_token: LeaseToken,
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

pub(crate) struct Instance {
    pub(crate) history: Vec<Raw>,
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
        if instance.history.len() as u64 != commit.expected_version {
            return Err(conflict(
                id,
                format!(
                    "the history has {} events, the turn expected {}",
                    instance.history.len(),
                    commit.expected_version
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
            history: commit.history.iter().map(raw).collect(),
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
    pub(crate) fn apply(&mut self, record: Record, lsn: Lsn) -> Result<Woken, StoreError> {
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
                woken = self.apply_commit(*commit, lsn)?;
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
        self.instances.insert(
            id.clone(),
            Instance {
                history: Vec::new(),
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

    fn apply_commit(&mut self, commit: CommitRecord, lsn: Lsn) -> Result<Woken, StoreError> {
        let id = &commit.id;
        let finished = commit.runtime_status.is_finished();
        let instance = self.instances.get_mut(id).ok_or_else(|| {
            StoreError::Corrupt(format!("a turn of `{id}`, which does not exist"))
        })?;
        let mut dropped = Vec::new();
        let mut stale = Vec::new();
        if commit.replace_history {
            // A new generation: the old one's timers and activity attempts go with it;
            // messages already sent stay.
            instance.history = commit.history;
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
            instance.history.extend(commit.history);
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
        let version = instance.history.len() as u64;
        self.leases.insert((expires, id.clone()));
        Ok(OrchestrationWork {
            instance_id: id.clone(),
            lease: token,
            version,
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

    pub(crate) fn decode_history(instance: &Instance) -> Result<Vec<HistoryEvent>, StoreError> {
        instance.history.iter().map(decode).collect()
    }

    // ----- checkpoints -------------------------------------------------------------------

    /// Encodes every instance's image, calling `chunk` with about `chunk_size` bytes at a time.
    pub(crate) fn image(&self, mut chunk: impl FnMut(&[u8]), chunk_size: usize) {
        let mut buf = Vec::with_capacity(chunk_size + 4096);
        for (id, instance) in &self.instances {
            let mut e = Enc(&mut buf);
            e.u8(IMAGE);
            e.str(id);
            e.str(&instance.name);
            e.u64(nanos(instance.created_at));
            e.status(instance.runtime_status);
            e.str(&instance.status);
            e.strs(instance.history.iter().map(|r| &**r));
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
                chunk(&buf);
                buf.clear();
            }
        }
        if !buf.is_empty() {
            chunk(&buf);
        }
    }

    /// Restores one instance from a checkpoint.
    pub(crate) fn restore(&mut self, image: InstanceImage) {
        let id = image.id;
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
                history: image.history,
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
    }
}
