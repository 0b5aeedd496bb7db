//! `OrchestrationContext`: everything an orchestration may do, each of it replay-safe.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use foldhash::{HashMap, HashMapExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::callable::{CallTarget, Callable};
use crate::event_data::EventData;
use crate::history::Failure;
use crate::{InstanceId, RetryPolicy, TaskError};

/// The handle an orchestration uses to call activities, wait and read deterministic values.
///
/// Everything it returns is recorded in, or derived from, the history, so the same code gives
/// the same answers when it is replayed after a restart.
#[derive(Clone)]
pub struct OrchestrationContext {
    shared: Arc<Mutex<State>>,
}

/// A command the code issued in the current turn, in sequence order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Task {
        id: u64,
        name: String,
        input: Value,
        attempt: u32,
        timeout: Option<Duration>,
    },
    Timer {
        id: u64,
        fire_at: SystemTime,
    },
    Wait {
        id: u64,
        name: String,
    },
    SubOrchestration {
        id: u64,
        name: String,
        version: u32,
        instance_id: InstanceId,
        input: Value,
    },
    /// `ctx.patched(name)` took the new branch; takes no sequence number, so code with and
    /// without the patch numbers its other commands alike.
    Patch {
        name: String,
    },
}

#[derive(Debug)]
pub(crate) enum OpResult {
    Task(Result<Value, Failure>),
    Timer,
    Event(Value),
}

enum Op {
    Pending(Option<Waker>),
    Ready(OpResult),
}

pub(crate) struct State {
    pub(crate) instance_id: InstanceId,
    pub(crate) name: String,
    pub(crate) now: SystemTime,
    pub(crate) replaying: bool,
    pub(crate) custom_status: Option<Value>,
    /// Timers dropped before firing in the current turn.
    pub(crate) cancelled_timers: Vec<u64>,
    pub(crate) commands: Vec<Command>,
    next_seq: u64,
    ops: HashMap<u64, Op>,
    /// Pending event waits by sequence number: the oldest wait of a name is served first.
    waits: BTreeMap<u64, String>,
    buffered: HashMap<String, VecDeque<Value>>,
    rng: u64,
    /// Set once the orchestration has finished: drops no longer cancel anything.
    pub(crate) closed: bool,
    /// How this generation was started (from its `ExecutionStarted` event).
    pub(crate) start: Option<Start>,
    /// Running sub-orchestrations by sequence number, for a recursive terminate.
    pub(crate) children: BTreeMap<u64, InstanceId>,
    /// While replaying a turn: the commands it recorded, so `ctx.patched` can tell which
    /// branch the recorded run took.
    pub(crate) recorded: Vec<crate::Event>,
    /// Set by `ctx.continue_as_new`: the next generation's input and whether buffered events
    /// carry over.
    pub(crate) continue_as_new: Option<(Value, bool)>,
    /// Retries scheduled in the current live turn.
    pub(crate) retries: Vec<RetryNotice>,
}

/// A retry scheduled in a live turn, announced once its turn is committed.
#[derive(Debug, Clone)]
pub(crate) struct RetryNotice {
    pub(crate) what: &'static str,
    pub(crate) name: &'static str,
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) error: String,
}

/// What an `ExecutionStarted` event said.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub(crate) version: u32,
    pub(crate) seed: u64,
    pub(crate) parent: Option<crate::history::ParentRef>,
    pub(crate) generation: u64,
    pub(crate) eager_restarts: u64,
}

impl State {
    pub(crate) fn new(instance_id: InstanceId, now: SystemTime) -> Self {
        State {
            instance_id,
            name: String::new(),
            now,
            replaying: false,
            custom_status: None,
            cancelled_timers: Vec::new(),
            commands: Vec::new(),
            next_seq: 0,
            ops: HashMap::new(),
            waits: BTreeMap::new(),
            buffered: HashMap::new(),
            rng: 0,
            closed: false,
            start: None,
            children: BTreeMap::new(),
            recorded: Vec::new(),
            continue_as_new: None,
            retries: Vec::new(),
        }
    }

