//! Shrinking a failing scenario to a small one that still fails, for its regression test:
//! with its store's and disk's fault schedules written out (so that it keeps reproducing after
//! the random draws change: [`crate::shrink_seed`]), greedily and until nothing more can go,
//! roots, client actions, crashes, clock jumps, operations (inner ones too) and single faults
//! (of the store, of the disk) removed.

use crate::disk::{DiskPlan, FileChoice, StoreChoice};
use crate::faults::FaultPlan;
use crate::program::{self, Op};
use crate::sim::{run, Report, Scenario};

/// The smallest scenario the greedy passes reach from `scenario` for which `fails` still
/// holds (`fails(scenario)` must): each pass takes the first one-step reduction that still
/// fails, until none does or `budget` candidates have been tried.
pub fn shrink(
    scenario: &Scenario,
    mut fails: impl FnMut(&Scenario) -> bool,
    budget: usize,
) -> Scenario {
    let mut best = scenario.clone();
    let mut tried = 0;
    'passes: loop {
        for candidate in reductions(&best) {
            if tried == budget {
                break 'passes;
            }
            tried += 1;
            if fails(&candidate) {
                best = candidate;
                continue 'passes;
            }
        }
        break;
    }
    best
}

/// Every one-step reduction of `s`, the largest steps first.
fn reductions(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    if s.roots.len() > 1 {
        for i in 0..s.roots.len() {
            let mut c = s.clone();
            c.roots.remove(i);
            out.push(c);
        }
    }
    if s.crashes > 0 {
        out.push(Scenario {
            crashes: 0,
            ..s.clone()
        });
    }
    if s.jumps > 0 {
        out.push(Scenario {
            jumps: 0,
            ..s.clone()
        });
    }
    for (i, root) in s.roots.iter().enumerate() {
        if root.suspend.is_some() || root.terminate_ms.is_some() {
            let mut c = s.clone();
            (c.roots[i].suspend, c.roots[i].terminate_ms) = (None, None);
            out.push(c);
        }
        for path in op_paths(&root.ops) {
            let mut c = s.clone();
            remove_op(&mut c.roots[i].ops, &path);
            // Not a cut that leaves a wait for a gate that never opens.
            if program::ends(&c.roots[i].ops) {
                out.push(c);
            }
        }
    }
    if let FaultPlan::Script(faults) = &s.faults {
        for call in faults.keys() {
            let mut c = s.clone();
            if let FaultPlan::Script(faults) = &mut c.faults {
                faults.remove(call);
            }
            out.push(c);
        }
    }
    if let StoreChoice::File(FileChoice {
        disk: DiskPlan::Script(faults),
        ..
    }) = &s.store
    {
        for op in faults.keys() {
            let mut c = s.clone();
            if let StoreChoice::File(FileChoice {
                disk: DiskPlan::Script(faults),
                ..
            }) = &mut c.store
            {
                faults.remove(op);
            }
            out.push(c);
        }
    }
    out
}

/// The path (indices through `Child` programs) of every op of `ops`, outer ones first.
fn op_paths(ops: &[Op]) -> Vec<Vec<usize>> {
    let mut paths: Vec<Vec<usize>> = (0..ops.len()).map(|i| vec![i]).collect();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Child { ops: inner } = op {
            paths.extend(op_paths(inner).into_iter().map(|mut p| {
                p.insert(0, i);
                p
            }));
        }
    }
    paths
}

fn remove_op(ops: &mut Vec<Op>, path: &[usize]) {
    match path {
        [i] => {
            ops.remove(*i);
        }
        [i, rest @ ..] => {
            if let Op::Child { ops: inner } = &mut ops[*i] {
                remove_op(inner, rest);
            }
        }
        [] => {}
    }
}

/// The shrunk scenario of the failing `seed`, which fails the same way with the same seed
/// (its first broken invariant is among those of the shrunk run), its fault schedule written
/// out; `Err` if the seed passes, or fails only with faults a schedule does not replay (those
/// on lease renewals come from a stream of their own).
pub fn shrink_seed(seed: u64, budget: usize) -> Result<(Scenario, Report), String> {
    shrink_run(seed, &Scenario::generate(seed), budget)
}

