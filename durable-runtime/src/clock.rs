//! The time source: every clock read and every wait of the runtime goes through a [`Clock`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

/// The latest time the runtime accepts: 2262-04-11T23:47:16.854775807Z, `i64::MAX`
/// nanoseconds after the Unix epoch, the end of the PostgreSQL store's range (the file
/// store reaches 2554, a history's JSON 9999). The earliest is the Unix epoch itself.
pub const LATEST_TIME_NANOS: u64 = i64::MAX as u64;

/// A time (a timer's end, a scheduled start, an activity's deadline) outside what every
/// store can represent: from the Unix epoch (1970-01-01T00:00:00Z) to
/// 2262-04-11T23:47:16.854775807Z. Refused where the time is asked for, before anything
/// is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} would be at {at}, outside the times every store can hold (1970-01-01T00:00:00Z \
     to 2262-04-11T23:47:16.854775807Z): use a shorter duration or a time inside that range"
)]
pub struct TimeOutOfRange {
    /// What the time was for (`"the timer of ctx.sleep"`, `"start_at"`).
    pub what: String,
    /// The time asked for, written out (RFC 3339 when it has such a form).
    pub at: String,
}

/// Real elapsed time, whatever the runtime's clock (a virtual one stands still): how long a
/// poll has held its thread.
pub(crate) fn stopwatch() -> std::time::Instant {
    std::time::Instant::now()
}

/// The latest time the runtime accepts; see [`LATEST_TIME_NANOS`].
pub(crate) fn latest_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(LATEST_TIME_NANOS)
}

/// `at`, if every store can hold it.
pub(crate) fn in_range(
    at: SystemTime,
    what: impl FnOnce() -> String,
) -> Result<SystemTime, TimeOutOfRange> {
    if at >= SystemTime::UNIX_EPOCH && at <= latest_time() {
        Ok(at)
    } else {
        Err(TimeOutOfRange {
            what: what(),
            at: describe(at),
        })
    }
}

/// `base + after`, if every store can hold it (and it does not overflow `SystemTime`).
pub(crate) fn after(
    base: SystemTime,
    after: Duration,
    what: impl FnOnce() -> String,
) -> Result<SystemTime, TimeOutOfRange> {
    match base.checked_add(after) {
        Some(at) => in_range(at, what),
        None => Err(TimeOutOfRange {
            what: what(),
            at: format!("{} + {after:?}", describe(base)),
        }),
    }
}

/// `base + after`, or the latest time the runtime accepts if that is later (a lease of a
/// century given as a builder option, say): never a panic on overflow.
pub(crate) fn saturating_after(base: SystemTime, after: Duration) -> SystemTime {
    base.checked_add(after)
        .map_or_else(latest_time, |at| at.min(latest_time().max(base)))
}

/// A time written out: RFC 3339 where humantime can write it (1970 to 9999), otherwise
/// as seconds from the epoch.
pub(crate) fn describe(at: SystemTime) -> String {
    const YEAR_10000: u64 = 253_402_300_800;
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) if since.as_secs() < YEAR_10000 => {
            humantime_serde::re::humantime::format_rfc3339_nanos(at).to_string()
        }
        Ok(since) => format!("{}s after 1970-01-01T00:00:00Z", since.as_secs()),
        Err(before) => format!("{:?} before 1970-01-01T00:00:00Z", before.duration()),
    }
}

/// A source of time. The runtime reads no other clock, so tests can run it on a
/// [`VirtualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Resolves once [`now`](Clock::now) has reached `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()>;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to, for tests: a workflow with a 4 s back-off runs
/// in microseconds.
///
/// It starts at a fixed instant (2026-01-01T00:00:00Z) so histories are reproducible.
/// [`advance`](VirtualClock::advance) moves it by hand; the test runtime
/// ([`crate::testing`]) can also move it by itself whenever nothing else can run.
#[derive(Clone)]
pub struct VirtualClock {
    inner: Arc<Mutex<VirtualState>>,
}

struct VirtualState {
    now: SystemTime,
    next_sleeper: u64,
    sleepers: BTreeMap<(SystemTime, u64), oneshot::Sender<()>>,
}

impl VirtualClock {
    /// 2026-01-01T00:00:00Z, where every virtual clock starts.
    pub const EPOCH_SECS: u64 = 1_767_225_600;

