//! The fleet test: three worker processes (`src/bin/fleet_worker.rs`) and a client (this
//! process) share one PostgreSQL schema and run 1,000 of the POC's retry workflows
//! ([`durable_tests::fleet`]) while the test SIGKILLs a random worker at random moments (at
//! least 20 times) and restarts it, cuts workers' and the client's connections with
//! `pg_terminate_backend`, and pauses a worker past its lease with SIGSTOP. Runs when
//! `DURABLE_TEST_POSTGRES_URL` is set; otherwise it says so in one line and passes.
//!
//! What is checked:
//! - **Every workflow completes with the right output**, and its history schedules each
//!   attempt exactly once: attempts numbered 1, 2, 3, 4 for the flaky step, without gaps.
//! - **No activity whose result was acknowledged runs again.** Every run of a step is
//!   appended to a run log by the process that ran it. A later step (or attempt) of an
//!   instance is only handed out once the turn that recorded the earlier one's result is
//!   committed, so in the log each instance's runs must be non-decreasing in
//!   `(step, attempt)`; an equal neighbour is a run whose result was lost with its worker
//!   (allowed), a decrease would be an acknowledged result run again.
//! - **A killed worker's instances are taken over within one lease**: right after each kill,
//!   the leases the dead process held that keep work waiting (instances with a message to
//!   deliver, and activity attempts, whose `lease_owner` names it) are read, and each must
//!   have been taken over (leased by another, or finished with) within one lease of the
//!   kill, plus [`TAKEOVER_SLACK`] (the poll interval and the loaded machine), however long
//!   the queue of ready work.
//! - **A worker paused past its lease has its commits refused**: after SIGCONT its
//!   conflicts counter (commits the fence refused) moves, and nothing it applies is applied
//!   twice (the history and run-log checks above).
//! - **Losing the database connection is survived**: every connection of a worker, or of the
//!   client (its listening connection and its pool), is terminated by the server
//!   (`pg_terminate_backend`) a few times; no instance fails, and the client's waits still
//!   return.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use durable_postgres::testing::{self, TestSchema};
use durable_postgres::PostgresStore;
use durable_runtime::history::Event;
use durable_runtime::store::StoreError;
use durable_runtime::{Client, ClientError, Runtime, RuntimeStatus};
use durable_tests::fleet::{
    expected_output, fleet_retry, fleet_step, FLAKY_STEP, FLAKY_SUCCEEDS_AT, RUN_LOG_VAR, STEPS,
};

const WORKERS: usize = 3;
const INSTANCES: usize = 1_000;
const MIN_KILLS: usize = 20;
const LEASE: Duration = Duration::from_millis(1_000);
/// How much later than one lease after a kill its leases may be taken over: the workers'
/// poll interval (a twentieth of the lease, 50 ms, when no notification wakes them), the
/// claim itself, and the moments a loaded machine (2 cores, a debug build, three workers and
/// the client, other jobs beside) leaves a worker's loop unscheduled: 0.25 s past the lease
/// was the most seen, at a load average of 13. Claims take expired leases before any backlog
/// of ready work, so the backlog adds nothing.
const TAKEOVER_SLACK: Duration = Duration::from_millis(750);
/// The whole test fails past this.
const DEADLINE: Duration = Duration::from_secs(400);

/// After a kill: how long until the dead worker's leases were taken over (or the watcher gave
/// up), how many were left then, and the last count seen before, as `held_by` returns it.
type Takeover = (Duration, i64, (i64, i64));

/// SplitMix64, for the kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `url` with `application_name` set, so that the test can cut exactly these connections.
fn with_app_name(url: &str, app: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={app}")
}

struct Worker {
    child: Child,
    /// `host:pid`, as its leases name it.
    owner: String,
    /// Turns and conflicts, as it last reported them.
    stats: Arc<Mutex<(u64, u64)>>,
}

