//! The traits that `#[activity]` and `#[orchestrator]` implement, and what makes them callable.

use core::fmt::Display;
use core::future::Future;
use core::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::activity::ActivityContext;
use crate::orchestration::OrchestrationContext;
use crate::retry::RetryPolicy;

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Proof that the runtime, not user code, invokes a generated wrapper.
pub struct Seal(());

impl Seal {
    pub(crate) const fn new() -> Self {
        Seal(())
    }
}

/// A value that can cross a durable boundary: an input or an output of an activity or
/// orchestration. It is stored in the history as JSON. (A type that is not serde is reported
/// by the compiler as missing `Serialize`/`Deserialize`, with the derive to add.)
pub trait Payload: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Payload for T {}

/// An error an activity or orchestration may return: it is recorded as its `Display` text.
pub trait FailureSource: Display + Send + 'static {}

impl<T: Display + Send + 'static> FailureSource for T {}

/// An activity: the unit of real work, run at least once. Implemented by `#[activity]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an activity",
    label = "expected a function annotated with `#[activity]`",
    note = "annotate an `async fn(ActivityContext, Input) -> Result<Output, Error>` with `#[durable_runtime::activity]`; an orchestrator is registered with `.orchestrator(..)`"
)]
pub trait Activity: Send + Sync + 'static {
    /// The durable name, recorded in histories. Changing it breaks running instances.
    const NAME: &'static str;
    /// What the activity takes.
    type Input: Payload;
    /// What the activity returns on success.
    type Output: Payload;
    /// What the activity returns on failure.
    type Error: FailureSource;

    /// The retry policy used when a call site sets none (`#[activity(retry = ..)]`).
    fn default_retry() -> Option<RetryPolicy> {
        None
    }

    #[doc(hidden)]
    fn __invoke(
        ctx: ActivityContext,
        input: Self::Input,
        _: Seal,
    ) -> BoxFuture<'static, Result<Self::Output, Self::Error>>;
}

/// An orchestration: deterministic code replayed from its history. Implemented by
/// `#[orchestrator]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an orchestrator",
    label = "expected a function annotated with `#[orchestrator]`",
    note = "annotate an `async fn(OrchestrationContext, Input) -> Result<Output, Error>` with `#[durable_runtime::orchestrator]`; an activity is registered with `.activity(..)`"
)]
pub trait Orchestrator: Send + Sync + 'static {
    /// The durable name, recorded in histories. Changing it breaks running instances.
    const NAME: &'static str;
    /// The version of this code under its name; an instance replays against the version it
    /// started with.
    const VERSION: u32 = 1;
    /// What the orchestration takes.
    type Input: Payload;
    /// What the orchestration returns on success.
    type Output: Payload;
    /// What the orchestration returns on failure.
    type Error: FailureSource;

    #[doc(hidden)]
    fn __invoke(
        ctx: OrchestrationContext,
        input: Self::Input,
        _: Seal,
    ) -> BoxFuture<'static, Result<Self::Output, Self::Error>>;
}

/// Kind marker: the callee is an activity.
#[doc(hidden)]
pub enum ActivityKind {}

/// Kind marker: the callee is an orchestrator (a sub-orchestration).
#[doc(hidden)]
pub enum OrchestratorKind {}

/// Something an orchestration can call with [`OrchestrationContext::call`]: an activity, or
/// an orchestrator (run as a sub-orchestration). Sealed: implemented through the attribute
/// macros only.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be called from an orchestration",
    label = "expected a function annotated with `#[activity]` or `#[orchestrator]`",
    note = "`ctx.call(f, input)` takes the unit type that `#[activity]` or `#[orchestrator]` generates for `f`"
)]
pub trait Callable<Kind>: Send + 'static + sealed::Sealed<Kind> {
    /// What the callee takes.
    type Input: Payload;
    /// What the callee returns.
    type Output: Payload;
    #[doc(hidden)]
    fn __target() -> CallTarget;
}

/// What a call schedules.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum CallTarget {
    /// An activity by durable name, with its default retry policy.
    Activity {
        /// The durable name.
        name: &'static str,
        /// The policy when the call site sets none.
        default_retry: Option<RetryPolicy>,
    },
    /// An orchestrator by durable name and version, run as a sub-orchestration.
    Orchestrator {
        /// The durable name.
        name: &'static str,
        /// The version.
        version: u32,
    },
}

mod sealed {
    pub trait Sealed<Kind> {}
    impl<A: super::Activity> Sealed<super::ActivityKind> for A {}
    impl<O: super::Orchestrator> Sealed<super::OrchestratorKind> for O {}
}

impl<A: Activity> Callable<ActivityKind> for A {
    type Input = A::Input;
    type Output = A::Output;
    fn __target() -> CallTarget {
        CallTarget::Activity {
            name: A::NAME,
            default_retry: A::default_retry(),
        }
    }
}

impl<O: Orchestrator> Callable<OrchestratorKind> for O {
    type Input = O::Input;
    type Output = O::Output;
    fn __target() -> CallTarget {
        CallTarget::Orchestrator {
            name: O::NAME,
            version: O::VERSION,
        }
    }
}