/// As [`shrink_seed`], for `scenario` run with `seed`.
pub fn shrink_run(
    seed: u64,
    scenario: &Scenario,
    budget: usize,
) -> Result<(Scenario, Report), String> {
    let mut scenario = scenario.clone();
    let report = run(seed, &scenario);
    let Some(first) = report.violations.first() else {
        return Err(format!("seed {seed} passes: nothing to shrink"));
    };
    let wanted = signature(first);
    let same_failure = |s: &Scenario| {
        run(seed, s)
            .violations
            .iter()
            .any(|v| signature(v) == wanted)
    };
    scenario.faults = FaultPlan::Script(report.injected.iter().copied().collect());
    if let StoreChoice::File(file) = &mut scenario.store {
        file.disk = DiskPlan::Script(report.disk_injected.iter().copied().collect());
    }
    if !same_failure(&scenario) {
        return Err(format!(
            "seed {seed} no longer fails with its faults written out as a schedule (a fault on \
             a lease renewal may be needed): keep its seed; it failed with {first}"
        ));
    }
    let shrunk = shrink(&scenario, same_failure, budget);
    let report = run(seed, &shrunk);
    Ok((shrunk, report))
}

/// What kind of broken invariant `violation` reports: its words up to the first colon or
/// parenthesis, without numbers (instance ids and counts vary as a scenario shrinks).
fn signature(violation: &str) -> String {
    let end = violation.find([':', '(']).unwrap_or(violation.len());
    violation[..end]
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::faults::Fault;
    use crate::program::CallSpec;
    use crate::sim::Root;

    fn call(k: u32) -> Op {
        Op::Call(CallSpec {
            k,
            fail_until: 0,
            attempts: 1,
        })
    }

    /// A scenario "fails" while some root sleeps inside a child and fault 7 is scheduled:
    /// everything else goes, and no cut leaves a wait for a gate that never opens.
    #[test]
    fn shrinking_keeps_only_what_the_failure_needs() {
        let root = |ops| Root {
            ops,
            start_ms: 300,
            suspend: Some((10, 20)),
            terminate_ms: Some(5_000),
        };
        let scenario = Scenario {
            roots: vec![
                root(vec![call(1), Op::Gate { g: 1 }]),
                root(vec![
                    call(1),
                    Op::Child {
                        ops: vec![call(2), Op::Sleep { secs: 3 }, Op::Status { s: 1 }],
                    },
                    Op::Sleep { secs: 1 },
                    Op::Gate { g: 2 },
                    Op::Wait {
                        g: 2,
                        timeout_secs: None,
                    },
                ]),
            ],
            faults: FaultPlan::Script(BTreeMap::from([
                (3, Fault::FailBefore),
                (7, Fault::Delay(5)),
                (9, Fault::Yield(2)),
            ])),
            crashes: 2,
            jumps: 1,
            cache_capacity: 2,
            concurrency: 1,
            long_activities: 0.03,
            store: StoreChoice::Memory,
        };
        let fails = |s: &Scenario| {
            // A gate is never cut from under its wait.
            assert!(s.roots.iter().all(|r| program::ends(&r.ops)), "{s:#?}");
            let sleeps_in_child = s.roots.iter().any(|r| {
                r.ops.iter().any(
                    |op| matches!(op, Op::Child { ops } if ops.contains(&Op::Sleep { secs: 3 })),
                )
            });
            let fault_7 = matches!(&s.faults, FaultPlan::Script(f) if f.contains_key(&7));
            sleeps_in_child && fault_7
        };
        let shrunk = shrink(&scenario, fails, 10_000);
        assert!(fails(&shrunk));
        assert_eq!(
            shrunk.roots,
            vec![Root {
                ops: vec![Op::Child {
                    ops: vec![Op::Sleep { secs: 3 }]
                }],
                start_ms: 300,
                suspend: None,
                terminate_ms: None,
            }]
        );
        assert_eq!(
            shrunk.faults,
            FaultPlan::Script(BTreeMap::from([(7, Fault::Delay(5))]))
        );
        assert_eq!((shrunk.crashes, shrunk.jumps), (0, 0));
        // A budget stops it early, with a scenario that still fails.
        let early = shrink(&scenario, fails, 3);
        assert!(fails(&early));
        assert_ne!(early, shrunk);
    }

    #[test]
    fn a_signature_ignores_numbers_and_details() {
        assert_eq!(
            signature("root-3 ended Running with output 1 (failure: None)"),
            signature("root-0 ended Running with output 27 (failure: Some(..))")
        );
        assert_ne!(
            signature("stuck: instances have not ended"),
            signature("livelock: the runtime kept working")
        );
    }
}
