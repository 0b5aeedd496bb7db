//! The one channel between an orchestration's code and the engine.
//!
//! The context holds a [`Handle`]: through it the code issues commands, awaits their results
//! and reads the turn's deterministic values. The engine holds the [`Feed`]: through it a turn
//! goes in (its time, results and events) and what the code issued comes out. Neither side
//! sees the other's fields.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use foldhash::{HashMap, HashMapExt};
use serde_json::Value;

use crate::command::Command;
use crate::drift::RecordedPatches;
use crate::history::Failure;
use crate::instance_id::InstanceId;
use crate::waits::{Rule, Waits};

/// The result an awaited operation receives.
#[derive(Debug)]
pub(crate) enum OpResult {
    Task(Result<Value, Failure>),
    Timer,
}

/// A retry scheduled in a live turn, announced once its turn is committed.
#[derive(Debug, Clone)]
pub(crate) struct RetryNotice {
    /// The callee's kind: `"activity"` or `"sub-orchestration"`.
    pub(crate) kind: &'static str,
    pub(crate) name: &'static str,
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) error: String,
}

/// What the code issued in one turn.
pub(crate) struct Issued {
    /// Its commands, in order.
    pub(crate) commands: Vec<Command>,
    /// Timers it dropped before they fired.
    pub(crate) cancelled_timers: Vec<u64>,
    /// Retries it scheduled (none while replaying).
    pub(crate) retries: Vec<RetryNotice>,
}

enum Op {
    /// Awaited: the kind of result it takes (`None`: any, for one polled before it was
    /// issued), and who to wake.
    Pending(Option<Awaits>, Option<Waker>),
    Ready(OpResult),
}

/// The kind of result an operation takes (an event wait takes none: events stay buffered
/// in `waits.rs` until a wait is polled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaits {
    Task,
    Timer,
    Event,
}

impl Awaits {
    fn of(command: &Command) -> Option<Awaits> {
        match command {
            Command::Task { .. } | Command::SubOrchestration { .. } => Some(Awaits::Task),
            Command::Timer { .. } => Some(Awaits::Timer),
            Command::Wait { .. } => Some(Awaits::Event),
            Command::Patch { .. } => None,
        }
    }

    fn takes(self, result: &OpResult) -> bool {
        matches!(
            (self, result),
            (Awaits::Task, OpResult::Task(_)) | (Awaits::Timer, OpResult::Timer)
        )
    }
}

/// What code and engine share for one generation of one instance.
struct Inner {
    instance_id: InstanceId,
    name: String,
    /// The current turn's time: what `ctx.now()` returns.
    now: SystemTime,
    /// Set while a recorded turn replays: the patches that turn took.
    replay: Option<RecordedPatches>,
    rng: u64,
    custom_status: Option<Value>,
    next_seq: u64,
    /// The commands issued in the current turn, in order.
    commands: Vec<Command>,
    /// Operations awaited, by seq.
    ops: HashMap<u64, Op>,
    waits: Waits,
    /// Timers dropped before firing in the current turn.
    cancelled_timers: Vec<u64>,
    /// Running sub-orchestrations by seq, for a recursive terminate.
    children: BTreeMap<u64, InstanceId>,
    /// Set by `ctx.continue_as_new`: the next generation's input and whether buffered events
    /// carry over.
    continue_as_new: Option<(Value, bool)>,
    /// Retries scheduled in the current live turn.
    retries: Vec<RetryNotice>,
    /// Set once the generation has ended: drops no longer cancel anything.
    closed: bool,
    /// Set when the code asked for something the engine refuses (a timer no store can
    /// hold): the generation fails with it at the end of the poll.
    refused: Option<Failure>,
    /// Set once the code read the instance id (`ctx.instance_id()`, a default child id):
    /// its commands may then depend on it.
    id_observed: bool,
}

/// The context's side: all an orchestration's code may do to the engine.
#[derive(Clone)]
pub(crate) struct Handle(Arc<Mutex<Inner>>);