    pub(crate) fn begin(&mut self, name: &str, start: Start) {
        self.name = name.to_string();
        self.rng = start.seed;
        self.start = Some(start);
    }

    /// Events raised but never awaited, oldest first (carried over by continue-as-new).
    pub(crate) fn take_buffered(&mut self) -> Vec<(String, Value)> {
        let mut carried = Vec::new();
        for (name, values) in self.buffered.drain() {
            carried.extend(values.into_iter().map(|v| (name.clone(), v)));
        }
        // HashMap order is arbitrary: sort by name so the carried order is deterministic.
        carried.sort_by(|a, b| a.0.cmp(&b.0));
        carried
    }

    fn issue(&mut self, command: impl FnOnce(u64) -> Command) -> u64 {
        let id = self.next_seq;
        self.next_seq += 1;
        self.commands.push(command(id));
        self.ops.insert(id, Op::Pending(None));
        id
    }

    /// Delivers the result of operation `id`, waking whoever awaits it. Results for
    /// operations nobody awaits any more (a cancelled timer) are ignored.
    pub(crate) fn resolve(&mut self, id: u64, result: OpResult) {
        if let Some(op) = self.ops.get_mut(&id) {
            if let Op::Pending(Some(waker)) = std::mem::replace(op, Op::Ready(result)) {
                waker.wake();
            }
        }
    }

    pub(crate) fn raise(&mut self, name: String, data: Value) {
        let oldest = self
            .waits
            .iter()
            .find(|(_, waiting_for)| **waiting_for == name)
            .map(|(id, _)| *id);
        match oldest {
            Some(id) => {
                self.waits.remove(&id);
                self.resolve(id, OpResult::Event(data));
            }
            None => self.buffered.entry(name).or_default().push_back(data),
        }
    }

    /// Whether anything durable is still awaited.
    pub(crate) fn has_pending_ops(&self) -> bool {
        self.ops.values().any(|op| matches!(op, Op::Pending(_)))
    }

