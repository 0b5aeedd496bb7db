//! The store contract: what the runtime needs from durable storage, and nothing of user types.
//!
//! A store keeps, per instance, a status, a history (the current generation's events), an
//! inbox of messages, at most one instance lease, and the activity attempts its turns
//! scheduled; it knows bytes, ids, orchestrator versions, history lengths, times and lease
//! tokens, never user types.
//! [`MemoryStore`], [`FileStore`] and `durable-postgres`'s store implement it; [`conformance`]
//! is the test kit every implementation runs, and what it checks is what is written here.
//!
//! # Durability and visibility
//!
//! - Every call that writes resolves only once the write is durable (for the in-memory
//!   store: applied). Many calls may be in flight at once, from one process or many.
//! - A read never reports what a crash could take back: `status`, `list` and `count` show
//!   only durable changes; an activity attempt is handed out only once the turn that
//!   scheduled it is durable.
//! - Every write is atomic: a [`TurnCommit`] is applied whole or not at all, and a write that
//!   fails with anything but [`StoreError::Unavailable`] changed nothing.
//! - Leases, queues and due times are not durable: a restarted store owns nothing, and
//!   whatever was leased is ready again (at once, or when its lease would have expired, for a
//!   store several processes share).
//!
//! # Leases
//!
//! - **Instances.** [`fetch_orchestration`](Store::fetch_orchestration) and
//!   [`lease_orchestration`](Store::lease_orchestration) lease an instance for `lease_for`
//!   with a new [`LeaseToken`]; while it runs nobody else gets the instance. The holder
//!   commits one turn ([`commit_turn`](Store::commit_turn), which releases the lease) or
//!   gives it back ([`abandon_orchestration`](Store::abandon_orchestration)). A commit is
//!   fenced twice: by the lease token and by the history length the work was fetched with,
//!   so two workers never both commit a turn of one instance from the same history, even
//!   when one of them stalled past its lease.
//! - **Activity attempts.** [`fetch_activity`](Store::fetch_activity) leases an attempt for
//!   `lease_for`; the worker renews it ([`renew_activity`](Store::renew_activity)) for as
//!   long as the attempt runs, so an attempt is owned however long it takes. If the worker
//!   dies the renewals stop and the attempt is handed out again once the lease has run
//!   out, with a new token and the same attempt number. The last token handed out for an
//!   attempt decides: its holder may complete the attempt (or renew it) even after the
//!   lease expired, as long as nobody has taken the attempt since; any other token is
//!   refused with `Conflict`.
//! - Tokens are never handed out twice by one store (the in-memory and file stores: within
//!   the process that holds them; PostgreSQL: ever, from one sequence).
//!
//! # The calls
//!
//! | call | guarantees | fails with |
//! |---|---|---|
//! | [`create_instance`](Store::create_instance) | the instance and its start message, or nothing | `AlreadyExists` (a finished one is replaced only with `replace_finished`) |
//! | [`send`](Store::send) | the event in a live instance's inbox, deliverable from `visible_at` | `NotFound`, `Finished` |
//! | [`fetch_orchestration`](Store::fetch_orchestration) | an unleased live instance with deliverable messages, leased, with them in send order | — |
//! | [`lease_orchestration`](Store::lease_orchestration) | that instance leased if it is live and unleased, even with an empty inbox | `NotFound` |
//! | [`load_history`](Store::load_history) · [`load_history_page`](Store::load_history_page) | the current generation's events (all, or a range of positions read alone) | `NotFound` |
//! | [`commit_turn`](Store::commit_turn) | the turn applied whole and the lease released, if the lease and history length hold | `Conflict` (nothing changed, lease kept), `NotFound` |
//! | [`abandon_orchestration`](Store::abandon_orchestration) | the lease released; its messages deliverable again | `Conflict` for a stale lease (or `Ok`, ignoring it) |
//! | [`fetch_activity`](Store::fetch_activity) | a ready attempt, leased, once the turn that scheduled it is durable | `UnreadableTask` (leased: the caller fails the attempt) |
//! | [`renew_activity`](Store::renew_activity) | the attempt held until `now + lease_for` | `Conflict` once taken by another or no longer wanted |
//! | [`complete_activity`](Store::complete_activity) | the result in the instance's inbox and the attempt done; dropped for a finished or missing instance | `Conflict` for a token that is not the attempt's last |
//! | [`abandon_activity`](Store::abandon_activity) | the attempt ready again, if the lease was the last one | — (a stale lease changes nothing) |
//! | [`status`](Store::status) · [`list`](Store::list) · [`count`](Store::count) | durable statuses; pages in (created, id) order, each instance once across pages | `InvalidQuery` for a token not made by this store |
//! | [`purge`](Store::purge) | a finished instance, its history and inbox gone; its id reusable | `NotFound`, `NotFinished` |
//! | [`next_wakeup`](Store::next_wakeup) · [`has_work`](Store::has_work) | the earliest due time (timer, scheduled message, lease expiry); whether anything is ready now | — |
//! | [`signals`](Store::signals) · [`watch_status`](Store::watch_status) | a push after every write that makes work ready; a change after every status change | — |
//!
//! Any call may also fail with `Unavailable` (storage failed: try again; a write may have
//! been applied, see below) or `Corrupt` (stored data is damaged); a write of a time the
//! store cannot represent fails with `TimeOutOfRange` and changes nothing.
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
//! - **An activity attempt may run more than once.** An attempt whose lease expired (its
//!   worker died or stopped renewing) or was abandoned is leased again with the same
//!   [`ActivityTask::attempt`]; of its results the store accepts one only: the first that
//!   comes with the attempt's last token, expired or not (by
//!   [`complete_activity`](Store::complete_activity) or in a turn's
//!   [`TurnCommit::completed_activities`]); every other is refused with `Conflict`. An attempt
//!   whose result was accepted is never leased again. A renewal that finds the lease taken
//!   tells the worker it no longer owns the attempt; its result will be refused.
//! - **A status change may be seen late, never early.** A watcher
//!   ([`watch_status`](Store::watch_status)) may miss intermediate changes (it sees the
//!   latest), and a change is announced only once durable.
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
//!
//! # Freezing it
//!
//! This is the contract a store implements, and the runtime assumes nothing beyond it. A
//! method added to [`Store`] breaks every implementation outside this workspace, and a
//! guarantee weakened breaks the runtime: either needs a new check in [`conformance`] and a
//! note in the changelog. What may change freely: the stores' internals. A new filter of
//! [`InstanceQuery`] must default to selecting everything, and every store must apply it
//! (never ignore it) before it is offered.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::history::{Failure, HistoryEvent, SpanParent};
use crate::instance_id::InstanceId;
use crate::status::{InstanceStatus, RuntimeStatus};

