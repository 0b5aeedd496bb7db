//! The simulator: one seed → a scenario (programs, client actions, faults, crashes) run on
//! the real runtime, on one thread, on the virtual clock, over a fault-injecting store; then
//! the checks. Everything that varies between runs is drawn from the seed, so a run is
//! reproduced bit for bit (the same trace hash) by running its seed again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use durable_runtime::history::Event;
use durable_runtime::store::{InstanceQuery, MemoryStore, Store, StoreError};
use durable_runtime::testing::{Advance, ReplayChecker};
use durable_runtime::{ClientError, Clock, Runtime, RuntimeStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::disk::{self, DiskFault, SimDisk, StoreChoice};
use crate::fault_store::FaultStore;
use crate::faults::{Fault, FaultPlan, FaultRates};
use crate::program::{self, event_data, event_name, Generator, Input, Op};
use crate::rng::Rng;
use crate::workload::{sim_program, sim_step};
use crate::world::{self, World};

/// The runtime's lease on an instance in the simulation (short, so expiry is cheap).
const ORCHESTRATION_LEASE: Duration = Duration::from_secs(5);
/// The runtime's lease on an activity attempt.
const ACTIVITY_LEASE: Duration = Duration::from_secs(10);
/// A clock jump that expires every lease.
const LEASE_JUMP: Duration = Duration::from_secs(11);
/// How long the simulated client waits before trying a failed call again.
const CLIENT_RETRY: Duration = Duration::from_millis(10);
/// Steps after which a run that has not ended counts as stuck.
const MAX_STEPS: u32 = 50_000;

/// One root instance of a scenario and what the client does to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Its program.
    pub ops: Vec<Op>,
    /// When the client starts it (virtual ms from the beginning).
    pub start_ms: u64,
    /// When the client suspends it, and for how long, if it does.
    pub suspend: Option<(u64, u64)>,
    /// When the client terminates it, if it does.
    pub terminate_ms: Option<u64>,
}

/// Everything one run does, drawn from a seed or written down by a regression test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// The root instances (`root-0`, `root-1`, ...).
    pub roots: Vec<Root>,
    /// The store's faults.
    pub faults: FaultPlan,
    /// At most this many crashes (the runtime dropped and rebuilt on the same store).
    pub crashes: u32,
    /// At most this many clock jumps past every lease.
    pub jumps: u32,
    /// The runtime's instance cache.
    pub cache_capacity: usize,
    /// The runtime's concurrency limits (turns and activities).
    pub concurrency: usize,
    /// How often an activity run outlives its lease (so the attempt runs twice).
    #[serde(default = "default_long_activities")]
    pub long_activities: f64,
    /// The store: in memory, or the file store over a simulated disk.
    #[serde(default)]
    pub store: StoreChoice,
}

fn default_long_activities() -> f64 {
    0.03
}

