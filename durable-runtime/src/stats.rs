//! Counters that let tests and benchmarks see what the engine did.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what a runtime has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Turns run and committed (those without the code included).
    pub turns: u64,
    /// Turns that found their instance live in the cache.
    pub cache_hits: u64,
    /// Turns that had to rebuild their instance.
    pub cache_misses: u64,
    /// Replays of a stored history (a miss on an instance that has one).
    pub replays: u64,
    /// History events fed through replays.
    pub events_replayed: u64,
    /// Turn commits refused because another worker moved the instance on.
    pub conflicts: u64,
    /// Activity attempts run.
    pub activities: u64,
    /// Turn commits.
    pub commits: u64,
    /// Events appended by turn commits (divide by `commits` for the mean batch size).
    pub events_committed: u64,
    /// Executions live in the cache now.
    pub cached: u64,
    /// Turns whose code was polled longer than
    /// [`stuck_after`](crate::RuntimeBuilder::stuck_after) (a loop without `.await`, or a
    /// very long replay), each counted once, when found; each was also reported by a
    /// warning naming its instance.
    pub stuck_turns: u64,
    /// Turns committed without the instance's code, to end it: a terminate that arrived
    /// while a poll of its code still ran here, or a panic of the runtime in a turn. They
    /// count in `turns` and `commits`, not in the cache's hits and misses.
    pub turns_without_code: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) turns: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) replays: AtomicU64,
    pub(crate) events_replayed: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) activities: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) events_committed: AtomicU64,
    pub(crate) stuck_turns: AtomicU64,
    pub(crate) turns_without_code: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, cached: usize) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            turns: get(&self.turns),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            replays: get(&self.replays),
            events_replayed: get(&self.events_replayed),
            conflicts: get(&self.conflicts),
            activities: get(&self.activities),
            commits: get(&self.commits),
            events_committed: get(&self.events_committed),
            cached: cached as u64,
            stuck_turns: get(&self.stuck_turns),
            turns_without_code: get(&self.turns_without_code),
        }
    }
}