/// A locked [`Handle`].
pub(crate) struct HandleGuard<'a>(MutexGuard<'a, Inner>);

/// The engine's side of the handle.
pub(crate) struct Feed(Arc<Mutex<Inner>>);

/// A locked [`Feed`].
pub(crate) struct FeedGuard<'a>(MutexGuard<'a, Inner>);

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic in user code run under the lock (a `Deserialize` impl decoding a result) falls
    // between two complete operations: the state is whole, so the poison is ignored.
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Handle {
    pub(crate) fn lock(&self) -> HandleGuard<'_> {
        HandleGuard(lock(&self.0))
    }
}

impl HandleGuard<'_> {
    /// The instance id, for logs: reading it leaves no mark.
    pub(crate) fn instance_id(&self) -> &InstanceId {
        &self.0.instance_id
    }

    /// The instance id, for the code: its commands may depend on it from now on.
    pub(crate) fn observe_instance_id(&mut self) -> &InstanceId {
        self.0.id_observed = true;
        &self.0.instance_id
    }

    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.0.now
    }

    pub(crate) fn is_replaying(&self) -> bool {
        self.0.replay.is_some()
    }

    /// The next number of the generation's random sequence.
    pub(crate) fn random(&mut self) -> u64 {
        // SplitMix64: tiny, fast, and fully determined by the seed stored in the history.
        let inner = &mut *self.0;
        inner.rng = inner.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = inner.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn set_custom_status(&mut self, status: Value) {
        self.0.custom_status = Some(status);
    }

    /// The seq the next command will take.
    pub(crate) fn next_seq(&self) -> u64 {
        self.0.next_seq
    }

    /// Issues the command `command(seq)` under the next seq and awaits its result.
    pub(crate) fn issue(&mut self, command: impl FnOnce(u64) -> Command) -> u64 {
        let inner = &mut *self.0;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let command = command(seq);
        if let Command::SubOrchestration { instance_id, .. } = &command {
            inner.children.insert(seq, instance_id.clone());
        }
        let awaits = Awaits::of(&command);
        inner.commands.push(command);
        inner.ops.insert(seq, Op::Pending(awaits, None));
        seq
    }

    /// Polls operation `seq`: its result once delivered (taken: a second poll waits again).
    pub(crate) fn poll(&mut self, seq: u64, cx: &mut Context<'_>) -> Poll<OpResult> {
        let ops = &mut self.0.ops;
        match ops.get_mut(&seq) {
            Some(Op::Ready(_)) => match ops.remove(&seq) {
                Some(Op::Ready(result)) => Poll::Ready(result),
                _ => unreachable!("operation {seq} was ready"),
            },
            Some(Op::Pending(_, waker)) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            None => {
                ops.insert(seq, Op::Pending(None, Some(cx.waker().clone())));
                Poll::Pending
            }
        }
    }

    /// Drops timer `seq` before it fired: the store need not fire it.
    pub(crate) fn cancel_timer(&mut self, seq: u64) {
        let inner = &mut *self.0;
        if inner.closed {
            return;
        }
        if let Some(Op::Pending(..)) = inner.ops.remove(&seq) {
            inner.cancelled_timers.push(seq);
        }
    }

    /// Stops awaiting operation `seq` (its result will be ignored when it comes).
    pub(crate) fn forget(&mut self, seq: u64) {
        if !self.0.closed {
            self.0.ops.remove(&seq);
        }
    }

    /// Issues a wait for the event `name` (poll it with [`poll_wait`](Self::poll_wait)).
    pub(crate) fn open_wait(&mut self, name: &str) -> u64 {
        let seq = self.issue(|seq| Command::Wait {
            seq,
            name: name.to_string(),
        });
        self.0.waits.open(seq, name);
        seq
    }

    /// Polls wait `seq`: the event it takes, as `waits.rs` rules, or pending until an event
    /// of its name is raised.
    pub(crate) fn poll_wait(&mut self, seq: u64, cx: &mut Context<'_>) -> Poll<Value> {
        match self.0.waits.take(seq) {
            Some(data) => {
                self.0.ops.remove(&seq);
                Poll::Ready(data)
            }
            None => {
                // Only an event ends a wait: a result recorded under its seq (a damaged
                // history) is dropped, and the wait goes on waiting.
                if self.poll(seq, cx).is_ready() {
                    let _ = self.poll(seq, cx);
                }
                Poll::Pending
            }
        }
    }

    /// Ends wait `seq` without an event (timed out or dropped): it takes nothing.
    pub(crate) fn close_wait(&mut self, seq: u64) {
        if !self.0.closed {
            self.0.waits.close(seq);
            self.0.ops.remove(&seq);
        }
    }

    /// `ctx.patched(name)`: live, the new branch, recorded; on replay, the branch the
    /// recorded run took.
    pub(crate) fn patched(&mut self, name: &str) -> bool {
        let inner = &mut *self.0;
        let taken = match &inner.replay {
            None => true,
            Some(patches) => patches.took(inner.commands.len(), name),
        };
        if taken {
            inner.commands.push(Command::Patch {
                name: name.to_string(),
            });
        }
        taken
    }

    /// Announces a retry once the turn is committed (a replayed retry was announced already).
    pub(crate) fn note_retry(&mut self, notice: impl FnOnce() -> RetryNotice) {
        if self.0.replay.is_none() {
            self.0.retries.push(notice());
        }
    }

    /// Fails the generation at the end of this poll: the code asked for something that
    /// cannot be recorded (the first refusal is kept).
    pub(crate) fn refuse(&mut self, failure: Failure) {
        self.0.refused.get_or_insert(failure);
    }

    /// Ends the generation with the turn and starts the next with `input`.
    pub(crate) fn continue_as_new(&mut self, input: Value, keep_events: bool) {
        self.0.continue_as_new = Some((input, keep_events));
    }
}

