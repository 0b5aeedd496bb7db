//! The `#[activity]` and `#[orchestrator]` attribute macros of `durable`.
//!
//! Use them through `durable_runtime`, which re-exports them: the generated code refers to
//! `::durable_runtime::__private`, and this crate cannot depend on the runtime, so the
//! examples here are not compiled (the runtime's UI tests compile them instead).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod diag;
mod entry;
mod event_types;
mod expand;
mod kind;
mod lint;
mod options;
mod signature;
#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;

use crate::kind::Kind;

/// Turns `async fn name(ctx: ActivityContext, input: I) -> Result<O, E>` into an activity:
/// the unit of real work (I/O, calls to other systems), run at least once, whose result is
/// recorded in the calling orchestration's history and never recomputed on replay.
///
/// ```ignore
/// use durable_runtime::{activity, ActivityContext, RetryPolicy};
///
/// /// Charges the card; the idempotency key makes a re-run harmless.
/// #[activity(retry = RetryPolicy::new(5, std::time::Duration::from_secs(1)))]
/// pub async fn charge_card(ctx: ActivityContext, order: Order) -> anyhow::Result<Receipt> {
///     payments::charge(&order, ctx.idempotency_key()).await
/// }
///
/// // In an orchestrator: the input type is checked against the activity's.
/// let receipt = ctx.call(charge_card, order).await?;
/// ```
///
/// # The function
///
/// - `async fn` (a plain `fn` with `blocking`, below), not generic, no `self`, no `where`
///   clause.
/// - First parameter: the context, `ctx: ActivityContext` (any pattern, matched by the type's
///   last path segment, so `durable_runtime::ActivityContext` works too).
/// - Then at most one input, of an owned type that is `Serialize + Deserialize`; without it
///   the input is `()`. Several values go in a struct or a tuple: `(a, b): (u32, u32)`.
/// - It returns a `Result<O, E>`, or any alias whose last segment ends in `Result`
///   (`anyhow::Result<O>`, `io::Result<O>`). `O` must be serde; `E` must be `Display`:
///   a failure is recorded as its text.
/// - The future must be `Send`: do not hold an `Rc` or a `MutexGuard` across an `.await`.
///
/// Every problem is reported at once, on the offending token, with the fix. The function is
/// still emitted unchanged beside the errors so that the rest of the crate keeps compiling.
///
/// # What is generated
///
/// The function becomes a unit struct of the same name and visibility (so `charge_card` is a
/// value you pass to `ctx.call` and to `Runtime::builder().activity(..)`), with the body
/// moved to an associated `run` function that unit tests can call directly (an activity's,
/// with `ActivityContext::for_test`; an orchestrator's context exists only inside a turn, so
/// unit-test an orchestrator with `durable_runtime::testing::OrchestrationTest`, which feeds it
/// results and events and returns the commands it issues). The equivalent code without the
/// macro:
///
/// ```ignore
/// /// Charges the card; the idempotency key makes a re-run harmless.
/// #[allow(non_camel_case_types)]
/// #[derive(Clone, Copy, Debug, Default)]
/// pub struct charge_card;
///
/// impl charge_card {
///     /// Runs the body of `charge_card` directly, without the runtime: ...
///     pub async fn run(ctx: ActivityContext, order: Order) -> anyhow::Result<Receipt> {
///         payments::charge(&order, ctx.idempotency_key()).await
///     }
/// }
///
/// impl durable_runtime::__private::Activity for charge_card {
///     const NAME: &'static str = "charge_card";
///     type Input = Order;
///     type Output = <anyhow::Result<Receipt> as durable_runtime::__private::Returns>::Ok;
///     type Error = <anyhow::Result<Receipt> as durable_runtime::__private::Returns>::Err;
///     fn default_retry() -> Option<RetryPolicy> {
///         Some(RetryPolicy::new(5, std::time::Duration::from_secs(1)))
///     }
///     fn __invoke(ctx: ActivityContext, input: Self::Input, _: Seal) -> BoxFuture<'static, Result<..>> {
///         Box::pin(Self::run(ctx, input))
///     }
/// }
/// ```
///
/// Doc comments go on the struct, `#[cfg]`s on every generated item, and other attributes
/// (`#[allow(..)]`, `#[tracing::instrument]`) on `run`. The trait is implemented through
/// `durable_runtime::__private`, which is not public API; its methods may change in any
/// release.
///
/// # Options
///
/// `#[activity(name = "…", retry = <expr>, blocking, crate = "…")]`, each at most once:
///
/// - `name = "charge-card"`: the durable name recorded in histories (default: the function's
///   name). Set it when you rename the function: without it, renaming the Rust function
///   silently changes the durable name, and instances already running would call an activity
///   that no longer exists.
/// - `retry = <RetryPolicy expression>`: the policy used when a call site sets none with
///   `ctx.call(..).retry(..)`. The expression is evaluated each time it is needed.
/// - `blocking`: the function is a plain `fn` (`async fn` is an error), for code that blocks
///   its thread (CPU-heavy work, blocking I/O, a synchronous client). Each attempt runs on
///   tokio's blocking thread pool (`spawn_blocking`), so the runtime's workers stay free; the
///   generated `run` is a plain `fn` too. A panic fails the attempt like any activity's. A
///   call's `.timeout(..)` still fails the attempt in time, but a thread cannot be stopped:
///   the body runs on to its end and its result is dropped.
/// - `crate = "::path"`: the path of the runtime crate, when the dependency is renamed in
///   `Cargo.toml` (default `::durable_runtime`).
///
/// ```ignore
/// /// Resizes on the blocking pool: `image` is CPU-bound and synchronous.
/// #[activity(blocking)]
/// fn thumbnail(_ctx: ActivityContext, png: Vec<u8>) -> anyhow::Result<Vec<u8>> {
///     let img = image::load_from_memory(&png)?;
///     let mut out = Vec::new();
///     img.thumbnail(128, 128).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)?;
///     Ok(out)
/// }
/// ```
///
/// An unknown key is an error that lists the valid ones; `version` and `allow` belong to
/// `#[orchestrator]`.
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Activity, args.into(), item.into()).into()
}

