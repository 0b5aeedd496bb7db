//! Live orchestration state: executions kept in memory between turns (least recently used
//! evicted first); a miss is rebuilt by replay.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::execution::Execution;
use crate::instance_id::InstanceId;

pub(crate) struct Cache {
    entries: Option<Mutex<LruCache<InstanceId, Execution, foldhash::fast::RandomState>>>,
}

impl Cache {
    /// A cache of `capacity` executions; 0 disables it (every turn replays).
    pub(crate) fn new(capacity: usize) -> Self {
        Cache {
            entries: NonZeroUsize::new(capacity)
                .map(|c| Mutex::new(LruCache::with_hasher(c, Default::default()))),
        }
    }

    /// Takes the execution of `id` out while its turn runs.
    pub(crate) fn take(&self, id: &InstanceId) -> Option<Execution> {
        let entries = self.entries.as_ref()?;
        entries.lock().unwrap_or_else(|p| p.into_inner()).pop(id)
    }

    /// Puts an execution back once its turn has run, before the turn's commit resolves (the
    /// next turn may want it the moment the commit releases the lease); the caller removes
    /// it again if the commit fails.
    pub(crate) fn put(&self, id: InstanceId, execution: Execution) {
        if let Some(entries) = &self.entries {
            let evicted = entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(id, execution);
            // Dropped outside the lock: dropping a future runs user destructors.
            drop(evicted);
        }
    }

    /// Forgets the execution of `id`, if cached.
    pub(crate) fn remove(&self, id: &InstanceId) {
        drop(self.take(id));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |e| e.lock().unwrap_or_else(|p| p.into_inner()).len())
    }
}
