//! What the loops, the client and the test clock share, and the guards of work in flight.

use foldhash::HashMap;
use std::collections::hash_map::Entry;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::cache::Cache;
use crate::clock::{self, Clock, VirtualClock};
use crate::instance_id::InstanceId;
use crate::limits::PayloadLimits;
use crate::registry::Registry;
use crate::stats::Counters;
use crate::store::Store;
use crate::telemetry::Tracing;

/// How long a wait for the runtime to go idle sleeps before checking again when no work
/// ends.
const IDLE_RECHECK: Duration = Duration::from_millis(10);

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
    pub(crate) stuck_after: Duration,
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
            stuck_after: Duration::from_secs(10),
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
    /// How many pieces of work have ever started: unchanged across a check, nothing started.
    started: AtomicU64,
    /// The virtual clock that clients waiting on a status move ([`Advance::Auto`]).
    ///
    /// [`Advance::Auto`]: crate::runtime::Advance::Auto
    pub(crate) auto_clock: Option<VirtualClock>,
    /// Signalled to every waiter whenever the work in flight drops to none.
    settled: Notify,
    stopping: AtomicBool,
    /// Signalled once when the runtime stops.
    pub(crate) stop: Notify,
    /// Turns under way in this process, by instance.
    turns: Mutex<HashMap<InstanceId, TurnState>>,
}

/// A turn under way: whether its code is being polled, since when, and whether it was
/// reported stuck.
#[derive(Default)]
struct TurnState {
    polling_since: Option<Instant>,
    reported: bool,
}

/// Marks a turn of one instance under way in this process for as long as it lives; see
/// [`Shared::enter_turn`].
pub(crate) struct TurnGuard {
    shared: Arc<Shared>,
    id: InstanceId,
}

/// Marks the turn's code being polled (replayed or run) for as long as it lives.
pub(crate) struct Polling<'a>(&'a TurnGuard);

/// Marks work in flight for as long as it lives.
pub(crate) struct Busy<'a>(&'a Shared);

/// [`Busy`] that moves into a spawned task, so work is in flight from the moment it is taken
/// until it is done, with no gap while the task waits to be scheduled.
pub(crate) struct OwnedBusy(Arc<Shared>);

impl Shared {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        registry: Registry,
        options: Options,
        tracing: Tracing,
        auto_clock: Option<VirtualClock>,
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
            started: AtomicU64::new(0),
            auto_clock,
            settled: Notify::new(),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            turns: Mutex::default(),
        }
    }

    fn turns(&self) -> MutexGuard<'_, HashMap<InstanceId, TurnState>> {
        self.turns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a turn of `id` under way; `None` while another turn of it still runs in this
    /// process. That happens when a poll of the code does not return (a loop without
    /// `.await`) and its lease expires: running it again would block one more thread, so
    /// the instance is not run here until that poll returns.
    pub(crate) fn enter_turn(self: &Arc<Self>, id: &InstanceId) -> Option<TurnGuard> {
        match self.turns().entry(id.clone()) {
            Entry::Occupied(_) => return None,
            Entry::Vacant(entry) => entry.insert(TurnState::default()),
        };
        Some(TurnGuard {
            shared: Arc::clone(self),
            id: id.clone(),
        })
    }

    /// Turns whose code has been polled longer than `stuck_after` and were not reported yet,
    /// with how long: each is reported once.
    pub(crate) fn newly_stuck(&self) -> Vec<(InstanceId, Duration)> {
        let now = clock::stopwatch();
        let mut stuck = Vec::new();
        for (id, turn) in self.turns().iter_mut() {
            let Some(since) = turn.polling_since else {
                continue;
            };
            let polling_for = now.saturating_duration_since(since);
            if !turn.reported && polling_for > self.options.stuck_after {
                turn.reported = true;
                stuck.push((id.clone(), polling_for));
            }
        }
        stuck
    }

    pub(crate) fn busy(&self) -> Busy<'_> {
        self.enter();
        Busy(self)
    }

    pub(crate) fn busy_owned(self: &Arc<Self>) -> OwnedBusy {
        self.enter();
        OwnedBusy(Arc::clone(self))
    }

    fn enter(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// How many pieces of work have started so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Whether nothing has started since `epoch` (a [`started`](Self::started) count),
    /// nothing is under way, and the store has no work ready at `now`: then nothing can run
    /// until the clock moves or a client writes.
    async fn idle_since(&self, epoch: u64, now: SystemTime) -> bool {
        if self.in_flight() != 0 || self.started() != epoch {
            return false;
        }
        // Every write happens under a busy guard: if none started or was under way while
        // the store was asked, its answer still holds.
        let ready = self.store.has_work(now).await;
        matches!(ready, Ok(false)) && self.in_flight() == 0 && self.started() == epoch
    }

    /// Waits until the work under way may have ended (or a short while, for work ready but
    /// not yet taken, and a failing store).
    pub(crate) async fn settle(&self, settled: Pin<&mut Notified<'_>>) {
        let _ = tokio::time::timeout(IDLE_RECHECK, settled).await;
    }

    /// Waits until the runtime is idle: see `Runtime::run_until_idle`.
    pub(crate) async fn until_idle(&self) {
        loop {
            let settled = self.settled.notified();
            let mut settled = std::pin::pin!(settled);
            settled.as_mut().enable();
            if self.idle_since(self.started(), self.clock.now()).await {
                return;
            }
            self.settle(settled).await;
        }
    }

    /// A wake-up for when the work in flight drops to none; enable it before checking.
    pub(crate) fn settled(&self) -> Notified<'_> {
        self.settled.notified()
    }

    /// Whether nothing is under way and the store has no work ready at `now`.
    pub(crate) async fn is_idle(&self, now: SystemTime) -> bool {
        self.idle_since(self.started(), now).await
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

impl TurnGuard {
    /// Marks the turn's code being polled until the returned guard drops.
    pub(crate) fn polling(&self) -> Polling<'_> {
        if let Some(turn) = self.shared.turns().get_mut(&self.id) {
            turn.polling_since = Some(clock::stopwatch());
        }
        Polling(self)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        if let Some(turn) = self.0.shared.turns().get_mut(&self.0.id) {
            turn.polling_since = None;
        }
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        self.shared.turns().remove(&self.id);
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
