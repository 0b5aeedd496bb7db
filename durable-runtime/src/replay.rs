//! The engine: drives one orchestration future over its history, turn by turn, and decides
//! whether replayed code still matches what the history recorded.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::SystemTime;

use serde_json::Value;

use crate::history::{
    kinds, stable_hash, CompletionStatus, Event, Failure, HistoryEvent, ParentRef,
};
use crate::orchestration::{Command, OpResult, RetryNotice, Start, State};
use crate::registry::{ErasedFuture, Registry};
use crate::store::{
    ActivityTask, InstanceStatus, NewInstance, NewTimer, OutgoingMessage, RuntimeStatus,
    StatusUpdate,
};
use crate::{InstanceId, OrchestrationContext};

/// How many generations in a row may continue as new in their first turn before the
/// instance is failed as a restart loop.
const MAX_EAGER_RESTARTS: u64 = 1_000;

/// How many times one turn may re-poll a future that keeps waking itself.
const MAX_POLLS_PER_TURN: usize = 10_000;

thread_local! {
    /// Set while the engine delivers results or polls on this thread: a wake at any other
    /// moment came from something that is not a durable operation.
    static IN_ENGINE: Cell<bool> = const { Cell::new(false) };
}

struct RootWaker {
    woken: AtomicBool,
    foreign: AtomicBool,
}

impl Wake for RootWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if IN_ENGINE.with(Cell::get) {
            self.woken.store(true, Ordering::Relaxed);
        } else {
            self.foreign.store(true, Ordering::Relaxed);
        }
    }
}

struct EngineScope;

impl EngineScope {
    fn enter() -> Self {
        IN_ENGINE.with(|flag| flag.set(true));
        EngineScope
    }
}

impl Drop for EngineScope {
    fn drop(&mut self) {
        IN_ENGINE.with(|flag| flag.set(false));
    }
}

/// What one live turn produced: the history to write and the work it implies.
#[derive(Debug)]
pub(crate) struct TurnResult {
    pub(crate) history: Vec<HistoryEvent>,
    pub(crate) replace_history: bool,
    pub(crate) activities: Vec<ActivityTask>,
    pub(crate) timers: Vec<NewTimer>,
    pub(crate) cancelled_timers: Vec<u64>,
    pub(crate) sub_instances: Vec<NewInstance>,
    pub(crate) messages: Vec<OutgoingMessage>,
    pub(crate) status: StatusUpdate,
    /// Retries this turn scheduled: announced once it is committed.
    pub(crate) retries: Vec<RetryNotice>,
}

/// How a generation of an orchestration ended.
#[derive(Debug, Clone)]
enum Outcome {
    Completed(Value),
    Failed(Failure),
    Terminated {
        output: Value,
        recursive: bool,
    },
    ContinuedAsNew {
        input: Value,
        carried: Vec<(String, Value)>,
    },
}

/// One orchestration instance held in memory: its future and the state it shares with its
/// context. It holds no copy of the history.
pub(crate) struct Execution {
    state: Arc<Mutex<State>>,
    future: Option<ErasedFuture>,
    root: Arc<RootWaker>,
    waker: Waker,
    /// The length of the committed history this execution has seen.
    pub(crate) history_len: u64,
    status: RuntimeStatus,
    output: Option<Value>,
    failure: Option<Failure>,
    /// A failure found before the next live turn (replay found the code changed).
    pending_failure: Option<Failure>,
    /// Events delivered while suspended, applied on resume.
    held: Vec<Event>,
    suspended: bool,
    /// Turns run in this generation.
    turns: u64,
    /// Set once this generation continued as new: the next turn starts a fresh execution.
    restarted: bool,
}

struct Step {
    commands: Vec<Command>,
    outcome: Option<Outcome>,
}

