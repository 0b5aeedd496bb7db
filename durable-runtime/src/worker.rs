//! The loops: take work from the store, run turns and activities, commit, sleep until pushed.

use foldhash::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use crate::activity::ActivityContext;
use crate::cache::{Cached, Settled};
use crate::clock::Stopwatch;
use crate::execution::Execution;
use crate::handle::RetryNotice;
use crate::history::{kinds, AttemptTimes, Event, Failure, HistoryEvent};
use crate::limits::unreadable;
use crate::metric;
use crate::rescue;
use crate::shared::{Shared, TurnGuard};
use crate::stats::Counters;
use crate::store::{
    ActivityLease, ActivityWork, OrchestrationWork, StatusUpdate, StoreError, TurnCommit,
};
use crate::telemetry;

/// How long a loop waits before trying a store again after an error.
const STORE_RETRY: Duration = Duration::from_millis(100);

/// Waits until `signal` fires, the store's next wake-up time comes, or the runtime stops.
async fn idle(shared: &Shared, signal: impl Future<Output = ()>) {
    let next = match shared.store.next_wakeup().await {
        Ok(next) => next,
        // Not knowing when the next timer falls due, look again soon: sleeping until the
        // next signal would leave a due timer unfired while nothing else is written.
        Err(error) => {
            tracing::warn!(target: "durable::worker", %error, "cannot read the next wake-up time; looking again soon");
            Some(shared.clock.now() + STORE_RETRY)
        }
    };
    let sleep = async {
        match next {
            Some(at) => shared.clock.sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let sleep = std::pin::pin!(sleep);
    let stop = shared.stop.notified();
    if shared.is_stopping() {
        return;
    }
    // `biased`: every branch ends the wait the same way, and a fixed polling order keeps a
    // run on one thread reproducible (the simulator replays runs from a seed).
    tokio::select! {
        biased;
        _ = signal => {}
        _ = sleep => {}
        _ = stop => {}
    }
}

async fn back_off(shared: &Shared, error: &StoreError) {
    tracing::warn!(target: "durable::worker", %error, "store call failed; trying again");
    pause_before_retry(shared).await;
}

/// The pause after a failed store call, before it is made again (cut short by a stop).
async fn pause_before_retry(shared: &Shared) {
    let stop = shared.stop.notified();
    tokio::select! {
        biased;
        _ = tokio::time::sleep(STORE_RETRY) => {}
        _ = stop => {}
    }
}

pub(crate) async fn orchestration_loop(shared: Arc<Shared>) {
    let watchdog = tokio::spawn(rescue::watch_for_stuck_turns(Arc::clone(&shared)));
    let signals = shared.store.signals();
    let permits = Arc::new(Semaphore::new(shared.options.max_concurrent_turns));
    while !shared.is_stopping() {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let signal = signals.orchestrations.notified();
        let mut signal = std::pin::pin!(signal);
        signal.as_mut().enable();
        let busy = shared.busy();
        let now = shared.clock.now();
        match shared
            .store
            .fetch_orchestration(now, shared.options.orchestration_lease)
            .await
        {
            Ok(Some(work)) => {
                let in_flight = shared.busy_owned();
                drop(busy);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    // Boxed: a turn's future is large, and a task moves its future around.
                    Box::pin(run_turn(&shared, work, None)).await;
                    drop((permit, in_flight));
                });
            }
            Ok(None) => {
                drop(permit);
                drop(busy);
                idle(&shared, signal).await;
            }
            Err(error) => {
                drop(permit);
                drop(busy);
                back_off(&shared, &error).await;
            }
        }
    }
    // Let running turns commit before reporting the loop stopped; a stuck one never will.
    let all_done = permits.acquire_many(shared.options.max_concurrent_turns as u32);
    let _ = tokio::time::timeout(shared.options.shutdown_grace, all_done).await;
    watchdog.abort();
}

/// An activity result handed straight to the turn it triggers (boxed: the turn's futures
/// hold it).
struct Delivered {
    lease: ActivityLease,
    result: Box<HistoryEvent>,
}