    fn poll_op(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<OpResult> {
        match self.ops.remove(&id) {
            Some(Op::Ready(result)) => Poll::Ready(result),
            Some(Op::Pending(_)) | None => {
                self.ops.insert(id, Op::Pending(Some(cx.waker().clone())));
                Poll::Pending
            }
        }
    }

    fn cancel_timer(&mut self, id: u64) {
        if self.closed {
            return;
        }
        if let Some(Op::Pending(_)) = self.ops.remove(&id) {
            self.cancelled_timers.push(id);
        }
    }

    /// Stops awaiting operation `id` (its result will be ignored when it comes).
    fn forget(&mut self, id: u64) {
        if !self.closed {
            self.ops.remove(&id);
        }
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64: tiny, fast, and fully determined by the seed stored in the history.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl OrchestrationContext {
    pub(crate) fn new(shared: Arc<Mutex<State>>) -> Self {
        OrchestrationContext { shared }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The id of this instance.
    pub fn instance_id(&self) -> InstanceId {
        self.state().instance_id.clone()
    }

    /// The durable name of this orchestration.
    pub fn name(&self) -> String {
        self.state().name.clone()
    }

    /// The time of the current turn: the same on every replay. Use it instead of
    /// `SystemTime::now()`.
    pub fn now(&self) -> SystemTime {
        self.state().now
    }

    /// Whether the code is re-running a turn already recorded in the history. Tracing events
    /// are suppressed while it is; use this for any other side effect that must happen once.
    pub fn is_replaying(&self) -> bool {
        self.state().replaying
    }

    /// A random number, the same on every replay (seeded from the history).
    pub fn random(&self) -> u64 {
        self.state().next_random()
    }

    /// A random (version 4) UUID, the same on every replay.
    pub fn new_uuid(&self) -> uuid::Uuid {
        let mut state = self.state();
        let high = state.next_random().to_be_bytes();
        let low = state.next_random().to_be_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high);
        bytes[8..].copy_from_slice(&low);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Publishes `status` as this instance's custom status, readable by clients (for example
    /// "waiting for approval"). It is saved with the turn.
    pub fn set_custom_status(&self, status: impl Serialize) {
        let value = serde_json::to_value(status).unwrap_or_else(|e| Value::String(e.to_string()));
        self.state().custom_status = Some(value);
    }

    /// Calls an activity: `ctx.call(charge_card, order).await?`. The input type is checked
    /// against the callee at compile time; `.retry(policy)` and `.timeout(duration)` configure
    /// the call before it is awaited.
    ///
    /// Calling an orchestrator runs it as a sub-orchestration: a child instance with its own
    /// history, whose id defaults to `"{parent id}:{sequence number}"` (set it with
    /// `.instance_id(..)`). A failed child fails the call with the child's message.
    pub fn call<K, C: Callable<K>>(&self, callee: C, input: C::Input) -> Call<C::Output, K> {
        let _ = callee;
        let (retry, target) = match C::__target() {
            CallTarget::Activity {
                name,
                default_retry,
            } => (default_retry, Target::Activity { name }),
            CallTarget::Orchestrator { name, version } => (
                None,
                Target::Orchestrator {
                    name,
                    version,
                    instance_id: None,
                },
            ),
        };
        Call {
            ctx: self.clone(),
            target,
            input: serde_json::to_value(input).map_err(|e| e.to_string()),
            retry,
            timeout: None,
            phase: Phase::NotStarted,
            attempt: 0,
            first_attempt_at: None,
            _output: PhantomData,
        }
    }

    /// Whether to take the new branch of a change made under running instances: `true` when
    /// the code runs live (and that choice is recorded), and on replay whatever the recorded
    /// run chose, so instances started before the change replay the old branch.
    ///
    /// ```
    /// # use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, TaskError};
    /// # #[activity]
    /// # async fn charge(_ctx: ActivityContext, order: String) -> Result<(), String> { Ok(()) }
    /// # #[activity]
    /// # async fn send_receipt(_ctx: ActivityContext, order: String) -> Result<(), String> { Ok(()) }
    /// #[orchestrator]
    /// async fn checkout(ctx: OrchestrationContext, order: String) -> Result<(), TaskError> {
    ///     ctx.call(charge, order.clone()).await?;
    ///     // Added while instances were running: those replay without it.
    ///     if ctx.patched("send-receipt") {
    ///         ctx.call(send_receipt, order).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn patched(&self, name: &str) -> bool {
        let mut state = self.state();
        let taken = !state.replaying
            || matches!(
                state.recorded.get(state.commands.len()),
                Some(crate::Event::PatchApplied { name: recorded }) if recorded == name
            );
        if taken {
            state.commands.push(Command::Patch {
                name: name.to_string(),
            });
        }
        taken
    }

    /// Ends this generation and starts the orchestration again with `input`, on an empty
    /// history (so a long-lived instance's history stays bounded). Events raised but not yet
    /// awaited are dropped unless `.keep_events()` is called. Await it as the last thing the
    /// orchestration does: `return ctx.continue_as_new(next).await;`
    pub fn continue_as_new<R>(&self, input: impl Serialize) -> ContinueAsNew<R> {
        ContinueAsNew {
            ctx: self.clone(),
            input: Some(
                serde_json::to_value(input).unwrap_or_else(|e| Value::String(e.to_string())),
            ),
            keep_events: false,
            _output: PhantomData,
        }
    }

    /// A durable timer: resolves `duration` after the current turn's time, even across
    /// restarts.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        Sleep {
            ctx: self.clone(),
            at: Deadline::After(duration),
            id: None,
        }
    }

    /// A durable timer that resolves at `deadline`.
    pub fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        Sleep {
            ctx: self.clone(),
            at: Deadline::At(deadline),
            id: None,
        }
    }

