//! What the loops do when a turn cannot end as usual: the runtime itself panicked in it, or
//! its code's poll does not return (the stuck-turn watchdog, and a terminate carried out
//! without the execution that poll holds).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::command::Outcome;
use crate::effects;
use crate::history::{Event, Failure, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::status::RuntimeStatus;
use crate::store::{
    ActivityLease, LeaseToken, MessageId, OrchestrationWork, StatusUpdate, TurnCommit,
};

/// Reports every turn whose code has been polled longer than `stuck_after`, once: a
/// warning naming the instance, and a counter.
pub(crate) async fn watch_for_stuck_turns(shared: Arc<Shared>) {
    let every = (shared.options.stuck_after / 4).max(Duration::from_millis(5));
    while !shared.is_stopping() {
        let stop = shared.stop.notified();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop => break,
        }
        for (id, polling_for) in shared.newly_stuck() {
            Counters::add(&shared.counters.stuck_turns, 1);
            tracing::warn!(
                target: "durable::worker",
                instance_id = %id,
                polling_ms = polling_for.as_millis() as u64,
                "orchestration `{id}` is stuck: one poll of its code has run for {polling_for:?} \
                 without returning (a loop without `.await`, or blocking code: move that into \
                 an activity). Its thread stays blocked until the poll returns; the instance is \
                 not run again in this process meanwhile, and can be terminated"
            );
        }
    }
}

/// What a turn's commit is fenced by, kept to fail the instance if the turn panics.
pub(crate) struct Fence {
    pub(crate) instance_id: InstanceId,
    pub(crate) lease: LeaseToken,
    pub(crate) history_len: u64,
    pub(crate) consumed: Vec<MessageId>,
    pub(crate) completed: Option<ActivityLease>,
    /// The generation's start, when this turn delivers it: recorded, so that the failed
    /// history still says what ran and who the parent is.
    pub(crate) started: Option<Box<HistoryEvent>>,
}

/// Fails the instance whose turn panicked: the turn's messages are consumed (of them only a
/// generation's start is recorded), its parent is told.
pub(crate) async fn fail_after_panic(shared: &Shared, mut fence: Fence, failure: Failure) {
    let id = fence.instance_id.clone();
    tracing::error!(target: "durable::worker", instance_id = %id, %failure, "the runtime panicked; the instance fails");
    shared.cache.remove(&id);
    let inputs = fence.started.take().map(|e| *e).into_iter().collect();
    end_without_execution(shared, fence, inputs, Outcome::Failed(failure)).await;
}

/// Fails the instance whose turn the store refused as too large to write: as after a panic,
/// the turn's messages are consumed and the failure is recorded in a turn of its own.
pub(crate) async fn fail_too_large(shared: &Shared, mut fence: Fence, failure: Failure) {
    let id = fence.instance_id.clone();
    tracing::error!(target: "durable::worker", instance_id = %id, %failure, "the turn is too large for the store; the instance fails");
    shared.cache.remove(&id);
    let inputs = fence.started.take().map(|e| *e).into_iter().collect();
    end_without_execution(shared, fence, inputs, Outcome::Failed(failure)).await;
}

/// A turn of an instance whose earlier turn still runs in this process (its poll has not
/// returned): only a terminate is acted on, without the execution the stuck turn holds.
/// Otherwise the lease is left to expire, and the instance is looked at again a lease later.
pub(crate) async fn end_while_running(
    shared: &Shared,
    work: OrchestrationWork,
    delivered: Option<ActivityLease>,
) -> bool {
    let id = work.instance_id.clone();
    let terminate = work.messages.iter().find_map(|m| match &m.event.event {
        Event::ExecutionTerminated { output, recursive } => Some((output.clone(), *recursive)),
        _ => None,
    });
    let Some((output, recursive)) = terminate else {
        tracing::debug!(target: "durable::worker", instance_id = %id, "a turn of this instance is still running here; it is not run twice");
        return false;
    };
    tracing::warn!(target: "durable::worker", instance_id = %id, "terminating an instance while a turn of it still runs here (its code's poll, or its commit): that turn's commit will be refused");
    let fence = Fence {
        instance_id: id,
        lease: work.lease,
        history_len: work.history_len,
        consumed: work.messages.iter().map(|m| m.id).collect(),
        completed: delivered,
        started: None,
    };
    let inputs = work.messages.into_iter().map(|m| m.event).collect();
    let outcome = Outcome::Terminated { output, recursive };
    end_without_execution(shared, fence, inputs, outcome).await
}

/// Ends an instance without its execution (lost to a panic, or held by a poll that does not
/// return): one turn that records `inputs` and `outcome`, tells the parent, and for a
/// recursive terminate the running children, as the history names them. `false`, with the
/// lease handed back, if that cannot be committed.
async fn end_without_execution(
    shared: &Shared,
    fence: Fence,
    inputs: Vec<HistoryEvent>,
    outcome: Outcome,
) -> bool {
    let (id, lease) = (fence.instance_id.clone(), fence.lease);
    let commit = async {
        let history = shared.store.load_history(&id).await.unwrap_or_default();
        let recorded = || history.iter().chain(&inputs).map(|e| &e.event);
        let parent = recorded().find_map(|e| match e {
            Event::ExecutionStarted { parent, .. } => Some(parent.clone()),
            _ => None,
        });
        let answered: HashSet<u64> = recorded()
            .filter_map(|e| match e {
                Event::SubOrchestrationCompleted { id, .. }
                | Event::SubOrchestrationFailed { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let children: Vec<InstanceId> = recorded()
            .filter_map(|e| match e {
                Event::SubOrchestrationCreated {
                    id, instance_id, ..
                } if !answered.contains(id) => Some(instance_id.clone()),
                _ => None,
            })
            .collect();
        let mut status = StatusUpdate::running();
        match &outcome {
            Outcome::Failed(failure) => {
                status.runtime_status = RuntimeStatus::Failed;
                status.failure = Some(failure.clone());
            }
            Outcome::Terminated { output, .. } => {
                status.runtime_status = RuntimeStatus::Terminated;
                status.output = Some(output.clone());
            }
            Outcome::Completed(_) | Outcome::ContinuedAsNew { .. } => {}
        }
        let mut commit = TurnCommit {
            instance_id: id.clone(),
            lease,
            expected_history_len: fence.history_len,
            history: [HistoryEvent::new(Event::OrchestratorStarted {
                timestamp: shared.clock.now(),
            })]
            .into_iter()
            .chain(inputs.iter().cloned())
            .collect(),
            replace_history: false,
            consumed: fence.consumed,
            completed_activities: fence.completed.into_iter().collect(),
            activities: Vec::new(),
            timers: Vec::new(),
            cancelled_timers: Vec::new(),
            sub_instances: Vec::new(),
            messages: Vec::new(),
            status,
        };
        effects::record_ending(&mut commit, &outcome, parent.flatten().as_ref(), &children);
        let appended = commit.history.len() as u64;
        shared.store.commit_turn(commit).await.map(|()| appended)
    };
    match AssertUnwindSafe(commit).catch_unwind().await {
        Ok(Ok(appended)) => {
            let counters = &shared.counters;
            Counters::add(&counters.turns_without_code, 1);
            Counters::add(&counters.turns, 1);
            Counters::add(&counters.commits, 1);
            Counters::add(&counters.events_committed, appended);
            true
        }
        _ => {
            let _ = shared.store.abandon_orchestration(&id, lease).await;
            false
        }
    }
}
