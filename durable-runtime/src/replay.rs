//! The engine: drives one orchestration future over its history, turn by turn, and decides
//! whether replayed code still matches what the history recorded.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::SystemTime;

use serde_json::Value;

use crate::history::{kinds, stable_hash, CompletionStatus, Event, Failure, HistoryEvent};
use crate::orchestration::{Command, OpResult, State};
use crate::registry::{ErasedFuture, Registry};
use crate::store::{ActivityTask, NewTimer, RuntimeStatus, StatusUpdate};
use crate::{InstanceId, OrchestrationContext};

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

/// What one live turn produced: the history to append and the work it implies.
#[derive(Debug)]
pub(crate) struct TurnResult {
    pub(crate) history: Vec<HistoryEvent>,
    pub(crate) activities: Vec<ActivityTask>,
    pub(crate) timers: Vec<NewTimer>,
    pub(crate) cancelled_timers: Vec<u64>,
    pub(crate) status: StatusUpdate,
}

/// One orchestration instance held in memory: its future and the state it shares with its
/// context. It holds no copy of the history.
pub(crate) struct Execution {
    state: Arc<Mutex<State>>,
    future: Option<ErasedFuture>,
    root: Arc<RootWaker>,
    waker: Waker,
    /// The length of the committed history this execution has seen.
    pub(crate) version: u64,
    status: RuntimeStatus,
    output: Option<Value>,
    failure: Option<Failure>,
    /// A failure found before the next live turn (replay found the code changed).
    pending_failure: Option<Failure>,
    turns: u64,
}