impl Execution {
    pub(crate) fn new(instance_id: InstanceId) -> Self {
        let root = Arc::new(RootWaker {
            woken: AtomicBool::new(false),
            foreign: AtomicBool::new(false),
        });
        Execution {
            state: Arc::new(Mutex::new(State::new(instance_id, SystemTime::UNIX_EPOCH))),
            future: None,
            waker: Waker::from(Arc::clone(&root)),
            root,
            history_len: 0,
            status: RuntimeStatus::Pending,
            output: None,
            failure: None,
            pending_failure: None,
            held: Vec::new(),
            suspended: false,
            turns: 0,
            restarted: false,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the instance has finished for good.
    pub(crate) fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// Whether this execution may serve the instance's next turn (it is neither finished nor
    /// replaced by a new generation).
    pub(crate) fn is_reusable(&self) -> bool {
        !self.is_finished() && !self.restarted
    }

    /// Rebuilds the in-memory state from a recorded history, feeding it in the recorded
    /// turns. Fails with a `nondeterminism` failure if the code issues other commands than
    /// the history recorded; the failure is also kept for the next live turn.
    pub(crate) fn replay(
        &mut self,
        registry: &Registry,
        history: &[HistoryEvent],
    ) -> Result<(), Failure> {
        self.history_len = history.len() as u64;
        let mut turns = split_turns(history).into_iter().peekable();
        while let Some(turn) = turns.next() {
            self.state().recorded = turn.commands.clone();
            let step = self.step(registry, turn.timestamp, &turn.inputs, true);
            self.state().recorded.clear();
            let issued = recordable(&step);
            if let Err(message) = compare(&turn.commands, &issued) {
                let failure = Failure::new(
                    kinds::NONDETERMINISM,
                    format!(
                        "{message} (turn {} of the history); the code changed under a running \
                         instance: keep the old code for old instances (a new version), or \
                         branch with `ctx.patched(..)`",
                        self.turns
                    ),
                );
                self.close();
                self.pending_failure = Some(failure.clone());
                return Err(failure);
            }
            match step.outcome {
                Some(outcome) => {
                    self.finish(outcome);
                    if turns.peek().is_some() {
                        let failure = Failure::new(
                            kinds::NONDETERMINISM,
                            "the history goes on after the orchestration ended",
                        );
                        self.pending_failure = Some(failure.clone());
                        return Err(failure);
                    }
                }
                None => self.status = self.live_status(),
            }
        }
        Ok(())
    }

    /// Runs one live turn at `now` over the delivered `inputs`.
    pub(crate) fn run_turn(
        &mut self,
        registry: &Registry,
        now: SystemTime,
        inputs: Vec<HistoryEvent>,
    ) -> TurnResult {
        let events: Vec<Event> = inputs.iter().map(|e| e.event.clone()).collect();
        let step = match self.pending_failure.take() {
            Some(failure) => Step {
                commands: Vec::new(),
                outcome: Some(Outcome::Failed(failure)),
            },
            None => self.step(registry, now, &events, false),
        };
        let (instance_id, start) = {
            let state = self.state();
            (state.instance_id.clone(), state.start.clone())
        };
        let mut turn = TurnResult {
            history: Vec::with_capacity(inputs.len() + step.commands.len() + 2),
            replace_history: false,
            activities: Vec::new(),
            timers: Vec::new(),
            cancelled_timers: Vec::new(),
            sub_instances: Vec::new(),
            messages: Vec::new(),
            status: self.status_update(),
            retries: std::mem::take(&mut self.state().retries),
        };
        turn.history
            .push(HistoryEvent::new(Event::OrchestratorStarted {
                timestamp: now,
            }));
        turn.history.extend(inputs);
        for command in step.commands {
            match &command {
                Command::Task {
                    id,
                    name,
                    input,
                    attempt,
                    timeout,
                } => turn.activities.push(ActivityTask {
                    instance_id: instance_id.clone(),
                    id: *id,
                    name: name.clone(),
                    input: input.clone(),
                    attempt: *attempt,
                    timeout: *timeout,
                }),
                Command::Timer { id, fire_at } => turn.timers.push(NewTimer {
                    id: *id,
                    fire_at: *fire_at,
                }),
                Command::SubOrchestration {
                    id,
                    name,
                    version,
                    instance_id: child,
                    input,
                } => turn.sub_instances.push(child_instance(
                    &instance_id,
                    start.as_ref().map_or(0, |s| s.generation),
                    *id,
                    name,
                    *version,
                    child,
                    input,
                    now,
                )),
                Command::Wait { .. } | Command::Patch { .. } => {}
            }
            turn.history.push(HistoryEvent::new(command_event(command)));
        }
        let mut cancelled = std::mem::take(&mut self.state().cancelled_timers);
        turn.timers.retain(|timer| !cancelled.contains(&timer.id));
        cancelled.retain(|id| !created_timer(&turn.history, *id));
        turn.cancelled_timers = cancelled;

        match step.outcome {
            None => self.status = self.live_status(),
            Some(Outcome::ContinuedAsNew { input, carried }) => {
                self.continue_as_new(&mut turn, &instance_id, start, input, carried);
            }
            Some(outcome) => {
                turn.history
                    .push(HistoryEvent::new(completion_event(&outcome)));
                turn.messages
                    .extend(self.notifications(&outcome, start.as_ref()));
                self.finish(outcome);
            }
        }
        turn.status = self.status_update();
        if self.restarted {
            turn.status.input = turn.messages.iter().find_map(|m| match &m.event.event {
                Event::ExecutionStarted { input, .. } => Some(input.clone()),
                _ => None,
            });
        }
        turn
    }

    /// Ends this generation: the history is replaced by nothing and the next generation's
    /// start (with any carried events) is sent to the instance itself.
    fn continue_as_new(
        &mut self,
        turn: &mut TurnResult,
        instance_id: &InstanceId,
        start: Option<Start>,
        input: Value,
        carried: Vec<(String, Value)>,
    ) {
        let start = start.unwrap_or(Start {
            version: 1,
            seed: 0,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        });
        let eager_restarts = if self.turns == 1 {
            start.eager_restarts + 1
        } else {
            0
        };
        if eager_restarts > MAX_EAGER_RESTARTS {
            let outcome = Outcome::Failed(Failure::new(
                kinds::RESTART_LOOP,
                format!(
                    "the orchestration continued as new {MAX_EAGER_RESTARTS} times in a row \
                     without awaiting anything: await a timer or an event between generations"
                ),
            ));
            turn.history
                .push(HistoryEvent::new(completion_event(&outcome)));
            turn.messages
                .extend(self.notifications(&outcome, Some(&start)));
            self.finish(outcome);
            return;
        }
        let name = self.state().name.clone();
        let generation = start.generation + 1;
        let next = HistoryEvent::new(Event::ExecutionStarted {
            name,
            version: start.version,
            input,
            seed: start.seed.rotate_left(17) ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            parent: start.parent,
            generation,
            eager_restarts,
        });
        *turn = TurnResult {
            history: Vec::new(),
            replace_history: true,
            activities: Vec::new(),
            timers: Vec::new(),
            cancelled_timers: Vec::new(),
            sub_instances: Vec::new(),
            messages: std::iter::once(next)
                .chain(
                    carried
                        .into_iter()
                        .map(|(name, data)| HistoryEvent::new(Event::EventRaised { name, data })),
                )
                .map(|event| OutgoingMessage {
                    instance_id: instance_id.clone(),
                    event,
                })
                .collect(),
            status: turn.status.clone(),
            retries: Vec::new(),
        };
        self.close();
        self.restarted = true;
        self.status = RuntimeStatus::Running;
    }

    /// The messages an ending sends: the result to a parent, terminations to children.
    fn notifications(&self, outcome: &Outcome, start: Option<&Start>) -> Vec<OutgoingMessage> {
        let mut messages = Vec::new();
        if let Some(parent) = start.and_then(|s| s.parent.as_ref()) {
            let event = match outcome {
                Outcome::Completed(output) => Event::SubOrchestrationCompleted {
                    id: parent.id,
                    generation: parent.generation,
                    output: output.clone(),
                },
                Outcome::Failed(failure) => Event::SubOrchestrationFailed {
                    id: parent.id,
                    generation: parent.generation,
                    failure: failure.clone(),
                },
                Outcome::Terminated { output, .. } => Event::SubOrchestrationFailed {
                    id: parent.id,
                    generation: parent.generation,
                    failure: Failure::new(kinds::TERMINATED, format!("terminated: {output}")),
                },
                Outcome::ContinuedAsNew { .. } => return messages,
            };
            messages.push(OutgoingMessage {
                instance_id: parent.instance_id.clone(),
                event: HistoryEvent::new(event),
            });
        }
        if let Outcome::Terminated {
            output,
            recursive: true,
        } = outcome
        {
            for child in self.state().children.values() {
                messages.push(OutgoingMessage {
                    instance_id: child.clone(),
                    event: HistoryEvent::new(Event::ExecutionTerminated {
                        output: output.clone(),
                        recursive: true,
                    }),
                });
            }
        }
        messages
    }

    fn live_status(&self) -> RuntimeStatus {
        if self.suspended {
            RuntimeStatus::Suspended
        } else {
            RuntimeStatus::Running
        }
    }

    /// The status as of the last turn.
    pub(crate) fn status_update(&self) -> StatusUpdate {
        StatusUpdate {
            runtime_status: self.status,
            output: self.output.clone(),
            custom_status: self.state().custom_status.clone(),
            failure: self.failure.clone(),
            input: None,
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.close();
        match outcome {
            Outcome::Completed(output) => {
                self.status = RuntimeStatus::Completed;
                self.output = Some(output);
            }
            Outcome::Failed(failure) => {
                self.status = RuntimeStatus::Failed;
                self.failure = Some(failure);
            }
            Outcome::Terminated { output, .. } => {
                self.status = RuntimeStatus::Terminated;
                self.output = Some(output);
            }
            Outcome::ContinuedAsNew { .. } => {
                self.restarted = true;
                self.status = RuntimeStatus::Running;
            }
        }
    }

    /// Drops the future; drops inside it no longer cancel anything.
    fn close(&mut self) {
        self.state().closed = true;
        if let Some(future) = self.future.take() {
            // A panicking destructor in user code must not take the worker down.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(future)));
        }
    }

    fn step(
        &mut self,
        registry: &Registry,
        now: SystemTime,
        inputs: &[Event],
        replaying: bool,
    ) -> Step {
        self.turns += 1;
        {
            let mut state = self.state();
            state.now = now;
            state.replaying = replaying;
            state.commands.clear();
            state.cancelled_timers.clear();
            state.retries.clear();
        }
        let outcome = if self.is_finished() || self.restarted {
            None
        } else {
            let _scope = EngineScope::enter();
            match panic::catch_unwind(AssertUnwindSafe(|| {
                self.deliver_and_poll(registry, inputs, replaying)
            })) {
                Ok(outcome) => outcome,
                Err(payload) => Some(Outcome::Failed(Failure::panic(&*payload))),
            }
        };
        if outcome.is_some() {
            self.close();
        }
        Step {
            commands: std::mem::take(&mut self.state().commands),
            outcome,
        }
    }

    fn deliver_and_poll(
        &mut self,
        registry: &Registry,
        inputs: &[Event],
        replaying: bool,
    ) -> Option<Outcome> {
        if self.root.foreign.swap(false, Ordering::Relaxed) && self.future.is_some() {
            return Some(Outcome::Failed(Failure::new(
                kinds::NOT_DURABLE,
                "the orchestration was woken by something other than a durable operation: \
                 await only what `ctx` returns (do channel, lock and network work in an activity)",
            )));
        }
        for event in inputs {
            if let Some(outcome) = self.deliver(registry, event) {
                return Some(outcome);
            }
        }
        if self.suspended {
            return None;
        }
        let future = self.future.as_mut()?;
        let mut cx = Context::from_waker(&self.waker);
        for _ in 0..MAX_POLLS_PER_TURN {
            self.root.woken.store(false, Ordering::Relaxed);
            let poll =
                crate::trace::with_replay_filter(replaying, || future.as_mut().poll(&mut cx));
            if let Poll::Ready(result) = poll {
                return Some(match result {
                    Ok(output) => Outcome::Completed(output),
                    Err(failure) => Outcome::Failed(failure),
                });
            }
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((input, keep_events)) = state.continue_as_new.take() {
                let carried = if keep_events {
                    state.take_buffered()
                } else {
                    Vec::new()
                };
                return Some(Outcome::ContinuedAsNew { input, carried });
            }
            if !self.root.woken.load(Ordering::Relaxed) {
                return (!state.has_pending_ops()).then(|| {
                    Outcome::Failed(Failure::new(
                        kinds::NOT_DURABLE,
                        "the orchestration is waiting, but on no durable operation: it awaited \
                         something other than what `ctx` returns (a channel, a lock, a tokio \
                         timer?); do such work in an activity",
                    ))
                });
            }
        }
        Some(Outcome::Failed(Failure::new(
            kinds::NOT_DURABLE,
            format!(
                "the orchestration woke itself {MAX_POLLS_PER_TURN} times in one turn without \
                 awaiting a durable operation"
            ),
        )))
    }

    /// Delivers one event; returns how the instance ends if the event ends it.
    fn deliver(&mut self, registry: &Registry, event: &Event) -> Option<Outcome> {
        if self.suspended
            && !matches!(
                event,
                Event::ExecutionResumed { .. } | Event::ExecutionTerminated { .. }
            )
        {
            self.held.push(event.clone());
            return None;
        }
        match event {
            Event::ExecutionStarted {
                name,
                version,
                input,
                seed,
                parent,
                generation,
                eager_restarts,
            } => {
                self.state().begin(
                    name,
                    Start {
                        version: *version,
                        seed: *seed,
                        parent: parent.clone(),
                        generation: *generation,
                        eager_restarts: *eager_restarts,
                    },
                );
                let Some(start) = registry.orchestrator(name, *version) else {
                    return Some(Outcome::Failed(Failure::new(
                        kinds::NOT_REGISTERED,
                        format!(
                            "no orchestrator `{name}` (version {version}) is registered with \
                             this runtime"
                        ),
                    )));
                };
                let ctx = OrchestrationContext::new(Arc::clone(&self.state));
                self.future = Some(start(ctx, input.clone()));
            }
            Event::TaskCompleted { id, output } => self
                .state()
                .resolve(*id, OpResult::Task(Ok(output.clone()))),
            Event::TaskFailed { id, failure } => self
                .state()
                .resolve(*id, OpResult::Task(Err(failure.clone()))),
            Event::SubOrchestrationCompleted {
                id,
                generation,
                output,
            } => self.child_result(*id, *generation, Ok(output.clone())),
            Event::SubOrchestrationFailed {
                id,
                generation,
                failure,
            } => self.child_result(*id, *generation, Err(failure.clone())),
            Event::TimerFired { id, .. } => self.state().resolve(*id, OpResult::Timer),
            Event::EventRaised { name, data } => self.state().raise(name.clone(), data.clone()),
            Event::ExecutionTerminated { output, recursive } => {
                return Some(Outcome::Terminated {
                    output: output.clone(),
                    recursive: *recursive,
                });
            }
            Event::ExecutionSuspended { .. } => self.suspended = true,
            Event::ExecutionResumed { .. } => {
                self.suspended = false;
                for held in std::mem::take(&mut self.held) {
                    if let Some(outcome) = self.deliver(registry, &held) {
                        return Some(outcome);
                    }
                }
            }
            _ => {}
        }
        None
    }

    fn child_result(&mut self, id: u64, generation: u64, result: Result<Value, Failure>) {
        let mut state = self.state();
        let current = state.start.as_ref().map_or(0, |s| s.generation);
        if generation == current {
            state.children.remove(&id);
            state.resolve(id, OpResult::Task(result));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn child_instance(
    parent: &InstanceId,
    generation: u64,
    id: u64,
    name: &str,
    version: u32,
    child: &InstanceId,
    input: &Value,
    now: SystemTime,
) -> NewInstance {
    let seed = stable_hash(&serde_json::json!([child.as_str(), now]));
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
            parent: Some(parent.clone()),
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: name.to_string(),
            version,
            input: input.clone(),
            seed,
            parent: Some(ParentRef {
                instance_id: parent.clone(),
                id,
                generation,
            }),
            generation: 0,
            eager_restarts: 0,
        }),
        start_at: None,
        // A retried call with an explicit id replaces its failed child.
        replace_finished: true,
    }
}

fn recordable(step: &Step) -> Vec<Event> {
    let mut events: Vec<Event> = step.commands.iter().cloned().map(command_event).collect();
    if let Some(outcome) = &step.outcome {
        if !matches!(outcome, Outcome::ContinuedAsNew { .. }) {
            events.push(completion_event(outcome));
        }
    }
    events
}

fn created_timer(history: &[HistoryEvent], timer: u64) -> bool {
    history
        .iter()
        .any(|e| matches!(e.event, Event::TimerCreated { id, .. } if id == timer))
}

fn command_event(command: Command) -> Event {
    match command {
        Command::Task {
            id,
            name,
            input,
            attempt,
            ..
        } => Event::TaskScheduled {
            id,
            name,
            input,
            attempt,
        },
        Command::Timer { id, fire_at } => Event::TimerCreated { id, fire_at },
        Command::Wait { id, name } => Event::EventWaitStarted { id, name },
        Command::SubOrchestration {
            id,
            name,
            version,
            instance_id,
            input,
        } => Event::SubOrchestrationCreated {
            id,
            name,
            version,
            instance_id,
            input,
        },
        Command::Patch { name } => Event::PatchApplied { name },
    }
}

fn completion_event(outcome: &Outcome) -> Event {
    match outcome {
        Outcome::Completed(output) => Event::ExecutionCompleted {
            status: CompletionStatus::Completed,
            output: Some(output.clone()),
            failure: None,
        },
        Outcome::Failed(failure) => Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            output: None,
            failure: Some(failure.clone()),
        },
        Outcome::Terminated { output, .. } => Event::ExecutionCompleted {
            status: CompletionStatus::Terminated,
            output: Some(output.clone()),
            failure: None,
        },
        Outcome::ContinuedAsNew { .. } => unreachable!("a continue-as-new is not recorded"),
    }
}

struct Turn {
    timestamp: SystemTime,
    inputs: Vec<Event>,
    commands: Vec<Event>,
}

fn split_turns(history: &[HistoryEvent]) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    for entry in history {
        match &entry.event {
            Event::OrchestratorStarted { timestamp } => turns.push(Turn {
                timestamp: *timestamp,
                inputs: Vec::new(),
                commands: Vec::new(),
            }),
            event => {
                if turns.is_empty() {
                    // A history written without turn markers: one implicit turn.
                    turns.push(Turn {
                        timestamp: SystemTime::UNIX_EPOCH,
                        inputs: Vec::new(),
                        commands: Vec::new(),
                    });
                }
                let turn = turns.last_mut().expect("a turn exists");
                if event.is_command() {
                    turn.commands.push(event.clone());
                } else {
                    turn.inputs.push(event.clone());
                }
            }
        }
    }
    turns
}

/// Describes a command the way the non-determinism message names it.
pub(crate) fn describe(event: &Event) -> String {
    match event {
        Event::TaskScheduled { name, input, .. } => {
            format!(
                "activity `{name}` (input hash {:#018x})",
                stable_hash(input)
            )
        }
        Event::SubOrchestrationCreated {
            name,
            instance_id,
            input,
            ..
        } => format!(
            "sub-orchestration `{name}` as `{instance_id}` (input hash {:#018x})",
            stable_hash(input)
        ),
        Event::TimerCreated { .. } => "a timer".to_string(),
        Event::EventWaitStarted { name, .. } => format!("a wait for event `{name}`"),
        Event::PatchApplied { name } => format!("patch `{name}`"),
        Event::ExecutionCompleted { status, .. } => format!("the orchestration's end ({status:?})"),
        other => format!("{other:?}"),
    }
}

fn step_of(event: &Event) -> Option<u64> {
    match event {
        Event::TaskScheduled { id, .. }
        | Event::TimerCreated { id, .. }
        | Event::EventWaitStarted { id, .. }
        | Event::SubOrchestrationCreated { id, .. } => Some(*id),
        _ => None,
    }
}

fn same_command(recorded: &Event, issued: &Event) -> bool {
    match (recorded, issued) {
        (
            Event::TaskScheduled {
                id: a,
                name: na,
                input: ia,
                ..
            },
            Event::TaskScheduled {
                id: b,
                name: nb,
                input: ib,
                ..
            },
        ) => a == b && na == nb && stable_hash(ia) == stable_hash(ib),
        (
            Event::SubOrchestrationCreated {
                id: a,
                name: na,
                instance_id: xa,
                input: ia,
                ..
            },
            Event::SubOrchestrationCreated {
                id: b,
                name: nb,
                instance_id: xb,
                input: ib,
                ..
            },
        ) => a == b && na == nb && xa == xb && stable_hash(ia) == stable_hash(ib),
        (Event::TimerCreated { id: a, .. }, Event::TimerCreated { id: b, .. }) => a == b,
        (
            Event::EventWaitStarted { id: a, name: na },
            Event::EventWaitStarted { id: b, name: nb },
        ) => a == b && na == nb,
        (Event::PatchApplied { name: a }, Event::PatchApplied { name: b }) => a == b,
        (
            Event::ExecutionCompleted { status: a, .. },
            Event::ExecutionCompleted { status: b, .. },
        ) => a == b,
        _ => false,
    }
}

/// Compares the commands a turn recorded with those the code issued when replayed.
fn compare(recorded: &[Event], issued: &[Event]) -> Result<(), String> {
    let step_label = |event: &Event| match step_of(event) {
        Some(step) => format!("step {step}"),
        None => "the end of the turn".to_string(),
    };
    for i in 0..recorded.len().max(issued.len()) {
        match (recorded.get(i), issued.get(i)) {
            (Some(r), Some(n)) if same_command(r, n) => {}
            (Some(r), Some(n)) => {
                return Err(format!(
                    "expected {} at {}, found {}",
                    describe(r),
                    step_label(r),
                    describe(n)
                ));
            }
            (Some(r), None) => {
                return Err(format!(
                    "expected {} at {}, found nothing: the code no longer issues it",
                    describe(r),
                    step_label(r)
                ));
            }
            (None, Some(n)) => {
                return Err(format!(
                    "expected nothing more at {}, found {}: the history recorded no such command",
                    step_label(n),
                    describe(n)
                ));
            }
            (None, None) => unreachable!(),
        }
    }
    Ok(())
}
