//! Handing work out: due times, the ready queues, and instance and attempt leases (in memory
//! only: a restarted process owns nothing).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, SystemTime};

use super::{Engine, History, Instance, Lsn, Woken};
use crate::instance_id::InstanceId;
use crate::limits::unreadable_message;
use crate::metric;
use crate::store::{
    ActivityLease, ActivityWork, Delivery, LeaseToken, OrchestrationWork, StoreError,
};

/// Takes the first entry of `set` if it is due at `now` (`due` reads its time).
fn pop_due<T: Ord>(
    set: &mut BTreeSet<T>,
    now: SystemTime,
    due: impl Fn(&T) -> SystemTime,
) -> Option<T> {
    if due(set.first()?) > now {
        return None;
    }
    set.pop_first()
}

/// Queues `instance` (`id`) in `ready` if it is unleased and has a deliverable message.
fn queue_if_ready<H>(
    ready: &mut VecDeque<InstanceId>,
    id: &InstanceId,
    instance: &mut Instance<H>,
) {
    if !instance.queued && instance.lease.is_none() && instance.deliverable() {
        instance.queued = true;
        ready.push_back(id.clone());
    }
}

impl<H: History> Engine<H> {
    fn token(&mut self) -> LeaseToken {
        self.next_token += 1;
        self.next_token
    }

    /// Queues `id` if it is unleased and has a deliverable message.
    pub(super) fn make_ready(&mut self, id: &InstanceId) {
        if let Some(instance) = self.instances.get_mut(id) {
            queue_if_ready(&mut self.ready, id, instance);
        }
    }

    /// Makes the messages due at `now` deliverable, and frees the leases expired by then.
    fn promote_due(&mut self, now: SystemTime) {
        let first_due = |set: Option<SystemTime>| set.is_some_and(|due| due <= now);
        self.promoted.orchestrations |= first_due(self.delayed.first().map(|d| d.0))
            || first_due(self.leases.first().map(|l| l.0));
        self.promoted.activities |= first_due(self.activity_leases.first().map(|l| l.0));
        while let Some((_, id, message_id)) = pop_due(&mut self.delayed, now, |d| d.0) {
            if let Some(message) = self
                .instances
                .get_mut(&id)
                .and_then(|i| i.inbox.iter_mut().find(|m| m.id == message_id))
            {
                message.visible_at = None;
            }
            self.make_ready(&id);
        }
        while let Some((_, id)) = pop_due(&mut self.leases, now, |l| l.0) {
            if let Some(instance) = self.instances.get_mut(&id) {
                instance.lease = None;
            }
            metric::lease_takeover("orchestration");
            self.make_ready(&id);
        }
        while let Some((_, id, seq)) = pop_due(&mut self.activity_leases, now, |l| l.0) {
            if let Some(attempt) = self
                .instances
                .get_mut(&id)
                .and_then(|i| i.attempts.get_mut(&seq))
            {
                // Expired, not taken: its holder may still renew it or deliver its result
                // until another worker takes it.
                attempt.expires = None;
                self.activity_queue.push_back((id, seq));
            }
            metric::lease_takeover("activity");
        }
    }

    /// The queues' depths, as a worker leaves them.
    fn report_queues(&self) {
        metric::queues(
            self.ready.len(),
            self.activity_queue.len(),
            self.delayed.len(),
        );
    }

    /// Leases `id` with every message deliverable now (`promote_due` has run).
    fn lease(
        &mut self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<OrchestrationWork, StoreError> {
        let token = self.token();
        let expires = crate::clock::saturating_after(now, lease_for);
        let instance = self
            .instances
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let mut messages = Vec::new();
        for message in instance.inbox.iter().filter(|m| m.visible_at.is_none()) {
            // One that cannot be read fails the instance instead of blocking it for ever.
            let event = crate::history::json::from_str(&message.event).unwrap_or_else(|error| {
                unreadable_message(format_args!("message {} of its inbox", message.id), error)
            });
            messages.push(Delivery {
                id: message.id,
                event,
            });
        }
        instance.lease = Some((token, expires));
        instance.queued = false;
        let history_len = instance.history.event_count();
        self.leases.insert((expires, id.clone()));
        Ok(OrchestrationWork {
            instance_id: id.clone(),
            lease: token,
            history_len,
            messages,
        })
    }

    /// Releases the lease of `id`, queueing it again if it has messages (under one lookup).
    pub(super) fn release(&mut self, id: &InstanceId) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if let Some((_, expires)) = instance.lease.take() {
            self.leases.remove(&(expires, id.clone()));
        }
        queue_if_ready(&mut self.ready, id, instance);
    }

    /// Leases an instance with messages deliverable at `now`.
    pub(crate) fn fetch_orchestration(
        &mut self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        let work = self.next_orchestration(now, lease_for);
        self.report_queues();
        work
    }

