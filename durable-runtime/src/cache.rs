//! Live orchestration state: executions kept in memory between turns (least recently used
//! evicted first); a miss is rebuilt by replay.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

use crate::execution::Execution;
use crate::instance_id::InstanceId;
use crate::metric;

/// Executions by instance. While its turn runs, an instance's entry stays in place, empty:
/// taking an execution out and putting it back neither allocates nor rehashes.
pub(crate) struct Cache {
    entries: Option<Mutex<Entries>>,
}

type Entries = LruCache<InstanceId, Option<Execution>, foldhash::fast::RandomState>;

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
    pub(crate) fn take(&self, id: &InstanceId) -> Option<Execution> {
        Self::lock(self.entries.as_ref()?).get_mut(id)?.take()
    }

    /// Puts an execution back once its turn has run, before the turn's commit resolves (the
    /// next turn may want it the moment the commit releases the lease); the caller removes
    /// it again if the commit fails.
    pub(crate) fn put(&self, id: &InstanceId, execution: Execution) {
        let Some(entries) = &self.entries else {
            return;
        };
        let replaced = {
            let mut entries = Self::lock(entries);
            match entries.get_mut(id) {
                Some(slot) => slot.replace(execution),
                None => entries
                    .push(id.clone(), Some(execution))
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
