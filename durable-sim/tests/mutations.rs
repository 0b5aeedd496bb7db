//! The simulator finds real bugs: each mutation planted in the runtime (compiled in with
//! `--features mutations`, switched on here) must fail a seed within a stated bound.
//!
//! `cargo test -p durable-sim --features mutations --test mutations -- --nocapture`

#![cfg(feature = "mutations")]

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use durable_runtime::store::mutations;
use durable_sim::{run, run_seed, shrink_run, shrink_seed, Scenario};

/// The mutation switches are global to the process: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The first failing seed in `0..bound`.
fn first_failure(bound: u64) -> Option<(u64, Vec<String>)> {
    (0..bound).find_map(|seed| {
        let report = run_seed(seed);
        (!report.passed()).then_some((seed, report.violations))
    })
}

/// The first failing seed in `0..bound` of the scenarios aimed at generations.
fn first_aba_failure(bound: u64) -> Option<(u64, Vec<String>)> {
    (0..bound).find_map(|seed| {
        let report = run(seed, &Scenario::generation_aba(seed));
        (!report.passed()).then_some((seed, report.violations))
    })
}

/// A stale lease token accepted, caught by the scenarios aimed at generations: an old run
/// of generation N's call completes with its expired lease while generation N + 1 awaits
/// its own call at the same sequence number, and the stale result is accepted for it. The
/// same seeds pass without the mutation first, so what fails them is the mutation. (One
/// test: the switch is global to the process.)
#[test]
fn a_stale_lease_accepted_is_caught_across_generations() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        first_aba_failure(ABA_BOUND),
        None,
        "the aimed seeds fail unmutated"
    );
    mutations::STALE_LEASE.store(true, Ordering::Relaxed);
    let found = first_aba_failure(ABA_BOUND);
    mutations::STALE_LEASE.store(false, Ordering::Relaxed);
    let (seed, violations) = found.unwrap_or_else(|| {
        panic!("no aimed seed in 0..{ABA_BOUND} caught a stale lease token accepted")
    });
    eprintln!("stale lease accepted: caught by aimed seed {seed}: {violations:#?}");

    // The shrinker keeps the failure while it cuts the scenario down; unmutated, the shrunk
    // scenario passes: it still points at the planted bug.
    mutations::STALE_LEASE.store(true, Ordering::Relaxed);
    let aimed = Scenario::generation_aba(seed);
    let shrunk = shrink_run(seed, &aimed, 500);
    mutations::STALE_LEASE.store(false, Ordering::Relaxed);
    let (shrunk, report) = shrunk.expect("the caught seed shrinks");
    assert!(!report.passed(), "the shrunk scenario no longer fails");
    assert!(
        shrunk.roots[0].ops.len() < aimed.roots[0].ops.len(),
        "nothing was cut: {shrunk:#?}"
    );
    assert!(
        run(seed, &shrunk).passed(),
        "the shrunk scenario fails unmutated"
    );
    eprintln!(
        "shrunk from {} ops to {:?}",
        aimed.roots[0].ops.len(),
        shrunk.roots[0].ops
    );
}

/// Aimed scenarios within which the mutation must be caught.
const ABA_BOUND: u64 = 200;

/// A stale lease token accepted, on the general seeds (run alone: `-- --ignored`).
///
/// Not caught by them: no seed in 0..2,000 fails with it (measured: 482 s). A turn is fenced by
/// the history length as well as by the token, so a stale token changes an outcome only when
/// the length comes back to the same value (continue-as-new) or an activity's sequence
/// number is reused by the next generation while the old attempt still runs, which the
/// general workload rarely does: the aimed scenarios above do.
#[test]
#[ignore = "the simulation does not catch this mutation within its bound yet"]
fn a_stale_lease_accepted_is_caught() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Without the mutation the same seeds pass (the CI test runs them too).
    mutations::STALE_LEASE.store(true, Ordering::Relaxed);
    let found = first_failure(STALE_LEASE_BOUND);
    mutations::STALE_LEASE.store(false, Ordering::Relaxed);
    let (seed, violations) = found.unwrap_or_else(|| {
        panic!("no seed in 0..{STALE_LEASE_BOUND} caught a stale lease token accepted")
    });
    eprintln!("stale lease accepted: caught by seed {seed}: {violations:#?}");
}

/// Seeds within which the mutation must be caught.
const STALE_LEASE_BOUND: u64 = 2_000;

/// The file store acknowledges a batch once written, before its fsync (which comes with the
/// next batch): a power cut then loses acknowledged writes (the run ends with a power cut,
/// and crashes in it are power cuts seven times in ten). The same seeds pass without the
/// mutation first, so what fails them is the mutation.
#[test]
fn an_ack_before_fsync_is_caught() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        first_failure(ACK_BEFORE_FSYNC_BOUND),
        None,
        "the seeds fail unmutated"
    );
    mutations::ACK_BEFORE_FSYNC.store(true, Ordering::Relaxed);
    let found = first_failure(ACK_BEFORE_FSYNC_BOUND);
    mutations::ACK_BEFORE_FSYNC.store(false, Ordering::Relaxed);
    let (seed, violations) = found.unwrap_or_else(|| {
        panic!("no seed in 0..{ACK_BEFORE_FSYNC_BOUND} caught an ack before its fsync")
    });
    eprintln!("ack before fsync: caught by seed {seed}: {violations:#?}");

    // Shrunk with its disk's faults written out, it still fails mutated and passes unmutated.
    mutations::ACK_BEFORE_FSYNC.store(true, Ordering::Relaxed);
    let shrunk = shrink_seed(seed, 300);
    mutations::ACK_BEFORE_FSYNC.store(false, Ordering::Relaxed);
    let (shrunk, report) = shrunk.expect("the caught seed shrinks");
    assert!(!report.passed(), "the shrunk scenario no longer fails");
    assert!(
        run(seed, &shrunk).passed(),
        "the shrunk scenario fails unmutated"
    );
    let ops = |s: &Scenario| s.roots.iter().map(|r| r.ops.len()).sum::<usize>();
    eprintln!(
        "shrunk from {} ops to {}: {:?}",
        ops(&Scenario::generate(seed)),
        ops(&shrunk),
        shrunk.store
    );
}

/// Seeds within which the mutation must be caught (half of the seeds run on the file store).
const ACK_BEFORE_FSYNC_BOUND: u64 = 20;
