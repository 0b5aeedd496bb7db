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
//!   dropped, and a losing event wait gives its event back to later waits.
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
//! `futures::select!` picks at random among ready branches and `tokio::select!` does too
//! unless it starts with `biased;`: `#[orchestrator]` rejects both; use `select_biased!` or the
//! functions here.

pub use futures::future::{join, join3, join_all, select, select_all, try_join_all, Either};
pub use futures::select_biased;
