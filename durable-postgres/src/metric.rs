//! The store's metrics, through the `metrics` facade, under the names the runtime uses for
//! its other stores ([`durable_runtime::metric::names`]): leases taken over, and the queues'
//! depths. Without the `metrics` feature each function is empty and compiles away (and the
//! depths are never read).

/// The most rows a depth query counts per queue: a deeper queue reads as this many.
pub(crate) const DEPTH_CAP: i64 = 100_000;

#[cfg(feature = "metrics")]
mod on {
    use durable_runtime::metric::names::{
        LEASE_TAKEOVERS, QUEUE_READY_ACTIVITIES, QUEUE_READY_TURNS, QUEUE_TIMERS,
    };
    use metrics::{counter, gauge};

    /// Whether the store reads the queues' depths at all.
    pub(crate) const DEPTHS: bool = true;

    /// A claim took `n` leases of `kind` (`orchestration`, `activity`) that had expired.
    pub(crate) fn lease_takeovers(kind: &'static str, n: u64) {
        if n > 0 {
            counter!(LEASE_TAKEOVERS, "kind" => kind).increment(n);
        }
    }

    pub(crate) fn queues(ready_turns: i64, ready_activities: i64, timers: i64) {
        gauge!(QUEUE_READY_TURNS).set(ready_turns as f64);
        gauge!(QUEUE_READY_ACTIVITIES).set(ready_activities as f64);
        gauge!(QUEUE_TIMERS).set(timers as f64);
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    pub(crate) const DEPTHS: bool = false;
    pub(crate) fn lease_takeovers(_: &'static str, _: u64) {}
    pub(crate) fn queues(_: i64, _: i64, _: i64) {}
}

pub(crate) use on::*;
