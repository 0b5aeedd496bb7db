//! `OrchestrationContext` and its futures: `Sleep`, `WaitForEvent`, `ContinueAsNew`.
//!
//! Everything an orchestration may do, each of it replay-safe; `ctx.call` is in `call.rs`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::clock;
use crate::command::Command;
use crate::error::TaskError;
use crate::event_data::EventData;
use crate::handle::{Handle, HandleGuard};
use crate::history::{kinds, Failure};
use crate::instance_id::InstanceId;

/// The handle an orchestration uses to call activities, wait and read deterministic values.
///
/// Everything it returns is recorded in, or derived from, the history, so the same code gives
/// the same answers when it is replayed after a restart.
#[derive(Clone)]
pub struct OrchestrationContext {
    handle: Handle,
}

impl OrchestrationContext {
    pub(crate) fn new(handle: Handle) -> Self {
        OrchestrationContext { handle }
    }

    /// The engine, locked for one operation.
    pub(crate) fn lock(&self) -> HandleGuard<'_> {
        self.handle.lock()
    }

    /// The id of this instance.
    pub fn instance_id(&self) -> InstanceId {
        self.lock().observe_instance_id().clone()
    }

    /// The durable name of this orchestration.
    pub fn name(&self) -> String {
        self.lock().name().to_string()
    }

    /// The time of the current turn: the same on every replay. Use it instead of
    /// `SystemTime::now()`.
    pub fn now(&self) -> SystemTime {
        self.lock().now()
    }

    /// Whether the code is re-running a turn already recorded in the history. Tracing events
    /// are suppressed while it is; use this for any other side effect that must happen once.
    pub fn is_replaying(&self) -> bool {
        self.lock().is_replaying()
    }

    /// A random number, the same on every replay (seeded from the history).
    pub fn random(&self) -> u64 {
        self.lock().random()
    }

    /// A random (version 4) UUID, the same on every replay.
    pub fn new_uuid(&self) -> uuid::Uuid {
        let mut handle = self.lock();
        let high = handle.random().to_be_bytes();
        let low = handle.random().to_be_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high);
        bytes[8..].copy_from_slice(&low);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Publishes `status` as this instance's custom status, readable by clients (for example
    /// "waiting for approval"). It is saved with the turn.
    pub fn set_custom_status(&self, status: impl Serialize) {
        let value = serde_json::to_value(status).unwrap_or_else(|e| Value::String(e.to_string()));
        self.lock().set_custom_status(value);
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
        self.lock().patched(name)
    }

    /// Ends this generation and starts the orchestration again with `input`, on an empty
    /// history (so a long-lived instance's history stays bounded). Events raised but taken by
    /// no wait are dropped unless `.keep_events()` is called. Await it as the last thing the
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
            seq: None,
        }
    }

    /// A durable timer that resolves at `deadline`.
    pub fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        Sleep {
            ctx: self.clone(),
            at: Deadline::At(deadline),
            seq: None,
        }
    }

    /// Waits for the external event `name` and deserialises its data as `T`. Events stay
    /// buffered, oldest first, until a wait for their name is polled and returns one: a
    /// wait dropped before that (a race's loser) takes nothing (see
    /// [`future`](crate::future#which-wait-receives-an-event)). `.timeout(duration)` bounds
    /// the wait.
    /// [`EventData`] says how `T` is named, and how to wait for an event without data.
    pub fn wait_for_event<T: EventData>(&self, name: impl Into<String>) -> WaitForEvent<T> {
        WaitForEvent {
            ctx: self.clone(),
            name: name.into(),
            timeout: None,
            seqs: None,
            done: false,
            decode: |data, name| decode(data, || format!("the data of event `{name}`")),
        }
    }
}

impl fmt::Debug for OrchestrationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let handle = self.lock();
        f.debug_struct("OrchestrationContext")
            .field("instance_id", handle.instance_id())
            .field("name", &handle.name())
            .field("replaying", &handle.is_replaying())
            .finish_non_exhaustive()
    }
}

/// Decodes a result as the type the code expects; `what` names it in the error.
pub(crate) fn decode<T: DeserializeOwned>(
    value: Value,
    what: impl FnOnce() -> String,
) -> Result<T, TaskError> {
    serde_json::from_value(value).map_err(|e| TaskError::BadPayload {
        what: what(),
        expected: std::any::type_name::<T>(),
        error: e.to_string(),
    })
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
    seq: Option<u64>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut handle = this.ctx.lock();
        let seq = match this.seq {
            Some(seq) => seq,
            None => {
                let fire_at = match this.at {
                    Deadline::After(duration) => {
                        clock::after(handle.now(), duration, || "the end of ctx.sleep".into())
                    }
                    Deadline::At(at) => clock::in_range(at, || "ctx.sleep_until".into()),
                };
                match fire_at {
                    Ok(fire_at) => {
                        let seq = handle.issue(|seq| Command::Timer { seq, fire_at });
                        *this.seq.insert(seq)
                    }
                    Err(refused) => {
                        // A sleep has no error to return: the instance fails, at the call.
                        let failure = Failure::new(kinds::TIME_OUT_OF_RANGE, refused.to_string());
                        handle.refuse(failure);
                        return Poll::Pending;
                    }
                }
            }
        };
        handle.poll(seq, cx).map(drop)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // A timer that fired is no longer pending, so this cancels only one that did not.
        if let Some(seq) = self.seq {
            self.ctx.lock().cancel_timer(seq);
        }
    }
}

/// A wait for an external event being configured; await it to wait.
#[must_use = "a wait does nothing until it is awaited"]
pub struct WaitForEvent<T> {
    ctx: OrchestrationContext,
    name: String,
    timeout: Option<Duration>,
    /// The wait's and its timeout timer's seqs, once issued.
    seqs: Option<(u64, Option<u64>)>,
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
        let mut handle = this.ctx.lock();
        let (wait, timer) = match this.seqs {
            Some(seqs) => seqs,
            None => {
                let fire_at = this.timeout.map(|timeout| {
                    clock::after(handle.now(), timeout, || {
                        format!("the timeout of the wait for `{}`", this.name)
                    })
                });
                let fire_at = match fire_at.transpose() {
                    Ok(fire_at) => fire_at,
                    Err(refused) => {
                        this.done = true;
                        return Poll::Ready(Err(refused.into()));
                    }
                };
                let wait = handle.open_wait(&this.name);
                let timer =
                    fire_at.map(|fire_at| handle.issue(|seq| Command::Timer { seq, fire_at }));
                *this.seqs.insert((wait, timer))
            }
        };
        if let Poll::Ready(data) = handle.poll_wait(wait, cx) {
            this.done = true;
            if let Some(timer) = timer {
                handle.cancel_timer(timer);
            }
            return Poll::Ready((this.decode)(data, &this.name));
        }
        if let Some(timer) = timer {
            if handle.poll(timer, cx).is_ready() {
                this.done = true;
                handle.close_wait(wait);
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
        if let (Some((wait, timer)), false) = (self.seqs, self.done) {
            let mut handle = self.ctx.lock();
            handle.close_wait(wait);
            if let Some(timer) = timer {
                handle.cancel_timer(timer);
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
    /// Carries events that no wait has taken over to the next generation (a kept wait that
    /// lost a race took none of them).
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
            this.ctx.lock().continue_as_new(input, this.keep_events);
        }
        Poll::Pending
    }
}
