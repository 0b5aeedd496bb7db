//! Tests on a real server: a schema of its own per test, dropped when done; the schemas of a
//! crashed run are swept by the next.
//!
//! Tests that need PostgreSQL run when [`URL_VAR`] (`DURABLE_TEST_POSTGRES_URL`) names a
//! database, e.g. `postgres://postgres@127.0.0.1:5432/test`; without it they return at once,
//! and one test of this crate, `postgres_tests_skipped_unless_DURABLE_TEST_POSTGRES_URL_is_set`,
//! says so in `cargo test`'s output.
//!
//! ```no_run
//! use durable_postgres::testing::{self, TestSchema};
//!
//! # async fn demo() {
//! let Some(url) = testing::url() else { return };
//! let store = TestSchema::new(&url)
//!     .await
//!     .into_store()
//!     .await
//!     .expect("the test database is reachable");
//! // ... run a runtime on `store` ...
//! # }
//! ```
//!
//! A schema is named `durable_test_<pid>_<start>_<created>_<n>`: the process's id and start
//! time (so a reused pid is not mistaken for the same process), when it was made (Unix
//! seconds), and a counter. When the first schema of a process is made, the schemas of
//! processes no longer running on this host, and any older than a day, are dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::ConnectError;
use crate::options::PostgresOptions;
use crate::store::PostgresStore;

/// The environment variable naming the test database.
pub const URL_VAR: &str = "DURABLE_TEST_POSTGRES_URL";

/// The prefix of every test schema.
pub const SCHEMA_PREFIX: &str = "durable_test_";

/// How old a test schema may get before any run drops it, whoever made it.
const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The test database's URL, if [`URL_VAR`] is set and not empty.
pub fn url() -> Option<String> {
    std::env::var(URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A schema for one test, dropped (with everything in it) when this value is.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// A new schema name on the database at `url` (the schema itself is created by the first
    /// store that connects to it). The first call of a process sweeps the schemas left
    /// behind by earlier runs.
    pub async fn new(url: &str) -> TestSchema {
        static SWEPT: AtomicBool = AtomicBool::new(false);
        static COUNT: AtomicU64 = AtomicU64::new(0);
        if !SWEPT.swap(true, Ordering::AcqRel) {
            if let Err(error) = sweep(url).await {
                eprintln!("durable-postgres: cannot sweep old test schemas: {error}");
            }
        }
        let name = format!(
            "{SCHEMA_PREFIX}{}_{}_{}_{}",
            std::process::id(),
            start_ticks(std::process::id()).unwrap_or(0),
            unix_seconds(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        TestSchema {
            url: url.to_string(),
            name,
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Options for a store on this schema, with a small pool: tests run in parallel.
    pub fn options(&self) -> PostgresOptions {
        PostgresOptions::default().schema(&self.name).pool_size(4)
    }

    /// A store on this schema; several may share it, as processes of a fleet do.
    pub async fn store(&self) -> Result<PostgresStore, ConnectError> {
        PostgresStore::connect_with(&self.url, self.options()).await
    }

    /// A store on this schema that drops the schema when it is dropped itself.
    pub async fn into_store(self) -> Result<PostgresStore, ConnectError> {
        let store = self.store().await?;
        Ok(store.dropping(self))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Dropped from async code as often as not: a thread of its own with a runtime of its
        // own, so that no caller's runtime is needed (or blocked into a deadlock: a lock
        // timeout bounds the wait, and the sweep of the next run gets what is left).
        let url = self.url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(drop_schemas(&url, &[name]))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!(
                "durable-postgres: cannot drop test schema {}: {error}",
                self.name
            );
        }
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When process `pid` started, in clock ticks since boot (Linux), to tell a reused pid apart.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the schema `name` was made by a process gone from this host, or long ago.
fn is_stale(name: &str, now: u64) -> bool {
    let Some(rest) = name.strip_prefix(SCHEMA_PREFIX) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('_').collect();
    let [pid, start, created, _n] = parts[..] else {
        return false;
    };
    let (Ok(pid), Ok(start), Ok(created)) = (
        pid.parse::<u32>(),
        start.parse::<u64>(),
        created.parse::<u64>(),
    ) else {
        return false;
    };
    if now.saturating_sub(created) > MAX_AGE.as_secs() {
        return true;
    }
    // Where /proc cannot tell (another OS), only age counts.
    match start_ticks(std::process::id()) {
        Some(_) => start_ticks(pid) != Some(start),
        None => false,
    }
}

async fn sweep(url: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| crate::db::describe(&e))?;
    let driver = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
            &[&SCHEMA_PREFIX],
        )
        .await
        .map_err(|e| crate::db::describe(&e))?;
    drop(client);
    let _ = driver.await;
    let now = unix_seconds();
    let stale: Vec<String> = rows
        .iter()
        .filter_map(|row| row.try_get::<_, String>(0).ok())
        .filter(|name| is_stale(name, now))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    drop_schemas(url, &stale).await
}

async fn drop_schemas(url: &str, names: &[String]) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| crate::db::describe(&e))?;
    let driver = tokio::spawn(connection);
    let mut result = client
        .batch_execute("SET lock_timeout = '5s'")
        .await
        .map_err(|e| crate::db::describe(&e));
    for name in names {
        if result.is_err() {
            break;
        }
        debug_assert!(name.starts_with(SCHEMA_PREFIX));
        let quoted = name.replace('"', "\"\"");
        result = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{quoted}\" CASCADE"))
            .await
            .map_err(|e| format!("{name}: {}", crate::db::describe(&e)));
    }
    drop(client);
    let _ = driver.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_schemas_of_gone_processes_or_old_ones_are_stale() {
        let now = unix_seconds();
        let me = std::process::id();
        let my_start = start_ticks(me).unwrap_or(0);
        assert!(!is_stale(
            &format!("{SCHEMA_PREFIX}{me}_{my_start}_{now}_0"),
            now
        ));
        assert!(is_stale(
            &format!(
                "{SCHEMA_PREFIX}{me}_{my_start}_{}_0",
                now - 2 * MAX_AGE.as_secs()
            ),
            now
        ));
        if start_ticks(me).is_some() {
            // pid 0 is never a process of ours.
            assert!(is_stale(&format!("{SCHEMA_PREFIX}0_1_{now}_0"), now));
            assert!(is_stale(
                &format!("{SCHEMA_PREFIX}{me}_{}_{now}_0", my_start + 1),
                now
            ));
        }
        for other in ["durable", "durable_test_x", "public", "durable_test_1_2_3"] {
            assert!(!is_stale(other, now), "{other}");
        }
    }
}
