//! Durable workflows for Rust: orchestrations written as plain `async fn`s, replayed from an
//! event history so that they survive crashes, with activities that are never re-run once
//! their result is recorded.
//!
//! (The complete example lives in the README until the macros land.)

#![warn(missing_docs, unreachable_pub)]

#[doc(hidden)]
pub mod __private;
mod activity;
mod cache;
mod callable;
mod client;
mod clock;
mod error;
mod history;
mod instance_id;
mod orchestration;
mod registry;
mod replay;
mod retry;
mod runtime;
mod stats;
pub mod store;
mod trace;
mod worker;

#[doc(inline)]
pub use durable_macros::{activity, orchestrator};

pub use activity::ActivityContext;
pub use callable::{Activity, ActivityKind, Callable, FailureSource, Orchestrator, Payload};
pub use client::{Client, Start};
pub use clock::{Clock, SystemClock, VirtualClock};
pub use error::{ClientError, TaskError};
pub use history::{kinds, stable_hash, CompletionStatus, Event, Failure, HistoryEvent, FORMAT_VERSION};
pub use instance_id::{InstanceId, InvalidInstanceId};
pub use orchestration::{Call, CallFuture, EventFuture, OrchestrationContext, Sleep, WaitForEvent};
pub use registry::DuplicateRegistration;
pub use retry::RetryPolicy;
pub use runtime::{Advance, BuildError, Runtime, RuntimeBuilder};
pub use stats::Stats;
pub use store::{InstancePage, InstanceQuery, InstanceStatus, RuntimeStatus};