    /// Waits for the external event `name` and deserialises its data as `T`. Events raised
    /// before the wait are buffered, oldest first. `.timeout(duration)` bounds the wait.
    /// [`EventData`] says how `T` is named, and how to wait for an event without data.
    pub fn wait_for_event<T: EventData>(&self, name: impl Into<String>) -> WaitForEvent<T> {
        WaitForEvent {
            ctx: self.clone(),
            name: name.into(),
            timeout: None,
            ids: None,
            done: false,
            decode: |data, name| decode(data, || format!("the data of event `{name}`")),
        }
    }
}

impl fmt::Debug for OrchestrationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("OrchestrationContext")
            .field("instance_id", &state.instance_id)
            .field("name", &state.name)
            .field("replaying", &state.replaying)
            .finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(
    value: Value,
    what: impl FnOnce() -> String,
) -> Result<T, TaskError> {
    serde_json::from_value(value).map_err(|e| TaskError::BadPayload {
        what: what(),
        expected: std::any::type_name::<T>(),
        error: e.to_string(),
    })
}

#[derive(Debug, Clone)]
enum Target {
    Activity {
        name: &'static str,
    },
    Orchestrator {
        name: &'static str,
        version: u32,
        instance_id: Option<String>,
    },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Activity { name } | Target::Orchestrator { name, .. } => name,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Target::Activity { .. } => "activity",
            Target::Orchestrator { .. } => "sub-orchestration",
        }
    }
}

/// A call being configured; await it to run it.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<O, K = crate::ActivityKind> {
    ctx: OrchestrationContext,
    target: Target,
    input: Result<Value, String>,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    phase: Phase,
    attempt: u32,
    first_attempt_at: Option<SystemTime>,
    _output: PhantomData<fn() -> (O, K)>,
}

impl<O> Call<O, crate::OrchestratorKind> {
    /// Runs the sub-orchestration under `instance_id` instead of the default
    /// `"{parent id}:{sequence number}"`. A retry replaces the failed child of that id.
    pub fn instance_id(mut self, instance_id: impl Into<String>) -> Self {
        if let Target::Orchestrator {
            instance_id: id, ..
        } = &mut self.target
        {
            *id = Some(instance_id.into());
        }
        self
    }
}

impl<O, K> Call<O, K> {
    /// Retries failed attempts by `policy` (replacing the activity's default policy).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Fails an activity attempt that runs longer than `timeout` (a start-to-close
    /// timeout). Sub-orchestrations ignore it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

enum Phase {
    NotStarted,
    Running(u64),
    BackingOff(u64),
    Done,
}

impl<O, K> Call<O, K> {
    fn schedule(&mut self, state: &mut State) -> Result<u64, TaskError> {
        let target = &self.target;
        let input = self.input.clone().map_err(|error| TaskError::BadPayload {
            what: format!("the input of {} `{}`", target.what(), target.name()),
            expected: "JSON",
            error,
        })?;
        self.attempt += 1;
        self.first_attempt_at.get_or_insert(state.now);
        let (attempt, timeout) = (self.attempt, self.timeout);
        match target {
            Target::Activity { name } => Ok(state.issue(|id| Command::Task {
                id,
                name: name.to_string(),
                input,
                attempt,
                timeout,
            })),
            Target::Orchestrator {
                name,
                version,
                instance_id,
            } => {
                let child = match instance_id {
                    Some(id) => id.clone(),
                    None => format!("{}:{}", state.instance_id, state.next_seq),
                };
                let child =
                    InstanceId::new(child).map_err(|error| TaskError::InvalidInstanceId {
                        name: name.to_string(),
                        error,
                    })?;
                let id = state.issue(|id| Command::SubOrchestration {
                    id,
                    name: name.to_string(),
                    version: *version,
                    instance_id: child.clone(),
                    input,
                });
                state.children.insert(id, child);
                Ok(id)
            }
        }
    }

