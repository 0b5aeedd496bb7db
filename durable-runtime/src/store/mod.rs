//! The store contract: what the runtime needs from durable storage, and nothing of user types.
//!
//! Every method that writes resolves only once the write is durable; many calls may be in
//! flight at once. Turns are fenced by a lease token and the expected history length, so two
//! workers (in one process or many) never both commit a turn of one instance.
//! [`conformance`] is the test kit every implementation runs.
//!
//! # Duplicated and reordered deliveries
//!
//! What a store may hand out more than once, or in another order than it was written, and
//! what it never may. The runtime is written against exactly this, and the simulator
//! (`durable-sim`) produces all of it, and nothing else:
//!
//! - **A message is delivered at least once.** An inbox message ([`Delivery`]) is handed out
//!   again, with the same [`MessageId`], in every later [`OrchestrationWork`] of its instance
//!   until a committed turn lists it in [`TurnCommit::consumed`]: after a lease expired, an
//!   [`abandon_orchestration`](Store::abandon_orchestration), a `Conflict`, or a commit whose
//!   outcome was unknown to the caller. Once a commit that consumed it has been applied it is
//!   never delivered again.
//! - **A work may carry a prefix.** [`OrchestrationWork::messages`] holds messages of the
//!   instance's deliverable ones in the order they were sent (a timer counts as sent when it
//!   was created); a store may hand out only the first few and keep the rest for a later
//!   turn, in the same order. It never hands out a later message without the earlier
//!   deliverable ones of the same instance.
//! - **No order across instances.** Which ready instance or activity attempt is leased first
//!   is up to the store.
//! - **An activity attempt may run more than once.** An attempt whose lease expired or was
//!   abandoned is leased again with the same [`ActivityTask::attempt`]; of its results the
//!   store accepts one only: the first whose lease is still current (by
//!   [`complete_activity`](Store::complete_activity) or in a turn's
//!   [`TurnCommit::completed_activities`]); every other is refused with `Conflict`. An attempt
//!   whose result was accepted is never leased again.
//! - **An error may hide an applied write.** A write that fails with
//!   [`StoreError::Unavailable`] may have been applied (the commit reached the disk or the
//!   database and the answer was lost). Turns are safe to retry: they are fenced by the lease
//!   and the history length, so a retried turn of an applied commit is refused with
//!   `Conflict`. A client that retries `send` after such an error may deliver its event twice
//!   (the runtime's client does not retry); `create_instance` retried finds `AlreadyExists`.
//! - **Never**: a message delivered after the commit that consumed it, a message of a turn
//!   that was not applied dropped, two turns of one instance both committed from the same
//!   history length, an attempt's result accepted twice, or any of it acknowledged before it
//!   is durable.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::history::{Failure, HistoryEvent};
use crate::instance_id::InstanceId;

pub mod conformance;
mod engine;
pub mod file;
mod memory;
mod paging;

pub use file::{
    Durability, FileStore, FileStoreOptions, FileSystem, OpenError, OsFileSystem, WritableFile,
    DISK_FORMAT_VERSION,
};
pub use memory::MemoryStore;

/// Bugs planted on purpose: the simulator's mutation tests (`durable-sim`, feature
/// `mutations`) switch one on and check that the simulation catches it. Compiled only with
/// the hidden feature `__mutations`; off, nothing changes. Not public API.
#[cfg(feature = "__mutations")]
#[doc(hidden)]
pub mod mutations {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A turn or an activity result fenced by a stale lease token is accepted.
    pub static STALE_LEASE: AtomicBool = AtomicBool::new(false);

    pub(crate) fn stale_lease() -> bool {
        STALE_LEASE.load(Ordering::Relaxed)
    }
}

/// A lease's token: whoever holds the current token may commit.
pub type LeaseToken = u64;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeStatus {
    /// Created; its first turn has not run yet.
    Pending,
    /// Started and not finished.
    Running,
    /// Paused by a client; holds new events until resumed.
    Suspended,
    /// Returned `Ok`.
    Completed,
    /// Returned `Err`, panicked or broke determinism.
    Failed,
    /// Stopped by a client.
    Terminated,
}

impl RuntimeStatus {
    /// Whether the instance has finished for good.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated
        )
    }
}

/// What a store knows of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The instance.
    pub instance_id: InstanceId,
    /// The orchestrator's durable name.
    pub name: String,
    /// The orchestrator's version.
    pub version: u32,
    /// Where it is in its life.
    pub runtime_status: RuntimeStatus,
    /// When it was created.
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    /// When its status last changed.
    #[serde(with = "humantime_serde")]
    pub last_updated_at: SystemTime,
    /// Its input.
    pub input: Value,
    /// Its output, once completed.
    pub output: Option<Value>,
    /// What the code last set with `ctx.set_custom_status`.
    pub custom_status: Option<Value>,
    /// Why it failed, once failed.
    pub failure: Option<Failure>,
    /// The orchestration that started this one as a sub-orchestration, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<InstanceId>,
}

