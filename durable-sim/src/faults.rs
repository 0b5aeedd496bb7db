//! What faults a run injects into its store calls: their kinds ([`Fault`]), how often they
//! strike ([`FaultRates`]), and where a run's faults come from ([`FaultPlan`]). The store that
//! injects them wraps any other and stays within the store contract's documented duplicated
//! and reordered deliveries (`durable_runtime::store`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What happens to one store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Fails with `Unavailable` before reaching the store.
    FailBefore,
    /// Applied, then reported as failed with `Unavailable` (a lost commit answer).
    FailAfter,
    /// Takes this long (virtual milliseconds) before reaching the store.
    Delay(u32),
    /// Lets other tasks run this many times first.
    Yield(u32),
    /// Hands out only the first `n` messages (at least one) of the work it leases.
    Prefix(u32),
}

/// How often faults strike, per store call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultRates {
    /// An error before the call.
    pub fail_before: f64,
    /// A write applied but reported failed.
    pub fail_after: f64,
    /// A delay of up to `max_delay_ms`.
    pub delay: f64,
    /// The longest delay.
    pub max_delay_ms: u32,
    /// A few yields first.
    pub yields: f64,
    /// A work cut to a prefix of its messages.
    pub prefix: f64,
}

impl FaultRates {
    /// No faults at all.
    pub const NONE: FaultRates = FaultRates {
        fail_before: 0.0,
        fail_after: 0.0,
        delay: 0.0,
        max_delay_ms: 0,
        yields: 0.0,
        prefix: 0.0,
    };
}

/// Where a run's faults come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPlan {
    /// Drawn at these rates from the run's fault stream.
    Random(FaultRates),
    /// Exactly these, by store call number (a regression's schedule).
    Script(BTreeMap<u64, Fault>),
}