impl Scenario {
    /// The scenario of `seed`.
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x5ce0_a410);
        let mut roots = Vec::new();
        for _ in 0..rng.range(1, 3) {
            let len = rng.range(1, 6) as u32;
            let ops = Generator::new(&mut rng).program(len);
            let start_ms = rng.below(2_000);
            let suspend = rng
                .chance(0.2)
                .then(|| (start_ms + rng.below(5_000), rng.range(1, 500)));
            let terminate_ms = rng.chance(0.1).then(|| start_ms + rng.below(30_000));
            roots.push(Root {
                ops,
                start_ms,
                suspend,
                terminate_ms,
            });
        }
        // A quarter of the seeds without faults: the oracle must hold exactly there too.
        let faults = if rng.chance(0.25) {
            FaultRates::NONE
        } else {
            let scale = [0.01, 0.03, 0.08][rng.below(3) as usize];
            FaultRates {
                fail_before: scale,
                fail_after: scale / 2.0,
                delay: scale * 3.0,
                max_delay_ms: 50,
                yields: 0.1,
                prefix: 0.2,
            }
        };
        Scenario {
            roots,
            faults: FaultPlan::Random(faults),
            crashes: rng.below(3) as u32,
            jumps: rng.below(3) as u32,
            cache_capacity: [0, 2, 1_000][rng.below(3) as usize],
            concurrency: [1, 2, 256][rng.below(3) as usize],
            long_activities: default_long_activities(),
            store: StoreChoice::generate(&mut rng),
        }
    }

    /// A scenario aimed at lease fencing across generations: each generation opens with an
    /// activity call (sequence number 0 in every generation), and half the activity runs
    /// outlive their lease, so an old run finishes while the next generation awaits its own
    /// call at the same sequence number.
    pub fn generation_aba(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed ^ 0xaba0_aba0);
        let mut ops = Vec::new();
        for k in 1..=rng.range(2, 5) as u32 {
            if k > 1 {
                ops.push(Op::ContinueAsNew { keep_events: false });
            }
            ops.push(Op::Call(program::CallSpec {
                k,
                fail_until: 0,
                attempts: 1,
            }));
        }
        Scenario {
            roots: vec![Root {
                ops,
                start_ms: 0,
                suspend: None,
                terminate_ms: None,
            }],
            faults: FaultPlan::Random(FaultRates::NONE),
            crashes: 0,
            jumps: 0,
            cache_capacity: 1_000,
            concurrency: 256,
            long_activities: 0.5,
            store: StoreChoice::Memory,
        }
    }
}

/// What a run did and what the checks found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// A hash of everything that happened, in order: the same seed gives the same hash.
    pub trace: u64,
    /// How many things happened.
    pub trace_len: u64,
    /// Store calls made.
    pub store_calls: u64,
    /// The faults injected, by store call number: the run's fault schedule.
    pub injected: Vec<(u64, Fault)>,
    /// The simulated disk's faults, by disk operation number (file store runs).
    pub disk_injected: Vec<(u64, DiskFault)>,
    /// How many times the runtime crashed.
    pub crashes: u32,
    /// Broken invariants; empty when the run passed.
    pub violations: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The command that reruns `seed` alone, bit for bit.
pub fn reproduce_command(seed: u64) -> String {
    let store = match std::env::var("DURABLE_SIM_STORE") {
        Ok(store) => format!("DURABLE_SIM_STORE={store} "),
        Err(_) => String::new(),
    };
    format!(
        "{store}DURABLE_SIM_SEED={seed} cargo test -p durable-sim --test sim -- one_seed --nocapture"
    )
}

/// Runs the scenario of `seed`.
pub fn run_seed(seed: u64) -> Report {
    run(seed, &Scenario::generate(seed))
}

/// Runs `scenario`, drawing everything it leaves open from `seed`.
pub fn run(seed: u64, scenario: &Scenario) -> Report {
    let world = World::new(seed, scenario.faults.clone());
    world.lock().long_activities = scenario.long_activities;
    let _enter = world::Enter::new(&world);
    // The file store is opened by each life (below, a memory store until the first).
    let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let store = FaultStore::new(Arc::clone(&inner), Arc::clone(&world));
    let disk = match &scenario.store {
        StoreChoice::Memory => None,
        StoreChoice::File(file) => Some((
            SimDisk::new(seed, file.disk.clone(), Arc::clone(&world)),
            file.clone(),
        )),
    };
    let mut sim = Sim {
        disk,
        opened: true,
        world: Arc::clone(&world),
        inner,
        store,
        scenario: scenario.clone(),
        book: Arc::new(Mutex::new(Book::new(scenario, world.clock.now()))),
        crashes: 0,
        steps: 0,
        tokio_at: world.clock.now(),
    };
    loop {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread tokio runtime");
        let end = tokio.block_on(sim.life());
        // The crash: every task of the runtime is dropped wherever it was; only the store
        // keeps what it acknowledged.
        drop(tokio);
        match end {
            End::Crash => {
                sim.crashes += 1;
                world.record("crash");
                if let Some((disk, _)) = &sim.disk {
                    disk.crash_at_random();
                }
            }
            End::Done => break,
        }
    }
    // The file store: a last power cut, and the checks read what the disk kept.
    let tokio = sim.disk.as_ref().map(|(disk, _)| {
        disk.crash(true);
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread tokio runtime")
    });
    if let Some(tokio) = &tokio {
        tokio.block_on(sim.open_file_store());
    }
    let _entered = tokio.as_ref().map(|tokio| tokio.enter());
    if sim.opened {
        sim.check_end();
    }
    let mut state = world.lock();
    let mut violations = std::mem::take(&mut state.violations);
    violations.extend(
        world::take_panics()
            .into_iter()
            .map(|p| format!("a panic other than a planned one: {p}")),
    );
    Report {
        seed,
        trace: state.trace,
        trace_len: state.trace_len,
        store_calls: state.calls,
        injected: state.injected.clone(),
        disk_injected: sim
            .disk
            .as_ref()
            .map(|(disk, _)| disk.injected())
            .unwrap_or_default(),
        crashes: sim.crashes,
        violations,
    }
}