/// An instance to create.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// Its status (normally `Pending`).
    pub status: InstanceStatus,
    /// The first message of its inbox: the `ExecutionStarted` event.
    pub start: HistoryEvent,
    /// When the start message becomes deliverable (a scheduled start); now if `None`.
    pub start_at: Option<SystemTime>,
    /// Whether a *finished* instance with the same id is replaced (its history and status
    /// dropped) instead of failing with `AlreadyExists`. A running one is never replaced.
    pub replace_finished: bool,
}

/// An event one instance sends another in a turn (a sub-orchestration's result to its
/// parent, an event raised by code).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// The receiver. A message to a missing or finished instance is dropped.
    pub instance_id: InstanceId,
    /// The event delivered to its inbox.
    pub event: HistoryEvent,
}

/// A message store-assigned id, unique within its instance's inbox.
pub type MessageId = u64;

/// An event waiting in an instance's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Its id, to acknowledge it in [`TurnCommit::consumed`].
    pub id: MessageId,
    /// The event.
    pub event: HistoryEvent,
}

/// An instance leased for one turn.
#[derive(Debug, Clone)]
pub struct OrchestrationWork {
    /// The instance.
    pub instance_id: InstanceId,
    /// The lease, to fence the commit.
    pub lease: LeaseToken,
    /// The history's length: the commit expects it unchanged.
    pub history_len: u64,
    /// The events to deliver in this turn, in the order they were sent (a timer counts as
    /// sent when it was created).
    pub messages: Vec<Delivery>,
}

/// An activity attempt to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityTask {
    /// The calling instance.
    pub instance_id: InstanceId,
    /// The sequence number of its `TaskScheduled` event.
    pub id: u64,
    /// The activity's durable name.
    pub name: String,
    /// Its input.
    pub input: Value,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// The start-to-close timeout of the attempt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// A leased activity attempt.
#[derive(Debug, Clone)]
pub struct ActivityWork {
    /// What to run.
    pub task: ActivityTask,
    /// The lease, to fence the completion.
    pub lease: ActivityLease,
}

/// Proof of holding an activity attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityLease {
    /// The calling instance.
    pub instance_id: InstanceId,
    /// The sequence number of its `TaskScheduled` event.
    pub id: u64,
    /// The lease token.
    pub token: LeaseToken,
}

/// A durable timer to deliver as `TimerFired` when due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTimer {
    /// The sequence number of its `TimerCreated` event.
    pub id: u64,
    /// When it fires.
    pub fire_at: SystemTime,
}

/// The status a turn leaves behind.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// Where the instance now is.
    pub runtime_status: RuntimeStatus,
    /// Its output, if completed.
    pub output: Option<Value>,
    /// Its custom status.
    pub custom_status: Option<Value>,
    /// Why it failed, if failed.
    pub failure: Option<Failure>,
    /// A new input, when the instance continued as new.
    pub input: Option<Value>,
}

/// One turn of one instance, applied atomically: all of it or none.
#[derive(Debug, Clone)]
pub struct TurnCommit {
    /// The instance.
    pub instance_id: InstanceId,
    /// The lease it was fetched with.
    pub lease: LeaseToken,
    /// The history length it was fetched with; a different length is a conflict.
    pub expected_history_len: u64,
    /// Events to append to the history.
    pub history: Vec<HistoryEvent>,
    /// Whether `history` replaces the whole history instead of extending it (continue-as-new:
    /// the old generation is dropped, so a history stays bounded). Its pending timers and
    /// activity attempts are dropped too (a late completion is refused with `Conflict`);
    /// messages already in the inbox stay.
    pub replace_history: bool,
    /// Inbox messages this turn consumed.
    pub consumed: Vec<MessageId>,
    /// Activity results delivered in this turn straight from the worker that ran them: their
    /// attempts are completed together with the turn.
    pub completed_activities: Vec<ActivityLease>,
    /// Activity attempts to run.
    pub activities: Vec<ActivityTask>,
    /// Timers to start.
    pub timers: Vec<NewTimer>,
    /// Timers no longer awaited (their `TimerFired` will not be delivered).
    pub cancelled_timers: Vec<u64>,
    /// Sub-orchestrations to create, as `create_instance` would (so `replace_finished`
    /// applies); one whose id exists and is not replaced is left as it is.
    pub sub_instances: Vec<NewInstance>,
    /// Events for other instances' inboxes.
    pub messages: Vec<OutgoingMessage>,
    /// The instance's status after the turn. A finished status drops its inbox and timers.
    pub status: StatusUpdate,
}

impl TurnCommit {
    /// A turn of `work` that consumes every message it delivered and leaves `status`;
    /// history and work are added to it before it is committed.
    pub fn for_work(work: &OrchestrationWork, status: StatusUpdate) -> Self {
        TurnCommit {
            instance_id: work.instance_id.clone(),
            lease: work.lease,
            expected_history_len: work.history_len,
            history: Vec::new(),
            replace_history: false,
            consumed: work.messages.iter().map(|m| m.id).collect(),
            completed_activities: Vec::new(),
            activities: Vec::new(),
            timers: Vec::new(),
            cancelled_timers: Vec::new(),
            sub_instances: Vec::new(),
            messages: Vec::new(),
            status,
        }
    }
}

