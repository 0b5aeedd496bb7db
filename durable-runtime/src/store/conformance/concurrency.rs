//! Concurrency: many workers, each turn and attempt exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::support::*;
use crate::history::{Event, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::status::RuntimeStatus;
use crate::store::Store;

const INSTANCES: usize = 200;
const WORKERS: usize = 8;

#[derive(Default)]
struct Ledger {
    /// Instances currently leased by some worker.
    held: HashSet<InstanceId>,
    /// Per instance: the events each committed turn consumed.
    turns: HashMap<InstanceId, Vec<Vec<HistoryEvent>>>,
    /// Per instance: the history length committed so far.
    lengths: HashMap<InstanceId, u64>,
    /// Attempts handed out.
    attempts: HashSet<(InstanceId, u64)>,
}

fn ledger(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

const HOUR: Duration = Duration::from_secs(3_600);

fn is_start(event: &HistoryEvent) -> bool {
    matches!(event.event, Event::ExecutionStarted { .. })
}

/// An orchestration worker: schedules `schedule` attempts on the start, finishes its instance
/// once `needs` other messages were consumed, and checks that no instance is leased twice at
/// once and that each fetch's `history_len` is the history length committed so far.
async fn orchestration_worker<S: Store>(
    store: Arc<S>,
    ledger_: Arc<Mutex<Ledger>>,
    done: Arc<AtomicUsize>,
    needs: usize,
    schedule: u64,
) {
    while done.load(Ordering::SeqCst) < INSTANCES {
        let work = ok(
            store.fetch_orchestration(t(0), HOUR).await,
            "concurrent fetch_orchestration",
        );
        let Some(work) = work else {
            tokio::task::yield_now().await;
            continue;
        };
        let id = work.instance_id.clone();
        let delivered = events(&work);
        let consumed_before = {
            let mut l = ledger(&ledger_);
            assert!(
                l.held.insert(id.clone()),
                "`{id}` was leased by two workers at once"
            );
            let length = l.lengths.get(&id).copied().unwrap_or(0);
            assert_eq!(
                work.history_len, length,
                "`{id}`: the fetched history_len should be the history length committed so far"
            );
            l.turns.get(&id).map_or(0, |turns| {
                turns.iter().flatten().filter(|e| !is_start(e)).count()
            })
        };
        assert!(
            !delivered.is_empty(),
            "`{id}` was handed out with no message"
        );
        let mut commit_ = turn(&work, t(0));
        if delivered.iter().any(is_start) {
            let tasks: Vec<_> = (0..schedule).map(|seq| task(&id, seq)).collect();
            commit_ = with_activities(commit_, &tasks);
        }
        let total = consumed_before + delivered.iter().filter(|e| !is_start(e)).count();
        assert!(
            total <= needs,
            "`{id}` received more messages than were sent: {delivered:?}"
        );
        let finishing = total == needs;
        if finishing {
            commit_ = completing(commit_);
        }
        {
            let mut l = ledger(&ledger_);
            l.held.remove(&id);
            *l.lengths.entry(id.clone()).or_default() += commit_.history.len() as u64;
            l.turns.entry(id.clone()).or_default().push(delivered);
        }
        ok(
            store.commit_turn(commit_).await,
            &format!("concurrent commit_turn of `{id}` (no lease can expire here)"),
        );
        if finishing {
            done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// An activity worker: completes every attempt it gets, checking none is handed out twice.
async fn activity_worker<S: Store>(
    store: Arc<S>,
    ledger_: Arc<Mutex<Ledger>>,
    done: Arc<AtomicUsize>,
) {
    while done.load(Ordering::SeqCst) < INSTANCES {
        let work = ok(
            store.fetch_activity(t(0), HOUR).await,
            "concurrent fetch_activity",
        );
        let Some(work) = work else {
            tokio::task::yield_now().await;
            continue;
        };
        let key = (work.lease.instance_id.clone(), work.lease.id);
        assert!(
            ledger(&ledger_).attempts.insert(key.clone()),
            "attempt {key:?} was handed out twice"
        );
        ok(
            store
                .complete_activity(&work.lease, task_completed(work.task.id))
                .await,
            &format!("concurrent complete_activity of {key:?}"),
        );
    }
}

/// Joins every task, propagating the first panic; fails if they take longer than `STUCK`.
async fn join_all(mut tasks: tokio::task::JoinSet<()>, done: &AtomicUsize, what: &str) {
    let joined = tokio::time::timeout(STUCK, async {
        while let Some(result) = tasks.join_next().await {
            if let Err(error) = result {
                if error.is_panic() {
                    std::panic::resume_unwind(error.into_panic());
                }
                panic!("{what}: a task failed: {error}");
            }
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "{what}: stuck after {STUCK:?} with {} of {INSTANCES} instances finished (lost messages?)",
        done.load(Ordering::SeqCst)
    );
}

fn concurrent_ids() -> Vec<InstanceId> {
    (0..INSTANCES).map(|i| iid(&format!("c-{i:03}"))).collect()
}

/// Checks the end state of a concurrency check: every instance completed, every message
/// consumed exactly once, the histories as committed, and no work left.
async fn assert_all_finished<S: Store>(
    store: &S,
    ledger_: &Mutex<Ledger>,
    expected_messages: impl Fn(&InstanceId) -> Vec<HistoryEvent>,
) {
    let turns = std::mem::take(&mut ledger(ledger_).turns);
    for id in concurrent_ids() {
        let status = status(store, &id, "after the concurrent run").await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "`{id}` should have completed"
        );
        let mut consumed: Vec<HistoryEvent> = turns
            .get(&id)
            .map(|t| t.iter().flatten().cloned().collect())
            .unwrap_or_default();
        let mut expected = expected_messages(&id);
        let key = |e: &HistoryEvent| serde_json::to_string(e).unwrap_or_default();
        consumed.sort_by_key(key);
        expected.sort_by_key(key);
        assert_eq!(
            consumed, expected,
            "`{id}`: every message should be consumed exactly once"
        );
        let history = history(store, &id, "after the concurrent run").await;
        let turn_count = turns.get(&id).map_or(0, Vec::len);
        let started = history
            .iter()
            .filter(|e| matches!(e.event, Event::OrchestratorStarted { .. }))
            .count();
        assert_eq!(
            started, turn_count,
            "`{id}`: the history should hold each committed turn exactly once"
        );
        let completions = history
            .iter()
            .filter(|e| matches!(e.event, Event::ExecutionCompleted { .. }))
            .count();
        assert_eq!(completions, 1, "`{id}`: exactly one completion");
    }
    fetch_none(store, t(0), "after the concurrent run").await;
    fetch_activity_none(store, t(0), "after the concurrent run").await;
    assert_eq!(store.has_work(t(0)).await, Ok(false), "no work is left");
}

/// Many instances created, sent an event and driven by several concurrent workers: every
/// message is consumed by exactly one committed turn, and no instance is leased twice at once.
pub async fn concurrent_orchestration_workers_commit_each_turn_once<S: Store>(store: Arc<S>) {
    let ledger_ = Arc::new(Mutex::new(Ledger::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..4 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let ids: Vec<_> = concurrent_ids()
                .into_iter()
                .skip(client)
                .step_by(4)
                .collect();
            for id in &ids {
                ok(
                    store.create_instance(new_instance(id, NAME, t(0))).await,
                    "concurrent create_instance",
                );
            }
            for id in &ids {
                ok(
                    store
                        .send(id, raised("poke", json!(id.as_str())), None)
                        .await,
                    "concurrent send",
                );
            }
        });
    }
    for _ in 0..WORKERS {
        tasks.spawn(orchestration_worker(
            Arc::clone(&store),
            Arc::clone(&ledger_),
            Arc::clone(&done),
            1,
            0,
        ));
    }
    join_all(tasks, &done, "concurrent orchestration workers").await;
    assert_all_finished(&*store, &ledger_, |id| {
        vec![
            new_instance(id, NAME, t(0)).start,
            raised("poke", json!(id.as_str())),
        ]
    })
    .await;
}

/// Many instances each scheduling two activities, with concurrent orchestration and activity
/// workers: every attempt is handed out once and its result consumed once.
pub async fn concurrent_activity_workers_run_each_attempt_once<S: Store>(store: Arc<S>) {
    let ledger_ = Arc::new(Mutex::new(Ledger::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..4 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for id in concurrent_ids().into_iter().skip(client).step_by(4) {
                ok(
                    store.create_instance(new_instance(&id, NAME, t(0))).await,
                    "concurrent create_instance",
                );
            }
        });
    }
    for _ in 0..WORKERS {
        tasks.spawn(orchestration_worker(
            Arc::clone(&store),
            Arc::clone(&ledger_),
            Arc::clone(&done),
            2,
            2,
        ));
        tasks.spawn(activity_worker(
            Arc::clone(&store),
            Arc::clone(&ledger_),
            Arc::clone(&done),
        ));
    }
    join_all(tasks, &done, "concurrent activity workers").await;
    assert_eq!(
        ledger(&ledger_).attempts.len(),
        2 * INSTANCES,
        "every attempt should be handed out exactly once"
    );
    assert_all_finished(&*store, &ledger_, |id| {
        vec![
            new_instance(id, NAME, t(0)).start,
            task_completed(0),
            task_completed(1),
        ]
    })
    .await;
}