enum End {
    Crash,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start(usize),
    Raise(usize, u32),
    Suspend(usize, u64),
    Resume(usize),
    Terminate(usize),
}

impl Action {
    fn root(self) -> usize {
        match self {
            Action::Start(r)
            | Action::Raise(r, _)
            | Action::Suspend(r, _)
            | Action::Resume(r)
            | Action::Terminate(r) => r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Done,
}

/// The client's book: what it has to do, and what the store acknowledged.
struct Book {
    actions: Vec<(SystemTime, Action, Phase)>,
    started: BTreeSet<usize>,
    raised: BTreeSet<(usize, u32)>,
    /// Roots a terminate was sent to (it may have been applied even if it failed).
    terminate_sent: BTreeSet<usize>,
    /// Roots whose terminate was acknowledged.
    terminate_acked: BTreeSet<usize>,
    violations: Vec<String>,
}

impl Book {
    fn new(scenario: &Scenario, epoch: SystemTime) -> Book {
        let at = |ms: u64| epoch + Duration::from_millis(ms);
        let mut actions = Vec::new();
        for (i, root) in scenario.roots.iter().enumerate() {
            actions.push((at(root.start_ms), Action::Start(i), Phase::Waiting));
            if let Some((when, for_ms)) = root.suspend {
                actions.push((at(when), Action::Suspend(i, for_ms), Phase::Waiting));
            }
            if let Some(when) = root.terminate_ms {
                actions.push((at(when), Action::Terminate(i), Phase::Waiting));
            }
        }
        Book {
            actions,
            started: BTreeSet::new(),
            raised: BTreeSet::new(),
            terminate_sent: BTreeSet::new(),
            terminate_acked: BTreeSet::new(),
            violations: Vec::new(),
        }
    }
}

fn root_id(i: usize) -> String {
    format!("root-{i}")
}

struct Sim {
    /// The file store's disk, if the run uses it.
    disk: Option<(SimDisk, disk::FileChoice)>,
    /// The store opened (always, but for a file store refusing what the disk kept).
    opened: bool,
    world: Arc<World>,
    inner: Arc<dyn Store>,
    store: FaultStore,
    scenario: Scenario,
    book: Arc<Mutex<Book>>,
    crashes: u32,
    steps: u32,
    /// The virtual time the tokio clock of this life shows (it starts with each life).
    tokio_at: SystemTime,
}

impl Sim {
    /// One life of the runtime: until every root has ended, or a crash.
    async fn life(&mut self) -> End {
        self.tokio_at = self.world.clock.now();
        if !self.open_file_store().await {
            return End::Done;
        }
        let runtime = Runtime::builder()
            .shared_store(Arc::new(self.store.clone()))
            .virtual_clock(self.world.clock.clone(), Advance::Manual)
            .orchestrator(sim_program)
            .activity(sim_step)
            .cache_capacity(self.scenario.cache_capacity)
            .max_concurrent_turns(self.scenario.concurrency)
            .max_concurrent_activities(self.scenario.concurrency)
            .orchestration_lease(ORCHESTRATION_LEASE)
            .activity_lease(ACTIVITY_LEASE)
            .start()
            .expect("the simulated runtime starts");
        let client = runtime.client();
        // The client's calls in flight died with the last life: it makes them again.
        for action in &mut self.book.lock().unwrap().actions {
            if action.2 == Phase::Running {
                action.2 = Phase::Waiting;
            }
        }
        let end = loop {
            self.steps += 1;
            if !self.settle().await {
                break End::Done;
            }
            self.open_gates().await;
            self.spawn_due(&client);
            if !self.settle().await {
                break End::Done;
            }
            // A gate opened by the last turns is seen before the clock moves on.
            if self.open_gates().await {
                continue;
            }
            if self.all_ended().await {
                break End::Done;
            }
            if self.steps > MAX_STEPS {
                self.world
                    .violation(format!("the run did not end within {MAX_STEPS} steps"));
                break End::Done;
            }
            // A process killed by the disk (between a write and its fsync) is dead.
            let killed = self.disk.as_ref().is_some_and(|(disk, _)| disk.killed());
            let (crash, jump) = {
                let mut state = self.world.lock();
                let crash = self.crashes < self.scenario.crashes && state.choices.chance(0.02);
                let crash = crash || killed;
                let jump = !crash && state.choices.chance(0.01);
                (crash, jump)
            };
            if crash {
                break End::Crash;
            }
            if jump && self.scenario.jumps > 0 {
                self.scenario.jumps -= 1;
                let to = self.world.clock.now() + LEASE_JUMP;
                self.advance_to(to).await;
                continue;
            }
            match self.next_time() {
                Some(next) => self.advance_to(next).await,
                None => {
                    let now = self.world.clock.now();
                    let work = self.inner.has_work(now).await;
                    let wakeup = self.inner.next_wakeup().await;
                    self.world.violation(format!(
                        "stuck: instances have not ended and nothing is due (the store: work \
                         ready {work:?}, next wake-up {wakeup:?})"
                    ));
                    break End::Done;
                }
            }
        };
        self.check_stats(&runtime);
        end
    }

    /// The file store, opened over what its disk kept (at the start of each life, and for
    /// the end checks); `false` if it does not open.
    async fn open_file_store(&mut self) -> bool {
        let Some((disk, choice)) = &self.disk else {
            return true;
        };
        match disk::open(disk, choice).await {
            Ok(store) => {
                self.store = FaultStore::new(Arc::clone(&store), Arc::clone(&self.world));
                self.inner = store;
            }
            Err(e) => {
                self.world.violation(e);
                self.opened = false;
            }
        }
        self.opened
    }

    /// Lets every task run until nothing moves any more. `false` on a livelock.
    async fn settle(&self) -> bool {
        let mut still = 0;
        for _ in 0..200_000 {
            let before = self.world.progress();
            tokio::task::yield_now().await;
            if self.world.progress() == before {
                still += 1;
                if still >= 3 {
                    return true;
                }
            } else {
                still = 0;
            }
        }
        self.world
            .violation("livelock: the runtime kept working without the clock moving".into());
        false
    }

    /// The client raises the event of every gate it sees open; `true` if it saw a new one.
    async fn open_gates(&self) -> bool {
        let mut opened = false;
        let started: Vec<usize> = self.book.lock().unwrap().started.iter().copied().collect();
        for i in started {
            let id = durable_runtime::InstanceId::new(root_id(i)).expect("a valid id");
            let Ok(Some(status)) = self.inner.status(&id).await else {
                continue;
            };
            self.world.record(&format!(
                "status {i} {:?} {:?}",
                status.runtime_status, status.custom_status
            ));
            let Some(Value::String(custom)) = status.custom_status else {
                continue;
            };
            let Some(g) = custom.strip_prefix("gate:").and_then(|g| g.parse().ok()) else {
                continue;
            };
            let mut book = self.book.lock().unwrap();
            if book.raised.insert((i, g)) {
                let now = self.world.clock.now();
                book.actions
                    .push((now, Action::Raise(i, g), Phase::Waiting));
                drop(book);
                self.world.record(&format!("gate {i} {g}"));
                opened = true;
            }
        }
        opened
    }

    fn spawn_due(&self, client: &durable_runtime::Client) {
        let now = self.world.clock.now();
        let mut book = self.book.lock().unwrap();
        for n in 0..book.actions.len() {
            let (due, action, phase) = book.actions[n];
            if phase != Phase::Waiting || due > now {
                continue;
            }
            book.actions[n].2 = Phase::Running;
            let client = client.clone();
            let world = Arc::clone(&self.world);
            let book = Arc::clone(&self.book);
            let ops = self.scenario.roots[action.root()].ops.clone();
            tokio::spawn(async move {
                client_action(&client, &world, &book, action, ops).await;
                book.lock().unwrap().actions[n].2 = Phase::Done;
                world.record(&format!("client done {action:?}"));
            });
        }
    }

    async fn all_ended(&self) -> bool {
        for i in 0..self.scenario.roots.len() {
            let id = durable_runtime::InstanceId::new(root_id(i)).expect("a valid id");
            match self.inner.status(&id).await {
                Ok(Some(status)) if status.runtime_status.is_finished() => {}
                _ => return false,
            }
        }
        // What is left for ended roots has nothing to act on.
        let book = self.book.lock().unwrap();
        book.actions.iter().all(|a| match a.1 {
            Action::Terminate(_) | Action::Suspend(..) => a.2 != Phase::Running,
            _ => a.2 == Phase::Done,
        })
    }

    /// When something happens next: a sleeper, a client action, the runtime's back-off.
    fn next_time(&self) -> Option<SystemTime> {
        let now = self.world.clock.now();
        let mut next = self.world.clock.next_deadline();
        let mut consider = |t: SystemTime| {
            if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        let book = self.book.lock().unwrap();
        for (due, _, phase) in &book.actions {
            if *phase == Phase::Waiting {
                consider((*due).max(now + Duration::from_millis(1)));
            }
        }
        drop(book);
        let mut state = self.world.lock();
        state.backoffs.retain(|end| *end > now);
        if let Some(end) = state.backoffs.first() {
            consider(*end);
        }
        next
    }

    /// Moves the virtual clock and the (paused) tokio clock together. Tokio's timers tick in
    /// whole milliseconds, rounded up: its clock moves in whole milliseconds too, to the first
    /// at or after the virtual one, so that a tokio sleep of 100 ms (the runtime's back-off)
    /// has ended once the virtual clock is 100 ms on, whatever fractions the virtual
    /// deadlines (a third of a lease) left.
    async fn advance_to(&mut self, to: SystemTime) {
        let now = self.world.clock.now();
        let by = to.duration_since(now).unwrap_or_default();
        self.world.record(&format!("advance {}", by.as_millis()));
        self.world.clock.advance_to(to);
        let behind = to.duration_since(self.tokio_at).unwrap_or_default();
        let whole_ms = Duration::from_millis(behind.as_nanos().div_ceil(1_000_000) as u64);
        self.tokio_at += whole_ms;
        tokio::time::advance(whole_ms).await;
    }

    /// The runtime's counters against what the store saw in this life.
    fn check_stats(&self, runtime: &Runtime) {
        let stats = runtime.stats();
        let mut state = self.world.lock();
        let seen = std::mem::take(&mut state.epoch);
        let mut wrong = Vec::new();
        if stats.commits != seen.commits_ok {
            wrong.push(format!(
                "commits {} but the store acknowledged {}",
                stats.commits, seen.commits_ok
            ));
        }
        if stats.turns != stats.commits {
            wrong.push(format!(
                "turns {} but commits {}",
                stats.turns, stats.commits
            ));
        }
        if stats.events_committed != seen.events_ok {
            wrong.push(format!(
                "events_committed {} but the store acknowledged {}",
                stats.events_committed, seen.events_ok
            ));
        }
        if stats.activities != seen.activity_runs {
            wrong.push(format!(
                "activities {} but {} attempts ran",
                stats.activities, seen.activity_runs
            ));
        }
        if stats.cache_hits + stats.cache_misses + stats.turns_without_code
            < stats.commits + stats.conflicts
        {
            wrong.push(format!("fewer turns begun than ended: {stats:?}"));
        }
        if stats.cached > self.scenario.cache_capacity as u64 {
            wrong.push(format!("{} cached, over the capacity", stats.cached));
        }
        for w in wrong {
            state.violations.push(format!("stats do not add up: {w}"));
        }
    }

    /// The checks at the end of the run.
    fn check_end(&self) {
        let violations = futures::executor::block_on(self.end_violations());
        let mut state = self.world.lock();
        state.violations.extend(violations);
        state
            .violations
            .append(&mut self.book.lock().unwrap().violations);
        // Attempts are numbered from 1 without gaps.
        let mut gaps = Vec::new();
        for (call, attempts) in &state.runs {
            let numbers: Vec<u32> = attempts.keys().copied().collect();
            let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
            if numbers != expected {
                gaps.push(format!("activity {call:?} ran attempts {numbers:?}"));
            }
        }
        state.violations.extend(gaps);
    }

    async fn end_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (terminate_sent, terminate_acked) = {
            let book = self.book.lock().unwrap();
            (book.terminate_sent.clone(), book.terminate_acked.clone())
        };
        for (i, root) in self.scenario.roots.iter().enumerate() {
            let id = durable_runtime::InstanceId::new(root_id(i)).expect("a valid id");
            let expected = program::expected(&root.ops);
            let status = match self.inner.status(&id).await {
                Ok(Some(status)) => status,
                other => {
                    out.push(format!("{id}: no status at the end ({other:?})"));
                    continue;
                }
            };
            let output = Value::Array(expected.output.clone());
            match status.runtime_status {
                RuntimeStatus::Completed if status.output.as_ref() == Some(&output) => {}
                RuntimeStatus::Terminated if terminate_sent.contains(&i) => {}
                _ => out.push(format!(
                    "{id} ended {:?} with output {} (failure: {:?}), but the oracle says \
                     Completed with {}{}",
                    status.runtime_status,
                    status.output.map(|o| o.to_string()).unwrap_or_default(),
                    status.failure,
                    output,
                    if terminate_sent.contains(&i) {
                        " (or Terminated)"
                    } else {
                        ""
                    },
                )),
            }
            if terminate_acked.contains(&i) && !status.runtime_status.is_finished() {
                out.push(format!("{id}: terminate acknowledged, but it did not end"));
            }
        }
        // Every instance's history: replays against the code, and no timer fired early.
        let mut query = InstanceQuery {
            page_size: 1_000,
            ..InstanceQuery::default()
        };
        let checker = ReplayChecker::new().orchestrator(sim_program);
        loop {
            let page = match self.inner.list(&query).await {
                Ok(page) => page,
                Err(e) => {
                    out.push(format!("cannot list the instances: {e}"));
                    break;
                }
            };
            for status in &page.instances {
                let id = &status.instance_id;
                let history = match self.inner.load_history(id).await {
                    Ok(history) => history,
                    Err(e) => {
                        out.push(format!("{id}: cannot load the history: {e}"));
                        continue;
                    }
                };
                // A child whose first turn has not run yet (the run ends once its roots have;
                // a terminated root's child may still be pending) has no events to replay.
                let pending = status.runtime_status == RuntimeStatus::Pending;
                let replayed = match history.is_empty() && pending {
                    true => Ok(()),
                    false => checker.check_instance(id.as_str(), &history),
                };
                if let Err(e) = replayed {
                    out.push(format!("{id}: the history does not replay: {e}"));
                }
                let mut turn_at = SystemTime::UNIX_EPOCH;
                for event in &history {
                    match &event.event {
                        Event::OrchestratorStarted { timestamp } => turn_at = *timestamp,
                        Event::TimerFired { id: timer, fire_at } if turn_at < *fire_at => {
                            out.push(format!(
                                "{id}: timer {timer} due at {fire_at:?} fired in a turn at {turn_at:?}"
                            ));
                        }
                        _ => {}
                    }
                }
            }
            match page.continuation {
                Some(next) => query.continuation = Some(next),
                None => break,
            }
        }
        out
    }
}

/// Whether the instance `id` exists, asked until the store answers.
async fn started(client: &durable_runtime::Client, world: &Arc<World>, id: &str) -> bool {
    loop {
        match client.status(id).await {
            Ok(_) => return true,
            Err(ClientError::NotFound(_)) => return false,
            Err(_) => {
                let at = world.clock.now() + CLIENT_RETRY;
                world.clock.sleep_until(at).await;
            }
        }
    }
}

fn unavailable(error: &ClientError) -> bool {
    matches!(error, ClientError::Store(StoreError::Unavailable(_)))
}

/// One client action, tried again after every transient error (a client of a flaky store
/// does that): a raise may then arrive twice, which the programs tolerate.
async fn client_action(
    client: &durable_runtime::Client,
    world: &Arc<World>,
    book: &Arc<Mutex<Book>>,
    action: Action,
    ops: Vec<Op>,
) {
    let id = root_id(action.root());
    // A start made again after a crash may have been applied by the life before.
    if matches!(action, Action::Start(_)) && started(client, world, &id).await {
        book.lock().unwrap().started.insert(action.root());
        return;
    }
    loop {
        let result = match action {
            Action::Start(_) => client
                .start(sim_program, Input::new(ops.clone()))
                .instance_id(id.clone())
                .await
                .map(|_| ()),
            Action::Raise(_, g) => client.raise_event(&id, &event_name(g), event_data(g)).await,
            Action::Suspend(..) => client.suspend(&id, Some("simulated")).await,
            Action::Resume(_) => client.resume(&id, Some("simulated")).await,
            Action::Terminate(i) => {
                book.lock().unwrap().terminate_sent.insert(i);
                client
                    .terminate(&id, "terminated by the simulated client")
                    .await
            }
        };
        match result {
            Ok(()) => {
                let mut book = book.lock().unwrap();
                match action {
                    Action::Start(i) => {
                        book.started.insert(i);
                    }
                    Action::Suspend(i, for_ms) => {
                        let at = world.clock.now() + Duration::from_millis(for_ms);
                        book.actions.push((at, Action::Resume(i), Phase::Waiting));
                    }
                    Action::Terminate(i) => {
                        book.terminate_acked.insert(i);
                    }
                    _ => {}
                }
                return;
            }
            Err(ClientError::AlreadyExists(_)) if matches!(action, Action::Start(_)) => {
                // An earlier try was applied and its answer lost.
                book.lock().unwrap().started.insert(action.root());
                return;
            }
            Err(ClientError::Finished { .. }) => return,
            Err(ClientError::NotFound(_)) if !matches!(action, Action::Start(_)) => {
                // Acting before the start is durable (a scheduled action racing it).
                let at = world.clock.now() + CLIENT_RETRY;
                world.clock.sleep_until(at).await;
            }
            Err(e) if unavailable(&e) => {
                let at = world.clock.now() + CLIENT_RETRY;
                world.clock.sleep_until(at).await;
                // A start that may have been applied is not sent again blindly: a start
                // replaces a *finished* instance of its id, so the program would run twice.
                if matches!(action, Action::Start(_)) && started(client, world, &id).await {
                    book.lock().unwrap().started.insert(action.root());
                    return;
                }
            }
            Err(e) => {
                book.lock()
                    .unwrap()
                    .violations
                    .push(format!("client {action:?} failed: {e}"));
                return;
            }
        }
    }
}
