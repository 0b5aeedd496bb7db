//! The driver: one instance's future polled over its history turn by turn, then live.
//!
//! An `Execution` lives in the cache between turns. Replayed turns are judged by `drift.rs`;
//! a live turn is written into its commit by `effects.rs`.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::SystemTime;

use serde_json::Value;

use crate::command::{Command, Outcome};
use crate::drift::{self, RecordedPatches};
use crate::effects;
use crate::handle::{Feed, Issued, OpResult, RetryNotice};
use crate::history::{kinds, CompletionStatus, Event, Failure, HistoryEvent, ParentRef};
use crate::instance_id::InstanceId;
use crate::limits::PayloadLimits;
use crate::orchestration::OrchestrationContext;
use crate::registry::{ErasedFuture, Registry};
use crate::status::RuntimeStatus;
use crate::store::{StatusUpdate, TurnCommit};
use crate::telemetry::InstanceTelemetry;
use crate::trace;

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

/// What the generation's `ExecutionStarted` event said.
#[derive(Debug, Clone)]
struct Start {
    version: u32,
    seed: u64,
    parent: Option<ParentRef>,
    generation: u64,
    eager_restarts: u64,
}

/// One orchestration instance held in memory: its future and the engine's side of its
/// context. It holds no copy of the history.
pub(crate) struct Execution {
    feed: Feed,
    future: Option<ErasedFuture>,
    root: Arc<RootWaker>,
    waker: Waker,
    /// The length of the committed history this execution has seen.
    pub(crate) history_len: u64,
    start: Option<Start>,
    status: RuntimeStatus,
    output: Option<Value>,
    failure: Option<Failure>,
    /// A failure found before the next live turn (replay found the code changed).
    pending_failure: Option<Failure>,
    /// Events delivered while suspended, applied on resume.
    held: Vec<HistoryEvent>,
    suspended: bool,
    /// Turns run in this generation.
    turns: u64,
    /// Set once this generation continued as new: the next turn starts a fresh execution.
    restarted: bool,
    /// What a live turn may produce.
    limits: PayloadLimits,
    /// Its span and labels (telemetry/).
    pub(crate) telemetry: InstanceTelemetry,
}

impl Execution {
    pub(crate) fn new(instance_id: InstanceId) -> Self {
        let root = Arc::new(RootWaker {
            woken: AtomicBool::new(false),
            foreign: AtomicBool::new(false),
        });
        Execution {
            feed: Feed::new(instance_id),
            future: None,
            waker: Waker::from(Arc::clone(&root)),
            root,
            history_len: 0,
            start: None,
            status: RuntimeStatus::Pending,
            output: None,
            failure: None,
            pending_failure: None,
            held: Vec::new(),
            suspended: false,
            turns: 0,
            restarted: false,
            limits: PayloadLimits::default(),
            telemetry: InstanceTelemetry::default(),
        }
    }