/// Wakes whoever awaits operation `seq`, leaving it pending.
fn wake(inner: &Inner, seq: u64) {
    if let Some(Op::Pending(_, Some(waker))) = inner.ops.get(&seq) {
        waker.wake_by_ref();
    }
}

fn resolve(inner: &mut Inner, seq: u64, result: OpResult) {
    if let Some(op) = inner.ops.get_mut(&seq) {
        // A result of another kind than the operation takes is not its own: an activity
        // attempt of an earlier generation, delivered with the turn it would trigger before
        // the store checked its lease (the commit is refused). Ignored, not a panic.
        // Nor is a second result for an operation already resolved in this turn (the
        // event it awaited came first): the first one stands.
        match op {
            Op::Pending(Some(awaits), _) if !awaits.takes(&result) => return,
            Op::Ready(_) => return,
            Op::Pending(..) => {}
        }
        if let Op::Pending(_, Some(waker)) = std::mem::replace(op, Op::Ready(result)) {
            waker.wake();
        }
    }
}

impl Feed {
    /// The feed of a fresh generation of `instance_id`.
    pub(crate) fn new(instance_id: InstanceId) -> Self {
        Feed(Arc::new(Mutex::new(Inner {
            instance_id,
            name: String::new(),
            now: SystemTime::UNIX_EPOCH,
            replay: None,
            rng: 0,
            custom_status: None,
            next_seq: 0,
            commands: Vec::new(),
            ops: HashMap::new(),
            waits: Waits::new(Rule::of_format(crate::history::FORMAT_VERSION)),
            cancelled_timers: Vec::new(),
            children: BTreeMap::new(),
            continue_as_new: None,
            retries: Vec::new(),
            closed: false,
            refused: None,
            id_observed: false,
        })))
    }

    /// A handle for the generation's context.
    pub(crate) fn handle(&self) -> Handle {
        Handle(Arc::clone(&self.0))
    }