pub mod conformance;
mod engine;
mod file;
mod json;
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

    /// The file store acknowledges a batch once written, before its fsync: the fsync comes
    /// with the next batch (a segment's first batch is never synced).
    pub static ACK_BEFORE_FSYNC: AtomicBool = AtomicBool::new(false);

    pub(crate) fn ack_before_fsync() -> bool {
        ACK_BEFORE_FSYNC.load(Ordering::Relaxed)
    }
}

/// A lease's token: whoever holds the current token may commit.
pub type LeaseToken = u64;

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
    /// With `false`, an instance with the id in any state, finished included, fails the
    /// create and is left as it was (the client's `IdReuse::Refuse`).
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
    /// The orchestration span its attempts' spans are children of: set by the turn that
    /// schedules it when tracing is on. `None` without tracing, and in tasks stored before
    /// it was carried: an attempt then reads its parent from the instance's history.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "SpanParent::read_lenient"
    )]
    pub parent_span: Option<SpanParent>,
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
    /// Only instances whose id starts with this text.
    pub id_prefix: Option<String>,
    /// Only instances whose custom status, as its JSON text, contains this text (a string
    /// status `"waiting"` contains `waiting`); case-sensitive.
    pub custom_status: Option<String>,
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

/// How many instances [`Store::count`] found, per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCounts {
    /// Created, not started.
    pub pending: u64,
    /// Started, not finished.
    pub running: u64,
    /// Paused by a client.
    pub suspended: u64,
    /// Returned `Ok`.
    pub completed: u64,
    /// Returned `Err`, panicked or broke determinism.
    pub failed: u64,
    /// Stopped by a client.
    pub terminated: u64,
}

