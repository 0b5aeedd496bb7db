//! Bugs the simulator found, each replayed from its shrunk program and fault schedule (not
//! from its seed, which stops reproducing once the random draws change).

use std::collections::BTreeMap;

use durable_sim::disk::{DiskFault, DiskPlan, FileChoice, StoreChoice};
use durable_sim::faults::{Fault, FaultPlan};
use durable_sim::program::{CallSpec, Op};
use durable_sim::{run, Root, Scenario};

fn one_root(ops: Vec<Op>, faults: BTreeMap<u64, Fault>) -> Scenario {
    Scenario {
        roots: vec![Root {
            ops,
            start_ms: 0,
            suspend: None,
            terminate_ms: None,
        }],
        faults: FaultPlan::Script(faults),
        crashes: 0,
        jumps: 0,
        cache_capacity: 1_000,
        concurrency: 256,
        long_activities: 0.03,
        store: durable_sim::disk::StoreChoice::Memory,
    }
}

fn passes(scenario: &Scenario) {
    let report = run(0, scenario);
    assert!(report.passed(), "{:#?}", report.violations);
}

/// The orchestration loop read the next wake-up time, the read failed, and the loop slept
/// until the next signal: the sleep's timer was never fired (seed 40 before the fix).
#[test]
fn a_failed_wakeup_read_does_not_lose_a_timer() {
    passes(&one_root(
        vec![Op::Sleep { secs: 5 }],
        BTreeMap::from([(WAKEUP_AFTER_FIRST_TURN, Fault::FailBefore)]),
    ));
}

/// The store call of the orchestration loop's `next_wakeup` right after the first turn
/// (which creates the timer) commits, in the run above without faults.
const WAKEUP_AFTER_FIRST_TURN: u64 = 12;

/// A scenario kept as JSON (its programs and fault schedule), run with the seed that draws
/// the rest (crash points, clock jumps, activity durations).
fn kept(file: &str, seed: u64) {
    let path = format!("{}/tests/regressions/{file}", env!("CARGO_MANIFEST_DIR"));
    let json = std::fs::read_to_string(&path).unwrap();
    let scenario: Scenario = serde_json::from_str(&json).unwrap();
    let report = run(seed, &scenario);
    assert!(report.passed(), "{path}: {:#?}", report.violations);
}

/// After a crash, the activity loop's fetch made a due timer's instance ready (the
/// in-memory and file stores promote due work inside any fetch) without signalling the
/// orchestration loop, which had read `next_wakeup` just before and slept for good (seed
/// 937 before the fix).
#[test]
fn work_fallen_due_inside_a_fetch_is_signalled() {
    kept("promoted_work_signalled.json", 937);
}

/// An attempt outlived its lease and ran twice; the second run's result was committed with
/// the turn it triggered, which continued as new. When the first run finished, its worker
/// leased the instance and fed the stale result to the new generation, whose sequence number
/// 0 is an event wait: a panic (`unreachable!`) inside the turn (seed 7805, no faults; seed
/// 3273 with faults, before the fix).
#[test]
fn a_stale_result_after_continue_as_new_is_ignored() {
    kept("stale_result_after_continue_as_new.json", 7805);
}

/// As above, but the new generation's event wait had received its event earlier in the same
/// turn: the stale result replaced it (seed 42825 before the fix).
#[test]
fn a_stale_result_does_not_replace_a_result_of_the_same_turn() {
    kept("stale_result_after_an_event.json", 42825);
}

/// The worker renews an attempt's lease every third of a lease, so virtual deadlines fell
/// between milliseconds; tokio's timers tick in whole milliseconds, rounded up, so the
/// runtime's 100 ms back-off after a store error ended a fraction of a millisecond after
/// the simulator had moved both clocks past it, and the run stalled with work ready (seed 40,
/// shrunk; seeds 7, 567, 877 and 1490 before the fix, in the simulator's `advance_to`).
#[test]
fn a_back_off_ends_when_the_clock_passes_it() {
    kept("backoff_after_a_fraction_of_a_millisecond.json", 40);
}

