//! Every metric the runtime records, through the `metrics` facade: names, units and help in
//! one place. Without the `metrics` feature each function is empty and compiles away; with
//! it and no recorder installed, a call costs an atomic load and its labels.
//!
//! The application installs a recorder (the Prometheus exporter that `durable-http` serves
//! at `/metrics`, for one); the runtime never installs one itself.
//!
//! # Install the recorder first
//! The facade drops whatever is recorded while no recorder is installed, and the runtime
//! describes its metrics (their help text) once per process, when its first runtime starts:
//! install the recorder before opening the store and starting the runtime, or the counts
//! start late and the help text is missing.
//!
#![cfg_attr(feature = "metrics", doc = "```")]
#![cfg_attr(not(feature = "metrics"), doc = "```ignore")]
//! use std::time::Duration;
//!
//! use durable_runtime::metric::{self, names};
//! use durable_runtime::store::MemoryStore;
//! use durable_runtime::{orchestrator, OrchestrationContext, Runtime};
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//!
//! #[orchestrator]
//! async fn checkout(ctx: OrchestrationContext) -> Result<(), String> {
//!     let _ = ctx;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // First the recorder, with histograms (not summaries) on the runtime's buckets...
//! let prometheus = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), metric::LATENCY_BUCKETS)?
//!     .set_buckets_for_metric(
//!         Matcher::Full(names::FILE_BATCH_WRITES.into()),
//!         metric::BATCH_BUCKETS,
//!     )?
//!     .install_recorder()?;
//! // ... then the store and the runtime.
//! let runtime = Runtime::builder()
//!     .store(MemoryStore::new())
//!     .orchestrator(checkout)
//!     .start()?;
//! let client = runtime.client();
//! let id = client.start(checkout, ()).await?;
//! client.wait_for_completion(&id, Duration::from_secs(10)).await?;
//! runtime.shutdown().await;
//!
//! // What `durable-http` serves at `/metrics` with
//! // `RouterOptions::default().metrics(move || prometheus.render())`.
//! let text = prometheus.render();
//! assert!(text.contains(r#"durable_instances_completed_total{orchestrator="checkout"} 1"#));
//! assert!(text.contains("# HELP durable_instances_completed_total"));
//! # Ok(())
//! # }
//! ```

/// Bucket bounds (seconds) that suit the runtime's latency histograms (every `*_seconds`
/// metric), from 100 µs to a minute.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Bucket bounds that suit [`names::FILE_BATCH_WRITES`].
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// The names, for documentation and tests.
pub mod names {
    /// Instances whose first turn ran, by `orchestrator`.
    pub const INSTANCES_STARTED: &str = "durable_instances_started_total";
    /// Instances that completed, by `orchestrator`.
    pub const INSTANCES_COMPLETED: &str = "durable_instances_completed_total";
    /// Instances that failed, by `orchestrator`.
    pub const INSTANCES_FAILED: &str = "durable_instances_failed_total";
    /// Instances that a client terminated, by `orchestrator`.
    pub const INSTANCES_TERMINATED: &str = "durable_instances_terminated_total";
    /// Instances that continued as new, by `orchestrator`.
    pub const INSTANCES_CONTINUED_AS_NEW: &str = "durable_instances_continued_as_new_total";
    /// How long a turn took, from its lease to its commit (seconds).
    pub const TURN_SECONDS: &str = "durable_turn_seconds";
    /// How long rebuilding an instance from its history took (seconds).
    pub const REPLAY_SECONDS: &str = "durable_replay_seconds";
    /// How long an activity attempt ran, by `activity` and `outcome` (`completed`, `failed`,
    /// `panicked`, `timed_out`, `not_registered`), in seconds. Its count
    /// (`durable_activity_seconds_count` in Prometheus) is the attempts by name and outcome.
    pub const ACTIVITY_SECONDS: &str = "durable_activity_seconds";
    /// Turns served by a cached execution.
    pub const CACHE_HITS: &str = "durable_cache_hits_total";
    /// Turns that had to replay the history.
    pub const CACHE_MISSES: &str = "durable_cache_misses_total";
    /// Executions evicted to make room for others.
    pub const CACHE_EVICTIONS: &str = "durable_cache_evictions_total";
    /// How long the store took to commit a turn (seconds).
    pub const STORE_COMMIT_SECONDS: &str = "durable_store_commit_seconds";
    /// How long the file store's `fdatasync` of a batch took (seconds).
    pub const FILE_FDATASYNC_SECONDS: &str = "durable_file_store_fdatasync_seconds";
    /// How many writes the file store's group commit made durable with one sync.
    pub const FILE_BATCH_WRITES: &str = "durable_file_store_batch_writes";
    /// Instances with messages ready for a turn (memory and file stores).
    pub const QUEUE_READY_TURNS: &str = "durable_queue_ready_turns";
    /// Activity attempts ready to run (memory and file stores).
    pub const QUEUE_READY_ACTIVITIES: &str = "durable_queue_ready_activities";
    /// Timers (and other delayed messages) waiting for their time (memory and file stores).
    pub const QUEUE_TIMERS: &str = "durable_queue_timers";
    /// Leases that expired while held, so that another worker takes the work over, by
    /// `kind` (`orchestration`, `activity`; memory and file stores).
    pub const LEASE_TAKEOVERS: &str = "durable_lease_takeovers_total";
    /// Writes the store refused because another worker had moved the instance on (a stale
    /// lease or history length), by `kind` (`turn`, `activity`).
    pub const STALE_COMMITS_REFUSED: &str = "durable_stale_commits_refused_total";
}