    /// After a failed attempt: the back-off before the next one, if the policy allows one.
    fn backoff(&self, failure: &Failure, now: SystemTime) -> Option<Duration> {
        let policy = self.retry.as_ref()?;
        if !policy.is_retryable(failure) {
            return None;
        }
        let delay = policy.delay_after(self.attempt)?;
        if let (Some(limit), Some(first)) = (policy.retry_timeout(), self.first_attempt_at) {
            let elapsed = now.duration_since(first).unwrap_or_default();
            if elapsed + delay > limit {
                return None;
            }
        }
        Some(delay)
    }
}

impl<O: DeserializeOwned, K> Future for Call<O, K> {
    type Output = Result<O, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin: the future holds no self-references.
        let this = self.get_mut();
        let shared = Arc::clone(&this.ctx.shared);
        let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match this.phase {
                Phase::NotStarted => match this.schedule(&mut state) {
                    Ok(id) => this.phase = Phase::Running(id),
                    Err(error) => {
                        this.phase = Phase::Done;
                        return Poll::Ready(Err(error));
                    }
                },
                Phase::Running(id) => match state.poll_op(id, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(OpResult::Task(Ok(output))) => {
                        this.phase = Phase::Done;
                        let target = &this.target;
                        return Poll::Ready(decode(output, || {
                            format!("the output of {} `{}`", target.what(), target.name())
                        }));
                    }
                    Poll::Ready(OpResult::Task(Err(failure))) => {
                        match this.backoff(&failure, state.now) {
                            Some(delay) => {
                                let fire_at = state.now + delay;
                                if !state.replaying {
                                    let target = &this.target;
                                    state.retries.push(RetryNotice {
                                        what: target.what(),
                                        name: target.name(),
                                        attempt: this.attempt,
                                        delay,
                                        error: failure.message.clone(),
                                    });
                                }
                                let timer = state.issue(|id| Command::Timer { id, fire_at });
                                this.phase = Phase::BackingOff(timer);
                            }
                            None => {
                                this.phase = Phase::Done;
                                let name = this.target.name().to_string();
                                let attempts = this.attempt;
                                return Poll::Ready(Err(match this.target {
                                    Target::Activity { .. } => TaskError::ActivityFailed {
                                        name,
                                        attempts,
                                        failure,
                                    },
                                    Target::Orchestrator { .. } => {
                                        TaskError::SubOrchestrationFailed {
                                            name,
                                            attempts,
                                            failure,
                                        }
                                    }
                                }));
                            }
                        }
                    }
                    Poll::Ready(other) => unreachable!("activity {id} resolved as {other:?}"),
                },
                Phase::BackingOff(timer) => match state.poll_op(timer, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) => match this.schedule(&mut state) {
                        Ok(id) => this.phase = Phase::Running(id),
                        Err(error) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(Err(error));
                        }
                    },
                },
                Phase::Done => panic!("a durable call was polled after it completed"),
            }
        }
    }
}

impl<O, K> Drop for Call<O, K> {
    fn drop(&mut self) {
        match self.phase {
            Phase::BackingOff(timer) => self.ctx.state().cancel_timer(timer),
            Phase::Running(task) => self.ctx.state().forget(task),
            Phase::NotStarted | Phase::Done => {}
        }
    }
}

enum Deadline {
    After(Duration),
    At(SystemTime),
}