    pub(crate) fn lock(&self) -> FeedGuard<'_> {
        FeedGuard(lock(&self.0))
    }
}

impl FeedGuard<'_> {
    /// The generation's `ExecutionStarted` arrived, written in history format
    /// `format_version` (which decides who receives events: `waits.rs`).
    pub(crate) fn begin_generation(&mut self, name: &str, seed: u64, format_version: u32) {
        self.0.name = name.to_string();
        self.0.rng = seed;
        self.0.waits.set_rule(Rule::of_format(format_version));
    }

    /// The orchestrator's durable name.
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// A turn begins at `now`; `replay` holds the recorded turn's patches when it replays.
    pub(crate) fn begin_turn(&mut self, now: SystemTime, replay: Option<RecordedPatches>) {
        let inner = &mut *self.0;
        inner.now = now;
        inner.replay = replay;
        inner.commands.clear();
        inner.cancelled_timers.clear();
        inner.retries.clear();
    }

    /// Delivers the result of operation `seq`, waking whoever awaits it. Results for
    /// operations nobody awaits any more (a cancelled timer) are ignored.
    pub(crate) fn resolve(&mut self, seq: u64, result: OpResult) {
        resolve(&mut self.0, seq, result);
    }

    /// Delivers the result of the sub-orchestration started as `seq`.
    pub(crate) fn resolve_child(&mut self, seq: u64, result: Result<Value, Failure>) {
        self.0.children.remove(&seq);
        resolve(&mut self.0, seq, OpResult::Task(result));
    }

    /// An event was raised: it waits in `waits.rs` for the wait that takes it, and the waits
    /// that may take it are woken.
    pub(crate) fn raise(&mut self, name: String, data: Value) {
        for seq in self.0.waits.raise(name, data) {
            wake(&self.0, seq);
        }
    }

    /// What the code issued in the turn: its commands, the timers it dropped, its retries.
    pub(crate) fn take_issued(&mut self) -> Issued {
        let inner = &mut *self.0;
        Issued {
            commands: std::mem::take(&mut inner.commands),
            cancelled_timers: std::mem::take(&mut inner.cancelled_timers),
            retries: std::mem::take(&mut inner.retries),
        }
    }

    /// A continue-as-new the code asked for: the next input and the events it carries.
    pub(crate) fn take_continue_as_new(&mut self) -> Option<(Value, Vec<(String, Value)>)> {
        let (input, keep_events) = self.0.continue_as_new.take()?;
        let carried = if keep_events {
            self.0.waits.take_buffered()
        } else {
            Vec::new()
        };
        Some((input, carried))
    }

    /// What the code asked for that the engine refused, if anything: the generation fails.
    pub(crate) fn take_refusal(&mut self) -> Option<Failure> {
        self.0.refused.take()
    }

    /// Whether the code has read the instance id.
    pub(crate) fn id_observed(&self) -> bool {
        self.0.id_observed
    }

    /// Whether anything durable is still awaited.
    pub(crate) fn has_pending_ops(&self) -> bool {
        self.0.ops.values().any(|op| matches!(op, Op::Pending(..)))
    }

    pub(crate) fn custom_status(&self) -> Option<Value> {
        self.0.custom_status.clone()
    }

    /// Drops the custom status if `refuse` refuses it; returns why.
    pub(crate) fn refuse_custom_status<E>(
        &mut self,
        refuse: impl FnOnce(&Value) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.0.custom_status {
            Some(status) => refuse(status).inspect_err(|_| self.0.custom_status = None),
            None => Ok(()),
        }
    }

    /// Sub-orchestrations still running.
    pub(crate) fn children(&self) -> impl Iterator<Item = &InstanceId> {
        self.0.children.values()
    }

    /// The generation has ended: drops in its future no longer cancel anything.
    pub(crate) fn close(&mut self) {
        self.0.closed = true;
    }
}