/// Runs one turn of a leased instance and commits it; `false` if nothing was committed (the
/// lease is then handed back). A panic of the runtime itself while it works on the turn (a
/// bug in durable or in a store; user code's panics are caught closer) fails the instance:
/// retried, the same panic would come back at every lease, forever.
async fn run_turn(
    shared: &Arc<Shared>,
    work: OrchestrationWork,
    delivered: Option<Delivered>,
) -> bool {
    // The rare paths' futures are boxed: inline, they would make every turn's future (moved
    // into its task or box at each turn) several times larger.
    let Some(running) = shared.enter_turn(&work.instance_id) else {
        let delivered = delivered.map(|d| d.lease);
        return Box::pin(rescue::end_while_running(shared, work, delivered)).await;
    };
    let fence = rescue::Fence {
        instance_id: work.instance_id.clone(),
        lease: work.lease,
        history_len: work.history_len,
        consumed: work.messages.iter().map(|m| m.id).collect(),
        completed: delivered.as_ref().map(|d| d.lease.clone()),
        started: work
            .messages
            .iter()
            .find(|m| matches!(m.event.event, Event::ExecutionStarted { .. }))
            .map(|m| Box::new(m.event.clone())),
    };
    match AssertUnwindSafe(turn(shared, work, delivered, running))
        .catch_unwind()
        .await
    {
        Ok(Ok(committed)) => committed,
        Ok(Err(failure)) => {
            Box::pin(rescue::fail_too_large(shared, fence, failure)).await;
            false
        }
        Err(panic) => {
            let failure = Failure::new(
                kinds::RUNTIME_PANIC,
                format!(
                    "the runtime panicked while running a turn of this instance: {}",
                    Failure::panic(&*panic).message
                ),
            );
            Box::pin(rescue::fail_after_panic(shared, fence, failure)).await;
            false
        }
    }
}

/// Runs one turn and commits it: whether it committed, or the failure to end the instance
/// with when the store refused the turn as too large (its lease is still held).
async fn turn(
    shared: &Shared,
    work: OrchestrationWork,
    delivered: Option<Delivered>,
    running: TurnGuard,
) -> Result<bool, Failure> {
    let _busy = shared.busy();
    let took = Stopwatch::start();
    let counters = &shared.counters;
    let id = work.instance_id.clone();
    // A cached execution whose last commit is known to have gone through is taken without
    // an await; anything else (a replay, a commit not yet answered) goes the boxed way.
    let cached = shared
        .cache
        .take(&id)
        .filter(|c| c.execution.history_len == work.history_len);
    let execution = match cached {
        Some(cached) if cached.commit.answer() == Some(true) => {
            Some(cache_hit(shared, cached.execution))
        }
        cached => Box::pin(execution_for(shared, &work, &running, cached)).await,
    };
    let Some(mut execution) = execution else {
        shared.cache.remove(&id);
        let _ = shared.store.abandon_orchestration(&id, work.lease).await;
        return Ok(false);
    };

    // Late messages for a finished instance are consumed, not delivered.
    let live = execution.is_reusable() && (!work.messages.is_empty() || delivered.is_some());
    let now = shared.clock.now();
    if live {
        before_polling().await;
    }
    let mut commit = TurnCommit::for_work(&work, StatusUpdate::running());
    let delivered = delivered.map(|Delivered { lease, result }| {
        commit.completed_activities.push(lease);
        *result
    });
    let inputs = work.messages.into_iter().map(|m| m.event).chain(delivered);
    let (retries, report) = play(
        shared,
        &mut execution,
        inputs,
        &mut commit,
        live.then_some(now),
        &running,
    );
    let appended = commit.history.len() as u64;
    // Back in the cache before the commit resolves: the moment the commit releases the lease,
    // the next turn (an activity finishing at once) may want it. Whoever takes it next waits
    // for the commit's answer: if it failed (the lease was lost, and another process may
    // have committed a different turn of the same length), it replays instead.
    execution.history_len += appended;
    let (settled, settle) = Settled::pending();
    if execution.is_reusable() {
        shared.cache.put(&id, execution, settled);
    } else {
        shared.cache.remove(&id);
    }
    // Until the commit releases the lease nobody else can take the instance; from then on
    // another turn of it may start here at once.
    drop(running);
    let commit_took = Stopwatch::start();
    let committed = shared.store.commit_turn(commit).await;
    metric::store_commit(commit_took.elapsed());
    settle.resolve(committed.is_ok());
    if committed.is_err() {
        shared.cache.remove(&id);
    }
    match committed {
        Ok(()) => {
            if let Some(report) = report {
                telemetry::committed(&shared.tracing, &id, report);
            }
            metric::turn(took.elapsed());
            Counters::add(&counters.turns, 1);
            Counters::add(&counters.commits, 1);
            Counters::add(&counters.events_committed, appended);
            // Announced only now: a crash before the commit would have lost the retry, and
            // the attempt would have run again instead.
            for retry in retries {
                tracing::info!(
                    target: "durable::retry",
                    instance_id = %id,
                    kind = retry.kind,
                    // Named `activity` for a sub-orchestration too: readers match on it.
                    activity = retry.name,
                    attempt = retry.attempt,
                    delay_ms = retry.delay.as_millis() as u64,
                    error = %retry.error,
                    "{} `{}` failed on attempt {}; retrying in {:?}",
                    retry.kind,
                    retry.name,
                    retry.attempt,
                    retry.delay,
                );
            }
            Ok(true)
        }
        Err(StoreError::TooLarge(reason)) => Err(Failure::new(
            kinds::TOO_LARGE,
            format!("this turn cannot be stored: {reason}"),
        )),
        Err(StoreError::Conflict { reason, .. }) => {
            Counters::add(&counters.conflicts, 1);
            metric::stale_commit_refused("turn");
            tracing::debug!(target: "durable::worker", instance_id = %id, %reason, "turn superseded; the instance will replay");
            let _ = shared.store.abandon_orchestration(&id, work.lease).await;
            Ok(false)
        }
        Err(error) => {
            tracing::warn!(target: "durable::worker", instance_id = %id, %error, "cannot commit the turn; it will be retried");
            Box::pin(pause_before_retry(shared)).await;
            let _ = shared.store.abandon_orchestration(&id, work.lease).await;
            Ok(false)
        }
    }
}

