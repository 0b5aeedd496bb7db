//! Durable workflows for Rust: orchestrations written as plain `async fn`s, replayed from an
//! event history so that they survive crashes, and activities whose recorded results are
//! never computed twice.
//!
//! ```
//! use std::time::Duration;
//! use durable_runtime::{
//!     activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, Runtime,
//!     RuntimeStatus, TaskError,
//! };
//!
//! /// Real work: runs at least once, its result is recorded.
//! #[activity]
//! async fn charge(ctx: ActivityContext, cents: u64) -> Result<String, String> {
//!     if ctx.attempt() < 2 {
//!         return Err("the bank timed out".into()); // retried by the call's policy
//!     }
//!     Ok(format!("charged {cents} cents"))
//! }
//!
//! /// Deterministic glue: replayed from the history after a restart.
//! #[orchestrator]
//! async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<String, TaskError> {
//!     let receipt = ctx
//!         .call(charge, cents) // `charge` takes a u64: anything else is a compile error
//!         .retry(RetryPolicy::new(3, Duration::from_millis(10)))
//!         .await?;
//!     ctx.set_custom_status("waiting for shipping");
//!     let carrier: String = ctx.wait_for_event("shipped").await?;
//!     Ok(format!("{receipt}, shipped by {carrier}"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder()
//!     .orchestrator(checkout)
//!     .activity(charge)
//!     .start()?;
//! let client = runtime.client();
//!
//! let id = client.start(checkout, 4_200).instance_id("order-1").await?;
//! client.raise_event(&id, "shipped", "a pigeon").await?;
//!
//! let status = client.wait_for_completion(&id, Duration::from_secs(5)).await?;
//! assert_eq!(status.runtime_status, RuntimeStatus::Completed);
//! assert_eq!(
//!     status.output_as::<String>()?.as_deref(),
//!     Some("charged 4200 cents, shipped by a pigeon")
//! );
//! runtime.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # The model
//! - An **orchestration** (`#[orchestrator]`) is deterministic code. Each `ctx.call`,
//!   `ctx.sleep` and `ctx.wait_for_event` is a *command* with a sequence number (its seq);
//!   results come back as events appended to the instance's [history](history::HistoryEvent), one
//!   *turn* at a time. After a restart the code runs again and is fed the recorded results,
//!   turn by turn, instead of re-running anything. A live instance stays in memory between
//!   turns ([`RuntimeBuilder::cache_capacity`]); replay happens only when it is cold.
//! - Replayed code must issue the same commands: each is matched on kind, name and a
//!   [stable hash](history::stable_hash) of its input, and a mismatch fails that instance with
//!   "expected X at seq N, found Y" ([`history::kinds::NONDETERMINISM`]). `#[orchestrator]` rejects
//!   the usual sources of non-determinism (wall clocks, threads, randomness, I/O) at compile
//!   time; use `ctx.now()`, `ctx.random()`, `ctx.new_uuid()` and activities instead.
//! - An **activity** (`#[activity]`) does the real work and runs **at least once**: a crash
//!   after it finished but before its result was stored runs it again. Give outside systems
//!   [`ActivityContext::idempotency_key`].
//! - Retries ([`RetryPolicy`]) are durable timers in the history: the back-off survives a
//!   crash and the attempt number an activity sees is read from the history.
//! - Nothing is acknowledged before it is durable in the [`store`]: a start, an event, an
//!   activity result.
//! - Payloads (inputs, outputs, event data, custom statuses) are JSON, held to the runtime's
//!   [payload limits](limits): at most 100 levels of nesting and 16 MiB by default
//!   ([`RuntimeBuilder::max_payload_depth`], [`RuntimeBuilder::max_payload_bytes`]), so that
//!   whatever is acknowledged reads back on every store. A client call over a limit fails
//!   with [`ClientError::PayloadLimit`]; an activity output fails its attempt; what an
//!   orchestration produces fails its instance ([`history::kinds::PAYLOAD_LIMIT`]). A stored record
//!   that still cannot be read fails its own instance ([`history::kinds::UNREADABLE`]) and blocks
//!   nothing else.
//!
//! # Where names live
//! Every public name has one path. The crate root holds what nearly every program names:
//! the two macros, the contexts, the runtime and its builder, the client, ids, errors, retry
//! policies, and an instance's status ([`InstanceStatus`], [`RuntimeStatus`]). Everything
//! else lives in the public module of its subject, and only there: [`store`] (the store
//! contract, the stores, and what the client's lists, counts and history pages return:
//! [`store::InstanceQuery`], [`store::InstancePage`], [`store::StatusCounts`],
//! [`store::HistoryPage`]), [`history`] (events, failures, the export), [`limits`]
//! ([`limits::PayloadLimitError`]), [`testing`] (the replay checker, the test clocks),
//! [`future`] and [`metric`].
//!
//! # Panics
//! A panicking orchestrator fails its instance ([`history::kinds::PANIC`]); a panicking activity fails
//! that attempt, which its retry policy may retry. The runtime itself keeps going. This relies
//! on unwinding: building with `panic = "abort"` turns any panic in user code into the end of
//! the process.
//!
//! # Logging
//! Write plain `tracing` events in orchestrator code: they are emitted when the code runs
//! live and suppressed while it replays, and they carry an `orchestration` span with the
//! instance id and name.
//!
//! # Traces and metrics
//! Two features, off by default, report what the runtime does (`docs/guide.md`,
//! "Operating"): `opentelemetry` sends spans following the Durable Task conventions (one
//! per instance, however many turns, replays and processes it takes; one per activity
//! attempt; one per durable timer) to the tracer given to `RuntimeBuilder::tracer`; `metrics`
//! records the counters, gauges and histograms named in [`metric::names`] through the
//! `metrics` facade, to whatever recorder the application installs.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

#[doc(hidden)]
pub mod __private;
mod activity;
mod cache;
mod call;
mod callable;
mod client;
mod clock;
mod command;
mod drift;
mod effects;
mod error;
mod event_data;
mod execution;
pub mod future;
mod handle;
pub mod history;
mod instance_id;
pub mod limits;
pub mod metric;
mod orchestration;
mod registry;
mod rescue;
mod retry;
mod runtime;
mod scripted;
mod shared;
mod stats;
mod status;
pub mod store;
mod telemetry;
pub mod testing;
mod trace;
mod waits;
mod worker;

#[doc(inline)]
pub use durable_macros::{activity, orchestrator};

pub use activity::ActivityContext;
pub use call::Call;
pub use callable::{Activity, Orchestrator, Payload};
// What `ctx.call`'s bounds and the generated code name: not meant to be written by users.
#[doc(hidden)]
pub use callable::{ActivityKind, Callable, FailureSource, OrchestratorKind};
pub use client::{Client, IdReuse, IfRunning, Start};
pub use clock::{Clock, SystemClock, TimeOutOfRange, LATEST_TIME_NANOS};
pub use error::{ClientError, TaskError};
pub use event_data::EventData;
pub use instance_id::{InstanceId, InvalidInstanceId};
pub use orchestration::{ContinueAsNew, OrchestrationContext, Sleep, WaitForEvent};
pub use registry::DuplicateRegistration;
pub use retry::RetryPolicy;
pub use runtime::{BuildError, Runtime, RuntimeBuilder};
pub use stats::Stats;
pub use status::{InstanceStatus, RuntimeStatus};
