//! Live orchestration state: executions kept in memory between turns (least recently used
//! evicted first); a miss is rebuilt by replay.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;
use tokio::sync::watch;

use crate::execution::Execution;
use crate::instance_id::InstanceId;
use crate::metric;

/// Executions by instance. While its turn runs, an instance's entry stays in place, empty:
/// taking an execution out and putting it back neither allocates nor rehashes.
pub(crate) struct Cache {
    entries: Option<Mutex<Entries>>,
}

type Entries = LruCache<InstanceId, Option<Cached>, foldhash::fast::RandomState>;

/// An execution as its last turn left it, and whether that turn's commit went through.
pub(crate) struct Cached {
    /// Boxed: an execution moves in and out of the cache at every turn.
    pub(crate) execution: Box<Execution>,
    pub(crate) commit: Settled,
}

/// Whether the commit of the turn an execution ran went through: unknown until the store
/// answers. An execution is put back before its commit resolves, and another lease of the
/// instance (its lease lost meanwhile, and another process's turn of the same length
/// committed instead) must not take it on trust: it waits for the answer, and replays if the
/// commit failed.
#[derive(Clone)]
pub(crate) struct Settled(watch::Receiver<Option<bool>>);

/// The turn's side of [`Settled`]: says how its commit ended; a turn dropped before it knew
/// (cancelled at shutdown) counts as not committed.
pub(crate) struct Settle(watch::Sender<Option<bool>>);

impl Settled {
    /// A commit not yet answered, and the handle that answers it.
    pub(crate) fn pending() -> (Settled, Settle) {
        let (sender, receiver) = watch::channel(None);
        (Settled(receiver), Settle(sender))
    }

    /// Whether the commit went through, if the store has answered yet.
    pub(crate) fn answer(&self) -> Option<bool> {
        *self.0.borrow()
    }

    /// Whether the commit went through, once the store has answered.
    pub(crate) async fn committed(mut self) -> bool {
        match self.0.wait_for(Option::is_some).await {
            Ok(answer) => *answer == Some(true),
            Err(_) => false,
        }
    }
}

impl Settle {
    /// The store answered: `committed` or not.
    pub(crate) fn resolve(self, committed: bool) {
        self.0.send_replace(Some(committed));
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        self.0.send_if_modified(|answer| {
            let unanswered = answer.is_none();
            if unanswered {
                *answer = Some(false);
            }
            unanswered
        });
    }
}

impl Cache {
    /// A cache of `capacity` executions; 0 disables it (every turn replays).
    pub(crate) fn new(capacity: usize) -> Self {
        Cache {
            entries: NonZeroUsize::new(capacity)
                .map(|c| Mutex::new(LruCache::with_hasher(c, Default::default()))),
        }
    }

    fn lock(entries: &Mutex<Entries>) -> MutexGuard<'_, Entries> {
        entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the execution of `id` out while its turn runs (its entry becomes the most
    /// recently used).
    pub(crate) fn take(&self, id: &InstanceId) -> Option<Cached> {
        Self::lock(self.entries.as_ref()?).get_mut(id)?.take()
    }

    /// Puts an execution back once its turn has run, before the turn's commit resolves (the
    /// next turn may want it the moment the commit releases the lease); the caller removes
    /// it again if the commit fails.
    pub(crate) fn put(&self, id: &InstanceId, execution: Box<Execution>, commit: Settled) {
        let Some(entries) = &self.entries else {
            return;
        };
        let cached = Cached { execution, commit };
        let replaced = {
            let mut entries = Self::lock(entries);
            match entries.get_mut(id) {
                Some(slot) => slot.replace(cached),
                None => entries
                    .push(id.clone(), Some(cached))
                    .and_then(|(_, evicted)| {
                        metric::cache_evicted();
                        evicted
                    }),
            }
        };
        // Dropped outside the lock: dropping a future runs user destructors.
        drop(replaced);
    }

    /// Forgets the execution of `id`, if cached.
    pub(crate) fn remove(&self, id: &InstanceId) {
        if let Some(entries) = &self.entries {
            let removed = Self::lock(entries).pop(id);
            drop(removed);
        }
    }

    /// Instances cached, counting those whose turn is running.
    pub(crate) fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| Self::lock(e).len())
    }
}
