//! What code asks of the engine in a turn: its commands in seq order, and how it ends.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::history::{CompletionStatus, Event, Failure};
use crate::instance_id::InstanceId;

/// A command the code issued in the current turn. Each but a patch takes the next sequence
/// number (seq) of its generation; its result, if any, comes back under that seq.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Task {
        seq: u64,
        name: String,
        input: Value,
        attempt: u32,
        timeout: Option<Duration>,
    },
    Timer {
        seq: u64,
        fire_at: SystemTime,
    },
    Wait {
        seq: u64,
        name: String,
    },
    SubOrchestration {
        seq: u64,
        name: String,
        version: u32,
        instance_id: InstanceId,
        input: Value,
    },
    /// `ctx.patched(name)` took the new branch; takes no seq, so code with and without the
    /// patch numbers its other commands alike.
    Patch {
        name: String,
    },
}

impl Command {
    /// The history event that records this command.
    pub(crate) fn into_event(self) -> Event {
        match self {
            Command::Task {
                seq,
                name,
                input,
                attempt,
                ..
            } => Event::TaskScheduled {
                id: seq,
                name,
                input,
                attempt,
            },
            Command::Timer { seq, fire_at } => Event::TimerCreated { id: seq, fire_at },
            Command::Wait { seq, name } => Event::EventWaitStarted { id: seq, name },
            Command::SubOrchestration {
                seq,
                name,
                version,
                instance_id,
                input,
            } => Event::SubOrchestrationCreated {
                id: seq,
                name,
                version,
                instance_id,
                input,
            },
            Command::Patch { name } => Event::PatchApplied { name },
        }
    }
}

/// How a generation of an orchestration ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Completed(Value),
    Failed(Failure),
    Terminated {
        output: Value,
        recursive: bool,
    },
    ContinuedAsNew {
        input: Value,
        /// Events raised but not received, carried to the next generation.
        carried: Vec<(String, Value)>,
    },
}

impl Outcome {
    /// How the history records this ending; a continue-as-new is not recorded (the history is
    /// replaced).
    pub(crate) fn completion_status(&self) -> Option<CompletionStatus> {
        match self {
            Outcome::Completed(_) => Some(CompletionStatus::Completed),
            Outcome::Failed(_) => Some(CompletionStatus::Failed),
            Outcome::Terminated { .. } => Some(CompletionStatus::Terminated),
            Outcome::ContinuedAsNew { .. } => None,
        }
    }

    /// The `ExecutionCompleted` event that records this ending, if it is recorded.
    pub(crate) fn completion_event(&self) -> Option<Event> {
        let status = self.completion_status()?;
        let (output, failure) = match self {
            Outcome::Completed(output) | Outcome::Terminated { output, .. } => {
                (Some(output.clone()), None)
            }
            Outcome::Failed(failure) => (None, Some(failure.clone())),
            Outcome::ContinuedAsNew { .. } => return None,
        };
        Some(Event::ExecutionCompleted {
            status,
            output,
            failure,
        })
    }
}
