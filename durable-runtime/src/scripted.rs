//! `OrchestrationTest`: one orchestrator's turns run by hand, without a runtime or a store.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::callable::Orchestrator;
use crate::clock::VirtualClock;
use crate::execution::Execution;
use crate::history::{stable_hash, Event, Failure, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::registry::Registry;
use crate::status::RuntimeStatus;
use crate::store::{OrchestrationWork, StatusUpdate, TurnCommit};

/// Unit-tests an orchestrator without a runtime: the test plays the runtime, feeding results
/// and events turn by turn and asserting on the commands the code issues.
///
/// Each [`run_turn`](Self::run_turn) delivers what the test queued since the last turn
/// (activity results, fired timers, raised events, children's results) and returns the
/// commands the code issued in that turn, as the [`Event`]s the history records:
/// `TaskScheduled` for a `ctx.call` of an activity, `SubOrchestrationCreated` for a child,
/// `TimerCreated` for a sleep, a back-off or a wait's timeout, `EventWaitStarted`,
/// `PatchApplied`, and `ExecutionCompleted` when it ends (a continue-as-new shows as the next
/// generation's `ExecutionStarted`). Commands are matched by their `id`, the seq that
/// results answer. Nothing runs but the orchestrator: activities are what the test says.
///
/// The turns run exactly as in the runtime, on a clock that moves only with
/// [`advance`](Self::advance) (from 2026-01-01T00:00:00Z), and the recorded
/// [`history`](Self::history) replays in a [`ReplayChecker`](crate::testing::ReplayChecker).
///
/// ```
/// use std::time::Duration;
/// use durable_runtime::testing::OrchestrationTest;
/// use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, RuntimeStatus, TaskError};
/// use durable_runtime::history::{Event};
///
/// #[activity]
/// async fn charge(_ctx: ActivityContext, cents: u64) -> Result<String, String> {
///     unreachable!("the test answers for it")
/// }
///
/// #[orchestrator]
/// async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<String, TaskError> {
///     let receipt = ctx.call(charge, cents).await?;
///     let carrier: String = ctx.wait_for_event("shipped").await?;
///     Ok(format!("{receipt}, shipped by {carrier}"))
/// }
///
/// let mut test = OrchestrationTest::new(checkout, 4_200);
/// let issued = test.run_turn();
/// assert!(matches!(
///     &issued[..],
///     [Event::TaskScheduled { id: 0, name, input, .. }] if name == "charge" && *input == 4_200
/// ));
///
/// test.complete_activity(0, "charged");
/// let issued = test.run_turn();
/// assert!(matches!(&issued[..], [Event::EventWaitStarted { id: 1, name }] if name == "shipped"));
///
/// test.raise_event("shipped", "a pigeon");
/// test.run_turn();
/// assert_eq!(test.status(), RuntimeStatus::Completed);
/// assert_eq!(test.output::<String>(), "charged, shipped by a pigeon");
/// ```
pub struct OrchestrationTest {
    registry: Registry,
    instance_id: InstanceId,
    execution: Execution,
    now: SystemTime,
    /// What the next turn delivers.
    inbox: Vec<HistoryEvent>,
    /// The current generation's history, as the runtime would record it.
    history: Vec<HistoryEvent>,
    status: StatusUpdate,
}

impl OrchestrationTest {
    /// A test of `orchestrator` started with `input`, as instance `test-instance`; the first
    /// [`run_turn`](Self::run_turn) runs its first turn.
    pub fn new<O: Orchestrator>(orchestrator: O, input: O::Input) -> Self {
        let _ = orchestrator;
        let mut registry = Registry::default();
        registry
            .add_orchestrator::<O>()
            .expect("a fresh registry holds one orchestrator");
        let input = serde_json::to_value(&input).unwrap_or_else(|e| {
            panic!(
                "the input of orchestrator `{}` does not serialise: {e}",
                O::NAME
            )
        });
        let instance_id = InstanceId::new("test-instance").expect("a valid id");
        let start = Event::ExecutionStarted {
            name: O::NAME.to_string(),
            version: O::VERSION,
            seed: stable_hash(&input),
            input,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        };
        OrchestrationTest {
            registry,
            execution: Execution::new(instance_id.clone()),
            instance_id,
            now: VirtualClock::new().now(),
            inbox: vec![HistoryEvent::new(start)],
            history: Vec::new(),
            status: StatusUpdate {
                runtime_status: RuntimeStatus::Pending,
                output: None,
                custom_status: None,
                failure: None,
                input: None,
            },
        }
    }

    /// Runs as instance `id` (what `ctx.instance_id()` returns). Call it before the first
    /// turn.
    ///
    /// # Panics
    /// If `id` is not a valid instance id, or a turn has run already.
    pub fn instance_id(mut self, id: &str) -> Self {
        assert!(
            self.history.is_empty(),
            "set the instance id before the first turn"
        );
        self.instance_id = InstanceId::new(id).unwrap_or_else(|e| panic!("{e}"));
        self.execution = Execution::new(self.instance_id.clone());
        self
    }

    /// The time the next turn runs at (what `ctx.now()` returns in it).
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// Moves the clock forward by `by`. Timers do not fire by themselves: fire them with
    /// [`fire_timer`](Self::fire_timer).
    pub fn advance(&mut self, by: Duration) -> &mut Self {
        self.now += by;
        self
    }

    /// Queues the result of activity `id` (the seq of its `TaskScheduled`) for the next turn.
    pub fn complete_activity(&mut self, id: u64, output: impl Serialize) -> &mut Self {
        let output = to_value(output, "an activity's output");
        self.send(Event::TaskCompleted { id, output })
    }

    /// Queues the failure of activity `id`'s attempt (`message`, as its error's `Display`).
    pub fn fail_activity(&mut self, id: u64, message: &str) -> &mut Self {
        let failure = Failure::new("test", message);
        self.send(Event::TaskFailed { id, failure })
    }

    /// Queues the output of sub-orchestration `id` (the seq of its
    /// `SubOrchestrationCreated`).
    pub fn complete_child(&mut self, id: u64, output: impl Serialize) -> &mut Self {
        let output = to_value(output, "a sub-orchestration's output");
        let generation = self.generation();
        self.send(Event::SubOrchestrationCompleted {
            id,
            generation,
            output,
        })
    }

    /// Queues the failure of sub-orchestration `id`.
    pub fn fail_child(&mut self, id: u64, message: &str) -> &mut Self {
        let failure = Failure::new("test", message);
        let generation = self.generation();
        self.send(Event::SubOrchestrationFailed {
            id,
            generation,
            failure,
        })
    }

    /// Queues the firing of timer `id` (the seq of its `TimerCreated`), and moves the clock
    /// to its due time if that is later.
    ///
    /// # Panics
    /// If the history has no `TimerCreated` with this id.
    pub fn fire_timer(&mut self, id: u64) -> &mut Self {
        let fire_at = self
            .history
            .iter()
            .find_map(|e| match e.event {
                Event::TimerCreated { id: i, fire_at } if i == id => Some(fire_at),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no timer {id} was created: check the turn's commands"));
        self.now = self.now.max(fire_at);
        self.send(Event::TimerFired { id, fire_at })
    }

    /// Queues the event `name` with `data`, as `client.raise_event` would.
    pub fn raise_event(&mut self, name: &str, data: impl Serialize) -> &mut Self {
        let data = to_value(data, "an event's data");
        self.send(Event::EventRaised {
            name: name.to_string(),
            data,
        })
    }

    /// Runs one turn over what was queued since the last, and returns the commands the code
    /// issued in it. A turn with nothing queued delivers nothing and issues nothing.
    pub fn run_turn(&mut self) -> Vec<Event> {
        let inbox = std::mem::take(&mut self.inbox);
        if inbox.is_empty() || !self.execution.is_reusable() {
            return Vec::new();
        }
        let work = OrchestrationWork {
            instance_id: self.instance_id.clone(),
            lease: 0,
            history_len: self.history.len() as u64,
            messages: Vec::new(),
        };
        let mut commit = TurnCommit::for_work(&work, StatusUpdate::running());
        // Retries are announced by the runtime's logs; a test reads them as timers.
        let _retries = self
            .execution
            .run_turn(&self.registry, self.now, inbox, &mut commit);
        self.status = commit.status.clone();
        if commit.replace_history {
            // Continued as new: the next generation starts from the messages to itself.
            self.history.clear();
            self.execution = Execution::new(self.instance_id.clone());
            let next: Vec<HistoryEvent> = commit.messages.into_iter().map(|m| m.event).collect();
            let issued = next.iter().take(1).map(|e| e.event.clone()).collect();
            self.inbox = next;
            return issued;
        }
        let issued = commit
            .history
            .iter()
            .filter(|e| e.event.is_command())
            .map(|e| e.event.clone())
            .collect();
        self.history.extend(commit.history);
        issued
    }

    /// The status after the last turn.
    pub fn status(&self) -> RuntimeStatus {
        self.status.runtime_status
    }

    /// The output, once completed, as `T`.
    ///
    /// # Panics
    /// If the orchestration has not completed or its output is not a `T`.
    pub fn output<T: DeserializeOwned>(&self) -> T {
        let output = match (&self.status.output, self.status.runtime_status) {
            (Some(output), RuntimeStatus::Completed) => output.clone(),
            _ => panic!(
                "the orchestration has not completed: it is {:?}{}",
                self.status.runtime_status,
                self.status
                    .failure
                    .as_ref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            ),
        };
        serde_json::from_value(output)
            .unwrap_or_else(|e| panic!("the output is not a `{}`: {e}", std::any::type_name::<T>()))
    }

    /// Why it failed, once failed.
    pub fn failure(&self) -> Option<&Failure> {
        self.status.failure.as_ref()
    }

    /// What the code last set with `ctx.set_custom_status`.
    pub fn custom_status(&self) -> Option<&Value> {
        self.status.custom_status.as_ref()
    }

    /// The current generation's history as the runtime would have recorded it (input for a
    /// [`ReplayChecker`](crate::testing::ReplayChecker)).
    pub fn history(&self) -> &[HistoryEvent] {
        &self.history
    }

    fn send(&mut self, event: Event) -> &mut Self {
        self.inbox.push(HistoryEvent::new(event));
        self
    }

    fn generation(&self) -> u64 {
        self.history
            .iter()
            .find_map(|e| match e.event {
                Event::ExecutionStarted { generation, .. } => Some(generation),
                _ => None,
            })
            .unwrap_or(0)
    }
}

fn to_value(value: impl Serialize, what: &str) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| panic!("{what} does not serialise: {e}"))
}

impl fmt::Debug for OrchestrationTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestrationTest")
            .field("instance_id", &self.instance_id)
            .field("now", &self.now)
            .field("status", &self.status.runtime_status)
            .finish_non_exhaustive()
    }
}