fn spawn_worker(url: &str, schema: &str, run_log: &str) -> Worker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet_worker"))
        .args([url, schema, &LEASE.as_millis().to_string()])
        .env(RUN_LOG_VAR, run_log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a worker");
    let mut lines = BufReader::new(child.stdout.take().expect("the worker's stdout")).lines();
    let first = lines
        .next()
        .expect("the worker's first line")
        .expect("read the worker's first line");
    let owner = first
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("the worker said `{first}`"))
        .to_string();
    let stats = Arc::new(Mutex::new((0, 0)));
    let seen = Arc::clone(&stats);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut words = line.split(' ').skip(1).filter_map(|w| w.parse().ok());
            if let (Some(turns), Some(conflicts)) = (words.next(), words.next()) {
                *seen.lock().unwrap() = (turns, conflicts);
            }
        }
    });
    Worker {
        child,
        owner,
        stats,
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// The leases `owner` holds that keep work waiting: on instances with a message to deliver
/// now, and on activity attempts. (An instance it leased with nothing to deliver, to commit an
/// attempt's result with the turn it triggers, keeps nobody waiting: whoever has something
/// for it takes the expired lease over at once.)
async fn held_by(db: &tokio_postgres::Client, schema: &str, owner: &str) -> (i64, i64) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let row = db
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM \"{schema}\".instances i
                         WHERE lease_owner = $1 AND lease_until IS NOT NULL
                           AND EXISTS (SELECT 1 FROM \"{schema}\".messages m
                                       WHERE m.instance_id = i.id AND m.visible_at <= $2)),
                        (SELECT count(*) FROM \"{schema}\".activities
                         WHERE lease_owner = $1 AND token <> 0)"
            ),
            &[&owner, &now],
        )
        .await
        .expect("read the dead worker's leases");
    (row.get(0), row.get(1))
}

/// Whether `error` is one a client retries: the store was unreachable for a while.
fn transient(error: &ClientError) -> bool {
    matches!(error, ClientError::Store(StoreError::Unavailable(_)))
}

/// Starts `fleet-<n>` (retrying while the store is unreachable) and waits for it.
async fn run_instance(client: Client, n: usize) -> Result<(), String> {
    let id = format!("fleet-{n}");
    loop {
        match client.start(fleet_retry, ()).instance_id(&id).await {
            Ok(_) => break,
            // An earlier try whose outcome was unknown did create it.
            Err(ClientError::AlreadyExists(_)) => break,
            Err(error) if transient(&error) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(format!("{id}: start failed: {error}")),
        }
    }
    loop {
        match client.wait_for_completion(&id, DEADLINE).await {
            Ok(status) if status.runtime_status == RuntimeStatus::Completed => {
                if n.is_multiple_of(100) {
                    println!("fleet: {id} completed");
                }
                return Ok(());
            }
            Ok(status) => return Err(format!("{id}: ended as {status:?}")),
            Err(error) if transient(&error) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(format!("{id}: waiting failed: {error}")),
        }
    }
}

