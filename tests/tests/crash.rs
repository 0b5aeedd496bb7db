//! The crash test: a child process (`src/bin/crash_child.rs`) runs retry workflows on a
//! `FileStore` and reports every acknowledgement on its stdout; this test kills it with
//! SIGKILL at random moments, reopens the directory in the next child, and at the end runs
//! one child to completion and checks that nothing acknowledged was lost or done twice.
//!
//! Each round `r` starts `PER_ROUND` new instances (ids `crash-<n>`), each a chain of
//! [`STEPS`] activities where step [`FLAKY_STEP`] fails its first attempts and is retried
//! after 1 ms back-offs; the child is killed after a random number of its stdout lines (and a
//! random sleep of up to a few milliseconds). Instances a kill left unfinished are picked up
//! by the next child. The last child starts whatever was never started and waits for all.
//!
//! # What "acknowledged" means, and what is checked
//! - **A start** is acknowledged by a `started <id>` line: `client.start(..).await` returned.
//!   Every such instance must exist at the end and have completed with the right output.
//! - **An outcome** is acknowledged by `completed <id> <output>`: `wait_for_completion`
//!   returned it (the store reports only durable statuses). It must be the right output, and
//!   no activity of that instance may run in any later round.
//! - **An activity's completion** is acknowledged once the turn that recorded its result
//!   (`TaskCompleted`/`TaskFailed`) is durable. The child cannot print that moment, but it is
//!   witnessed after the fact: the store hands out an activity attempt only once the turn that
//!   scheduled it is durable, and in this sequential workflow the attempt after `(step, a)` is
//!   scheduled by the very turn that recorded `(step, a)`'s result. So once the run log shows
//!   a run of a later `(step, attempt)`, every earlier one of that instance was acknowledged,
//!   and it must never appear again. Hence, per instance, the run log (appended and fsynced
//!   by each run before it returns, so no run is ever missing from it) must be
//!   non-decreasing in `(step, attempt)`; an equal neighbour is a run whose result a kill
//!   lost before it was stored, allowed only in a later round than its twin (no rerun without
//!   a crash). The last entry of an instance whose `completed` line was printed in round `r`
//!   is in a round `<= r`.
//! - **Retries** see attempts 1, 2, 3… without gaps: the flaky step's attempts are exactly
//!   `1..=FLAKY_SUCCEEDS_AT` (in order, duplicates only across a kill), every other step only
//!   attempt 1, and the stored history schedules each attempt once.
//!
//! At least 50 kills a run (about 15 s on 2 cores). A long mode runs more:
//! `DURABLE_CRASH_KILLS=1000 cargo test -p durable-tests --test crash -- --nocapture`.
//! `DURABLE_CRASH_SEED=<n>` replays a failing run's kill points (the seed is printed on
//! failure; the timing of the child still varies, so a replay is likely, not certain, to hit
//! the same bug).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use durable_runtime::history::Event;
use durable_runtime::store::{FileStore, Store};
use durable_runtime::{InstanceId, RuntimeStatus};

// Must match `src/bin/crash_child.rs`.
const STEPS: u32 = 3;
const FLAKY_STEP: u32 = 2;
const FLAKY_SUCCEEDS_AT: u32 = 3;

/// New instances per round: small, so that 50 rounds stay well under a minute on 2 cores.
const PER_ROUND: u64 = 4;
const MIN_KILLS: u64 = 50;
/// How long a child may go without a line before the test calls it hung.
const SILENCE: Duration = Duration::from_secs(60);

/// A small deterministic generator (SplitMix64) for the kill points.
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

fn expected_output(id: &str) -> serde_json::Value {
    let outputs: Vec<String> = (1..=STEPS)
        .map(|step| {
            let attempt = if step == FLAKY_STEP {
                FLAKY_SUCCEEDS_AT
            } else {
                1
            };
            format!("{id}/{step}/{attempt}")
        })
        .collect();
    serde_json::json!(outputs)
}

/// What the children said, over all rounds.
#[derive(Default)]
struct Acks {
    /// Instance → the round whose child acknowledged its start first.
    started: BTreeMap<String, u64>,
    /// Instance → the round whose child first acknowledged its completion.
    completed: BTreeMap<String, u64>,
    /// Instances the last child did not find (never acknowledged, or lost).
    missing: BTreeSet<String>,
}

impl Acks {
    fn take(&mut self, round: u64, line: &str) -> Result<(), String> {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("started"), Some(id), None) => {
                self.started.entry(id.to_string()).or_insert(round);
            }
            (Some("missing"), Some(id), None) => {
                self.missing.insert(id.to_string());
            }
            (Some("completed"), Some(id), Some(output)) => {
                let output: serde_json::Value = serde_json::from_str(output)
                    .map_err(|e| format!("round {round}: bad output in `{line}`: {e}"))?;
                if output != expected_output(id) {
                    return Err(format!(
                        "round {round}: {id} completed with {output}, expected {}",
                        expected_output(id)
                    ));
                }
                self.completed.entry(id.to_string()).or_insert(round);
            }
            _ => return Err(format!("round {round}: unexpected line `{line}`")),
        }
        Ok(())
    }
}

