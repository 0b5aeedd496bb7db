//! A live turn's effects: its commands and its ending written into the turn's `TurnCommit`.
//!
//! History events, activity attempts, timers, child instances and messages: everything the
//! store applies atomically with the turn.

use std::time::SystemTime;

use serde_json::Value;

use crate::command::{Command, Outcome};
use crate::history::{kinds, start_seed, Event, Failure, HistoryEvent, ParentRef};
use crate::instance_id::InstanceId;
use crate::status::{InstanceStatus, RuntimeStatus};
use crate::store::{ActivityTask, NewInstance, NewTimer, OutgoingMessage, TurnCommit};

/// Writes the commands a turn issued, in order: each becomes a history event and, for an
/// activity, a timer or a sub-orchestration, work for the store. `generation` is the
/// instance's current one; `now` the turn's time.
pub(crate) fn record_commands(
    commit: &mut TurnCommit,
    commands: Vec<Command>,
    generation: u64,
    now: SystemTime,
) {
    commit.history.reserve(commands.len());
    for command in commands {
        match &command {
            Command::Task {
                seq,
                name,
                input,
                attempt,
                timeout,
            } => commit.activities.push(ActivityTask {
                instance_id: commit.instance_id.clone(),
                id: *seq,
                name: name.clone(),
                input: input.clone(),
                attempt: *attempt,
                timeout: *timeout,
                // Stamped by the turn's telemetry once the turn is over.
                parent_span: None,
            }),
            Command::Timer { seq, fire_at } => commit.timers.push(NewTimer {
                id: *seq,
                fire_at: *fire_at,
            }),
            Command::SubOrchestration {
                seq,
                name,
                version,
                instance_id,
                input,
            } => {
                let parent = ParentRef {
                    instance_id: commit.instance_id.clone(),
                    id: *seq,
                    generation,
                };
                let child = child_instance(parent, name, *version, instance_id, input, now);
                commit.sub_instances.push(child);
            }
            Command::Wait { .. } | Command::Patch { .. } => {}
        }
        commit.history.push(HistoryEvent::new(command.into_event()));
    }
}

/// Timers the turn dropped before they fired: one created in this very turn is never
/// started; the store cancels the others.
pub(crate) fn cancel_timers(commit: &mut TurnCommit, cancelled: Vec<u64>) {
    for seq in cancelled {
        match commit.timers.iter().position(|timer| timer.id == seq) {
            Some(created_now) => {
                commit.timers.remove(created_now);
            }
            None => commit.cancelled_timers.push(seq),
        }
    }
}

/// Writes how the generation ended: its completion event, and the messages the ending
/// sends (the result to a parent; terminations to the running children of a recursive
/// terminate).
pub(crate) fn record_ending<'a>(
    commit: &mut TurnCommit,
    outcome: &Outcome,
    parent: Option<&ParentRef>,
    children: impl IntoIterator<Item = &'a InstanceId>,
) {
    if let Some(event) = outcome.completion_event() {
        commit.history.push(HistoryEvent::new(event));
    }
    if let Some(parent) = parent {
        let (id, generation) = (parent.id, parent.generation);
        let event = match outcome {
            Outcome::Completed(output) => Some(Event::SubOrchestrationCompleted {
                id,
                generation,
                output: output.clone(),
            }),
            Outcome::Failed(failure) => Some(Event::SubOrchestrationFailed {
                id,
                generation,
                failure: failure.clone(),
            }),
            Outcome::Terminated { output, .. } => Some(Event::SubOrchestrationFailed {
                id,
                generation,
                failure: Failure::new(kinds::TERMINATED, format!("terminated: {output}")),
            }),
            Outcome::ContinuedAsNew { .. } => None,
        };
        if let Some(event) = event {
            commit.messages.push(OutgoingMessage {
                instance_id: parent.instance_id.clone(),
                event: HistoryEvent::new(event),
            });
        }
    }
    if let Outcome::Terminated {
        output,
        recursive: true,
    } = outcome
    {
        for child in children {
            commit.messages.push(OutgoingMessage {
                instance_id: child.clone(),
                event: HistoryEvent::new(Event::ExecutionTerminated {
                    output: output.clone(),
                    recursive: true,
                }),
            });
        }
    }
}

/// Writes a continue-as-new: the turn's history and work are dropped, the history is
/// replaced by nothing, and the next generation's `start`, then the `carried` events, are
/// sent to the instance itself.
pub(crate) fn record_restart(commit: &mut TurnCommit, start: Event, carried: Vec<(String, Value)>) {
    commit.history.clear();
    commit.replace_history = true;
    commit.activities.clear();
    commit.timers.clear();
    commit.cancelled_timers.clear();
    commit.sub_instances.clear();
    commit.messages.clear();
    let events = std::iter::once(start)
        .chain(
            carried
                .into_iter()
                .map(|(name, data)| Event::EventRaised { name, data }),
        )
        .map(|event| OutgoingMessage {
            instance_id: commit.instance_id.clone(),
            event: HistoryEvent::new(event),
        });
    commit.messages.extend(events);
}

fn child_instance(
    parent: ParentRef,
    name: &str,
    version: u32,
    child: &InstanceId,
    input: &Value,
    now: SystemTime,
) -> NewInstance {
    let seed = start_seed(child.as_str(), now);
    NewInstance {
        status: InstanceStatus {
            instance_id: child.clone(),
            name: name.to_string(),
            version,
            runtime_status: RuntimeStatus::Pending,
            created_at: now,
            last_updated_at: now,
            input: input.clone(),
            output: None,
            custom_status: None,
            failure: None,
            parent: Some(parent.instance_id.clone()),
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: name.to_string(),
            version,
            input: input.clone(),
            seed,
            parent: Some(parent),
            generation: 0,
            eager_restarts: 0,
        }),
        start_at: None,
        // A retried call with an explicit id replaces its failed child.
        replace_finished: true,
    }
}
