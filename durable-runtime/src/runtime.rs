//! The builder: a store, a registry and options make a running runtime; and its shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::callable::{Activity, Orchestrator};
use crate::client::Client;
use crate::clock::{Clock, SystemClock, VirtualClock};
use crate::limits::PayloadLimits;
use crate::metric;
use crate::registry::{DuplicateRegistration, Registry};
use crate::shared::{Options, Shared};
use crate::stats::Stats;
use crate::store::{MemoryStore, Store};
use crate::telemetry::{Tracer, Tracing};
use crate::worker;

/// How a [`VirtualClock`] moves in a test runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// While a client waits on an instance's status ([`Client::wait_for_completion`],
    /// [`Client::wait_until`]) and nothing else can run (no turn, activity or client write in
    /// flight, no work ready), jump to the next due time: back-offs and timeouts take no real
    /// time. Between client calls the clock stands still, so a test can raise an event
    /// before a timeout it races.
    Auto,
    /// Only when the test calls [`VirtualClock::advance`]. Run the work a start or an event
    /// makes ready with [`Runtime::run_until_idle`] before advancing, so that timers are
    /// created at the time the test expects.
    Manual,
}

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two functions share a durable name.
    #[error(transparent)]
    Duplicate(#[from] DuplicateRegistration),
    /// `start` was called outside a tokio runtime.
    #[error("a durable runtime must be started inside a tokio runtime")]
    NoTokio,
}

/// Configures and starts a [`Runtime`].
pub struct RuntimeBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    auto_advance: Option<VirtualClock>,
    registry: Registry,
    errors: Vec<DuplicateRegistration>,
    options: Options,
    tracer: Option<Tracer>,
}

impl RuntimeBuilder {
    /// Keeps histories in `store` (the default is a [`MemoryStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Keeps histories in a store shared with other runtimes.
    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = store;
        self
    }

    /// Reads time from `clock` (the default is the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.auto_advance = None;
        self
    }

    /// Runs on a virtual clock for tests, moved by the runtime itself or by hand.
    pub fn virtual_clock(mut self, clock: VirtualClock, advance: Advance) -> Self {
        self.clock = Arc::new(clock.clone());
        self.auto_advance = (advance == Advance::Auto).then_some(clock);
        self
    }

    /// Registers an orchestrator: `.orchestrator(my_workflow)`.
    pub fn orchestrator<O: Orchestrator>(mut self, orchestrator: O) -> Self {
        let _ = orchestrator;
        if let Err(e) = self.registry.add_orchestrator::<O>() {
            self.errors.push(e);
        }
        self
    }

    /// Registers an activity: `.activity(my_activity)`.
    pub fn activity<A: Activity>(mut self, activity: A) -> Self {
        let _ = activity;
        if let Err(e) = self.registry.add_activity::<A>() {
            self.errors.push(e);
        }
        self
    }

    /// How many live instances stay in memory between turns (default 10,000). With 0, every
    /// turn replays the instance's history.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.options.cache_capacity = capacity;
        self
    }

    /// How many activity attempts run at once in this process (default 256).
    pub fn max_concurrent_activities(mut self, limit: usize) -> Self {
        self.options.max_concurrent_activities = limit.max(1);
        self
    }

    /// How many orchestration turns run at once in this process (default 256).
    pub fn max_concurrent_turns(mut self, limit: usize) -> Self {
        self.options.max_concurrent_turns = limit.max(1);
        self
    }

    /// How long a worker owns an instance for one turn before another may take it over
    /// (default 30 s).
    pub fn orchestration_lease(mut self, lease: Duration) -> Self {
        self.options.orchestration_lease = lease;
        self
    }

    /// The term of an activity attempt's lease (default 5 min). An attempt is owned for as
    /// long as it runs, its timeout included: the worker renews the lease every third of
    /// this term. If the worker dies, the renewals stop and another worker runs the attempt
    /// again (same attempt number) once this term has passed since the last renewal; a
    /// shorter term retries sooner after a crash and renews more often. A result that
    /// arrives after the lease expired still counts if nobody has taken the attempt since.
    pub fn activity_lease(mut self, lease: Duration) -> Self {
        self.options.activity_lease = lease;
        self
    }

    /// How long [`Runtime::shutdown`] waits for running activities (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.options.shutdown_grace = grace;
        self
    }

    /// How deeply a payload may nest arrays and objects (default 100, at most 120; a larger
    /// value is taken as 120). Checked wherever a payload enters: a start's input, an
    /// event's data, an activity's or orchestration's output, a custom status, the input of
    /// an activity call, a sub-orchestration or a continue-as-new. serde_json reads at most
    /// 128 levels, and the stores wrap a payload in a level or two of their own: within the
    /// limit, whatever is acknowledged reads back. See [`limits`](crate::limits).
    pub fn max_payload_depth(mut self, levels: usize) -> Self {
        self.options.limits = PayloadLimits::new(levels, self.options.limits.max_bytes);
        self
    }

    /// How large a payload may be, in bytes of compact JSON (default 16 MiB, at most 512 MiB;
    /// a larger value is taken as 512 MiB); checked where
    /// [`max_payload_depth`](Self::max_payload_depth) is.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.options.limits = PayloadLimits::new(self.options.limits.max_depth, bytes);
        self
    }

    /// Sends spans to `tracer` (the `opentelemetry` feature): one per instance, per activity
    /// attempt and per durable timer, following the Durable Task conventions. Without a
    /// tracer the runtime records no span and writes no trace ids into histories.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use opentelemetry::trace::TracerProvider as _;
    ///
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let runtime = durable_runtime::Runtime::builder()
    ///     .tracer(provider.tracer("durable"))
    ///     .start()
    ///     .unwrap();
    /// # runtime.shutdown().await;
    /// # }
    /// ```
    #[cfg(feature = "opentelemetry")]
    pub fn tracer<T>(mut self, tracer: T) -> Self
    where
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        self.tracer = Some(opentelemetry::global::BoxedTracer::new(Box::new(tracer)));
        self
    }

    /// Sends spans to the global tracer provider's tracer `durable`
    /// ([`opentelemetry::global::set_tracer_provider`], set before this call).
    #[cfg(feature = "opentelemetry")]
    pub fn global_tracer(mut self) -> Self {
        self.tracer = Some(opentelemetry::global::tracer("durable"));
        self
    }

    /// Starts the workers on the current tokio runtime.
    pub fn start(mut self) -> Result<Runtime, BuildError> {
        if let Some(error) = self.errors.pop() {
            return Err(error.into());
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoTokio)?;
        let shared = Arc::new(Shared::new(
            self.store,
            self.clock,
            self.registry,
            self.options,
            Tracing::new(self.tracer),
            self.auto_advance,
        ));
        metric::describe();
        let tasks = vec![
            handle.spawn(worker::orchestration_loop(Arc::clone(&shared))),
            handle.spawn(worker::activity_loop(Arc::clone(&shared))),
        ];
        Ok(Runtime { shared, tasks })
    }
}