    /// The same execution, its live turns held to `limits`.
    pub(crate) fn with_limits(mut self, limits: PayloadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// An execution whose next turn fails the instance with `failure` (its history of
    /// `history_len` events cannot be read).
    pub(crate) fn failing(instance_id: InstanceId, history_len: u64, failure: Failure) -> Self {
        let mut execution = Execution::new(instance_id);
        execution.history_len = history_len;
        execution.pending_failure = Some(failure);
        execution
    }

    /// Whether the instance has finished for good.
    pub(crate) fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// Whether the code has read its instance id, so that its commands may depend on it.
    pub(crate) fn instance_id_observed(&self) -> bool {
        self.feed.lock().id_observed()
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
        let mut turns = recorded_turns(history).peekable();
        while let Some((timestamp, events)) = turns.next() {
            let recorded = || events.iter().map(|e| &e.event).filter(|e| e.is_command());
            let inputs = events.iter().filter(|e| !e.event.is_command());
            let patches = RecordedPatches::of(recorded());
            let outcome = self.poll_turn(registry, timestamp, inputs, Some(patches));
            let issued = self.feed.lock().take_issued();
            if let Err(drift) = drift::check(recorded(), &issued.commands, outcome.as_ref()) {
                let failure = Failure::new(
                    kinds::NONDETERMINISM,
                    format!(
                        "{drift} (turn {} of the history); the code changed under a running \
                         instance: keep the old code for old instances (a new version), or \
                         branch with `ctx.patched(..)`",
                        self.turns
                    ),
                );
                self.close();
                self.pending_failure = Some(failure.clone());
                return Err(failure);
            }
            match outcome {
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

    /// Runs one live turn at `now` over the delivered `inputs`, writing it into `commit`:
    /// its history, the work it starts, the messages it sends and the status it leaves.
    /// Returns the retries it scheduled, to announce once the commit is durable.
    pub(crate) fn run_turn(
        &mut self,
        registry: &Registry,
        now: SystemTime,
        inputs: impl IntoIterator<Item = HistoryEvent>,
        commit: &mut TurnCommit,
    ) -> Vec<RetryNotice> {
        commit
            .history
            .push(HistoryEvent::new(Event::OrchestratorStarted {
                timestamp: now,
            }));
        let first_input = commit.history.len();
        commit.history.extend(inputs);
        let outcome = match self.pending_failure.take() {
            Some(failure) => Some(Outcome::Failed(failure)),
            None => {
                let inputs = commit.history[first_input..].iter();
                self.poll_turn(registry, now, inputs, None)
            }
        };
        let mut issued = self.feed.lock().take_issued();
        let outcome = self.within_limits(outcome, &mut issued);
        let outcome = match outcome {
            Some(Outcome::ContinuedAsNew { input, carried }) => match self.next_start(&input) {
                Ok(start) => {
                    effects::record_restart(commit, start, carried);
                    self.close();
                    self.restarted = true;
                    self.status = RuntimeStatus::Running;
                    commit.status = self.status_update();
                    commit.status.input = Some(input);
                    return Vec::new();
                }
                Err(restart_loop) => Some(Outcome::Failed(restart_loop)),
            },
            outcome => outcome,
        };
        let generation = self.start.as_ref().map_or(0, |s| s.generation);
        effects::record_commands(commit, issued.commands, generation, now);
        effects::cancel_timers(commit, issued.cancelled_timers);
        match outcome {
            None => self.status = self.live_status(),
            Some(outcome) => {
                let parent = self.start.as_ref().and_then(|s| s.parent.as_ref());
                effects::record_ending(commit, &outcome, parent, self.feed.lock().children());
                self.finish(outcome);
            }
        }
        commit.status = self.status_update();
        issued.retries
    }

    /// The turn's outcome, or a failure if a payload the code produced in it (an activity's or
    /// a sub-orchestration's input, the output, a continue-as-new's input, the custom status)
    /// is over the limits; then nothing else of the turn is kept. Live turns only: a failed
    /// turn ends the instance, which never replays again.
    fn within_limits(&self, outcome: Option<Outcome>, issued: &mut Issued) -> Option<Outcome> {
        let limits = &self.limits;
        let mut checked = issued
            .commands
            .iter()
            .try_for_each(|command| match command {
                Command::Task { name, input, .. } => {
                    limits.check_produced(input, format_args!("the input of activity `{name}`"))
                }
                Command::SubOrchestration { name, input, .. } => limits.check_produced(
                    input,
                    format_args!("the input of sub-orchestration `{name}`"),
                ),
                _ => Ok(()),
            });
        checked = checked.and_then(|()| match &outcome {
            Some(Outcome::Completed(output)) => {
                limits.check_produced(output, "the output of the orchestration")
            }
            Some(Outcome::ContinuedAsNew { input, .. }) => {
                limits.check_produced(input, "the input of continue-as-new")
            }
            _ => Ok(()),
        });
        checked = checked.and_then(|()| {
            let mut feed = self.feed.lock();
            feed.refuse_custom_status(|status| limits.check_produced(status, "the custom status"))
        });
        match checked {
            Ok(()) => match outcome {
                Some(Outcome::Failed(failure)) => Some(Outcome::Failed(limits.trim(failure))),
                outcome => outcome,
            },
            Err(failure) => {
                issued.commands.clear();
                issued.retries.clear();
                Some(Outcome::Failed(failure))
            }
        }
    }

    /// The next generation's `ExecutionStarted`, or the failure of a restart loop: too many
    /// generations in a row continued as new in their first turn.
    fn next_start(&self, input: &Value) -> Result<Event, Failure> {
        let start = self.start.clone().unwrap_or(Start {
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
            return Err(Failure::new(
                kinds::RESTART_LOOP,
                format!(
                    "the orchestration continued as new {MAX_EAGER_RESTARTS} times in a row \
                     without awaiting anything: await a timer or an event between generations"
                ),
            ));
        }
        let generation = start.generation + 1;
        Ok(Event::ExecutionStarted {
            name: self.feed.lock().name().to_string(),
            version: start.version,
            input: input.clone(),
            seed: start.seed.rotate_left(17) ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            parent: start.parent,
            generation,
            eager_restarts,
        })
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
            custom_status: self.feed.lock().custom_status(),
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
        self.feed.lock().close();
        if let Some(future) = self.future.take() {
            // A panicking destructor in user code must not take the worker down.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(future)));
        }
    }

    /// Runs the code over one turn: delivers `inputs` and polls until everything waits on a
    /// durable operation. Returns how the generation ends, if it does; what the code issued
    /// stays in the feed.
    fn poll_turn<'e>(
        &mut self,
        registry: &Registry,
        now: SystemTime,
        inputs: impl IntoIterator<Item = &'e HistoryEvent>,
        replay: Option<RecordedPatches>,
    ) -> Option<Outcome> {
        self.turns += 1;
        let replaying = replay.is_some();
        self.feed.lock().begin_turn(now, replay);
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
        outcome
    }

    fn deliver_and_poll<'e>(
        &mut self,
        registry: &Registry,
        inputs: impl IntoIterator<Item = &'e HistoryEvent>,
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
            let poll = trace::with_replay_filter(replaying, || future.as_mut().poll(&mut cx));
            if let Poll::Ready(result) = poll {
                return Some(match result {
                    Ok(output) => Outcome::Completed(output),
                    Err(failure) => Outcome::Failed(failure),
                });
            }
            let mut feed = self.feed.lock();
            if let Some(refusal) = feed.take_refusal() {
                return Some(Outcome::Failed(refusal));
            }
            if let Some((input, carried)) = feed.take_continue_as_new() {
                return Some(Outcome::ContinuedAsNew { input, carried });
            }
            if !self.root.woken.load(Ordering::Relaxed) {
                return (!feed.has_pending_ops()).then(|| {
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
    fn deliver(&mut self, registry: &Registry, recorded: &HistoryEvent) -> Option<Outcome> {
        let event = &recorded.event;
        // A suspend of a suspended instance is not held: applied after the resume, it would
        // suspend the instance again.
        if self.suspended
            && !matches!(
                event,
                Event::ExecutionResumed { .. }
                    | Event::ExecutionTerminated { .. }
                    | Event::ExecutionCompleted { .. }
                    | Event::ExecutionSuspended { .. }
            )
        {
            self.held.push(recorded.clone());
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
                self.feed
                    .lock()
                    .begin_generation(name, *seed, recorded.format_version);
                self.start = Some(Start {
                    version: *version,
                    seed: *seed,
                    parent: parent.clone(),
                    generation: *generation,
                    eager_restarts: *eager_restarts,
                });
                let Some(start) = registry.orchestrator(name, *version) else {
                    return Some(Outcome::Failed(Failure::new(
                        kinds::NOT_REGISTERED,
                        format!(
                            "no orchestrator `{name}` (version {version}) is registered with \
                             this runtime"
                        ),
                    )));
                };
                let ctx = OrchestrationContext::new(self.feed.handle());
                self.future = Some(start(ctx, input.clone()));
            }
            Event::TaskCompleted { id, output } => self
                .feed
                .lock()
                .resolve(*id, OpResult::Task(Ok(output.clone()))),
            Event::TaskFailed { id, failure } => self
                .feed
                .lock()
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
            Event::TimerFired { id, .. } => self.feed.lock().resolve(*id, OpResult::Timer),
            Event::EventRaised { name, data } => self.feed.lock().raise(name.clone(), data.clone()),
            Event::ExecutionTerminated { output, recursive } => {
                return Some(Outcome::Terminated {
                    output: output.clone(),
                    recursive: *recursive,
                });
            }
            // A store's stand-in for an inbox message it cannot read.
            Event::ExecutionCompleted {
                status: CompletionStatus::Failed,
                failure: Some(failure),
                ..
            } => return Some(Outcome::Failed(failure.clone())),
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

    /// A sub-orchestration's result; one for an earlier generation (from before a
    /// continue-as-new) is ignored.
    fn child_result(&mut self, seq: u64, generation: u64, result: Result<Value, Failure>) {
        let current = self.start.as_ref().map_or(0, |s| s.generation);
        if generation == current {
            self.feed.lock().resolve_child(seq, result);
        }
    }
}

/// The turns of a recorded history, each with its time: a turn opens with
/// `OrchestratorStarted`; events before the first one (a history written without turn
/// markers) make one turn at the epoch.
fn recorded_turns(history: &[HistoryEvent]) -> impl Iterator<Item = (SystemTime, &[HistoryEvent])> {
    let mut rest = history;
    std::iter::from_fn(move || {
        let (first, tail) = rest.split_first()?;
        let (timestamp, body) = match first.event {
            Event::OrchestratorStarted { timestamp } => (timestamp, tail),
            _ => (SystemTime::UNIX_EPOCH, rest),
        };
        let end = body
            .iter()
            .position(|e| matches!(e.event, Event::OrchestratorStarted { .. }))
            .unwrap_or(body.len());
        let (turn, next) = body.split_at(end);
        rest = next;
        Some((timestamp, turn))
    })
}