enum Stop {
    /// Kill the child after this many lines and this long a pause.
    After(u64, Duration),
    /// Let it finish, starting nothing: the last round.
    Never,
}

/// Runs one child; returns whether it was killed while alive.
fn round(
    dir: &Path,
    run_log: &Path,
    round: u64,
    from: u64,
    to: u64,
    stop: Stop,
    acks: &mut Acks,
) -> Result<bool, String> {
    let stderr_path = dir.with_extension(format!("stderr-{round}"));
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_crash_child"));
    command
        .arg(dir)
        .arg(run_log)
        .arg(round.to_string())
        .arg(from.to_string())
        .arg(to.to_string());
    if matches!(stop, Stop::Never) {
        command.arg("wait-only");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawn the child: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let child_failed = |why: String| {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        format!("round {round}: {why}; the child's stderr:\n{stderr}")
    };
    let (limit, pause) = match stop {
        Stop::After(lines, pause) => (Some(lines), pause),
        Stop::Never => (None, Duration::ZERO),
    };
    let mut seen = 0;
    let mut killed = false;
    loop {
        if limit == Some(seen) {
            std::thread::sleep(pause);
            // On unix, `kill` sends SIGKILL.
            killed = child.try_wait().map_err(|e| e.to_string())?.is_none();
            let _ = child.kill();
            break;
        }
        match rx.recv_timeout(SILENCE) {
            Ok(line) => {
                acks.take(round, &line)?;
                seen += 1;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(child_failed(format!(
                    "no line for {SILENCE:?}: the child hangs"
                )));
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    // Lines already in the pipe were printed before the kill: they are acknowledgements too.
    for line in rx.iter() {
        acks.take(round, &line)?;
    }
    let _ = reader.join();
    if !killed && !status.success() {
        return Err(child_failed(format!("the child failed ({status})")));
    }
    let _ = std::fs::remove_file(&stderr_path);
    Ok(killed)
}

/// `round instance step attempt` lines of the run log.
fn read_run_log(path: &Path) -> Result<Vec<(u64, String, u32, u32)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    text.lines()
        .map(|line| {
            let bad = || format!("bad run log line `{line}`");
            let mut w = line.split(' ');
            let round = w.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let id = w.next().ok_or_else(bad)?.to_string();
            let step = w.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let attempt = w.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            if w.next().is_some() {
                return Err(bad());
            }
            Ok((round, id, step, attempt))
        })
        .collect()
}

/// The checks on the run log, described in the module docs.
fn check_runs(runs: &[(u64, String, u32, u32)], acks: &Acks) -> Result<(), String> {
    let mut by_instance: HashMap<&str, Vec<(u64, u32, u32)>> = HashMap::new();
    for (round, id, step, attempt) in runs {
        by_instance
            .entry(id)
            .or_default()
            .push((*round, *step, *attempt));
    }
    let all: Vec<(u32, u32)> = (1..=STEPS)
        .flat_map(|step| {
            let last = if step == FLAKY_STEP {
                FLAKY_SUCCEEDS_AT
            } else {
                1
            };
            (1..=last).map(move |attempt| (step, attempt))
        })
        .collect();
    for (id, seq) in &by_instance {
        for pair in seq.windows(2) {
            let ((r0, s0, a0), (r1, s1, a1)) = (pair[0], pair[1]);
            if (s1, a1) < (s0, a0) {
                return Err(format!(
                    "{id}: step {s1} attempt {a1} ran again in round {r1} after step {s0} attempt {a0} had run in round {r0}, so its completion had been acknowledged"
                ));
            }
            if (s1, a1) == (s0, a0) && r1 == r0 {
                return Err(format!(
                    "{id}: step {s1} attempt {a1} ran twice in round {r0}, with no crash between"
                ));
            }
        }
        let mut distinct: Vec<(u32, u32)> = seq.iter().map(|(_, s, a)| (*s, *a)).collect();
        distinct.dedup();
        if distinct != all {
            return Err(format!(
                "{id}: the runs (step, attempt) were {distinct:?}, expected {all:?} (attempts without gaps)"
            ));
        }
        if let Some(done) = acks.completed.get(*id) {
            let last = seq.last().expect("not empty").0;
            if last > *done {
                return Err(format!(
                    "{id}: an activity ran in round {last}, after its completion was acknowledged in round {done}"
                ));
            }
        }
    }
    for id in acks.completed.keys() {
        if !by_instance.contains_key(id.as_str()) {
            return Err(format!("{id}: completed, yet no activity of it ever ran"));
        }
    }
    Ok(())
}

/// The final state as the store holds it: every instance completed, with the right output
/// and each attempt scheduled exactly once in its history.
async fn check_store(dir: &Path, ids: &BTreeSet<String>) -> Result<(), String> {
    let store = FileStore::open(dir).await.map_err(|e| e.to_string())?;
    for id in ids {
        let iid = InstanceId::new(id.clone()).map_err(|e| e.to_string())?;
        let status = store
            .status(&iid)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id}: acknowledged, but missing from the store"))?;
        if status.runtime_status != RuntimeStatus::Completed
            || status.output != Some(expected_output(id))
        {
            return Err(format!("{id}: ended as {status:?}"));
        }
        let history = store.load_history(&iid).await.map_err(|e| e.to_string())?;
        let attempts: Vec<(u32, u32)> = history
            .iter()
            .filter_map(|e| match &e.event {
                Event::TaskScheduled { input, attempt, .. } => {
                    Some((input.as_u64().unwrap_or(0) as u32, *attempt))
                }
                _ => None,
            })
            .collect();
        let expected: Vec<(u32, u32)> = (1..=STEPS)
            .flat_map(|s| {
                let last = if s == FLAKY_STEP {
                    FLAKY_SUCCEEDS_AT
                } else {
                    1
                };
                (1..=last).map(move |a| (s, a))
            })
            .collect();
        if attempts != expected {
            return Err(format!(
                "{id}: the history schedules {attempts:?}, expected {expected:?}"
            ));
        }
    }
    store.close().await;
    Ok(())
}

#[test]
fn sigkill_loses_nothing_acknowledged_and_reruns_nothing_acknowledged() {
    let kills: u64 = std::env::var("DURABLE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MIN_KILLS)
        .max(1);
    let seed: u64 = std::env::var("DURABLE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let run_log = tmp.path().join("runs.log");
    let started = Instant::now();
    let outcome = (|| -> Result<u64, String> {
        let mut rng = Rng(seed);
        let mut acks = Acks::default();
        let mut killed = 0;
        let mut next_id = 0;
        let mut rounds = 0;
        while killed < kills {
            let (from, to) = (next_id, next_id + PER_ROUND);
            next_id = to;
            // Each new instance prints two lines; stop strictly before the last, so the
            // child is alive when killed. A third of the kills come before any line:
            // during recovery, the runtime's start or the first writes.
            let lines = if rng.below(3) == 0 {
                0
            } else {
                rng.below(2 * PER_ROUND)
            };
            let pause = Duration::from_micros(rng.below(if lines == 0 { 30_000 } else { 3_000 }));
            if round(
                &dir,
                &run_log,
                rounds,
                from,
                to,
                Stop::After(lines, pause),
                &mut acks,
            )? {
                killed += 1;
            }
            rounds += 1;
        }
        round(&dir, &run_log, rounds, 0, next_id, Stop::Never, &mut acks)?;
        for (id, round) in &acks.started {
            if acks.missing.contains(id) {
                return Err(format!(
                    "{id}: its start was acknowledged in round {round}, yet it is gone"
                ));
            }
            if !acks.completed.contains_key(id) {
                return Err(format!(
                    "{id}: its start was acknowledged, yet it never completed"
                ));
            }
        }
        if acks.completed.len() + acks.missing.len() != next_id as usize {
            return Err(format!(
                "the last child completed {} and missed {} instances of {next_id}",
                acks.completed.len(),
                acks.missing.len()
            ));
        }
        let ids: BTreeSet<String> = acks.completed.keys().cloned().collect();
        let runs = read_run_log(&run_log)?;
        check_runs(&runs, &acks)?;
        let distinct: BTreeSet<_> = runs.iter().map(|(_, id, s, a)| (id, s, a)).collect();
        eprintln!(
            "crash test: {rounds} rounds, {next_id} instances ({} never started), {} starts and {} completions acknowledged before the last round, {} activity runs ({} repeated after a kill)",
            acks.missing.len(),
            acks.started.values().filter(|r| **r < rounds).count(),
            acks.completed.values().filter(|r| **r < rounds).count(),
            runs.len(),
            runs.len() - distinct.len()
        );
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(check_store(&dir, &ids))?;
        Ok(killed)
    })();
    match outcome {
        Ok(killed) => eprintln!(
            "crash test: {killed} kills in {:?} (seed {seed})",
            started.elapsed()
        ),
        Err(why) => {
            // Keep the evidence.
            let kept = tmp.keep();
            panic!(
                "{why}\n(seed {seed}: rerun with DURABLE_CRASH_SEED={seed}; the data directory and run log are kept in {})",
                kept.display()
            );
        }
    }
}