#[cfg(feature = "metrics")]
mod on {
    use std::sync::Once;
    use std::time::Duration;

    use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
    use metrics::{histogram, Unit};

    use super::names::*;

    pub(crate) fn describe() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            describe_counter!(INSTANCES_STARTED, "Instances whose first turn ran");
            describe_counter!(INSTANCES_COMPLETED, "Instances that completed");
            describe_counter!(INSTANCES_FAILED, "Instances that failed");
            describe_counter!(INSTANCES_TERMINATED, "Instances terminated by a client");
            describe_counter!(
                INSTANCES_CONTINUED_AS_NEW,
                "Instances that continued as new"
            );
            describe_histogram!(TURN_SECONDS, Unit::Seconds, "Turns, lease to commit");
            describe_histogram!(REPLAY_SECONDS, Unit::Seconds, "Replays of a history");
            describe_histogram!(
                ACTIVITY_SECONDS,
                Unit::Seconds,
                "Activity attempts, by outcome"
            );
            describe_counter!(CACHE_HITS, "Turns served by a cached execution");
            describe_counter!(CACHE_MISSES, "Turns that replayed the history");
            describe_counter!(CACHE_EVICTIONS, "Executions evicted from the cache");
            describe_histogram!(
                STORE_COMMIT_SECONDS,
                Unit::Seconds,
                "Store commits of turns"
            );
            describe_histogram!(FILE_FDATASYNC_SECONDS, Unit::Seconds, "File store syncs");
            describe_histogram!(FILE_BATCH_WRITES, "Writes made durable by one sync");
            describe_gauge!(QUEUE_READY_TURNS, "Instances ready for a turn");
            describe_gauge!(QUEUE_READY_ACTIVITIES, "Activity attempts ready to run");
            describe_gauge!(QUEUE_TIMERS, "Timers waiting for their time");
            describe_counter!(LEASE_TAKEOVERS, "Leases that expired while held");
            describe_counter!(STALE_COMMITS_REFUSED, "Stale writes refused by the store");
        });
    }

    pub(crate) fn instance_started(orchestrator: &str) {
        counter!(INSTANCES_STARTED, "orchestrator" => orchestrator.to_string()).increment(1);
    }

    pub(crate) fn instance_ended(orchestrator: &str, name: &'static str) {
        counter!(name, "orchestrator" => orchestrator.to_string()).increment(1);
    }

    pub(crate) fn turn(took: Duration) {
        histogram!(TURN_SECONDS).record(took);
    }

    pub(crate) fn replay(took: Duration) {
        histogram!(REPLAY_SECONDS).record(took);
    }

    pub(crate) fn activity(name: &str, outcome: &'static str, took: Duration) {
        histogram!(ACTIVITY_SECONDS, "activity" => name.to_string(), "outcome" => outcome)
            .record(took);
    }

    pub(crate) fn cache(hit: bool) {
        counter!(if hit { CACHE_HITS } else { CACHE_MISSES }).increment(1);
    }

    pub(crate) fn cache_evicted() {
        counter!(CACHE_EVICTIONS).increment(1);
    }

    pub(crate) fn store_commit(took: Duration) {
        histogram!(STORE_COMMIT_SECONDS).record(took);
    }

    pub(crate) fn file_sync(took: Duration, writes: usize) {
        histogram!(FILE_FDATASYNC_SECONDS).record(took);
        histogram!(FILE_BATCH_WRITES).record(writes as f64);
    }

    pub(crate) fn queues(ready_turns: usize, ready_activities: usize, timers: usize) {
        gauge!(QUEUE_READY_TURNS).set(ready_turns as f64);
        gauge!(QUEUE_READY_ACTIVITIES).set(ready_activities as f64);
        gauge!(QUEUE_TIMERS).set(timers as f64);
    }

    pub(crate) fn lease_takeover(kind: &'static str) {
        counter!(LEASE_TAKEOVERS, "kind" => kind).increment(1);
    }

    pub(crate) fn stale_commit_refused(kind: &'static str) {
        counter!(STALE_COMMITS_REFUSED, "kind" => kind).increment(1);
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    use std::time::Duration;

    pub(crate) fn describe() {}
    pub(crate) fn instance_started(_: &str) {}
    pub(crate) fn instance_ended(_: &str, _: &'static str) {}
    pub(crate) fn turn(_: Duration) {}
    pub(crate) fn replay(_: Duration) {}
    pub(crate) fn activity(_: &str, _: &'static str, _: Duration) {}
    pub(crate) fn cache(_: bool) {}
    pub(crate) fn cache_evicted() {}
    pub(crate) fn store_commit(_: Duration) {}
    pub(crate) fn file_sync(_: Duration, _: usize) {}
    pub(crate) fn queues(_: usize, _: usize, _: usize) {}
    pub(crate) fn lease_takeover(_: &'static str) {}
    pub(crate) fn stale_commit_refused(_: &'static str) {}
}

pub(crate) use on::*;