/// Runs a turn's code over `inputs` at `live` (`None`: the instance is finished or replaced,
/// and its late messages are consumed, not delivered), writing the turn into `commit`.
/// Returns the retries to announce and the telemetry to report once it is committed.
fn play(
    shared: &Shared,
    execution: &mut Execution,
    inputs: impl Iterator<Item = HistoryEvent>,
    commit: &mut TurnCommit,
    live: Option<SystemTime>,
    running: &TurnGuard,
) -> (Vec<RetryNotice>, Option<telemetry::TurnReport>) {
    let Some(now) = live else {
        commit.status = execution.status_update();
        return (Vec::new(), None);
    };
    let polling = running.polling();
    let retries = execution.run_turn(&shared.registry, now, inputs, commit);
    drop(polling);
    if let (true, Some(failure)) = (execution.is_finished(), &commit.status.failure) {
        tracing::warn!(target: "durable::worker", instance_id = %commit.instance_id, %failure, "orchestration failed");
    }
    let telemetry = &mut execution.telemetry;
    let report = telemetry::turn(&shared.tracing, telemetry, commit, now);
    (retries, Some(report))
}

/// Lets this thread run whatever this task has just woken (tokio keeps the last task a
/// worker wakes in a slot no other worker may steal) before it polls orchestration code,
/// which might never return: a store connection's task left there would be stuck with it.
async fn before_polling() {
    tokio::task::yield_now().await;
}

/// A cached execution serving the next turn.
fn cache_hit(shared: &Shared, execution: Box<Execution>) -> Box<Execution> {
    Counters::add(&shared.counters.cache_hits, 1);
    metric::cache(true);
    execution
}

