//! The errors of the public API.

use std::time::Duration;

use crate::clock::TimeOutOfRange;
use crate::history::Failure;
use crate::instance_id::{InstanceId, InvalidInstanceId};
use crate::limits::PayloadLimitError;
use crate::status::RuntimeStatus;
use crate::store::StoreError;

/// Why a durable operation awaited in an orchestration failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The activity failed on its last attempt (or with an error its policy does not retry).
    #[error("activity `{name}` failed after {attempts} attempt(s): {failure}")]
    ActivityFailed {
        /// The activity's durable name.
        name: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        failure: Failure,
    },
    /// The sub-orchestration failed on its last attempt, or was terminated.
    #[error("sub-orchestration `{name}` failed after {attempts} attempt(s): {failure}")]
    SubOrchestrationFailed {
        /// The orchestrator's durable name.
        name: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        failure: Failure,
    },
    /// The child instance id is not valid.
    #[error("cannot start sub-orchestration `{name}`: {error}")]
    InvalidInstanceId {
        /// The orchestrator's durable name.
        name: String,
        /// What is wrong with the id.
        error: InvalidInstanceId,
    },
    /// No event named `name` arrived within `after`.
    #[error("no event `{name}` arrived within {after:?}")]
    EventTimedOut {
        /// The event's name.
        name: String,
        /// The timeout.
        after: Duration,
    },
    /// A result or event did not deserialise into the type the code expects.
    #[error("{what} does not deserialise into `{expected}`: {error}")]
    BadPayload {
        /// What carried the payload.
        what: String,
        /// The type the code expects.
        expected: &'static str,
        /// serde's message.
        error: String,
    },
    /// A timeout or retry back-off would end at a time no store can hold: nothing was
    /// scheduled.
    #[error(transparent)]
    TimeOutOfRange(#[from] TimeOutOfRange),
}

impl TaskError {
    /// The failure recorded for an activity or sub-orchestration, if that is what failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            TaskError::ActivityFailed { failure, .. }
            | TaskError::SubOrchestrationFailed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// Why a [`Client`](crate::Client) call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The instance id breaks the rule of [`InstanceId`].
    #[error("invalid instance id: {0}")]
    InvalidInstanceId(#[from] InvalidInstanceId),
    /// No instance has this id.
    #[error("no instance `{0}`: check the id, or start it first")]
    NotFound(InstanceId),
    /// An instance with this id exists already.
    #[error("instance `{0}` exists already: pick another id, or purge the old one first")]
    AlreadyExists(InstanceId),
    /// The start refuses an existing id ([`IdReuse::Refuse`](crate::IdReuse::Refuse)), and an
    /// instance with this id exists.
    #[error(
        "instance `{id}` exists already ({status:?}) and this start refuses an existing id \
         (`IdReuse::Refuse`): read that instance's status instead of starting it again, or \
         start under another id"
    )]
    IdTaken {
        /// The instance.
        id: InstanceId,
        /// Its status when the start was refused.
        status: RuntimeStatus,
    },
    /// The instance has not finished, so it cannot be purged.
    #[error(
        "instance `{0}` is still running: terminate it or wait for it to finish before purging"
    )]
    NotFinished(InstanceId),
    /// The instance has finished and takes no more events.
    #[error("instance `{id}` has finished ({status:?}) and takes no more events")]
    Finished {
        /// The instance.
        id: InstanceId,
        /// How it ended.
        status: RuntimeStatus,
    },
    /// The orchestrator is not registered with this runtime.
    #[error("orchestrator `{name}` (version {version}) is not registered: add `.orchestrator({name})` to the runtime builder")]
    NotRegistered {
        /// Its durable name.
        name: String,
        /// Its version.
        version: u32,
    },
    /// A payload could not be (de)serialised.
    #[error("{what}: {error}")]
    BadPayload {
        /// What carried the payload.
        what: String,
        /// serde's message.
        error: String,
    },
    /// A payload is over the runtime's payload limits (see [`limits`](crate::limits)); nothing
    /// was stored.
    #[error("{what} is refused: {error}")]
    PayloadLimit {
        /// What carried the payload.
        what: String,
        /// Which limit it broke.
        error: PayloadLimitError,
    },
    /// Waiting for the instance took longer than allowed.
    #[error("instance `{id}` did not reach the awaited state within {after:?}")]
    Timeout {
        /// The instance.
        id: InstanceId,
        /// The time allowed.
        after: Duration,
    },
    /// The query cannot be run as given (a continuation token the store did not make).
    #[error("{0}")]
    InvalidQuery(String),
    /// A time given (a scheduled start) is outside what every store can hold.
    #[error(transparent)]
    TimeOutOfRange(#[from] TimeOutOfRange),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ClientError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => ClientError::NotFound(id),
            StoreError::AlreadyExists(id) => ClientError::AlreadyExists(id),
            StoreError::Finished { id, status } => ClientError::Finished { id, status },
            StoreError::NotFinished(id) => ClientError::NotFinished(id),
            StoreError::InvalidQuery(reason) => ClientError::InvalidQuery(reason),
            StoreError::TimeOutOfRange(refused) => ClientError::TimeOutOfRange(refused),
            other => ClientError::Store(other),
        }
    }
}