/// A running durable runtime: workers that run orchestration turns and activities against a
/// store. Get a [`Client`] from it to start and observe instances.
pub struct Runtime {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// A builder with an in-memory store and the system clock.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SystemClock),
            auto_advance: None,
            registry: Registry::default(),
            errors: Vec::new(),
            options: Options::default(),
            tracer: None,
        }
    }

    /// A client of this runtime.
    pub fn client(&self) -> Client {
        Client::new(Arc::clone(&self.shared))
    }

    /// Waits until the runtime is idle: no turn, activity attempt or client write under way,
    /// and no work ready at the clock's current time. It never moves the clock, so it stops
    /// where only time (a timer) or the test (an event) can move a workflow on: the place to
    /// assert on an intermediate state. Read what falls due next with
    /// [`Client::next_timer`].
    ///
    /// For the runtime's own work in this process: work ready in a store shared with other
    /// processes is waited for only while this runtime can take it. Bound the wait with
    /// `tokio::time::timeout` if a workflow may never settle (one that loops on zero-length
    /// timers).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use durable_runtime::testing::{Advance, VirtualClock};
    /// # use durable_runtime::{orchestrator, OrchestrationContext, Runtime, RuntimeStatus, TaskError};
    /// #[orchestrator]
    /// async fn reminder(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ///     ctx.set_custom_status("sleeping");
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let clock = VirtualClock::new();
    /// let runtime = Runtime::builder()
    ///     .virtual_clock(clock.clone(), Advance::Manual)
    ///     .orchestrator(reminder)
    ///     .start()?;
    /// let client = runtime.client();
    /// let id = client.start(reminder, ()).await?;
    /// runtime.run_until_idle().await; // the first turn has run: the timer is set
    /// let due = client.next_timer().await?.expect("the reminder's timer");
    /// assert_eq!(due, clock.now() + Duration::from_secs(3600));
    ///
    /// clock.advance_to(due);
    /// runtime.run_until_idle().await;
    /// assert_eq!(client.status(&id).await?.runtime_status, RuntimeStatus::Completed);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_until_idle(&self) {
        self.shared.until_idle().await
    }

    /// What the runtime has done so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot(self.shared.cache.len())
    }

    /// Stops taking work, lets running turns commit and running activities finish within the
    /// grace period, and hands back (abandons) the leases of those that did not, so another
    /// runtime runs them again. Nothing acknowledged is lost.
    pub async fn shutdown(mut self) {
        self.shared.signal_stop();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("store", &self.shared.store)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.signal_stop();
    }
}
