//! The simulation in CI: many seeds, each reproducible from its seed alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use durable_sim::{reproduce_command, run_seed, Report};

fn describe(report: &Report) -> String {
    format!(
        "seed {} failed ({} store calls, {} faults, {} disk faults, {} crashes, trace \
         {:016x}):\n  - {}\nreproduce it bit for bit with:\n  {}\nshrink it for a regression \
         test with:\n  DURABLE_SIM_SHRINK={} cargo test -p durable-sim --test sim -- shrink \
         --nocapture",
        report.seed,
        report.store_calls,
        report.injected.len(),
        report.disk_injected.len(),
        report.crashes,
        report.trace,
        report.violations.join("\n  - "),
        reproduce_command(report.seed),
        report.seed,
    )
}

/// Seeds run by `cargo test` (CI): 10,000 on 2 threads.
const SEEDS_IN_CI: u64 = 10_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Seeds `first..first + count` (`DURABLE_SIM_FIRST`, `DURABLE_SIM_SEEDS`; `DURABLE_SIM_SEEDS=0`
/// runs until stopped), on `DURABLE_SIM_THREADS` threads (2), printing seeds per second.
#[test]
fn seeds() {
    let first = env_u64("DURABLE_SIM_FIRST").unwrap_or(0);
    let count = env_u64("DURABLE_SIM_SEEDS").unwrap_or(SEEDS_IN_CI);
    let threads = env_u64("DURABLE_SIM_THREADS").unwrap_or(2).max(1);
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (done, failures) = (&done, &failures);
            scope.spawn(move || {
                let mut seed = first + thread;
                while count == 0 || seed < first + count {
                    let report = run_seed(seed);
                    if !report.passed() {
                        eprintln!("{}", describe(&report));
                        failures.lock().unwrap().push(seed);
                    }
                    seed += threads;
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 1_000 == 0 {
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!(
                            "{n} seeds in {secs:.0} s ({:.0} seeds/s), {} failed",
                            n as f64 / secs,
                            failures.lock().unwrap().len()
                        );
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    eprintln!(
        "{n} seeds from {first} in {secs:.1} s on {threads} threads ({:.0} seeds/s)",
        n as f64 / secs
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "failed seeds: {failures:?}");
}

/// The seed in `DURABLE_SIM_SEED`, run twice: the same trace both times.
#[test]
fn one_seed() {
    let Some(seed) = env_u64("DURABLE_SIM_SEED") else {
        return;
    };
    let scenario = durable_sim::Scenario::generate(seed);
    eprintln!("{scenario:#?}");
    let first = run_seed(seed);
    let second = run_seed(seed);
    eprintln!(
        "trace {:016x} / {:016x}, {} events",
        first.trace, second.trace, first.trace_len
    );
    eprintln!("faults: {:?}", first.injected);
    eprintln!("disk faults: {:?}", first.disk_injected);
    assert_eq!(first.trace, second.trace, "the seed did not reproduce");
    assert!(first.passed(), "{}", describe(&first));
}

/// Shrinks the failing seed `DURABLE_SIM_SHRINK` and prints the smallest scenario that still
/// fails the same way, as JSON, for a regression test (`tests/regressions/*.json`).
#[test]
fn shrink() {
    let Some(seed) = env_u64("DURABLE_SIM_SHRINK") else {
        return;
    };
    match durable_sim::shrink_seed(seed, SHRINK_BUDGET) {
        Ok((scenario, report)) => {
            eprintln!(
                "seed {seed} shrunk; it fails with:\n  - {}",
                report.violations.join("\n  - ")
            );
            println!("{}", serde_json::to_string_pretty(&scenario).unwrap());
        }
        Err(why) => panic!("{why}"),
    }
}

/// Candidate scenarios a shrink tries at most.
const SHRINK_BUDGET: usize = 2_000;

/// Prints the scenario of `DURABLE_SIM_SEED` with its fault schedule written out, as a
/// regression test keeps it (`tests/regressions/*.json`).
#[test]
fn scenario_json() {
    let Some(seed) = env_u64("DURABLE_SIM_SCENARIO") else {
        return;
    };
    let mut scenario = durable_sim::Scenario::generate(seed);
    let report = durable_sim::run(seed, &scenario);
    scenario.faults = durable_sim::faults::FaultPlan::Script(report.injected.into_iter().collect());
    if let durable_sim::disk::StoreChoice::File(file) = &mut scenario.store {
        file.disk = durable_sim::disk::DiskPlan::Script(report.disk_injected.into_iter().collect());
    }
    println!("{}", serde_json::to_string_pretty(&scenario).unwrap());
}

/// A seed replays bit for bit: the same trace hash twice, with faults and crashes.
#[test]
fn a_seed_reproduces_bit_for_bit() {
    for seed in [3, 40, 84, 937] {
        let (first, second) = (run_seed(seed), run_seed(seed));
        assert!(first.trace_len > 100, "seed {seed} did little");
        assert_eq!(
            (first.trace, first.trace_len, first.store_calls),
            (second.trace, second.trace_len, second.store_calls),
            "seed {seed} did not reproduce"
        );
    }
}