/// A durable timer; see [`OrchestrationContext::sleep`]. Dropping it before it fires cancels it.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    ctx: OrchestrationContext,
    at: Deadline,
    id: Option<u64>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = Arc::clone(&this.ctx.shared);
        let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
        let id = *this.id.get_or_insert_with(|| {
            let fire_at = match this.at {
                Deadline::After(duration) => state.now + duration,
                Deadline::At(at) => at,
            };
            state.issue(|id| Command::Timer { id, fire_at })
        });
        state.poll_op(id, cx).map(drop)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // A timer that fired is no longer pending, so this cancels only one that did not.
        if let Some(id) = self.id {
            self.ctx.state().cancel_timer(id);
        }
    }
}

/// A wait for an external event being configured; await it to wait.
#[must_use = "a wait does nothing until it is awaited"]
pub struct WaitForEvent<T> {
    ctx: OrchestrationContext,
    name: String,
    timeout: Option<Duration>,
    /// The wait's and its timeout timer's sequence numbers, once issued.
    ids: Option<(u64, Option<u64>)>,
    done: bool,
    /// Chosen where `T: EventData` is checked, so that awaiting needs no bound of its own and
    /// a missing data type is reported once, at `wait_for_event`.
    decode: fn(Value, &str) -> Result<T, TaskError>,
}

impl<T> WaitForEvent<T> {
    /// Gives up with [`TaskError::EventTimedOut`] after `timeout` (a durable timer, cancelled
    /// when the event arrives first).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<T> Future for WaitForEvent<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let shared = Arc::clone(&this.ctx.shared);
        let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
        let (wait, timer) = *this.ids.get_or_insert_with(|| {
            let name = this.name.clone();
            let wait = state.issue(|id| Command::Wait { id, name });
            let buffered = state
                .buffered
                .get_mut(&this.name)
                .and_then(VecDeque::pop_front);
            match buffered {
                Some(data) => state.resolve(wait, OpResult::Event(data)),
                None => {
                    state.waits.insert(wait, this.name.clone());
                }
            }
            let timer = this.timeout.map(|timeout| {
                let fire_at = state.now + timeout;
                state.issue(|id| Command::Timer { id, fire_at })
            });
            (wait, timer)
        });
        if let Poll::Ready(result) = state.poll_op(wait, cx) {
            this.done = true;
            if let Some(timer) = timer {
                state.cancel_timer(timer);
            }
            let OpResult::Event(data) = result else {
                unreachable!("event wait {wait} resolved as {result:?}")
            };
            return Poll::Ready((this.decode)(data, &this.name));
        }
        if let Some(timer) = timer {
            if state.poll_op(timer, cx).is_ready() {
                this.done = true;
                state.waits.remove(&wait);
                state.ops.remove(&wait);
                return Poll::Ready(Err(TaskError::EventTimedOut {
                    name: this.name.clone(),
                    after: this.timeout.unwrap_or_default(),
                }));
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for WaitForEvent<T> {
    fn drop(&mut self) {
        if let (Some((wait, timer)), false) = (self.ids, self.done) {
            let mut state = self.ctx.state();
            if state.closed {
                return;
            }
            state.waits.remove(&wait);
            state.forget(wait);
            if let Some(timer) = timer {
                state.cancel_timer(timer);
            }
        }
    }
}

/// A continue-as-new; see [`OrchestrationContext::continue_as_new`]. Awaiting it never
/// resolves: the generation ends with the turn. Its output type is whatever the
/// orchestration returns, so `return ctx.continue_as_new(next).await;` type-checks.
#[must_use = "nothing restarts until it is awaited"]
pub struct ContinueAsNew<R> {
    ctx: OrchestrationContext,
    input: Option<Value>,
    keep_events: bool,
    _output: PhantomData<fn() -> R>,
}

impl<R> ContinueAsNew<R> {
    /// Carries events raised but not yet awaited over to the next generation.
    pub fn keep_events(mut self) -> Self {
        self.keep_events = true;
        self
    }
}

impl<R> Future for ContinueAsNew<R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        if let Some(input) = this.input.take() {
            let mut state = this.ctx.state();
            state.continue_as_new = Some((input, this.keep_events));
        }
        Poll::Pending
    }
}