impl StatusCounts {
    /// The count of `status`.
    pub fn get(&self, status: RuntimeStatus) -> u64 {
        match status {
            RuntimeStatus::Pending => self.pending,
            RuntimeStatus::Running => self.running,
            RuntimeStatus::Suspended => self.suspended,
            RuntimeStatus::Completed => self.completed,
            RuntimeStatus::Failed => self.failed,
            RuntimeStatus::Terminated => self.terminated,
        }
    }

    /// Adds `n` to the count of `status`.
    pub fn add(&mut self, status: RuntimeStatus, n: u64) {
        let count = match status {
            RuntimeStatus::Pending => &mut self.pending,
            RuntimeStatus::Running => &mut self.running,
            RuntimeStatus::Suspended => &mut self.suspended,
            RuntimeStatus::Completed => &mut self.completed,
            RuntimeStatus::Failed => &mut self.failed,
            RuntimeStatus::Terminated => &mut self.terminated,
        };
        *count = count.saturating_add(n);
    }

    /// Every status's count added up.
    pub fn total(&self) -> u64 {
        [
            self.pending,
            self.running,
            self.suspended,
            self.completed,
            self.failed,
            self.terminated,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.saturating_add(*n))
    }
}

/// Part of a history, as [`Store::load_history_page`] reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    /// The events asked for, in order; fewer at the history's end, none past it.
    pub events: Vec<HistoryEvent>,
    /// How many events the whole history holds.
    pub len: u64,
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
    /// A time given to the store (a timer, a scheduled start) is outside what it can hold.
    /// The caller's mistake: nothing was written.
    #[error(transparent)]
    TimeOutOfRange(#[from] crate::clock::TimeOutOfRange),
    /// A write is larger than the store can hold in one piece (the file store: 4 GiB, one
    /// batch of its log). The caller's mistake: nothing was written. The runtime fails the
    /// instance whose turn it was.
    #[error("too large for the store: {0}")]
    TooLarge(String),
    /// [`Store::fetch_activity`] leased an attempt whose task it cannot read (written before
    /// the payload limits, or damaged): the caller completes it as failed, so that it blocks
    /// neither its instance nor the queue.
    #[error("activity attempt {} of `{}` cannot be read: {error}", lease.id, lease.instance_id)]
    UnreadableTask {
        /// The attempt, leased.
        lease: ActivityLease,
        /// serde_json's message.
        error: String,
    },
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
    /// Creates an instance with its start message. Fails with `AlreadyExists` when the id
    /// is taken: by any instance, or by one still running if
    /// [`replace_finished`](NewInstance::replace_finished) is set.
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

    /// Events `from..from + limit` of the current history of an instance (fewer at its end,
    /// none from past it), and the history's length, read as one consistent view: the
    /// store reads only those events, whatever the history's length. `NotFound` for an
    /// unknown instance.
    async fn load_history_page(
        &self,
        instance_id: &InstanceId,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError>;

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

    /// Leases an activity attempt that is ready at `now` (scheduled by a durable turn, and
    /// never leased, abandoned, or its last lease expired) for `lease_for`, with a new token.
    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError>;

    /// Completes an attempt with its `TaskCompleted`/`TaskFailed` event, delivered to the
    /// instance's inbox. Accepted while `lease` is the last one handed out for the attempt,
    /// even after it expired; fails with `Conflict` once another worker took the attempt (or
    /// it was completed or abandoned). A result for a finished or purged instance is dropped.
    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError>;

    /// Extends the lease on an attempt that is still running to `now + lease_for`, so that
    /// an attempt is owned for as long as it runs. Succeeds if nobody has taken the attempt
    /// since `lease` was handed out, even after the lease expired (the holder then holds it
    /// again); fails with `Conflict` if another worker took it or the attempt is no longer
    /// wanted (completed, abandoned, its instance finished, continued as new or purged).
    async fn renew_activity(
        &self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError>;

    /// Releases an activity lease without a result: the attempt will run again. A lease that
    /// is not the attempt's last changes nothing.
    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError>;

    /// What is known of an instance: `Ok(None)` if it does not exist.
    async fn status(&self, instance_id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError>;

    /// A page of instances matching `query`.
    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError>;

    /// How many instances match `query`'s filters, per status (its `page_size` and
    /// `continuation` are ignored).
    async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError>;

    /// Deletes a finished instance and its history. Fails with `NotFound` or `NotFinished`.
    async fn purge(&self, instance_id: &InstanceId) -> Result<(), StoreError>;

    /// The earliest time at which a timer or scheduled message falls due or an instance or
    /// attempt lease expires, if any: workers sleep until then unless signalled.
    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError>;

    /// The earliest time after `now` at which a delayed message falls due: a timer, a
    /// scheduled start, an event sent to appear later. Unlike
    /// [`next_wakeup`](Store::next_wakeup) it counts no lease expiry: it is what a workflow
    /// can observe (read by tests through `Client::next_timer`).
    async fn next_timer(&self, now: SystemTime) -> Result<Option<SystemTime>, StoreError>;

    /// The store's work signals.
    fn signals(&self) -> Arc<WorkSignals>;

    /// Whether any instance or activity has work deliverable at `now` (a cheap check the test
    /// runtime uses to decide that nothing can run before the next timer).
    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError>;

    /// A receiver that changes whenever `instance_id`'s status does.
    fn watch_status(&self, instance_id: &InstanceId) -> watch::Receiver<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tasks_parent_span_is_optional_and_a_damaged_one_is_none() {
        let old = r#"{"instance_id":"order-1","id":3,"name":"charge","input":{"cents":1999},"attempt":2}"#;
        let read: ActivityTask = serde_json::from_str(old).unwrap();
        assert_eq!(read.parent_span, None);
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            old,
            "written as before"
        );

        let mut task = read.clone();
        task.parent_span = Some(SpanParent {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
        });
        let json = serde_json::to_string(&task).unwrap();
        assert_eq!(
            json,
            r#"{"instance_id":"order-1","id":3,"name":"charge","input":{"cents":1999},"attempt":2,"parent_span":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}}"#
        );
        assert_eq!(serde_json::from_str::<ActivityTask>(&json).unwrap(), task);
        // From bytes too, as PostgreSQL reads it; an escaped id is still read.
        let escaped = json.replace("00f067aa0ba902b7", "\\u00300f067aa0ba902b7");
        assert_eq!(
            serde_json::from_slice::<ActivityTask>(escaped.as_bytes()).unwrap(),
            task
        );

        // A damaged parent is none: the task still runs, its span's parent read from the
        // history.
        for bad in [
            json.replace(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "4BF92F3577B34DA6A3CE929D0E0E4736",
            ),
            json.replace("00f067aa0ba902b7", "0000000000000000"),
            json.replace("00f067aa0ba902b7", "f067aa0ba902b7"),
            json.replace("00f067aa0ba902b7", &"9".repeat(10_000)),
        ] {
            let read: ActivityTask = serde_json::from_str(&bad).unwrap();
            assert_eq!(read.parent_span, None, "{bad}");
            assert_eq!(read.input, task.input);
        }
        let null = json.replace(
            &json[json.find("{\"trace_id").unwrap()..json.len() - 1],
            "null",
        );
        assert_eq!(serde_json::from_str::<ActivityTask>(&null).unwrap(), read);
    }
}