    fn next_orchestration(
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
            if instance.lease.is_some() || !instance.deliverable() {
                continue;
            }
            return self.lease(&id, now, lease_for).map(Some);
        }
        Ok(None)
    }

    /// Leases `id` if it is neither leased nor finished, even with no message waiting.
    pub(crate) fn lease_orchestration(
        &mut self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.promote_due(now);
        let instance = self.instance(id)?;
        if instance.lease.is_some() || instance.status.runtime_status().is_finished() {
            return Ok(None);
        }
        self.lease(id, now, lease_for).map(Some)
    }

    /// Releases `lease` on `id` without a commit: its messages will be delivered again.
    pub(crate) fn abandon_orchestration(
        &mut self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<Woken, StoreError> {
        self.check_lease(id, lease)?;
        self.release(id);
        Ok(Woken::ORCHESTRATIONS)
    }

    /// Leases an attempt ready at `now`; also returns the position of the turn that
    /// scheduled it.
    pub(crate) fn fetch_activity(
        &mut self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<(ActivityWork, Lsn)>, StoreError> {
        let work = self.next_activity(now, lease_for);
        self.report_queues();
        work
    }

    fn next_activity(
        &mut self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<(ActivityWork, Lsn)>, StoreError> {
        self.promote_due(now);
        while let Some((id, seq)) = self.activity_queue.pop_front() {
            let token = self.token();
            let expires = crate::clock::saturating_after(now, lease_for);
            let Some(attempt) = self
                .instances
                .get_mut(&id)
                .and_then(|i| i.attempts.get_mut(&seq))
            else {
                continue;
            };
            if attempt.expires.is_some() {
                continue;
            }
            attempt.token = token;
            attempt.expires = Some(expires);
            let scheduled = attempt.lsn;
            let task = crate::store::json::task_from_str(&attempt.task);
            self.activity_leases.insert((expires, id.clone(), seq));
            let lease = ActivityLease {
                instance_id: id,
                id: seq,
                token,
            };
            return match task {
                Ok(task) => Ok(Some((ActivityWork { task, lease }, scheduled))),
                Err(error) => Err(StoreError::UnreadableTask {
                    lease,
                    error: error.to_string(),
                }),
            };
        }
        Ok(None)
    }

    /// Releases an attempt's lease without a result; a held lease queues it again.
    pub(crate) fn abandon_activity(&mut self, lease: &ActivityLease) -> Woken {
        let Some(attempt) = self
            .instances
            .get_mut(&lease.instance_id)
            .and_then(|i| i.attempts.get_mut(&lease.id))
        else {
            return Woken::default();
        };
        if attempt.token != lease.token {
            return Woken::default();
        }
        attempt.token = 0;
        // An expired lease is queued already.
        let Some(expires) = attempt.expires.take() else {
            return Woken::default();
        };
        self.activity_leases
            .remove(&(expires, lease.instance_id.clone(), lease.id));
        self.activity_queue
            .push_back((lease.instance_id.clone(), lease.id));
        Woken {
            orchestrations: false,
            activities: true,
        }
    }

    /// Extends the lease on an attempt to `now + lease_for`, if nobody has taken the attempt
    /// since `lease` was: an expired lease not yet taken over is held again.
    pub(crate) fn renew_activity(
        &mut self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        let id = &lease.instance_id;
        let Some(attempt) = self
            .instances
            .get_mut(id)
            .and_then(|i| i.attempts.get_mut(&lease.id))
            .filter(|a| a.token == lease.token)
        else {
            return Err(StoreError::Conflict {
                id: id.clone(),
                reason: format!(
                    "the lease on activity attempt {} was lost: another worker took it, or \
                     the attempt is no longer wanted",
                    lease.id
                ),
            });
        };
        let expires = now + lease_for;
        if let Some(old) = attempt.expires.replace(expires) {
            self.activity_leases.remove(&(old, id.clone(), lease.id));
        }
        // Still queued if it had expired: `fetch_activity` skips it while it is held.
        self.activity_leases.insert((expires, id.clone(), lease.id));
        Ok(())
    }

    /// The work that fell due inside the calls since the last take: the store signals it.
    pub(crate) fn take_promoted(&mut self) -> Woken {
        std::mem::take(&mut self.promoted)
    }

    /// The earliest time a message falls due or a lease expires.
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

    /// The earliest due time after `now` of a delayed message (a timer, a scheduled start,
    /// a delayed send).
    pub(crate) fn next_timer(&self, now: SystemTime) -> Option<SystemTime> {
        // Those due by `now` leave `delayed` at the next promotion: few are ever skipped.
        self.delayed.iter().map(|d| d.0).find(|&due| due > now)
    }

    /// Whether an instance or an attempt could be handed out at `now`.
    pub(crate) fn has_work(&mut self, now: SystemTime) -> bool {
        self.promote_due(now);
        let instance_ready = self.ready.iter().any(|id| {
            self.instances
                .get(id)
                .is_some_and(|i| i.lease.is_none() && i.deliverable())
        });
        let activity_ready = self.activity_queue.iter().any(|(id, seq)| {
            self.instances
                .get(id)
                .and_then(|i| i.attempts.get(seq))
                .is_some_and(|a| a.expires.is_none())
        });
        instance_ready || activity_ready
    }
}
