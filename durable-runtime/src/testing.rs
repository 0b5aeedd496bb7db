//! Testing support: workflows on a virtual clock, and a replay checker for code changes.
//!
//! - [`VirtualClock`] with [`Advance::Auto`] (through
//!   [`RuntimeBuilder::virtual_clock`](crate::RuntimeBuilder::virtual_clock)) runs durable
//!   timers, retry back-offs and event timeouts as soon as nothing else can run, so a workflow
//!   with a 4 s back-off is tested in microseconds; [`Advance::Manual`] moves only on
//!   [`VirtualClock::advance`], for tests that step through time themselves.
//! - To stop at an intermediate state and assert on it:
//!   [`Client::wait_until`](crate::Client::wait_until) (moves the clock in auto mode),
//!   [`Runtime::run_until_idle`](crate::Runtime::run_until_idle) (runs what is ready, never
//!   moves the clock) and [`Client::next_timer`](crate::Client::next_timer) (the next time a
//!   workflow will observe).
//! - [`ReplayChecker`] replays a recorded history (as exported by
//!   [`Client::export_history`](crate::Client::export_history), with its instance id) against
//!   the current code, under the instance's own id, and reports whether the code is still
//!   compatible, with the message the runtime would give.

use std::fmt;

use crate::callable::Orchestrator;
use crate::execution::Execution;
use crate::history::{Event, ExportedHistory, Failure, HistoryEvent};
use crate::instance_id::{InstanceId, InvalidInstanceId};
use crate::registry::{DuplicateRegistration, Registry};

pub use crate::clock::VirtualClock;
pub use crate::runtime::Advance;
pub use crate::scripted::OrchestrationTest;

/// Replays recorded histories against the current orchestrator code.
///
/// Put it in a unit test before deploying a change: export the history of a typical
/// running instance once, keep it as a file, and check it against every later version of
/// the code.
///
/// ```
/// use durable_runtime::testing::ReplayChecker;
/// use durable_runtime::{orchestrator, OrchestrationContext, TaskError};
///
/// #[orchestrator]
/// async fn greet(ctx: OrchestrationContext, name: String) -> Result<String, TaskError> {
///     Ok(format!("Hello, {name}"))
/// }
///
/// // As `client.export_history("greeting-1")` writes it.
/// let recorded = r#"{
///   "instance_id": "greeting-1",
///   "history": [
///     {"v":1,"kind":"OrchestratorStarted","timestamp":"2026-01-01T00:00:00Z"},
///     {"v":1,"kind":"ExecutionStarted","name":"greet","version":1,"input":"Ada","seed":1},
///     {"v":1,"kind":"ExecutionCompleted","status":"Completed","output":"Hello, Ada"}
///   ]
/// }"#;
/// ReplayChecker::new().orchestrator(greet).check_json(recorded).unwrap();
/// ```
#[derive(Default)]
pub struct ReplayChecker {
    registry: Registry,
    duplicate: Option<DuplicateRegistration>,
}

/// Why a recorded history does not replay against the current code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The text is not a history.
    #[error("not a history: {0}")]
    NotAHistory(String),
    /// The history names an orchestrator the checker was not given.
    #[error("the history runs orchestrator `{name}` (version {version}), which the checker was not given: add `.orchestrator({name})`")]
    NotRegistered {
        /// The durable name.
        name: String,
        /// The version.
        version: u32,
    },
    /// The checker was given two orchestrators under one name and version.
    #[error(transparent)]
    Duplicate(#[from] DuplicateRegistration),
    /// The code issues other commands than the history recorded: it changed in a way that
    /// running instances cannot follow.
    #[error("{0}")]
    Incompatible(Failure),
    /// The history does not say whose it is, the code reads its instance id, and replayed
    /// under a stand-in id it issued other commands: whether the code changed cannot be told.
    #[error(
        "cannot tell whether the code changed: it reads `ctx.instance_id()` (or starts a \
         sub-orchestration under a default id) and the history does not carry its instance \
         id; check it with `check_instance(id, ..)`, or export it again with \
         `Client::export_history`, which records the id (replayed under the stand-in id \
         `replay-check`: {0})"
    )]
    UnknownInstanceId(Failure),
    /// The instance id given to [`ReplayChecker::check_instance`] is not a valid id.
    #[error(transparent)]
    InvalidInstanceId(#[from] InvalidInstanceId),
}

impl ReplayChecker {
    /// A checker knowing no orchestrator yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the current code of an orchestrator.
    pub fn orchestrator<O: Orchestrator>(mut self, orchestrator: O) -> Self {
        let _ = orchestrator;
        if let Err(duplicate) = self.registry.add_orchestrator::<O>() {
            self.duplicate.get_or_insert(duplicate);
        }
        self
    }