/// Turns `async fn name(ctx: OrchestrationContext, input: I) -> Result<O, E>` into an
/// orchestrator: deterministic code that calls activities, waits on durable timers and
/// events, and is replayed from its history after every restart.
///
/// ```ignore
/// use durable_runtime::{orchestrator, OrchestrationContext};
///
/// /// Charges the order, then ships it once the warehouse confirms.
/// #[orchestrator(version = 2)]
/// pub async fn fulfil(ctx: OrchestrationContext, order: Order) -> anyhow::Result<Receipt> {
///     let receipt = ctx.call(charge_card, order.clone()).await?;
///     let _: Confirmation = ctx.wait_for_event("confirmed").timeout(Duration::from_secs(3600)).await?;
///     ctx.call(ship, order).await?;
///     Ok(receipt)
/// }
/// ```
///
/// The function follows the same rules as an [`activity`](macro@activity)'s, with an
/// `OrchestrationContext`, and expands the same way (a unit struct of the same name, a `run`
/// function holding the body, an impl of `durable_runtime::__private::Orchestrator`), plus
/// `const VERSION: u32 = N;` when `version = N` is given. The equivalent code without the
/// macro:
///
/// ```ignore
/// /// Charges the order, then ships it once the warehouse confirms.
/// #[allow(non_camel_case_types)]
/// #[derive(Clone, Copy, Debug, Default)]
/// pub struct fulfil;
///
/// impl fulfil {
///     pub async fn run(ctx: OrchestrationContext, order: Order) -> anyhow::Result<Receipt> { .. }
/// }
///
/// impl durable_runtime::__private::Orchestrator for fulfil {
///     const NAME: &'static str = "fulfil";
///     const VERSION: u32 = 2;
///     type Input = Order;
///     type Output = <anyhow::Result<Receipt> as durable_runtime::__private::Returns>::Ok;
///     type Error = <anyhow::Result<Receipt> as durable_runtime::__private::Returns>::Err;
///     fn __invoke(ctx: OrchestrationContext, input: Self::Input, _: Seal) -> BoxFuture<'static, Result<..>> {
///         Box::pin(Self::run(ctx, input))
///     }
/// }
/// ```
///
/// # Options
///
/// `#[orchestrator(name = "…", version = N, allow(rule, …), crate = "…")]`, each at most once:
///
/// - `name = "fulfil-order"`: the durable name recorded in histories and used by clients to
///   start instances (default: the function's name). Set it when you rename the function:
///   without it, renaming the Rust function silently changes the durable name under running
///   instances, which would no longer find their code.
/// - `version = N`: the version of this code under its name (default 1, must be ≥ 1). An
///   instance replays against the version it started with, so bump it (and keep the old
///   version registered until its instances finish) when a change would not replay old
///   histories.
/// - `allow(rule, …)`: switches off determinism rules (below) for this function. An unknown
///   rule is an error listing the valid ones.
/// - `crate = "::path"`: the path of the runtime crate, when the dependency is renamed.
///
/// `retry` belongs to `#[activity]`: set retries on calls with `ctx.call(..).retry(policy)`.
///
/// # Event data types
///
/// `ctx.wait_for_event(name)` takes the type of the event's data from how its result is used.
/// A wait whose result is dropped (`ctx.wait_for_event("shipped").await?;`, or
/// `let _ = ..`) names no type, and edition 2021 would silently pick `()`, which fails at run
/// time on any event that carries data; the macro rejects such a wait on the context
/// parameter, in every edition: write `ctx.wait_for_event::<T>("shipped")` (`::<()>` for an
/// event raised without data, `::<serde::de::IgnoredAny>` to ignore the data).
///
/// # The determinism lint
///
/// An orchestrator is re-run from the start on every replay and must take the same path each
/// time. The macro reads the body and rejects, with an error naming the replacement, the
/// calls that cannot. Paths are matched by their last segments, so `SystemTime::now()`,
/// `time::SystemTime::now()` and `std::time::SystemTime::now()` are all caught, and a `use`
/// inside the body is followed (`use tokio::time::sleep; sleep(d)`). A bare single-segment
/// call such as `now()` or `sleep(d)` is not flagged: it may be your own function.
///
/// | rule | flags | use instead |
/// |------|-------|-------------|
/// | `clock` | `SystemTime::now`, `Instant::now`, `Utc::now`, `Local::now`, `OffsetDateTime::now_utc` | `ctx.now()` |
/// | `sleep` | `thread::sleep`, `time::{sleep, sleep_until, timeout, interval, interval_at}` (tokio) | `ctx.sleep(d).await`, or `.timeout(d)` on a call or event wait |
/// | `spawn` | `tokio::spawn`, `task::spawn`, `task::spawn_local`, `spawn_blocking`, `thread::spawn` | one `ctx.call` per task, then join the futures |
/// | `random` | `rand::…`, `fastrand::…`, `thread_rng` | `ctx.random()` |
/// | `uuid` | `Uuid::new_v4`, `new_v7`, `now_v1`, `now_v6`, `now_v7` | `ctx.new_uuid()` |
/// | `env` | `env::var`, `env::var_os`, `env::vars`, `env::vars_os` | pass it in the input, or read it in an activity |
/// | `io` | `fs::…` (std and tokio), `File::open`, `File::create`, `TcpStream`, `TcpListener`, `UdpSocket`, `reqwest::…`, `hyper::…`, `ureq::…` | do I/O in an activity |
/// | `select` | `select!` / `tokio::select!` without `biased;` first; `futures::select!` | `biased;` as the first line (`futures::select_biased!`) |
///
/// The lint also looks inside macro invocations whose arguments are comma-separated
/// expressions (`format!`, `vec!`, `assert!`, `tracing::info!` without a `target:`), and
/// inside `select!` branches. When a use is deliberate (a seeded `rand::rngs::StdRng` from
/// `ctx.random()`, say), silence its rule: `#[orchestrator(allow(random))]`.
///
/// ## Blind spots
///
/// The lint sees the tokens of this one function, not types or other items, so it misses:
///
/// - aliases made outside the body: `use std::time::SystemTime as Clock;` at module level,
///   then `Clock::now()`; and functions imported at module level then called bare
///   (`use tokio::time::sleep;` … `sleep(d)`);
/// - helper functions called from the orchestrator: their bodies are not visible;
/// - method calls on values (`rng.gen()`, `client.get(url).send()`): only paths are checked;
/// - iteration order of `HashMap`/`HashSet`, which differs between processes: use a
///   `BTreeMap` or sort first;
/// - macros whose arguments are not plain expressions (their own grammar), and macros from
///   other crates that expand to any of the above;
/// - shared mutable state (statics, `Arc<Mutex<..>>` captured from outside).
///
/// Replaying with the runtime's history checks is the real test; the lint catches the common
/// mistakes at compile time.
#[proc_macro_attribute]
pub fn orchestrator(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Orchestrator, args.into(), item.into()).into()
}
