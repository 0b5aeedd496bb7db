//! What the loops, the client and the test clock share, and the guards of work in flight.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::limits::PayloadLimits;
use crate::registry::Registry;
use crate::stats::Counters;
use crate::store::Store;
use crate::telemetry::Tracing;

/// Tunables of a runtime; every one has a sensible default.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) cache_capacity: usize,
    pub(crate) max_concurrent_turns: usize,
    pub(crate) max_concurrent_activities: usize,
    pub(crate) orchestration_lease: Duration,
    pub(crate) activity_lease: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) limits: PayloadLimits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_capacity: 10_000,
            max_concurrent_turns: 256,
            max_concurrent_activities: 256,
            orchestration_lease: Duration::from_secs(30),
            activity_lease: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            limits: PayloadLimits::default(),
        }
    }
}

/// What the workers, the client and the test clock share.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: Registry,
    pub(crate) options: Options,
    pub(crate) cache: Cache,
    pub(crate) counters: Counters,
    pub(crate) tracing: Tracing,
    /// Turns, activity attempts and client writes under way.
    in_flight: AtomicUsize,
    /// Clients waiting for an instance to finish: the test clock moves only for them.
    completion_waiters: AtomicUsize,
    /// Signalled when the runtime may have gone quiet.
    pub(crate) quiet: Notify,
    stopping: AtomicBool,
    /// Signalled once when the runtime stops.
    pub(crate) stop: Notify,
}

/// Marks work in flight for as long as it lives.
pub(crate) struct Busy<'a>(&'a Shared);

/// [`Busy`] that moves into a spawned task, so work is in flight from the moment it is taken
/// until it is done, with no gap while the task waits to be scheduled.
pub(crate) struct OwnedBusy(Arc<Shared>);

/// See [`Shared::waiting_for_completion`].
pub(crate) struct CompletionWait<'a>(&'a Shared);

impl Shared {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        registry: Registry,
        options: Options,
        tracing: Tracing,
    ) -> Self {
        Shared {
            cache: Cache::new(options.cache_capacity),
            store,
            clock,
            registry,
            options,
            counters: Counters::default(),
            tracing,
            in_flight: AtomicUsize::new(0),
            completion_waiters: AtomicUsize::new(0),
            quiet: Notify::new(),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        }
    }

    pub(crate) fn busy(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    pub(crate) fn busy_owned(self: &Arc<Self>) -> OwnedBusy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        OwnedBusy(Arc::clone(self))
    }

    fn leave(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.quiet.notify_one();
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Marks a client waiting for a completion for as long as the guard lives.
    pub(crate) fn waiting_for_completion(&self) -> CompletionWait<'_> {
        self.completion_waiters.fetch_add(1, Ordering::SeqCst);
        self.quiet.notify_one();
        CompletionWait(self)
    }

    /// Whether a client waits for an instance to finish.
    pub(crate) fn has_completion_waiters(&self) -> bool {
        self.completion_waiters.load(Ordering::SeqCst) > 0
    }

    /// Tells every loop to stop taking work.
    pub(crate) fn signal_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Drop for OwnedBusy {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Drop for CompletionWait<'_> {
    fn drop(&mut self) {
        self.0.completion_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