/// A terminate arrived while a slow commit of the same instance was in flight here: the
/// turn that ended the instance without its code was counted as a commit but not as a turn,
/// and `Stats` did not add up (seed 165, shrunk).
#[test]
fn a_turn_without_the_code_counts_as_a_turn() {
    kept("turn_without_code_counted.json", 165);
}

/// A child started as its root was terminated had an empty history (its first turn had not
/// committed) when the run ended, and the end-of-run check handed it to the replay checker,
/// which refused it as "not a history" (seed 8498, shrunk).
#[test]
fn a_child_before_its_first_turn_has_nothing_to_replay() {
    kept("child_before_its_first_turn.json", 8498);
}

/// A terminate was sent while a turn that continued as new was being committed: the new
/// generation's start landed behind it in the inbox, a work carried the terminate alone, and
/// the instance ended before its code ran, with a history without `ExecutionStarted` that
/// the replay checker refused as "not a history" (seed 180063 of the long mode, shrunk; 282919
/// too). Such a history has nothing to replay (fixed in `ReplayChecker`).
#[test]
fn an_instance_ended_before_a_new_generation_started_replays() {
    kept("terminated_before_a_new_generation_started.json", 180063);
}

/// A failed fsync left a batch in the page cache that never reached the disk (Linux may
/// drop such pages and report later fsyncs as successful, while reads still show them);
/// the rewrite to a new segment failed on a full disk; the process crashed. The store,
/// reopened, replayed the batch from the cache and acknowledged later batches after it;
/// the power cut at the end took it away: a gap in the batches, and the store refused to
/// open (seeds 1124, 1588, 2073, ... of the file store before the fix). The writer now cuts
/// a segment back to what was synced after a failed write or fsync.
#[test]
fn a_batch_whose_fsync_failed_is_not_replayed_after_a_restart() {
    let call = |k| {
        Op::Call(CallSpec {
            k,
            fail_until: 0,
            attempts: 1,
        })
    };
    let mut scenario = one_root(vec![call(1), call(2), call(3), call(4)], BTreeMap::new());
    scenario.crashes = 1;
    // Disk operations: the first batch creates, writes (header, batch), syncs the segment
    // and the directory (1-5); the second writes (6) and fails its fsync (7); its rewrite
    // finds the disk full from its creation on (8), until the crash.
    scenario.store = StoreChoice::File(FileChoice {
        disk: DiskPlan::Script(BTreeMap::from([
            (7, DiskFault::SyncError),
            (
                8,
                DiskFault::Full {
                    ops: 1_000,
                    permille: 0,
                },
            ),
        ])),
        segment_size: 1 << 20,
        checkpoint_bytes: 1 << 30,
    });
    // Seed 0 draws a process crash (not a power cut) while the disk is full.
    let report = run(0, &scenario);
    assert_eq!(
        report.crashes, 1,
        "the crash the regression needs did not happen"
    );
    assert!(report.passed(), "{:#?}", report.violations);
}

/// The process was killed between a batch's write and its fsync. The store, restarted,
/// replayed the batch from the page cache and acknowledged later batches after it; the
/// power cut at the end took the unsynced batch away: a gap in the batches, and the store
/// refused to open (file seeds 4, 8, 22, 24, 67, ... once the disk could kill, before the
/// fix). Recovery now syncs what it replays before taking work.
#[test]
fn a_batch_never_synced_before_a_kill_is_synced_before_it_is_built_on() {
    let call = |k| {
        Op::Call(CallSpec {
            k,
            fail_until: 0,
            attempts: 1,
        })
    };
    let mut scenario = one_root(vec![call(1), call(2), call(3), call(4)], BTreeMap::new());
    // Disk operations: the first batch creates, writes (header, batch), syncs the segment
    // and the directory (1-5); the second is written (6), and the process is killed before
    // its fsync (7).
    scenario.store = StoreChoice::File(FileChoice {
        disk: DiskPlan::Script(BTreeMap::from([(7, DiskFault::Kill)])),
        segment_size: 1 << 20,
        checkpoint_bytes: 1 << 30,
    });
    let report = run(0, &scenario);
    assert_eq!(report.crashes, 1, "the kill did not crash the process");
    assert!(report.passed(), "{:#?}", report.violations);
}