/// The live execution of a leased instance: `cached` once its last commit is known to have
/// gone through, or rebuilt by replaying its history. `None` if the history cannot be read
/// or moved on meanwhile.
async fn execution_for(
    shared: &Shared,
    work: &OrchestrationWork,
    running: &TurnGuard,
    cached: Option<Cached>,
) -> Option<Box<Execution>> {
    let counters = &shared.counters;
    let id = &work.instance_id;
    if let Some(cached) = cached {
        // Usually answered already: this lease was taken after that commit released the
        // last one. If the commit failed, another turn of the same length took its place.
        if cached.commit.committed().await {
            return Some(cache_hit(shared, cached.execution));
        }
    }
    Counters::add(&counters.cache_misses, 1);
    metric::cache(false);
    // A new instance has nothing to load: its history starts with this turn.
    let loaded = if work.history_len == 0 {
        Ok(Vec::new())
    } else {
        shared.store.load_history(id).await
    };
    let history = match loaded {
        Ok(history) => history,
        // A record written before the payload limits, or damaged: the instance fails with
        // the reason instead of being retried for ever.
        Err(StoreError::Corrupt(error)) => {
            tracing::error!(target: "durable::worker", instance_id = %id, %error, "the history cannot be read; the instance fails");
            let failure = unreadable("the history", error);
            let execution = Execution::failing(id.clone(), work.history_len, failure);
            return Some(Box::new(execution));
        }
        Err(error) => {
            tracing::warn!(target: "durable::worker", instance_id = %id, %error, "cannot load the history; the turn will be retried");
            // Not at once: the lease is handed back after a pause, so that a store whose
            // reads keep failing is not asked again in a tight loop.
            pause_before_retry(shared).await;
            return None;
        }
    };
    let mut execution = Box::new(Execution::new(id.clone()).with_limits(shared.options.limits));
    if !history.is_empty() {
        Counters::add(&counters.replays, 1);
        Counters::add(&counters.events_replayed, history.len() as u64);
        let took = Stopwatch::start();
        before_polling().await;
        let _polling = running.polling();
        if let Err(failure) = execution.replay(&shared.registry, &history) {
            tracing::error!(target: "durable::replay", instance_id = %id, %failure, "replay failed");
        }
        metric::replay(took.elapsed());
        execution.telemetry.replayed(&history);
    }
    // A different length means another worker committed between the lease and the load.
    (execution.history_len == work.history_len).then_some(execution)
}

pub(crate) async fn activity_loop(shared: Arc<Shared>) {
    let signals = shared.store.signals();
    let limit = shared.options.max_concurrent_activities;
    let permits = Arc::new(Semaphore::new(limit));
    // Attempts under way, by lease token: each task removes its own entry when it ends.
    let running: Arc<Mutex<HashMap<u64, (ActivityLease, AbortHandle)>>> = Arc::default();
    while !shared.is_stopping() {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let signal = signals.activities.notified();
        let mut signal = std::pin::pin!(signal);
        signal.as_mut().enable();
        let busy = shared.busy();
        let now = shared.clock.now();
        match shared
            .store
            .fetch_activity(now, shared.options.activity_lease)
            .await
        {
            Ok(Some(work)) => {
                let shared = Arc::clone(&shared);
                let token = work.lease.token;
                let lease = work.lease.clone();
                let in_flight = shared.busy_owned();
                drop(busy);
                // Registered under the lock the task takes to remove itself: it cannot end
                // before its entry is in. A plain task, not a `JoinSet`'s: nothing joins it
                // but the shutdown, which aborts what is left and waits for the permits.
                let mut entries = running.lock().unwrap();
                let running = Arc::clone(&running);
                let task = tokio::spawn(async move {
                    run_activity(&shared, work, now).await;
                    running.lock().unwrap().remove(&token);
                    drop((permit, in_flight));
                });
                entries.insert(token, (lease, task.abort_handle()));
            }
            Ok(None) => {
                drop(permit);
                drop(busy);
                idle(&shared, signal).await;
            }
            Err(StoreError::UnreadableTask { lease, error }) => {
                drop(permit);
                fail_unreadable_task(&shared, lease, error).await;
                drop(busy);
            }
            Err(error) => {
                drop(permit);
                drop(busy);
                back_off(&shared, &error).await;
            }
        }
    }
    let all_done = permits.acquire_many(limit as u32);
    if tokio::time::timeout(shared.options.shutdown_grace, all_done)
        .await
        .is_err()
    {
        for (_, task) in running.lock().unwrap().values() {
            task.abort();
        }
        // Every task holds a permit until it is dropped, aborted or not.
        let _ = permits.acquire_many(limit as u32).await;
        let abandoned: Vec<_> = running
            .lock()
            .unwrap()
            .drain()
            .map(|(_, (lease, _))| lease)
            .collect();
        for lease in abandoned {
            tracing::info!(target: "durable::worker", instance_id = %lease.instance_id, seq = lease.id, "activity abandoned at shutdown; it will run again");
            let _ = shared.store.abandon_activity(&lease).await;
        }
    }
}

