//! Testing support: workflows on a virtual clock, and a replay checker for code changes.
//!
//! - [`VirtualClock`] with [`Advance::Auto`] (through
//!   [`RuntimeBuilder::virtual_clock`](crate::RuntimeBuilder::virtual_clock)) runs durable
//!   timers, retry back-offs and event timeouts as soon as nothing else can run, so a workflow
//!   with a 4 s back-off is tested in microseconds; [`Advance::Manual`] moves only on
//!   [`VirtualClock::advance`], for tests that must act before a timeout fires.
//! - [`ReplayChecker`] replays a recorded history (as exported by
//!   [`Client::export_history`](crate::Client::export_history)) against the current code and
//!   reports whether the code is still compatible, with the message the runtime would give.

use std::fmt;

use crate::callable::Orchestrator;
use crate::execution::Execution;
use crate::history::{Event, Failure, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::registry::{DuplicateRegistration, Registry};

pub use crate::clock::VirtualClock;
pub use crate::runtime::Advance;

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
/// let recorded = r#"[
///   {"v":1,"kind":"OrchestratorStarted","timestamp":"2026-01-01T00:00:00Z"},
///   {"v":1,"kind":"ExecutionStarted","name":"greet","version":1,"input":"Ada","seed":1},
///   {"v":1,"kind":"ExecutionCompleted","status":"Completed","output":"Hello, Ada"}
/// ]"#;
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
    /// The code issues other commands than the history recorded.
    #[error("{0}")]
    Incompatible(Failure),
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

    /// Replays `history`; `Ok` if the code issues exactly the recorded commands.
    pub fn check(&self, history: &[HistoryEvent]) -> Result<(), ReplayError> {
        if let Some(duplicate) = &self.duplicate {
            return Err(duplicate.clone().into());
        }
        let started = history.iter().find_map(|e| match &e.event {
            Event::ExecutionStarted { name, version, .. } => Some((name, *version)),
            _ => None,
        });
        let Some((name, version)) = started else {
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
        // Children started under their default id ("{parent}:{seq}") are matched by id, so
        // replay under the recorded instance's id, read back from such a child.
        let id = recorded_instance_id(history)
            .unwrap_or_else(|| InstanceId::new("replay-check").expect("a valid id"));
        Execution::new(id)
            .replay(&self.registry, history)
            .map_err(ReplayError::Incompatible)
    }

    /// Replays a history given as JSON (an array of events).
    pub fn check_json(&self, json: &str) -> Result<(), ReplayError> {
        let history: Vec<HistoryEvent> =
            serde_json::from_str(json).map_err(|e| ReplayError::NotAHistory(e.to_string()))?;
        self.check(&history)
    }
}

/// The recorded instance's id, if the history names it: a sub-orchestration created under
/// its default id `"{parent}:{seq}"`.
fn recorded_instance_id(history: &[HistoryEvent]) -> Option<InstanceId> {
    history.iter().find_map(|e| match &e.event {
        Event::SubOrchestrationCreated {
            id, instance_id, ..
        } => {
            let parent = instance_id.as_str().strip_suffix(&format!(":{id}"))?;
            InstanceId::new(parent).ok()
        }
        _ => None,
    })
}

impl fmt::Debug for ReplayChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayChecker").finish_non_exhaustive()
    }
}
