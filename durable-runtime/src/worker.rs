//! The loops: take work from the store, run turns and activities, commit, sleep until pushed.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::activity::ActivityContext;
use crate::clock::VirtualClock;
use crate::execution::Execution;
use crate::history::{kinds, AttemptTimes, Event, Failure, HistoryEvent};
use crate::rescue;
use crate::shared::{Shared, TurnGuard};
use crate::stats::Counters;
use crate::store::{
    ActivityLease, ActivityWork, OrchestrationWork, StatusUpdate, StoreError, TurnCommit,
};

/// How long a loop waits before trying a store again after an error.
const STORE_RETRY: Duration = Duration::from_millis(100);

/// Waits until `signal` fires, the store's next wake-up time comes, or the runtime stops.
async fn idle(shared: &Shared, signal: impl Future<Output = ()>) {
    let next = shared.store.next_wakeup().await.ok().flatten();
    let sleep = async {
        match next {
            Some(at) => shared.clock.sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    // Only once the sleep is registered may the test clock see the runtime as quiet.
    let sleep = std::pin::pin!(sleep);
    let stop = shared.stop.notified();
    shared.quiet.notify_one();
    if shared.is_stopping() {
        return;
    }
    tokio::select! {
        _ = signal => {}
        _ = sleep => {}
        _ = stop => {}
    }
}

async fn back_off(shared: &Shared, error: &StoreError) {
    tracing::warn!(target: "durable::worker", %error, "store call failed; trying again");
    let stop = shared.stop.notified();
    tokio::select! {
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

/// An activity result handed straight to the turn it triggers.
struct Delivered {
    lease: ActivityLease,
    result: HistoryEvent,
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
    let Some(running) = shared.enter_turn(&work.instance_id) else {
        return rescue::end_while_running(shared, work, delivered.map(|d| d.lease)).await;
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
            .map(|m| m.event.clone()),
    };
    match AssertUnwindSafe(turn(shared, work, delivered, running))
        .catch_unwind()
        .await
    {
        Ok(committed) => committed,
        Err(panic) => {
            let failure = Failure::new(
                kinds::RUNTIME_PANIC,
                format!(
                    "the runtime panicked while running a turn of this instance: {}",
                    Failure::panic(&*panic).message
                ),
            );
            rescue::fail_after_panic(shared, fence, failure).await;
            false
        }
    }
}

async fn turn(
    shared: &Shared,
    work: OrchestrationWork,
    delivered: Option<Delivered>,
    running: TurnGuard,
) -> bool {
    let _busy = shared.busy();
    let counters = &shared.counters;
    let id = work.instance_id.clone();
    let Some(mut execution) = execution_for(shared, &work, &running).await else {
        shared.cache.remove(&id);
        let _ = shared.store.abandon_orchestration(&id, work.lease).await;
        return false;
    };

    let mut commit = TurnCommit::for_work(&work, StatusUpdate::running());
    let delivered = delivered.map(|Delivered { lease, result }| {
        commit.completed_activities.push(lease);
        result
    });
    let mut inputs = work
        .messages
        .into_iter()
        .map(|m| m.event)
        .chain(delivered)
        .peekable();
    // Late messages for a finished instance are consumed, not delivered.
    let retries = if execution.is_reusable() && inputs.peek().is_some() {
        let now = shared.clock.now();
        before_polling().await;
        let polling = running.polling();
        let retries = execution.run_turn(&shared.registry, now, inputs, &mut commit);
        drop(polling);
        if let (true, Some(failure)) = (execution.is_finished(), &commit.status.failure) {
            tracing::warn!(target: "durable::worker", instance_id = %id, %failure, "orchestration failed");
        }
        retries
    } else {
        commit.status = execution.status_update();
        Vec::new()
    };
    let appended = commit.history.len() as u64;
    // Back in the cache before the commit resolves: the moment the commit releases the lease,
    // the next turn (an activity finishing at once) may want it. Whoever takes it next holds
    // the lease, so our commit went through, or finds another history length and replays.
    execution.history_len += appended;
    if execution.is_reusable() {
        shared.cache.put(&id, execution);
    } else {
        shared.cache.remove(&id);
    }
    // Until the commit releases the lease nobody else can take the instance; from then on
    // another turn of it may start here at once.
    drop(running);
    let committed = shared.store.commit_turn(commit).await;
    if committed.is_err() {
        shared.cache.remove(&id);
    }
    match committed {
        Ok(()) => {
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
            true
        }
        Err(StoreError::Conflict { reason, .. }) => {
            Counters::add(&counters.conflicts, 1);
            tracing::debug!(target: "durable::worker", instance_id = %id, %reason, "turn superseded; the instance will replay");
            let _ = shared.store.abandon_orchestration(&id, work.lease).await;
            false
        }
        Err(error) => {
            tracing::warn!(target: "durable::worker", instance_id = %id, %error, "cannot commit the turn; it will be retried");
            let _ = shared.store.abandon_orchestration(&id, work.lease).await;
            false
        }
    }
}

/// Lets this thread run whatever this task has just woken (tokio keeps the last task a
/// worker wakes in a slot no other worker may steal) before it polls orchestration code,
/// which might never return: a store connection's task left there would be stuck with it.
async fn before_polling() {
    tokio::task::yield_now().await;
}

/// The live execution of a leased instance: from the cache, or rebuilt by replaying its
/// history. `None` if the history cannot be read or moved on meanwhile.
async fn execution_for(
    shared: &Shared,
    work: &OrchestrationWork,
    running: &TurnGuard,
) -> Option<Execution> {
    let counters = &shared.counters;
    let id = &work.instance_id;
    if let Some(execution) = shared
        .cache
        .take(id)
        .filter(|e| e.history_len == work.history_len)
    {
        Counters::add(&counters.cache_hits, 1);
        return Some(execution);
    }
    Counters::add(&counters.cache_misses, 1);
    let history = match shared.store.load_history(id).await {
        Ok(history) => history,
        Err(error) => {
            tracing::warn!(target: "durable::worker", instance_id = %id, %error, "cannot load the history; the turn will be retried");
            return None;
        }
    };
    let mut execution = Execution::new(id.clone());
    if !history.is_empty() {
        Counters::add(&counters.replays, 1);
        Counters::add(&counters.events_replayed, history.len() as u64);
        before_polling().await;
        let _polling = running.polling();
        if let Err(failure) = execution.replay(&shared.registry, &history) {
            tracing::error!(target: "durable::replay", instance_id = %id, %failure, "replay failed");
        }
    }
    // A different length means another worker committed between the lease and the load.
    (execution.history_len == work.history_len).then_some(execution)
}

pub(crate) async fn activity_loop(shared: Arc<Shared>) {
    let signals = shared.store.signals();
    let limit = shared.options.max_concurrent_activities;
    let permits = Arc::new(Semaphore::new(limit));
    let running: Arc<Mutex<HashMap<u64, ActivityLease>>> = Arc::default();
    let mut tasks = JoinSet::new();
    while !shared.is_stopping() {
        while tasks.try_join_next().is_some() {}
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
                let running = Arc::clone(&running);
                running
                    .lock()
                    .unwrap()
                    .insert(work.lease.token, work.lease.clone());
                let in_flight = shared.busy_owned();
                drop(busy);
                tasks.spawn(async move {
                    let token = work.lease.token;
                    run_activity(&shared, work).await;
                    running.lock().unwrap().remove(&token);
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
    let all_done = permits.acquire_many(limit as u32);
    if tokio::time::timeout(shared.options.shutdown_grace, all_done)
        .await
        .is_err()
    {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let abandoned: Vec<_> = running.lock().unwrap().drain().map(|(_, l)| l).collect();
        for lease in abandoned {
            tracing::info!(target: "durable::worker", instance_id = %lease.instance_id, seq = lease.id, "activity abandoned at shutdown; it will run again");
            let _ = shared.store.abandon_activity(&lease).await;
        }
    }
}

async fn run_activity(shared: &Arc<Shared>, work: ActivityWork) {
    let busy = shared.busy();
    Counters::add(&shared.counters.activities, 1);
    let ActivityWork { task, lease } = work;
    let started_at = shared.clock.now();
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
            let run = AssertUnwindSafe(activity(ctx, task.input)).catch_unwind();
            let outcome = match task.timeout {
                None => Some(run.await),
                Some(timeout) => {
                    // Checked when the call was made; saturated for older histories.
                    let deadline = crate::clock::saturating_after(shared.clock.now(), timeout);
                    tokio::select! {
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
        ended_at: shared.clock.now(),
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
            result: event.clone(),
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
                break;
            }
            Err(error) if !shared.is_stopping() => back_off(shared, &error).await,
            // Stopping with a store that fails: the lease expires and the attempt reruns.
            Err(_) => break,
        }
    }
    drop(busy);
}

/// The test clock's driver: whenever the runtime is quiet while a client waits for an
/// instance to finish, jump to the store's next due time.
pub(crate) async fn advance_when_idle(shared: Arc<Shared>, clock: VirtualClock) {
    while !shared.is_stopping() {
        let stop = shared.stop.notified();
        tokio::select! {
            _ = shared.quiet.notified() => {}
            _ = stop => break,
        }
        // Let tasks that were just woken take their work first.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let quiet = || shared.in_flight() == 0 && shared.has_completion_waiters();
        if !quiet() {
            continue;
        }
        let now = clock.now();
        if !matches!(shared.store.has_work(now).await, Ok(false)) {
            shared.quiet.notify_one();
            continue;
        }
        // The store's next wake-up, not the clock's earliest sleeper: a worker may still be
        // sleeping until the expiry of a lease released since.
        if let Ok(Some(next)) = shared.store.next_wakeup().await {
            if next > now && quiet() {
                clock.advance_to(next);
            }
        }
    }
}
