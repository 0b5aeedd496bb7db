//! `ctx.call`: an activity or a sub-orchestration, with the retries of its policy.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::callable::{ActivityKind, CallTarget, Callable, OrchestratorKind};
use crate::clock;
use crate::command::Command;
use crate::error::TaskError;
use crate::handle::{HandleGuard, OpResult, RetryNotice};
use crate::history::Failure;
use crate::instance_id::InstanceId;
use crate::orchestration::{decode, OrchestrationContext};
use crate::retry::RetryPolicy;

impl OrchestrationContext {
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

    /// The callee's kind, as messages name it.
    fn kind(&self) -> &'static str {
        match self {
            Target::Activity { .. } => "activity",
            Target::Orchestrator { .. } => "sub-orchestration",
        }
    }
}

/// A call being configured; await it to run it.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<O, K = ActivityKind> {
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

impl<O> Call<O, OrchestratorKind> {
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

/// Where a call is, by the seq of what it awaits.
enum Phase {
    NotStarted,
    Running(u64),
    BackingOff(u64),
    Done,
}

impl<O, K> Call<O, K> {
    /// Issues the next attempt.
    fn schedule(&mut self, handle: &mut HandleGuard<'_>) -> Result<u64, TaskError> {
        // Without a retry policy there is one attempt: it takes the input instead of a copy.
        let input = match self.retry {
            Some(_) => self.input.clone(),
            None => std::mem::replace(&mut self.input, Ok(Value::Null)),
        };
        let target = &self.target;
        let input = input.map_err(|error| TaskError::BadPayload {
            what: format!("the input of {} `{}`", target.kind(), target.name()),
            expected: "JSON",
            error,
        })?;
        if let (Target::Activity { name }, Some(timeout)) = (target, self.timeout) {
            // The attempt's deadline must be a time the stores can hold.
            clock::after(handle.now(), timeout, || {
                format!("the timeout of activity `{name}`")
            })?;
        }
        self.attempt += 1;
        self.first_attempt_at.get_or_insert(handle.now());
        let (attempt, timeout) = (self.attempt, self.timeout);
        match target {
            Target::Activity { name } => Ok(handle.issue(|seq| Command::Task {
                seq,
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
                    None => {
                        let seq = handle.next_seq();
                        format!("{}:{seq}", handle.observe_instance_id())
                    }
                };
                let child =
                    InstanceId::new(child).map_err(|error| TaskError::InvalidInstanceId {
                        name: name.to_string(),
                        error,
                    })?;
                Ok(handle.issue(|seq| Command::SubOrchestration {
                    seq,
                    name: name.to_string(),
                    version: *version,
                    instance_id: child,
                    input,
                }))
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
            if elapsed.checked_add(delay).is_none_or(|end| end > limit) {
                return None;
            }
        }
        Some(delay)
    }

    fn failed(&self, failure: Failure) -> TaskError {
        let name = self.target.name().to_string();
        let attempts = self.attempt;
        match self.target {
            Target::Activity { .. } => TaskError::ActivityFailed {
                name,
                attempts,
                failure,
            },
            Target::Orchestrator { .. } => TaskError::SubOrchestrationFailed {
                name,
                attempts,
                failure,
            },
        }
    }
}

impl<O: DeserializeOwned, K> Future for Call<O, K> {
    type Output = Result<O, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin: the future holds no self-references.
        let this = self.get_mut();
        let ctx = this.ctx.clone();
        let mut handle = ctx.lock();
        loop {
            match this.phase {
                Phase::NotStarted => match this.schedule(&mut handle) {
                    Ok(seq) => this.phase = Phase::Running(seq),
                    Err(error) => {
                        this.phase = Phase::Done;
                        return Poll::Ready(Err(error));
                    }
                },
                Phase::Running(seq) => match handle.poll(seq, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(OpResult::Task(Ok(output))) => {
                        this.phase = Phase::Done;
                        let target = &this.target;
                        return Poll::Ready(decode(output, || {
                            format!("the output of {} `{}`", target.kind(), target.name())
                        }));
                    }
                    Poll::Ready(OpResult::Task(Err(failure))) => {
                        let now = handle.now();
                        match this.backoff(&failure, now) {
                            Some(delay) => {
                                let target = &this.target;
                                let fire_at = clock::after(now, delay, || {
                                    format!("the retry of {} `{}`", target.kind(), target.name())
                                });
                                let fire_at = match fire_at {
                                    Ok(fire_at) => fire_at,
                                    Err(refused) => {
                                        this.phase = Phase::Done;
                                        return Poll::Ready(Err(refused.into()));
                                    }
                                };
                                let attempt = this.attempt;
                                handle.note_retry(|| RetryNotice {
                                    kind: target.kind(),
                                    name: target.name(),
                                    attempt,
                                    delay,
                                    error: failure.message.clone(),
                                });
                                let timer = handle.issue(|seq| Command::Timer { seq, fire_at });
                                this.phase = Phase::BackingOff(timer);
                            }
                            None => {
                                this.phase = Phase::Done;
                                return Poll::Ready(Err(this.failed(failure)));
                            }
                        }
                    }
                    Poll::Ready(other) => unreachable!("call {seq} resolved as {other:?}"),
                },
                Phase::BackingOff(timer) => match handle.poll(timer, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) => match this.schedule(&mut handle) {
                        Ok(seq) => this.phase = Phase::Running(seq),
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
            Phase::BackingOff(timer) => self.ctx.lock().cancel_timer(timer),
            Phase::Running(seq) => self.ctx.lock().forget(seq),
            Phase::NotStarted | Phase::Done => {}
        }
    }
}
