//! Fan-out, fan-in and races of durable operations, deterministic on replay.
//!
//! Every call, timer and event wait gets its sequence number when it is first polled, and
//! the engine delivers a whole turn's results before it polls again, so these combinators
//! from the `futures` crate behave the same live and on replay:
//!
//! - [`join_all`] / [`try_join_all`]: run many calls at once; results come back in call
//!   order, whatever order they finished in.
//! - [`select`] / [`select_all`]: the first to finish wins; among several that finished in
//!   the same turn, the first in argument order wins. A losing timer is cancelled when it is
//!   dropped; a losing event wait never took an event (see below).
//!
//! ```
//! use std::time::Duration;
//! use durable_runtime::future::{join_all, select, Either};
//! use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, TaskError};
//!
//! #[activity]
//! async fn square(_ctx: ActivityContext, n: u64) -> Result<u64, String> {
//!     Ok(n * n)
//! }
//!
//! #[orchestrator]
//! async fn sum_of_squares(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
//!     let calls = (1..=n).map(|i| ctx.call(square, i));
//!     let squares = join_all(calls).await.into_iter().collect::<Result<Vec<_>, _>>()?;
//!     // Wait for an approval, at most a day.
//!     let approval = ctx.wait_for_event::<bool>("approved");
//!     let deadline = ctx.sleep(Duration::from_secs(86_400));
//!     match select(approval, deadline).await {
//!         // The timer lost the race: dropping it cancels it.
//!         Either::Left((approved, _timer)) => Ok(if approved? { squares.iter().sum() } else { 0 }),
//!         Either::Right(((), _wait)) => Ok(0),
//!     }
//! }
//! ```
//!
//! # Which wait receives an event
//!
//! **An event stays buffered until a wait for its name is polled and returns it.** Raising
//! it only wakes the waits of its name; the first of them the code polls takes the oldest
//! buffered event of that name, and returns it. So:
//!
//! - a wait that loses a race and is **dropped** takes nothing: the event is still there for
//!   the next wait;
//! - a losing wait that is **kept** (alive in a variable, moved into a struct, or a temporary
//!   of a `match`) takes nothing either until it is awaited again; then it receives the next
//!   event still buffered;
//! - events nobody took are what [`continue_as_new(..).keep_events()`](crate::ContinueAsNew::keep_events)
//!   carries into the next generation.
//!
//! It holds whether the event is raised before the race, during it or after it, and the
//! same on replay. Here the timer wins the race; `stop`, raised while `cleanup` runs, waits
//! for the second `wait_for_event`, although the loser is still alive (a temporary of the
//! `match`):
//!
//! ```
//! use std::time::Duration;
//! use durable_runtime::future::{select, Either};
//! use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, TaskError};
//!
//! #[activity]
//! async fn cleanup(_ctx: ActivityContext) -> Result<(), String> {
//!     Ok(())
//! }
//!
//! #[orchestrator]
//! async fn stoppable(ctx: OrchestrationContext) -> Result<String, TaskError> {
//!     match select(ctx.wait_for_event::<String>("stop"), ctx.sleep(Duration::from_secs(60))).await {
//!         Either::Left((reason, _timer)) => reason,
//!         Either::Right(((), _losing_wait)) => {
//!             ctx.call(cleanup, ()).await?; // "stop" raised now...
//!             ctx.wait_for_event::<String>("stop").await // ...is received here
//!         }
//!     }
//! }
//! ```
//!
//! A kept loser is an ordinary wait; awaiting it later receives the next event:
//!
//! ```
//! # use std::time::Duration;
//! # use durable_runtime::future::{select, Either};
//! # use durable_runtime::{orchestrator, OrchestrationContext, TaskError};
//! #[orchestrator]
//! async fn first_then_second(ctx: OrchestrationContext) -> Result<Vec<u32>, TaskError> {
//!     let first = ctx.wait_for_event::<u32>("n");
//!     let (first, mut seen) = match select(first, ctx.sleep(Duration::from_secs(5))).await {
//!         Either::Left((n, _)) => (None, vec![n?]),
//!         Either::Right(((), first)) => (Some(first), vec![]),
//!     };
//!     // No event in 5 s: the kept wait is awaited again and receives the next one.
//!     if let Some(first) = first {
//!         seen.push(first.await?);
//!     }
//!     Ok(seen)
//! }
//! ```
//!
//! Histories recorded before this rule (format 1, see
//! [`FORMAT_VERSION`](crate::history::FORMAT_VERSION)) replay under the rule they ran with: there
//! an event went to the oldest open wait the moment it was raised, and was lost with that
//! wait if it was dropped.
//!
//! `futures::select!` picks at random among ready branches and `tokio::select!` does too
//! unless it starts with `biased;`: `#[orchestrator]` rejects both; use `select_biased!` or the
//! functions here.

pub use futures::future::{join, join3, join_all, select, select_all, try_join_all, Either};
pub use futures::select_biased;
