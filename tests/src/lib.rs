//! Shared set-up of the end-to-end tests: every behaviour runs on every store, with the
//! instance cache on and off.
//!
//! The PostgreSQL runs need `DURABLE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); without it they pass at once, and
//! `durable-postgres`'s test `postgres_tests_skipped_unless_DURABLE_TEST_POSTGRES_URL_is_set`
//! says so. Each run gets a schema of its own, dropped with its store.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use durable_runtime::store::{FileStore, MemoryStore, Store};
use durable_runtime::testing::{Advance, VirtualClock};
use durable_runtime::{Client, ClientError, InstanceStatus, Runtime, RuntimeBuilder};

/// Real time allowed for anything a test waits for; virtual time is what tests assert on.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Whether the instance cache is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Live instances stay in memory between turns.
    On,
    /// Every turn replays the history.
    Off,
}

/// One configuration of the test matrix.
#[derive(Clone)]
pub struct Setup {
    /// The cache mode.
    pub cache: Cache,
    /// The store every runtime of the test shares.
    pub store: Arc<dyn Store>,
    /// The virtual clock every runtime of the test shares.
    pub clock: VirtualClock,
    /// The file store's directory, deleted when the last clone of the setup goes.
    pub dir: Option<Arc<tempfile::TempDir>>,
    /// The PostgreSQL URL and schema of the store, so that more processes can join it.
    pub postgres: Option<(String, String)>,
}

impl Setup {
    /// A fresh in-memory store and virtual clock.
    pub fn memory(cache: Cache) -> Self {
        Setup {
            cache,
            store: Arc::new(MemoryStore::new()),
            clock: VirtualClock::new(),
            dir: None,
            postgres: None,
        }
    }

    /// A file store (fsync on) in a fresh temporary directory, and a virtual clock.
    pub async fn file(cache: Cache) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = FileStore::open(dir.path())
            .await
            .expect("a new directory opens");
        Setup {
            cache,
            store: Arc::new(store),
            clock: VirtualClock::new(),
            dir: Some(Arc::new(dir)),
            postgres: None,
        }
    }

    /// A PostgreSQL store on a schema of its own (dropped with the store) and a virtual
    /// clock; `None` when `DURABLE_TEST_POSTGRES_URL` is not set.
    pub async fn postgres(cache: Cache) -> Option<Self> {
        let url = durable_postgres::testing::url()?;
        let schema = durable_postgres::testing::TestSchema::new(&url).await;
        let name = schema.name().to_string();
        let store = schema
            .into_store()
            .await
            .unwrap_or_else(|e| panic!("cannot open a store on the test database: {e}"));
        Some(Setup {
            cache,
            store: Arc::new(store),
            clock: VirtualClock::new(),
            dir: None,
            postgres: Some((url, name)),
        })
    }

    /// The store as another process would open it: a store of its own on the same
    /// PostgreSQL schema (its own connections, notifications and watchers); the same store
    /// for the others, which one process owns.
    pub async fn another_process(&self) -> Arc<dyn Store> {
        match &self.postgres {
            Some((url, schema)) => {
                let options = durable_postgres::PostgresOptions::default()
                    .schema(schema)
                    .pool_size(4);
                let store = durable_postgres::PostgresStore::connect_with(url, options)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open a second store on {schema}: {e}"));
                Arc::new(store)
            }
            None => Arc::clone(&self.store),
        }
    }

    /// A runtime builder on this setup's store and cache mode, on the virtual clock moved
    /// by the runtime whenever nothing can run.
    pub fn builder(&self) -> RuntimeBuilder {
        self.builder_with(Advance::Auto)
    }

    /// The same, choosing how the clock moves.
    pub fn builder_with(&self, advance: Advance) -> RuntimeBuilder {
        Runtime::builder()
            .shared_store(Arc::clone(&self.store))
            .virtual_clock(self.clock.clone(), advance)
            .cache_capacity(match self.cache {
                Cache::On => 1_000,
                Cache::Off => 0,
            })
    }

    /// Whether the cache is on.
    pub fn cached(&self) -> bool {
        self.cache == Cache::On
    }
}

/// Waits for the instance to finish and returns its status.
pub async fn finished(client: &Client, id: &str) -> InstanceStatus {
    client
        .wait_for_completion(id, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("instance {id} did not finish: {e}"))
}

/// Waits until `condition` holds, checking every millisecond, for side effects that no status
/// change announces (an activity starting).
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the condition never held"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until the instance exists and its custom status equals `expected`.
pub async fn custom_status_is(client: &Client, id: &str, expected: &str) -> InstanceStatus {
    let expected = serde_json::json!(expected);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // A sub-orchestration may not exist yet: give its parent time to create it.
        match client
            .wait_until(id, PATIENCE, |s| {
                s.custom_status.as_ref() == Some(&expected)
            })
            .await
        {
            Ok(status) => return status,
            Err(ClientError::NotFound(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err(e) => panic!("instance {id} never reported {expected}: {e}"),
        }
    }
}

/// Runs a test body once per configuration: `matrix!(name, |setup| async move { .. })`.
#[macro_export]
macro_rules! matrix {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn memory_store_cache_on() {
                let body = $body;
                body($crate::Setup::memory($crate::Cache::On)).await;
            }

            #[tokio::test]
            async fn memory_store_cache_off() {
                let body = $body;
                body($crate::Setup::memory($crate::Cache::Off)).await;
            }

            #[tokio::test]
            async fn file_store_cache_on() {
                let body = $body;
                body($crate::Setup::file($crate::Cache::On).await).await;
            }

            #[tokio::test]
            async fn file_store_cache_off() {
                let body = $body;
                body($crate::Setup::file($crate::Cache::Off).await).await;
            }

            #[tokio::test]
            async fn postgres_store_cache_on() {
                let Some(setup) = $crate::Setup::postgres($crate::Cache::On).await else {
                    return;
                };
                let body = $body;
                body(setup).await;
            }

            #[tokio::test]
            async fn postgres_store_cache_off() {
                let Some(setup) = $crate::Setup::postgres($crate::Cache::Off).await else {
                    return;
                };
                let body = $body;
                body(setup).await;
            }
        }
    };
}

pub mod fleet;
pub mod roles;

/// Counts executions per key (an instance id and a label), safely across parallel tests.
pub mod tally {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    fn counts() -> &'static Mutex<HashMap<String, u32>> {
        static COUNTS: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
        COUNTS.get_or_init(Default::default)
    }

    /// Adds one to `key` and returns the new count.
    pub fn bump(key: impl Into<String>) -> u32 {
        let mut counts = counts().lock().unwrap();
        let count = counts.entry(key.into()).or_default();
        *count += 1;
        *count
    }

    /// The count of `key`.
    pub fn get(key: &str) -> u32 {
        counts().lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// What a `tracing` subscriber wrote, kept for a test to read.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Makes a plain-text subscriber writing here the current thread's default until the
    /// guard drops. The end-to-end tests run on tokio's current-thread runtime, so it sees
    /// every event of the runtime's tasks.
    pub fn set_default(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
