//! Claims taken several at a time: while work is waiting, one statement leases a batch and
//! the store hands it out one call at a time, so a busy process pays one round trip and one
//! WAL flush per batch of claims instead of one per claim.
//!
//! The batch grows with the backlog (twice what the last claim found, up to [`MAX_CLAIM`])
//! and falls back to one when little is waiting, so an idle fleet shares work evenly and no
//! process hoards. A claim handed out has at least half its lease left; an older one is
//! released instead, in the background (its lease ran down while the process was busy).
//!
//! A process busy with a batch does not claim again until the batch is handed out, so it
//! would not see leases that expire meanwhile (a dead worker's): at most once per poll
//! interval it claims those alone, and hands them out before the rest of its batch.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// The most a claim leases at once.
pub(crate) const MAX_CLAIM: usize = 16;

/// Claims leased and not yet handed out, with their lease expiry (nanoseconds).
#[derive(Debug)]
pub(crate) struct Claimed<T> {
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    ready: VecDeque<(T, i64)>,
    next: usize,
    /// When (the runtime's `now`, nanoseconds) this process last looked for expired leases.
    looked: i64,
}

impl<T> Default for Claimed<T> {
    fn default() -> Self {
        Claimed {
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                next: 1,
                looked: i64::MIN,
            }),
        }
    }
}

impl<T> Claimed<T> {
    fn inner(&self) -> MutexGuard<'_, Inner<T>> {
        // Nothing below can leave the queue half-updated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next claim with at least `lease / 2` left at `now` (with its lease expiry), and
    /// the older ones passed over (to release).
    pub(crate) fn take(&self, now: i64, lease: i64) -> (Option<(T, i64)>, Vec<T>) {
        let mut inner = self.inner();
        let mut stale = Vec::new();
        while let Some((item, until)) = inner.ready.pop_front() {
            if until.saturating_sub(now) >= lease / 2 {
                return (Some((item, until)), stale);
            }
            stale.push(item);
        }
        (None, stale)
    }

    /// How many the next claim leases.
    pub(crate) fn size(&self) -> usize {
        self.inner().next
    }

    /// Whether a process still handing out a batch at `now` should look for expired leases:
    /// at most once per `every` nanoseconds (a claim of the database counts as a look).
    pub(crate) fn look_for_expired(&self, now: i64, every: i64) -> bool {
        let mut inner = self.inner();
        if now.saturating_sub(inner.looked) < every {
            return false;
        }
        inner.looked = now;
        true
    }

    /// Expired leases taken over until `until`: handed out before the rest of the batch
    /// (they have waited longest).
    pub(crate) fn push_front(&self, taken: Vec<T>, until: i64) {
        let mut inner = self.inner();
        for item in taken.into_iter().rev() {
            inner.ready.push_front((item, until));
        }
    }

    /// A claim at `now` of `asked` leased `first` and `rest` until `until`: `rest` waits
    /// here, and the next claim's size follows what this one found.
    pub(crate) fn refill(&self, now: i64, asked: usize, found: usize, rest: Vec<T>, until: i64) {
        let mut inner = self.inner();
        inner.looked = inner.looked.max(now);
        inner.next = if found >= asked {
            (asked * 2).min(MAX_CLAIM)
        } else {
            (found * 2).clamp(1, MAX_CLAIM)
        };
        inner
            .ready
            .extend(rest.into_iter().map(|item| (item, until)));
    }

    /// Whether claims wait here.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner().ready.is_empty()
    }

    /// Every claim waiting here (to release them).
    pub(crate) fn drain(&self) -> Vec<T> {
        self.inner().ready.drain(..).map(|(item, _)| item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Claimed, MAX_CLAIM};

    #[test]
    fn the_batch_follows_the_backlog_and_stale_claims_are_passed_over() {
        let claimed: Claimed<u32> = Claimed::default();
        assert_eq!(claimed.size(), 1);
        claimed.refill(0, 1, 1, vec![], 100);
        assert_eq!(claimed.size(), 2, "a full claim doubles the next");
        claimed.refill(0, 2, 2, vec![7], 100);
        assert_eq!(claimed.size(), 4);
        for _ in 0..10 {
            claimed.refill(0, MAX_CLAIM, MAX_CLAIM, vec![], 100);
        }
        assert_eq!(claimed.size(), MAX_CLAIM, "never more than MAX_CLAIM");
        claimed.refill(0, MAX_CLAIM, 0, vec![], 100);
        assert_eq!(claimed.size(), 1, "an empty claim falls back to one");
        claimed.refill(0, 1, 1, vec![8], 200);
        // Lease 100: at 60, claim 7 (until 100) has 40 left, less than half: passed over.
        assert_eq!(claimed.take(60, 100), (Some((8, 200)), vec![7]));
        assert!(claimed.is_empty());
        assert_eq!(claimed.take(60, 100), (None, vec![]));
    }

    #[test]
    fn expired_leases_are_looked_for_once_per_interval_and_handed_out_first() {
        let claimed: Claimed<u32> = Claimed::default();
        claimed.refill(1_000, 4, 4, vec![1, 2, 3], 5_000);
        assert!(
            !claimed.look_for_expired(1_500, 1_000),
            "a claim counts as a look"
        );
        assert!(claimed.look_for_expired(2_000, 1_000));
        assert!(!claimed.look_for_expired(2_500, 1_000));
        claimed.push_front(vec![8, 9], 6_000);
        let order: Vec<u32> = (0..5)
            .filter_map(|_| claimed.take(2_500, 1_000).0.map(|(item, _)| item))
            .collect();
        assert_eq!(order, [8, 9, 1, 2, 3]);
        assert!(claimed.look_for_expired(3_000, 1_000));
    }
}
