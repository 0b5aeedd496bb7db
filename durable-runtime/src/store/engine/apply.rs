//! Changes: the checks that refuse what the contract refuses, and the code that applies a
//! checked change (live, and again on the file store's recovery).

use std::time::SystemTime;

use foldhash::{HashMap, HashMapExt};

use super::{
    raw_event, Attempt, Commit, Create, Engine, Fence, History, Image, Instance, Lsn, Raw, Woken,
};
use crate::history::{Event, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::store::{ActivityLease, LeaseToken, StoreError};

fn conflict(id: &InstanceId, reason: impl Into<String>) -> StoreError {
    StoreError::Conflict {
        id: id.clone(),
        reason: reason.into(),
    }
}

impl<H: History> Engine<H> {
    // ----- checks: they change nothing ---------------------------------------------------

    pub(crate) fn check_create(
        &self,
        id: &InstanceId,
        replace_finished: bool,
    ) -> Result<(), StoreError> {
        match self.instances.get(id) {
            Some(existing)
                if !(replace_finished && existing.status.runtime_status().is_finished()) =>
            {
                Err(StoreError::AlreadyExists(id.clone()))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn check_send(&self, id: &InstanceId) -> Result<(), StoreError> {
        let status = self.instance(id)?.status.runtime_status();
        if status.is_finished() {
            return Err(StoreError::Finished {
                id: id.clone(),
                status,
            });
        }
        Ok(())
    }

    /// The instance, if `lease` is its current lease.
    pub(crate) fn check_lease(
        &self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<&Instance<H>, StoreError> {
        let instance = self.instance(id)?;
        match instance.lease {
            Some((token, _)) if token == lease => Ok(instance),
            #[cfg(feature = "__mutations")]
            _ if crate::store::mutations::stale_lease() => Ok(instance),
            _ => Err(conflict(
                id,
                "the instance lease was lost to another worker",
            )),
        }
    }

    /// Checks a turn's fences: its lease, its expected history length, and the leases of
    /// the attempts whose results it delivers. Returns the instance.
    pub(crate) fn check_commit(
        &self,
        id: &InstanceId,
        fence: &Fence,
    ) -> Result<&Instance<H>, StoreError> {
        let instance = self.check_lease(id, fence.lease)?;
        let (len, expected) = (instance.history.event_count(), fence.expected_history_len);
        if len != expected {
            return Err(conflict(
                id,
                format!("the history has {len} events, the turn expected {expected}"),
            ));
        }
        for lease in &fence.completed {
            let held = instance
                .attempts
                .get(&lease.id)
                .is_some_and(|a| a.token == lease.token);
            #[cfg(feature = "__mutations")]
            let held = held
                || (crate::store::mutations::stale_lease()
                    && instance.attempts.contains_key(&lease.id));
            if !held {
                return Err(conflict(
                    id,
                    format!("the lease on activity attempt {} was lost", lease.id),
                ));
            }
        }
        Ok(instance)
    }

    /// Checks an activity completion. `Ok(false)`: nothing to apply (the instance is gone or
    /// finished, so the result is dropped).
    pub(crate) fn check_complete(&self, lease: &ActivityLease) -> Result<bool, StoreError> {
        let Some(instance) = self.instances.get(&lease.instance_id) else {
            return Ok(false);
        };
        // The last lease taken decides, expired or not: a result that arrives late is
        // accepted as long as nobody has taken the attempt since.
        let held = match instance.attempts.get(&lease.id) {
            None if instance.status.runtime_status().is_finished() => return Ok(false),
            None => false,
            Some(attempt) => attempt.token == lease.token,
        };
        #[cfg(feature = "__mutations")]
        if crate::store::mutations::stale_lease() && instance.attempts.contains_key(&lease.id) {
            return Ok(true);
        }
        if held {
            Ok(true)
        } else {
            Err(conflict(
                &lease.instance_id,
                format!("the lease on activity attempt {} was lost", lease.id),
            ))
        }
    }

    pub(crate) fn check_purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        if !self.instance(id)?.status.runtime_status().is_finished() {
            return Err(StoreError::NotFinished(id.clone()));
        }
        Ok(())
    }

    // ----- applying checked changes ------------------------------------------------------

    /// Creates an instance (replacing a finished one, if the check allowed it).
    pub(crate) fn create(&mut self, create: Create, at: Lsn) -> Woken {
        let id = create.status.instance_id().clone();
        self.remove(&id);
        self.instances.insert(
            id.clone(),
            Instance {
                status: create.status,
                status_lsn: at,
                history: H::begin(at),
                inbox: Vec::new(),
                next_message: 0,
                lease: None,
                queued: false,
                attempts: HashMap::new(),
            },
        );
        self.push_message(&id, create.start, create.start_at, None);
        self.notify_status(&id);
        Woken::ORCHESTRATIONS
    }

    /// Appends `event` to the inbox of `id`, deliverable from `visible_at`.
    pub(crate) fn send(
        &mut self,
        id: &InstanceId,
        event: Raw,
        visible_at: Option<SystemTime>,
    ) -> Woken {
        self.push_message(id, event, visible_at, None);
        Woken::ORCHESTRATIONS
    }

    /// Applies a turn and releases its lease. Fails only for an instance that does not exist
    /// (never after its check: on recovery, a damaged log).
    pub(crate) fn commit(&mut self, commit: Commit<H::Turn>, at: Lsn) -> Result<Woken, StoreError> {
        let Commit {
            id,
            history,
            replace_history,
            consumed,
            completed,
            activities,
            timers,
            cancelled,
            subs,
            messages,
            status,
        } = commit;
        let instance = self.instances.get_mut(&id).ok_or_else(|| {
            StoreError::Corrupt(format!("a turn of `{id}`, which does not exist"))
        })?;
        let status_changed = status.apply(&mut instance.status)?;
        if status_changed {
            instance.status_lsn = at;
        }
        let finished = instance.status.runtime_status().is_finished();

        // The instance's own changes, under one lookup; the queues it is in follow.
        let mut dropped = Vec::new();
        if replace_history {
            // A new generation: the old one's timers and attempts go with it; messages
            // already sent stay.
            instance.history = H::begin(at);
            instance.inbox.retain(|m| {
                if m.timer.is_none() {
                    return true;
                }
                dropped.extend(m.visible_at.map(|due| (due, m.id)));
                false
            });
        }
        instance.history.append_turn(history);
        if !consumed.is_empty() || !cancelled.is_empty() || finished {
            instance.inbox.retain(|m| {
                let keep = !finished
                    && !consumed.contains(&m.id)
                    && !m.timer.is_some_and(|t| cancelled.contains(&t));
                if !keep {
                    dropped.extend(m.visible_at.map(|due| (due, m.id)));
                }
                keep
            });
        }
        for (due, message) in dropped {
            self.delayed.remove(&(due, id.clone(), message));
        }
        let mut stale = |seq: u64, attempt: Attempt| {
            if let Some(expires) = attempt.expires {
                self.activity_leases.remove(&(expires, id.clone(), seq));
            }
        };
        if replace_history || finished {
            for (seq, attempt) in instance.attempts.drain() {
                stale(seq, attempt);
            }
        } else {
            for seq in completed {
                if let Some(attempt) = instance.attempts.remove(&seq) {
                    stale(seq, attempt);
                }
            }
        }
        let mut woken = Woken::ORCHESTRATIONS;
        if !finished {
            for (timer, fire_at) in timers {
                let fired = raw_event(&HistoryEvent::new(Event::TimerFired { id: timer, fire_at }));
                let message = instance.push(fired, Some(fire_at), Some(timer));
                self.delayed.insert((fire_at, id.clone(), message));
            }
            woken.activities = !activities.is_empty();
            for (seq, task) in activities {
                let attempt = Attempt {
                    task,
                    token: 0,
                    expires: None,
                    lsn: at,
                };
                instance.attempts.insert(seq, attempt);
                self.activity_queue.push_back((id.clone(), seq));
            }
        }

        for child in subs {
            // As `create_instance` would: an existing instance stays unless it is finished
            // and the child replaces finished ones.
            if self
                .check_create(child.status.instance_id(), child.replace_finished)
                .is_ok()
            {
                let _ = self.create(child, at);
            }
        }
        for (to, event) in messages {
            let open = self
                .instances
                .get(&to)
                .is_some_and(|i| !i.status.runtime_status().is_finished());
            if open {
                self.push_message(&to, event, None, None);
            }
        }
        self.release(&id);
        if status_changed {
            self.notify_status(&id);
        }
        Ok(woken)
    }

    /// Delivers an attempt's result to its instance, completing the attempt.
    pub(crate) fn complete(&mut self, id: &InstanceId, seq: u64, result: Raw) -> Woken {
        self.drop_attempt(id, seq);
        self.push_message(id, result, None, None);
        Woken::ORCHESTRATIONS
    }

    /// Deletes an instance and its history.
    pub(crate) fn purge(&mut self, id: &InstanceId) {
        self.remove(id);
        self.notify_status(id);
        self.watchers.remove(id);
    }

    /// Restores an instance from a checkpoint (its leases and queues are not durable: all
    /// its work is ready again).
    pub(crate) fn restore(&mut self, image: Image<H>) {
        let id = image.status.instance_id().clone();
        for m in &image.inbox {
            if let Some(due) = m.visible_at {
                self.delayed.insert((due, id.clone(), m.id));
            }
        }
        let mut attempts = HashMap::with_capacity(image.attempts.len());
        for (seq, task) in image.attempts {
            attempts.insert(
                seq,
                Attempt {
                    task,
                    token: 0,
                    expires: None,
                    lsn: 0,
                },
            );
            self.activity_queue.push_back((id.clone(), seq));
        }
        self.instances.insert(
            id.clone(),
            Instance {
                status: image.status,
                status_lsn: 0,
                history: image.history,
                inbox: image.inbox,
                next_message: image.next_message,
                lease: None,
                queued: false,
                attempts,
            },
        );
        self.make_ready(&id);
    }

    // ----- the parts ---------------------------------------------------------------------

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
        let message_id = instance.push(event, visible_at, timer);
        match visible_at {
            Some(due) => {
                self.delayed.insert((due, id.clone(), message_id));
            }
            None => self.make_ready(id),
        }
    }

    fn drop_attempt(&mut self, id: &InstanceId, seq: u64) {
        let Some(attempt) = self
            .instances
            .get_mut(id)
            .and_then(|i| i.attempts.remove(&seq))
        else {
            return;
        };
        if let Some(expires) = attempt.expires {
            self.activity_leases.remove(&(expires, id.clone(), seq));
        }
    }

    /// Drops an instance and everything that refers to it.
    fn remove(&mut self, id: &InstanceId) {
        let Some(instance) = self.instances.remove(id) else {
            return;
        };
        if let Some((_, expires)) = instance.lease {
            self.leases.remove(&(expires, id.clone()));
        }
        for message in instance.inbox {
            if let Some(due) = message.visible_at {
                self.delayed.remove(&(due, id.clone(), message.id));
            }
        }
        for (seq, attempt) in instance.attempts {
            if let Some(expires) = attempt.expires {
                self.activity_leases.remove(&(expires, id.clone(), seq));
            }
        }
    }
}