/// Completes an attempt whose task cannot be read as failed: the instance decides what
/// follows, as for any failed attempt.
async fn fail_unreadable_task(shared: &Shared, lease: ActivityLease, error: String) {
    tracing::error!(target: "durable::worker", instance_id = %lease.instance_id, seq = lease.id, %error, "an activity attempt cannot be read; it fails");
    let failure = unreadable(format_args!("activity attempt {}", lease.id), error);
    let event = HistoryEvent::new(Event::TaskFailed {
        id: lease.id,
        failure,
    });
    // If this fails, the lease expires and the attempt is handed out (and failed) again.
    if let Err(error) = shared.store.complete_activity(&lease, event).await {
        tracing::warn!(target: "durable::worker", instance_id = %lease.instance_id, %error, "cannot fail an unreadable activity attempt; it will be tried again");
    }
}

/// Runs an attempt leased at `leased_at`. One that has not started half a lease later (the
/// process stalled: paused, or starved of CPU) is not started but given back: another worker
/// may have taken it over and run it since, and its result been committed.
async fn run_activity(shared: &Arc<Shared>, work: ActivityWork, leased_at: SystemTime) {
    let half_lease = shared.options.activity_lease / 2;
    if shared.clock.now() >= crate::clock::saturating_after(leased_at, half_lease) {
        tracing::info!(target: "durable::worker", instance_id = %work.lease.instance_id, seq = work.lease.id, "an activity attempt waited past half its lease to start; given back, it runs again");
        let _ = shared.store.abandon_activity(&work.lease).await;
        return;
    }
    let busy = shared.busy();
    Counters::add(&shared.counters.activities, 1);
    let ActivityWork { task, lease } = work;
    let started_at = shared.clock.now();
    let took = Stopwatch::start();
    let span = shared
        .tracing
        .attempt(&*shared.store, &task, started_at)
        .await;
    let result = match shared.registry.activity(&task.name) {
        None => Err(Failure::new(
            kinds::NOT_REGISTERED,
            format!(
                "no activity `{}` is registered with this runtime",
                task.name
            ),
        )),
        Some(activity) => {
            let ctx = ActivityContext::new(
                task.instance_id.clone(),
                task.name.clone(),
                task.id,
                task.attempt,
            );
            let run = {
                // The code's future is made inside the span too: spans it opens then are
                // the attempt's children.
                let _current = span.enter();
                span.instrument(AssertUnwindSafe(activity(ctx, task.input)).catch_unwind())
            };
            let run = while_owned(shared, &lease, run);
            let outcome = match task.timeout {
                None => Some(run.await),
                Some(timeout) => {
                    // Checked when the call was made; saturated for older histories.
                    // `biased`: an attempt that finished in the poll its timeout fell due
                    // counts as finished, whatever the seed.
                    let deadline = crate::clock::saturating_after(shared.clock.now(), timeout);
                    tokio::select! {
                        biased;
                        outcome = run => Some(outcome),
                        _ = shared.clock.sleep_until(deadline) => None,
                    }
                }
            };
            match outcome {
                Some(Ok(result)) => result,
                Some(Err(panic)) => Err(Failure::panic(&*panic)),
                None => Err(Failure::new(
                    kinds::TIMEOUT,
                    format!(
                        "activity `{}` ran longer than its timeout of {:?}",
                        task.name,
                        task.timeout.unwrap_or_default()
                    ),
                )),
            }
        }
    };
    // An output over the limits fails this attempt: stored, it might not read back. A
    // failure's message is cut to the size limit.
    let limits = &shared.options.limits;
    let result = result
        .and_then(|output| {
            let what = format_args!("the output of activity `{}`", task.name);
            limits.check_produced(&output, what)?;
            Ok(output)
        })
        .map_err(|failure| limits.trim(failure));
    let ended_at = shared.clock.now();
    metric::activity(&task.name, outcome(&result), took.elapsed());
    span.end(&result, ended_at);
    let mut event = HistoryEvent::new(match result {
        Ok(output) => Event::TaskCompleted {
            id: task.id,
            output,
        },
        Err(failure) => Event::TaskFailed {
            id: task.id,
            failure,
        },
    });
    event.attempt = Some(AttemptTimes {
        started_at,
        ended_at,
    });
    // Commit the result together with the turn it triggers when the instance is free: one
    // store write instead of two. Otherwise it waits in the instance's inbox.
    let now = shared.clock.now();
    let lease_for = shared.options.orchestration_lease;
    if let Ok(Some(work)) = shared
        .store
        .lease_orchestration(&lease.instance_id, now, lease_for)
        .await
    {
        let delivered = Delivered {
            lease: lease.clone(),
            result: Box::new(event.clone()),
        };
        if Box::pin(run_turn(shared, work, Some(delivered))).await {
            drop(busy);
            return;
        }
    }
    loop {
        match shared.store.complete_activity(&lease, event.clone()).await {
            Ok(()) => break,
            Err(StoreError::Conflict { reason, .. }) => {
                tracing::debug!(target: "durable::worker", instance_id = %lease.instance_id, %reason, "activity result discarded");
                metric::stale_commit_refused("activity");
                break;
            }
            Err(error) if !shared.is_stopping() => Box::pin(back_off(shared, &error)).await,
            // Stopping with a store that fails: the lease expires and the attempt reruns.
            Err(_) => break,
        }
    }
    drop(busy);
}
/// An attempt's outcome, as the activity metrics label it.
fn outcome(result: &Result<serde_json::Value, Failure>) -> &'static str {
    match result {
        Ok(_) => "completed",
        Err(failure) if failure.kind == kinds::PANIC => "panicked",
        Err(failure) if failure.kind == kinds::TIMEOUT => "timed_out",
        Err(failure) if failure.kind == kinds::NOT_REGISTERED => "not_registered",
        Err(_) => "failed",
    }
}