    /// A clock at [`EPOCH_SECS`](Self::EPOCH_SECS).
    pub fn new() -> Self {
        Self::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(Self::EPOCH_SECS))
    }

    /// A clock at `now`.
    pub fn starting_at(now: SystemTime) -> Self {
        VirtualClock {
            inner: Arc::new(Mutex::new(VirtualState {
                now,
                next_sleeper: 0,
                sleepers: BTreeMap::new(),
            })),
        }
    }

    /// The clock's current time.
    pub fn now(&self) -> SystemTime {
        self.inner.lock().unwrap().now
    }

    /// Moves the clock forward by `by`, waking every sleeper that is then due. It stops at
    /// the latest time the runtime accepts ([`LATEST_TIME_NANOS`](crate::LATEST_TIME_NANOS),
    /// in 2262): `advance(Duration::MAX)` wakes every sleeper rather than overflow.
    pub fn advance(&self, by: Duration) {
        let target = saturating_after(self.now(), by);
        self.advance_to(target);
    }

    /// Moves the clock to `target` (never backwards), waking every sleeper then due.
    pub fn advance_to(&self, target: SystemTime) {
        let due = {
            let mut state = self.inner.lock().unwrap();
            if target > state.now {
                state.now = target;
            }
            let first_later = (state.now, u64::MAX);
            let later = state.sleepers.split_off(&first_later);
            std::mem::replace(&mut state.sleepers, later)
        };
        for (_, wake) in due {
            let _ = wake.send(());
        }
    }

    /// The earliest deadline anyone is sleeping until, if any: the runtime's own deadlines
    /// (lease expiries) included. For the next time a workflow will observe (a timer, a
    /// back-off, a timeout), read `Client::next_timer`.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let state = self.inner.lock().unwrap();
        state.sleepers.keys().next().map(|(deadline, _)| *deadline)
    }

    /// The virtual time elapsed since `since`.
    pub fn elapsed_since(&self, since: SystemTime) -> Duration {
        self.now().duration_since(since).unwrap_or(Duration::ZERO)
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualClock")
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        VirtualClock::now(self)
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let mut state = self.inner.lock().unwrap();
        if deadline <= state.now {
            return Box::pin(async {});
        }
        let (wake, woken) = oneshot::channel();
        let key = (deadline, state.next_sleeper);
        state.next_sleeper += 1;
        state.sleepers.insert(key, wake);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let _forget_on_drop = ForgetSleeper { inner, key };
            let _ = woken.await;
        })
    }
}

struct ForgetSleeper {
    inner: Arc<Mutex<VirtualState>>,
    key: (SystemTime, u64),
}

impl Drop for ForgetSleeper {
    fn drop(&mut self) {
        if let Ok(mut state) = self.inner.lock() {
            state.sleepers.remove(&self.key);
        }
    }
}

/// A stopwatch for latency metrics: it reads the monotonic clock only when metrics are
/// compiled in, and its readings never steer the runtime.
pub(crate) struct Stopwatch(Option<std::time::Instant>);

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Stopwatch(cfg!(feature = "metrics").then(std::time::Instant::now))
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.0.map(|start| start.elapsed()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_the_epoch_to_2262() {
        let epoch = SystemTime::UNIX_EPOCH;
        assert_eq!(in_range(epoch, String::new), Ok(epoch));
        assert_eq!(in_range(latest_time(), String::new), Ok(latest_time()));
        assert_eq!(
            humantime_serde::re::humantime::format_rfc3339_nanos(latest_time()).to_string(),
            "2262-04-11T23:47:16.854775807Z"
        );
        let late = in_range(latest_time() + Duration::from_nanos(1), || "x".into());
        assert_eq!(late.unwrap_err().at, "2262-04-11T23:47:16.854775808Z");
        let early = in_range(epoch - Duration::from_secs(1), || "x".into()).unwrap_err();
        assert_eq!(early.at, "1s before 1970-01-01T00:00:00Z");
        let far = after(epoch, Duration::from_secs(300_000_000_000), || "x".into());
        assert_eq!(
            far.unwrap_err().at,
            "300000000000s after 1970-01-01T00:00:00Z"
        );
        assert_eq!(saturating_after(epoch, Duration::MAX), latest_time());
        assert_eq!(
            saturating_after(latest_time(), Duration::from_secs(1)),
            latest_time()
        );
        let soon = epoch + Duration::from_secs(5);
        assert_eq!(saturating_after(epoch, Duration::from_secs(5)), soon);
        let overflow = after(epoch, Duration::MAX, || "the timer".into()).unwrap_err();
        assert!(
            overflow
                .to_string()
                .starts_with("the timer would be at 1970-01-01T00:00:00.000000000Z + "),
            "{overflow}"
        );
    }

    #[tokio::test]
    async fn virtual_sleepers_wake_in_deadline_order_only_when_advanced() {
        let clock = VirtualClock::new();
        let start = clock.now();
        let late = tokio::spawn(clock.sleep_until(start + Duration::from_secs(4)));
        let early = tokio::spawn(clock.sleep_until(start + Duration::from_secs(1)));
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1));
        early.await.unwrap();
        assert!(!late.is_finished());
        clock.advance(Duration::from_secs(3));
        late.await.unwrap();
        assert_eq!(clock.elapsed_since(start), Duration::from_secs(4));
        // No overflow: it stops at the latest time, every sleeper woken.
        let last = tokio::spawn(clock.sleep_until(latest_time()));
        tokio::task::yield_now().await;
        clock.advance(Duration::MAX);
        last.await.unwrap();
        assert_eq!(clock.now(), latest_time());
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), latest_time());
    }
}