impl StatusUpdate {
    /// A running instance with nothing else to report.
    pub fn running() -> Self {
        StatusUpdate {
            runtime_status: RuntimeStatus::Running,
            output: None,
            custom_status: None,
            failure: None,
            input: None,
        }
    }
}

/// Which instances [`Store::list`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceQuery {
    /// Only these statuses (all when empty).
    pub statuses: Vec<RuntimeStatus>,
    /// Only this orchestrator name.
    pub name: Option<String>,
    /// Only instances created at or after this time.
    pub created_from: Option<SystemTime>,
    /// Only instances created before this time.
    pub created_to: Option<SystemTime>,
    /// At most this many (100 when zero).
    pub page_size: usize,
    /// Where the previous page ended.
    pub continuation: Option<String>,
}

/// One page of [`Store::list`], ordered by creation time then id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstancePage {
    /// The instances.
    pub instances: Vec<InstanceStatus>,
    /// Pass it back for the next page; `None` on the last.
    pub continuation: Option<String>,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No instance has this id.
    #[error("no instance `{0}`")]
    NotFound(InstanceId),
    /// An instance with this id exists already.
    #[error("instance `{0}` exists already")]
    AlreadyExists(InstanceId),
    /// The instance has finished and takes no more events.
    #[error("instance `{id}` has finished ({status:?})")]
    Finished {
        /// The instance.
        id: InstanceId,
        /// How it ended.
        status: RuntimeStatus,
    },
    /// The instance has not finished, so it cannot be purged.
    #[error("instance `{0}` is still running: terminate it or wait for it to finish")]
    NotFinished(InstanceId),
    /// The lease was lost or the history moved on: someone else owns this work now.
    #[error("conflict on `{id}`: {reason}")]
    Conflict {
        /// The instance.
        id: InstanceId,
        /// What moved.
        reason: String,
    },
    /// Storage failed; the call may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data is damaged.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The query cannot be run as given, e.g. its continuation token is not one this store
    /// made. The caller's mistake: nothing stored is wrong.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
}

/// Push notifications of new work: a store signals them after every write that makes work
/// ready, so workers never poll.
#[derive(Debug, Default)]
pub struct WorkSignals {
    /// An instance has deliverable messages.
    pub orchestrations: Notify,
    /// An activity attempt is ready.
    pub activities: Notify,
}

/// Durable storage for histories, inboxes, activity work and statuses.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Creates an instance with its start message. Fails with `AlreadyExists`.
    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError>;

    /// Appends `event` to the inbox of a live instance, deliverable from `visible_at`.
    /// Fails with `NotFound` or `Finished`.
    async fn send(
        &self,
        instance_id: &InstanceId,
        event: HistoryEvent,
        visible_at: Option<SystemTime>,
    ) -> Result<(), StoreError>;

    /// Leases an instance that has messages deliverable at `now`, for `lease_for`.
    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError>;

    /// Leases `instance_id` if it is not leased, even with no message waiting (to commit an
    /// activity result together with the turn it triggers).
    async fn lease_orchestration(
        &self,
        instance_id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError>;

    /// The whole history of an instance.
    async fn load_history(&self, instance_id: &InstanceId)
        -> Result<Vec<HistoryEvent>, StoreError>;

    /// Applies a turn atomically, if the lease and the history length still hold; releases
    /// the lease. Fails with `Conflict` otherwise (or `NotFound` for an unknown instance),
    /// changing nothing and keeping the lease. A finished status also drops the instance's
    /// inbox, timers and activity attempts not yet completed.
    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError>;

    /// Releases a lease without committing: the messages will be delivered again. A stale
    /// lease changes nothing (`Conflict`, or `Ok` ignoring it).
    async fn abandon_orchestration(
        &self,
        instance_id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError>;

    /// Leases an activity attempt that is ready at `now`.
    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError>;

    /// Completes an attempt with its `TaskCompleted`/`TaskFailed` event, delivered to the
    /// instance's inbox. Fails with `Conflict` if the lease was lost; a result for a finished
    /// instance is dropped.
    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError>;

    /// Releases an activity lease without a result: the attempt will run again.
    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError>;

    /// What is known of an instance: `Ok(None)` if it does not exist.
    async fn status(&self, instance_id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError>;

    /// A page of instances matching `query`.
    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError>;

    /// Deletes a finished instance and its history. Fails with `NotFound` or `NotFinished`.
    async fn purge(&self, instance_id: &InstanceId) -> Result<(), StoreError>;

    /// The earliest time at which a timer falls due or a lease expires, if any: workers sleep
    /// until then unless signalled.
    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError>;

    /// The store's work signals.
    fn signals(&self) -> Arc<WorkSignals>;

    /// Whether any instance or activity has work deliverable at `now` (a cheap check the test
    /// runtime uses to decide that nothing can run before the next timer).
    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError>;

    /// A receiver that changes whenever `instance_id`'s status does.
    fn watch_status(&self, instance_id: &InstanceId) -> watch::Receiver<u64>;
}