/// Runs `attempt` while renewing its lease well inside its term, so that an attempt is
/// owned for as long as it runs (its timeout included); a worker that dies stops renewing,
/// and another takes the attempt one lease later.
async fn while_owned<F: Future>(shared: &Shared, lease: &ActivityLease, attempt: F) -> F::Output {
    tokio::select! {
        biased;
        output = attempt => output,
        never = keep_activity_lease(shared, lease) => match never {},
    }
}

/// Renews `lease` every third of its term, until dropped. Once the lease is found lost it
/// stops, says so, and waits forever: the attempt runs on unowned, and its result is refused
/// if another worker took the attempt meanwhile.
async fn keep_activity_lease(shared: &Shared, lease: &ActivityLease) -> std::convert::Infallible {
    let term = shared.options.activity_lease;
    let every = (term / 3).max(Duration::from_millis(1));
    let mut next = shared.clock.now() + every;
    loop {
        shared.clock.sleep_until(next).await;
        let now = shared.clock.now();
        match shared.store.renew_activity(lease, now, term).await {
            Ok(()) => next = now + every,
            Err(StoreError::Conflict { reason, .. }) => {
                tracing::warn!(
                    target: "durable::worker",
                    instance_id = %lease.instance_id,
                    seq = lease.id,
                    %reason,
                    "activity lease lost: this attempt is no longer owned and may run \
                     elsewhere; its result counts only if nobody took the attempt since"
                );
                return std::future::pending().await;
            }
            Err(error) => {
                // The lease still runs: try again soon, while it does.
                tracing::warn!(target: "durable::worker", instance_id = %lease.instance_id, seq = lease.id, %error, "cannot renew the activity lease; trying again");
                next = now + STORE_RETRY.min(every);
            }
        }
    }
}