struct Step {
    commands: Vec<Command>,
    completion: Option<Result<Value, Failure>>,
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
            version: 0,
            status: RuntimeStatus::Pending,
            output: None,
            failure: None,
            pending_failure: None,
            turns: 0,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// Rebuilds the in-memory state from a recorded history, feeding it in the recorded
    /// turns. Fails with a `nondeterminism` failure if the code issues other commands than
    /// the history recorded; the failure is also kept for the next live turn.
    pub(crate) fn replay(
        &mut self,
        registry: &Registry,
        history: &[HistoryEvent],
    ) -> Result<(), Failure> {
        let mut turns = split_turns(history).into_iter().peekable();
        while let Some(turn) = turns.next() {
            let step = self.step(registry, turn.timestamp, &turn.inputs, true);
            let issued = self.recordable(&step);
            if let Err(message) = compare(&turn.commands, &issued) {
                let failure = Failure::new(
                    kinds::NONDETERMINISM,
                    format!(
                        "{message} (turn {} of the history); the code changed under a running instance: \
                         keep the old code for old instances, or use a new version",
                        self.turns
                    ),
                );
                self.close();
                self.pending_failure = Some(failure.clone());
                self.version = history.len() as u64;
                return Err(failure);
            }
            if let Some(completion) = step.completion {
                self.finish(completion);
                if turns.peek().is_some() {
                    self.version = history.len() as u64;
                    let failure = Failure::new(
                        kinds::NONDETERMINISM,
                        "the history goes on after the orchestration completed",
                    );
                    return Err(failure);
                }
            } else {
                self.status = RuntimeStatus::Running;
            }
        }
        self.version = history.len() as u64;
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
        let mut step = match self.pending_failure.take() {
            Some(failure) => Step {
                commands: Vec::new(),
                completion: Some(Err(failure)),
            },
            None => self.step(registry, now, &events, false),
        };
        let mut history = Vec::with_capacity(inputs.len() + step.commands.len() + 2);
        history.push(HistoryEvent::new(Event::OrchestratorStarted {
            timestamp: now,
        }));
        history.extend(inputs);
        let mut activities = Vec::new();
        let mut timers = Vec::new();
        let instance_id = self.state().instance_id.clone();
        for command in std::mem::take(&mut step.commands) {
            match &command {
                Command::Task {
                    id,
                    name,
                    input,
                    attempt,
                    timeout,
                } => activities.push(ActivityTask {
                    instance_id: instance_id.clone(),
                    id: *id,
                    name: name.clone(),
                    input: input.clone(),
                    attempt: *attempt,
                    timeout: *timeout,
                }),
                Command::Timer { id, fire_at } => timers.push(NewTimer {
                    id: *id,
                    fire_at: *fire_at,
                }),
                Command::Wait { .. } => {}
            }
            history.push(HistoryEvent::new(command_event(command)));
        }
        let mut cancelled_timers = std::mem::take(&mut self.state().cancelled_timers);
        timers.retain(|timer| !cancelled_timers.contains(&timer.id));
        cancelled_timers.retain(|id| !history_created_timer(&history, *id));
        match step.completion {
            Some(completion) => {
                history.push(HistoryEvent::new(completion_event(&completion)));
                self.finish(completion);
            }
            None => self.status = RuntimeStatus::Running,
        }
        TurnResult {
            history,
            activities,
            timers,
            cancelled_timers,
            status: self.status_update(),
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

    fn finish(&mut self, completion: Result<Value, Failure>) {
        self.close();
        match completion {
            Ok(output) => {
                self.status = RuntimeStatus::Completed;
                self.output = Some(output);
            }
            Err(failure) => {
                self.status = RuntimeStatus::Failed;
                self.failure = Some(failure);
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
        }
        let completion = if self.is_finished() {
            None
        } else {
            let _scope = EngineScope::enter();
            match panic::catch_unwind(AssertUnwindSafe(|| {
                self.deliver_and_poll(registry, inputs, replaying)
            })) {
                Ok(completion) => completion,
                Err(payload) => Some(Err(Failure::panic(&*payload))),
            }
        };
        if completion.is_some() {
            self.close();
        }
        Step {
            commands: std::mem::take(&mut self.state().commands),
            completion,
        }
    }

    fn deliver_and_poll(
        &mut self,
        registry: &Registry,
        inputs: &[Event],
        replaying: bool,
    ) -> Option<Result<Value, Failure>> {
        if self.root.foreign.swap(false, Ordering::Relaxed) && self.future.is_some() {
            return Some(Err(Failure::new(
                kinds::NOT_DURABLE,
                "the orchestration was woken by something other than a durable operation: \
                 await only what `ctx` returns (do channel, lock and network work in an activity)",
            )));
        }
        for event in inputs {
            if let Some(failure) = self.deliver(registry, event) {
                return Some(Err(failure));
            }
        }
        let future = self.future.as_mut()?;
        let mut cx = Context::from_waker(&self.waker);
        for _ in 0..MAX_POLLS_PER_TURN {
            self.root.woken.store(false, Ordering::Relaxed);
            let poll =
                crate::trace::with_replay_filter(replaying, || future.as_mut().poll(&mut cx));
            if let Poll::Ready(completion) = poll {
                return Some(completion);
            }
            if !self.root.woken.load(Ordering::Relaxed) {
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                return (!state.has_pending_ops()).then(|| {
                    Err(Failure::new(
                        kinds::NOT_DURABLE,
                        "the orchestration is waiting, but on no durable operation: it awaited \
                         something other than what `ctx` returns (a channel, a lock, a tokio timer?); \
                         do such work in an activity",
                    ))
                });
            }
        }
        Some(Err(Failure::new(
            kinds::NOT_DURABLE,
            format!("the orchestration woke itself {MAX_POLLS_PER_TURN} times in one turn without awaiting a durable operation"),
        )))
    }

    /// Delivers one event; returns a failure if the instance cannot go on.
    fn deliver(&mut self, registry: &Registry, event: &Event) -> Option<Failure> {
        match event {
            Event::ExecutionStarted {
                name,
                version,
                input,
                seed,
                ..
            } => {
                self.state().seed(name, *seed);
                let Some(start) = registry.orchestrator(name, *version) else {
                    return Some(Failure::new(
                        kinds::NOT_REGISTERED,
                        format!("no orchestrator `{name}` (version {version}) is registered with this runtime"),
                    ));
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
            Event::TimerFired { id, .. } => self.state().resolve(*id, OpResult::Timer),
            Event::EventRaised { name, data } => self.state().raise(name.clone(), data.clone()),
            _ => {}
        }
        None
    }

    fn recordable(&self, step: &Step) -> Vec<Event> {
        let mut events: Vec<Event> = step.commands.iter().cloned().map(command_event).collect();
        if let Some(completion) = &step.completion {
            events.push(completion_event(completion));
        }
        events
    }
}

fn history_created_timer(history: &[HistoryEvent], timer: u64) -> bool {
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
    }
}

fn completion_event(completion: &Result<Value, Failure>) -> Event {
    match completion {
        Ok(output) => Event::ExecutionCompleted {
            status: CompletionStatus::Completed,
            output: Some(output.clone()),
            failure: None,
        },
        Err(failure) => Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            output: None,
            failure: Some(failure.clone()),
        },
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
        Event::TimerCreated { .. } => "a timer".to_string(),
        Event::EventWaitStarted { name, .. } => format!("a wait for event `{name}`"),
        Event::ExecutionCompleted { status, .. } => format!("the orchestration's end ({status:?})"),
        other => format!("{other:?}"),
    }
}

fn step_of(event: &Event) -> Option<u64> {
    match event {
        Event::TaskScheduled { id, .. }
        | Event::TimerCreated { id, .. }
        | Event::EventWaitStarted { id, .. } => Some(*id),
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
        (Event::TimerCreated { id: a, .. }, Event::TimerCreated { id: b, .. }) => a == b,
        (
            Event::EventWaitStarted { id: a, name: na },
            Event::EventWaitStarted { id: b, name: nb },
        ) => a == b && na == nb,
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