#[test]
fn a_fleet_survives_kills_pauses_and_cut_connections() {
    let Some(url) = testing::url() else {
        println!(
            "fleet test skipped: set {}=postgres://USER@HOST:PORT/DATABASE to run it",
            testing::URL_VAR
        );
        return;
    };
    let seed = std::env::var("DURABLE_FLEET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut rng = Rng(seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let schema = rt.block_on(TestSchema::new(&url));
    let tag = std::process::id();
    let client_app = format!("fleet_{tag}_client");
    let store = rt
        .block_on(PostgresStore::connect_with(
            &with_app_name(&url, &client_app),
            schema
                .options()
                .client_only(true)
                .poll_interval(Duration::from_millis(50)),
        ))
        .expect("connect the client");
    let runtime = {
        let _inside = rt.enter();
        Runtime::builder()
            .store(store)
            .orchestrator(fleet_retry)
            .activity(fleet_step)
            .start()
            .expect("start the client's runtime")
    };
    let client = runtime.client();
    let (db, connection) = rt
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .expect("connect the test's own session");
    rt.spawn(connection);
    let log_dir = tempfile::tempdir().unwrap();
    let run_log = log_dir.path().join("runs.log");
    let run_log = run_log.to_str().unwrap().to_string();
    let app = |i: usize| format!("fleet_{tag}_w{i}");
    let worker_url = |i: usize| with_app_name(&url, &app(i));
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| spawn_worker(&worker_url(i), schema.name(), &run_log))
        .collect();

    // The client: starts in waves, so that the kills land while work is in flight.
    let done = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let (client, done, completed, failures) = (
            client.clone(),
            Arc::clone(&done),
            Arc::clone(&completed),
            Arc::clone(&failures),
        );
        rt.spawn(async move {
            let mut runs = Vec::new();
            for wave in 0..INSTANCES / 25 {
                for n in wave * 25..(wave + 1) * 25 {
                    let (client, completed, failures) = (
                        client.clone(),
                        Arc::clone(&completed),
                        Arc::clone(&failures),
                    );
                    runs.push(tokio::spawn(async move {
                        match run_instance(client, n).await {
                            Ok(()) => completed.fetch_add(1, Ordering::SeqCst),
                            Err(error) => {
                                failures.lock().unwrap().push(error);
                                0
                            }
                        };
                    }));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for run in runs {
                let _ = run.await;
            }
            println!("fleet: client saw every instance end");
            done.store(true, Ordering::SeqCst);
        });
    }

    // The chaos: kills, connection cuts and one pause (repeated until it catches a worker
    // mid-commit), until every instance is done and enough kills were made.
    let mut kills = 0;
    let mut cuts = 0;
    let mut pauses: Vec<u64> = Vec::new();
    let takeovers: Arc<Mutex<Vec<Takeover>>> = Arc::default();
    let mut watchers = Vec::new();
    // Paced by progress, not by time, so that a fast machine sees as many as a slow one:
    // the chaos events (kills, cuts, pauses) fall due as the completions pass evenly spaced
    // marks over the first 60 % of the run, at least 50-150 ms apart.
    let events = MIN_KILLS + 13;
    let mark = |k: usize| k * INSTANCES * 6 / 10 / events;
    let mut next_event = 1;
    // DURABLE_FLEET_CHAOS=0 runs the fleet undisturbed (to tell a slow fleet from a stuck one).
    let chaos = std::env::var("DURABLE_FLEET_CHAOS").map_or(true, |v| v != "0");
    let pause_done = |pauses: &Vec<u64>| pauses.iter().any(|&c| c > 0) || pauses.len() >= 4;
    while chaos
        && !done.load(Ordering::SeqCst)
        && (kills < MIN_KILLS || cuts < 2 || !pause_done(&pauses))
    {
        assert!(
            started.elapsed() < DEADLINE,
            "seed {seed}: not done after {DEADLINE:?}: {} of {INSTANCES} completed, {kills} kills",
            completed.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(50 + rng.below(100)));
        if completed.load(Ordering::SeqCst) < mark(next_event) {
            continue;
        }
        next_event += 1;
        let i = rng.below(WORKERS as u64) as usize;
        let in_flight = !done.load(Ordering::SeqCst);
        if in_flight && kills >= 6 && !pause_done(&pauses) {
            // Paused past its lease: its leases are taken over; when it resumes, the fence
            // refuses what it commits.
            let pid = workers[i].child.id();
            let before = workers[i].stats.lock().unwrap().1;
            signal(pid, "STOP");
            std::thread::sleep(LEASE * 2);
            signal(pid, "CONT");
            std::thread::sleep(LEASE / 2);
            let after = workers[i].stats.lock().unwrap().1;
            pauses.push(after - before);
        } else if in_flight && cuts < 4 && rng.below(5) == 0 {
            // Every connection of a worker, or of the client (its listener and its pool),
            // cut by the server.
            let target = if cuts % 2 == 1 {
                client_app.clone()
            } else {
                app(i)
            };
            rt.block_on(db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&target],
            ))
            .expect("cut connections");
            cuts += 1;
        } else {
            let killed_at = Instant::now();
            workers[i].child.kill().expect("SIGKILL a worker");
            let _ = workers[i].child.wait();
            let owner = workers[i].owner.clone();
            workers[i] = spawn_worker(&worker_url(i), schema.name(), &run_log);
            kills += 1;
            let held = rt.block_on(held_by(&db, schema.name(), &owner));
            if held != (0, 0) {
                let (db, schema_name, takeovers) = (
                    // Each watcher reads on a session of its own.
                    url.clone(),
                    schema.name().to_string(),
                    Arc::clone(&takeovers),
                );
                watchers.push(rt.spawn(async move {
                    let (db, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
                        .await
                        .expect("connect a watcher");
                    tokio::spawn(connection);
                    let mut last = (0, 0);
                    loop {
                        let left = held_by(&db, &schema_name, &owner).await;
                        let after = killed_at.elapsed();
                        if left == (0, 0) || after > LEASE + TAKEOVER_SLACK + LEASE {
                            takeovers
                                .lock()
                                .unwrap()
                                .push((after, left.0 + left.1, last));
                            return;
                        }
                        last = left;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }));
            }
        }
    }
    println!("fleet: chaos over after {:.1} s: {kills} kills, {cuts} cuts, pauses {pauses:?}, {} completed", started.elapsed().as_secs_f64(), completed.load(Ordering::SeqCst));
    while !done.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < DEADLINE,
            "seed {seed}: not done after {DEADLINE:?}: {} of {INSTANCES} completed",
            completed.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "fleet: all done after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for watcher in watchers {
        rt.block_on(watcher).expect("a takeover watcher");
    }
    for worker in &mut workers {
        let _ = worker.child.kill();
        let _ = worker.child.wait();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "seed {seed}: {failures:?}");
    assert_eq!(completed.load(Ordering::SeqCst), INSTANCES, "seed {seed}");

    // Every history schedules each attempt once, in order.
    let expected_attempts: Vec<(u32, u32)> = (1..=STEPS)
        .flat_map(|s| {
            let last = if s == FLAKY_STEP {
                FLAKY_SUCCEEDS_AT
            } else {
                1
            };
            (1..=last).map(move |a| (s, a))
        })
        .collect();
    for n in 0..INSTANCES {
        let id = format!("fleet-{n}");
        let status = rt.block_on(client.status(&id)).expect("status");
        assert_eq!(
            status.output_as::<Vec<String>>().ok().flatten(),
            Some(expected_output(&id)),
            "seed {seed}: {id} ended as {status:?}"
        );
        let history = rt.block_on(client.history(&id)).expect("history");
        let attempts: Vec<(u32, u32)> = history
            .iter()
            .filter_map(|e| match &e.event {
                Event::TaskScheduled { input, attempt, .. } => {
                    Some((input.as_u64().unwrap_or(0) as u32, *attempt))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            attempts,
            expected_attempts,
            "seed {seed}: {id}'s history schedules these attempts; its history:\n{}",
            history
                .iter()
                .enumerate()
                .map(|(seq, e)| format!("{seq}: {e:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // The run log: per instance, non-decreasing (step, attempt); each expected run present.
    let log = std::fs::read_to_string(&run_log).expect("read the run log");
    let mut runs: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    for line in log.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let [_pid, id, step, attempt] = words[..] else {
            panic!("seed {seed}: a torn run-log line `{line}`");
        };
        runs.entry(id.to_string())
            .or_default()
            .push((step.parse().unwrap(), attempt.parse().unwrap()));
    }
    let mut reruns = 0;
    for (id, seen) in &runs {
        for pair in seen.windows(2) {
            assert!(
                pair[0] <= pair[1],
                "seed {seed}: {id} ran {:?} after {:?}: an acknowledged result ran again ({seen:?})",
                pair[1],
                pair[0]
            );
            reruns += usize::from(pair[0] == pair[1]);
        }
        let mut distinct = seen.clone();
        distinct.dedup();
        assert_eq!(distinct, expected_attempts, "seed {seed}: {id}'s runs");
    }
    assert_eq!(runs.len(), INSTANCES, "seed {seed}: instances that ran");

    let takeovers = takeovers.lock().unwrap().clone();
    let mut times: Vec<(Duration, (i64, i64))> = takeovers.iter().map(|t| (t.0, t.2)).collect();
    times.sort();
    let slowest = times.last().map(|t| t.0).unwrap_or_default();
    println!("fleet: takeovers after (time, (instances, attempts) held before): {times:?}");
    println!(
        "fleet: {INSTANCES} workflows on {WORKERS} workers in {:.1} s; {kills} kills ({} found leases held, all taken over within {:?}, lease {LEASE:?}), {cuts} connection cuts, pauses saw {pauses:?} refused commits; {reruns} runs repeated (a kill lost their result or their lease ran out); seed {seed}",
        started.elapsed().as_secs_f64(),
        takeovers.len(),
        slowest,
    );
    if !chaos {
        return;
    }
    assert!(kills >= MIN_KILLS);
    assert!(
        cuts >= 2,
        "seed {seed}: the connections of a worker and of the client were not both cut"
    );
    assert!(
        !takeovers.is_empty(),
        "seed {seed}: no kill caught a worker holding a lease"
    );
    for (after, left, _) in &takeovers {
        assert!(
            *left == 0 && *after <= LEASE + TAKEOVER_SLACK,
            "seed {seed}: a dead worker's leases were not taken over within one lease ({LEASE:?}, plus {TAKEOVER_SLACK:?} of slack): {left} still held after {after:?}"
        );
    }
    assert!(
        pauses.iter().any(|&refused| refused > 0),
        "seed {seed}: the paused worker's commits were never refused: {pauses:?}"
    );
    rt.block_on(runtime.shutdown());
}
