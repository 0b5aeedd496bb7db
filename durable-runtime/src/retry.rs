//! Retry policies and the back-off formula.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::history::Failure;

type RetryPredicate = Arc<dyn Fn(&Failure) -> bool + Send + Sync>;

/// When and how often a failed call is tried again.
///
/// Retries are durable: each back-off is a timer in the orchestration's history, so the
/// schedule survives a crash. Each scheduled retry is announced once, after the turn that
/// records it is committed (never on replay), as a `tracing` event with target
/// `durable::retry` and fields `instance_id`, `activity`, `attempt`, `delay_ms` and `error`:
/// an application can print "retrying in 2s" from it. The delay after the `k`-th failure (`k` from 0) is
/// `first_interval × backoff_coefficient^k`, capped at `max_interval`.
///
/// ```
/// use std::time::Duration;
/// use durable_runtime::RetryPolicy;
///
/// let policy = RetryPolicy::new(5, Duration::from_secs(1))
///     .backoff_coefficient(2.0)
///     .max_interval(Duration::from_secs(10));
/// assert_eq!(policy.delay_after(1), Some(Duration::from_secs(1)));
/// assert_eq!(policy.delay_after(3), Some(Duration::from_secs(4)));
/// assert_eq!(policy.delay_after(5), None); // the fifth attempt was the last
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    first_interval: Duration,
    backoff_coefficient: f64,
    max_interval: Option<Duration>,
    timeout: Option<Duration>,
    retry_if: Option<RetryPredicate>,
}

impl RetryPolicy {
    /// At most `max_attempts` attempts in all (the first counts), waiting `first_interval`
    /// after the first failure. The coefficient defaults to 1 (a constant interval).
    pub fn new(max_attempts: u32, first_interval: Duration) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            first_interval,
            backoff_coefficient: 1.0,
            max_interval: None,
            timeout: None,
            retry_if: None,
        }
    }

    /// Multiplies the interval by `coefficient` after each failure (values below 1 count as 1).
    pub fn backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = if coefficient.is_finite() && coefficient >= 1.0 {
            coefficient
        } else {
            1.0
        };
        self
    }

    /// Caps each delay at `max`.
    pub fn max_interval(mut self, max: Duration) -> Self {
        self.max_interval = Some(max);
        self
    }

    /// Stops retrying once a retry would start later than `timeout` after the first attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries only the failures for which `predicate` returns `true`; the others fail the
    /// call at once.
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&Failure) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// The number of attempts allowed in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before attempt `failed_attempt + 1`, or `None` when `failed_attempt` was the last.
    pub fn delay_after(&self, failed_attempt: u32) -> Option<Duration> {
        if failed_attempt == 0 || failed_attempt >= self.max_attempts {
            return None;
        }
        let factor = self.backoff_coefficient.powi(failed_attempt as i32 - 1);
        let secs = self.first_interval.as_secs_f64() * factor;
        let delay = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
        Some(match self.max_interval {
            Some(max) => delay.min(max),
            None => delay,
        })
    }

    /// Whether `failure` may be retried at all.
    pub fn is_retryable(&self, failure: &Failure) -> bool {
        self.retry_if.as_ref().is_none_or(|retry| retry(failure))
    }

    /// The retry timeout, if any.
    pub fn retry_timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("first_interval", &self.first_interval)
            .field("backoff_coefficient", &self.backoff_coefficient)
            .field("max_interval", &self.max_interval)
            .field("timeout", &self.timeout)
            .field("retry_if", &self.retry_if.as_ref().map(|_| ".."))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poc_policy_waits_1_2_4_8_seconds() {
        let policy = RetryPolicy::new(5, Duration::from_secs(1))
            .backoff_coefficient(2.0)
            .max_interval(Duration::from_secs(10));
        let delays: Vec<_> = (1..=5).map(|k| policy.delay_after(k)).collect();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(delays, vec![secs(1), secs(2), secs(4), secs(8), None]);
    }

    #[test]
    fn delays_are_capped_at_the_max_interval() {
        let policy = RetryPolicy::new(10, Duration::from_secs(3))
            .backoff_coefficient(3.0)
            .max_interval(Duration::from_secs(10));
        assert_eq!(policy.delay_after(2), Some(Duration::from_secs(9)));
        assert_eq!(policy.delay_after(3), Some(Duration::from_secs(10)));
    }

    #[test]
    fn predicate_decides_what_is_retried() {
        let policy =
            RetryPolicy::new(3, Duration::from_secs(1)).retry_if(|f| !f.message.contains("fatal"));
        assert!(policy.is_retryable(&Failure::new("E", "timeout")));
        assert!(!policy.is_retryable(&Failure::new("E", "fatal: bad card")));
    }
}
