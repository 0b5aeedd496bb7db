//! What every part of one simulated run shares: the virtual clock, the random streams, the
//! trace, and what the checks collect on the way (activity attempts, accepted results,
//! violations). The activity reaches it through a thread-local: the run is on one thread.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use durable_runtime::testing::VirtualClock;

use crate::faults::FaultPlan;
use crate::rng::Rng;

/// An activity attempt: instance, generation, call number, attempt.
pub(crate) type AttemptKey = (String, u32, u32, u32);

/// The panic message of an attempt that fails on purpose.
pub(crate) const PLANNED_PANIC: &str = "durable-sim: a planned activity panic";

/// The shared state of one run.
pub(crate) struct World {
    pub(crate) clock: VirtualClock,
    state: Mutex<State>,
}

/// What the store counted in one life of the runtime, to hold its `Stats` against.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EpochCounts {
    pub(crate) commits_ok: u64,
    pub(crate) events_ok: u64,
    pub(crate) activity_runs: u64,
}

pub(crate) struct State {
    /// Faults: which call fails, how long it takes.
    pub(crate) faults: Rng,
    /// Everything else the run decides: activities, client, crashes, jumps.
    pub(crate) choices: Rng,
    /// Faults on lease renewals, a stream and a count of their own: renewals came after the
    /// recorded schedules of the regressions, which number the other calls.
    pub(crate) renewal_faults: Rng,
    pub(crate) renewals: u64,
    pub(crate) plan: FaultPlan,
    /// Store calls so far (numbers the fault schedule).
    pub(crate) calls: u64,
    /// The faults injected, by call number.
    pub(crate) injected: Vec<(u64, crate::faults::Fault)>,
    /// A hash of everything that happened, in order.
    pub(crate) trace: u64,
    pub(crate) trace_len: u64,
    /// Moves whenever anything happens: the driver waits until it stands still.
    pub(crate) progress: u64,
    /// When the back-offs the runtime may have begun after a store error end (it sleeps on
    /// the tokio clock, which moves with the virtual one).
    pub(crate) backoffs: BTreeSet<std::time::SystemTime>,
    /// Activity attempts run: attempt → how many times.
    pub(crate) runs: BTreeMap<(String, u32, u32), BTreeMap<u32, u32>>,
    /// Attempts whose result the store accepted.
    pub(crate) accepted: BTreeSet<AttemptKey>,
    /// Activity leases handed out: token → attempt.
    pub(crate) leases: BTreeMap<u64, AttemptKey>,
    /// Attempts whose worker cannot renew their lease (it outlives it on purpose).
    pub(crate) cut_off: BTreeSet<AttemptKey>,
    pub(crate) epoch: EpochCounts,
    /// How often an activity run outlives its lease.
    pub(crate) long_activities: f64,
    pub(crate) violations: Vec<String>,
    /// `DURABLE_SIM_TRACE` is set: print every traced step.
    print_trace: bool,
}

impl World {
    pub(crate) fn new(seed: u64, plan: FaultPlan) -> Arc<World> {
        let mut root = Rng::new(seed);
        Arc::new(World {
            clock: VirtualClock::new(),
            state: Mutex::new(State {
                faults: root.fork(),
                choices: root.fork(),
                renewal_faults: root.fork(),
                renewals: 0,
                plan,
                calls: 0,
                injected: Vec::new(),
                trace: 0xcbf2_9ce4_8422_2325,
                trace_len: 0,
                progress: 0,
                backoffs: BTreeSet::new(),
                runs: BTreeMap::new(),
                accepted: BTreeSet::new(),
                leases: BTreeMap::new(),
                cut_off: BTreeSet::new(),
                epoch: EpochCounts::default(),
                long_activities: 0.03,
                violations: Vec::new(),
                print_trace: std::env::var_os("DURABLE_SIM_TRACE").is_some(),
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `what` to the trace and marks progress.
    pub(crate) fn record(&self, what: &str) {
        self.lock().record(what);
    }

    pub(crate) fn violation(&self, what: String) {
        self.lock().violations.push(what);
    }

    pub(crate) fn progress(&self) -> u64 {
        self.lock().progress
    }
}

impl State {
    pub(crate) fn record(&mut self, what: &str) {
        if self.print_trace {
            eprintln!("[{}] {what}", self.trace_len);
        }
        // FNV-1a: the same bytes give the same hash on every platform.
        for byte in what.bytes().chain([0xff]) {
            self.trace ^= u64::from(byte);
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
        self.trace_len += 1;
        self.progress += 1;
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<World>>> = const { RefCell::new(None) };
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Makes `world` the current thread's world while the guard lives.
pub(crate) struct Enter(Option<Arc<World>>);

impl Enter {
    pub(crate) fn new(world: &Arc<World>) -> Enter {
        install_panic_hook();
        PANICS.with(|p| p.borrow_mut().clear());
        Enter(CURRENT.with(|c| c.replace(Some(Arc::clone(world)))))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.0.take());
    }
}

/// The current thread's world (inside a run).
pub(crate) fn current() -> Arc<World> {
    CURRENT.with(|c| {
        c.borrow()
            .clone()
            .expect("the simulated activity runs inside a run")
    })
}

/// Panics on this thread since the run began, other than the planned ones.
pub(crate) fn take_panics() -> Vec<String> {
    PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_run = CURRENT.with(|c| c.borrow().is_some());
            if !in_run {
                return default(info);
            }
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if message == PLANNED_PANIC {
                return;
            }
            let location = info.location().map(|l| l.to_string()).unwrap_or_default();
            PANICS.with(|p| p.borrow_mut().push(format!("{message} at {location}")));
            default(info);
        }));
    });
}