    /// Replays `history`, whose instance id is unknown; `Ok` if the code issues exactly the
    /// recorded commands.
    ///
    /// Without the id, a history whose commands depend on it cannot be judged: if the code
    /// reads `ctx.instance_id()` and the replay differs, the answer is
    /// [`ReplayError::UnknownInstanceId`], not [`ReplayError::Incompatible`]. Prefer
    /// [`check_instance`](Self::check_instance) or [`check_json`](Self::check_json) of an
    /// export, which carries the id.
    pub fn check(&self, history: &[HistoryEvent]) -> Result<(), ReplayError> {
        self.replay(None, history)
    }

    /// Replays the history of instance `instance_id`, under that id (what
    /// `ctx.instance_id()` returns, and the prefix of its children's default ids).
    pub fn check_instance(
        &self,
        instance_id: &str,
        history: &[HistoryEvent],
    ) -> Result<(), ReplayError> {
        let id = InstanceId::new(instance_id)?;
        self.replay(Some(id), history)
    }

    /// Replays an export under the id it carries (see [`check`](Self::check) when it carries
    /// none).
    pub fn check_export(&self, export: &ExportedHistory) -> Result<(), ReplayError> {
        self.replay(export.instance_id.clone(), &export.history)
    }

    /// Replays a history given as JSON: what
    /// [`Client::export_history`](crate::Client::export_history) writes (the events and the
    /// instance id), or a bare array of events (no id).
    pub fn check_json(&self, json: &str) -> Result<(), ReplayError> {
        let export = ExportedHistory::from_json(json)
            .map_err(|e| ReplayError::NotAHistory(e.to_string()))?;
        self.check_export(&export)
    }

    fn replay(
        &self,
        instance_id: Option<InstanceId>,
        history: &[HistoryEvent],
    ) -> Result<(), ReplayError> {
        if let Some(duplicate) = &self.duplicate {
            return Err(duplicate.clone().into());
        }
        let started = history.iter().find_map(|e| match &e.event {
            Event::ExecutionStarted { name, version, .. } => Some((name, *version)),
            _ => None,
        });
        let Some((name, version)) = started else {
            // Ended before its code ever ran (a terminate delivered ahead of its start, or of
            // a new generation's): what it recorded came from outside, nothing to replay.
            let ended_unstarted = history
                .iter()
                .any(|e| matches!(e.event, Event::ExecutionTerminated { .. }))
                && !history.iter().any(|e| {
                    e.event.is_command() && !matches!(e.event, Event::ExecutionCompleted { .. })
                });
            if ended_unstarted {
                return Ok(());
            }
            return Err(ReplayError::NotAHistory(
                "it has no ExecutionStarted event".into(),
            ));
        };
        if self.registry.orchestrator(name, version).is_none() {
            return Err(ReplayError::NotRegistered {
                name: name.clone(),
                version,
            });
        }
        let known = instance_id.is_some();
        let id = instance_id
            .unwrap_or_else(|| InstanceId::new(STAND_IN_ID).expect("a valid instance id"));
        let mut execution = Execution::new(id);
        match execution.replay(&self.registry, history) {
            Ok(()) => Ok(()),
            Err(failure) if !known && execution.instance_id_observed() => {
                Err(ReplayError::UnknownInstanceId(failure))
            }
            Err(failure) => Err(ReplayError::Incompatible(failure)),
        }
    }
}

/// The id a history of unknown instance replays under.
const STAND_IN_ID: &str = "replay-check";

impl fmt::Debug for ReplayChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayChecker").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn events(list: Vec<Event>) -> Vec<HistoryEvent> {
        list.into_iter().map(HistoryEvent::new).collect()
    }

    #[test]
    fn only_an_instance_ended_before_its_code_ran_may_lack_its_start() {
        let at = SystemTime::UNIX_EPOCH;
        let turn = Event::OrchestratorStarted { timestamp: at };
        let terminated = Event::ExecutionTerminated {
            output: serde_json::Value::Null,
            recursive: false,
        };
        let checker = ReplayChecker::new();
        assert_eq!(
            checker.check(&events(vec![turn.clone(), terminated.clone()])),
            Ok(())
        );
        let timer = Event::TimerCreated { id: 0, fire_at: at };
        assert!(matches!(
            checker.check(&events(vec![turn.clone(), timer, terminated])),
            Err(ReplayError::NotAHistory(_))
        ));
        assert!(matches!(
            checker.check(&events(vec![turn])),
            Err(ReplayError::NotAHistory(_))
        ));
        assert!(matches!(
            checker.check(&[]),
            Err(ReplayError::NotAHistory(_))
        ));
    }
}
