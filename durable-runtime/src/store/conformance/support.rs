//! What the checks share: the timeline, fixtures, and calls that fail with context.

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::history::{CompletionStatus, Event, Failure, HistoryEvent, SpanParent};
use crate::instance_id::InstanceId;
use crate::status::{InstanceStatus, RuntimeStatus};
use crate::store::{
    ActivityTask, ActivityWork, NewInstance, NewTimer, OrchestrationWork, StatusUpdate, Store,
    StoreError, TurnCommit,
};

/// The lease every check takes unless it tests expiry.
pub(super) const LEASE: Duration = Duration::from_secs(60);
/// How long a check waits for a notification before calling it missing.
pub(super) const SIGNAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a concurrency check may take before it is declared stuck.
pub(super) const STUCK: Duration = Duration::from_secs(60);
pub(super) const NAME: &str = "conformance";

/// A fixed instant, `secs` seconds into the kit's timeline.
pub(super) fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

#[track_caller]
pub(super) fn iid(id: &str) -> InstanceId {
    InstanceId::new(id).unwrap_or_else(|e| panic!("`{id}` should be a valid id: {e}"))
}

pub(super) fn new_instance(id: &InstanceId, name: &str, created_at: SystemTime) -> NewInstance {
    let input = json!({ "for": id.as_str(), "nested": [1, 2.5, "é✓", null, true, { "k": "v" }] });
    NewInstance {
        status: InstanceStatus {
            instance_id: id.clone(),
            name: name.into(),
            version: 3,
            runtime_status: RuntimeStatus::Pending,
            created_at,
            last_updated_at: created_at,
            input: input.clone(),
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: name.into(),
            version: 3,
            input,
            seed: 42,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        }),
        start_at: None,
        replace_finished: false,
    }
}

pub(super) fn raised(name: &str, data: Value) -> HistoryEvent {
    HistoryEvent::new(Event::EventRaised {
        name: name.into(),
        data,
    })
}

pub(super) fn started(now: SystemTime) -> HistoryEvent {
    HistoryEvent::new(Event::OrchestratorStarted { timestamp: now })
}

pub(super) fn timer_fired(id: u64, fire_at: SystemTime) -> HistoryEvent {
    HistoryEvent::new(Event::TimerFired { id, fire_at })
}

pub(super) fn task_completed(id: u64) -> HistoryEvent {
    HistoryEvent::new(Event::TaskCompleted {
        id,
        output: json!({ "result": id }),
    })
}

pub(super) fn task(instance: &InstanceId, id: u64) -> ActivityTask {
    ActivityTask {
        instance_id: instance.clone(),
        id,
        name: format!("activity-{id}"),
        input: json!({ "n": id, "text": "ünïcødé" }),
        attempt: 1,
        timeout: Some(Duration::from_secs(30)),
        // Both forms, with a parent span and without (as stored before it was carried).
        parent_span: id.is_multiple_of(2).then_some(SpanParent {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736 + u128::from(id),
            span_id: 0x00f0_67aa_0ba9_02b7,
        }),
    }
}

pub(super) fn events(work: &OrchestrationWork) -> Vec<HistoryEvent> {
    work.messages.iter().map(|m| m.event.clone()).collect()
}

/// A turn that records and consumes everything `work` delivered and leaves the instance
/// `Running`.
pub(super) fn turn(work: &OrchestrationWork, now: SystemTime) -> TurnCommit {
    let mut commit = TurnCommit::for_work(work, StatusUpdate::running());
    commit.history = std::iter::once(started(now))
        .chain(work.messages.iter().map(|m| m.event.clone()))
        .collect();
    commit
}

/// `commit` made into the instance's last turn, ending `Completed`.
pub(super) fn completing(mut commit: TurnCommit) -> TurnCommit {
    commit
        .history
        .push(HistoryEvent::new(Event::ExecutionCompleted {
            status: CompletionStatus::Completed,
            output: Some(json!("done")),
            failure: None,
        }));
    commit.status = StatusUpdate {
        runtime_status: RuntimeStatus::Completed,
        output: Some(json!("done")),
        custom_status: None,
        failure: None,
        input: None,
    };
    commit
}

/// `commit` with timers added (and their `TimerCreated` events).
pub(super) fn with_timers(mut commit: TurnCommit, timers: &[(u64, SystemTime)]) -> TurnCommit {
    for &(id, fire_at) in timers {
        commit
            .history
            .push(HistoryEvent::new(Event::TimerCreated { id, fire_at }));
        commit.timers.push(NewTimer { id, fire_at });
    }
    commit
}

/// `commit` with activities added (and their `TaskScheduled` events).
pub(super) fn with_activities(mut commit: TurnCommit, tasks: &[ActivityTask]) -> TurnCommit {
    for task in tasks {
        commit.history.push(HistoryEvent::new(Event::TaskScheduled {
            id: task.id,
            name: task.name.clone(),
            input: task.input.clone(),
            attempt: task.attempt,
        }));
        commit.activities.push(task.clone());
    }
    commit
}

#[track_caller]
pub(super) fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: unexpected error {error:?} ({error})"),
    }
}

#[track_caller]
pub(super) fn assert_conflict<T: fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("{what}: expected Err(Conflict {{ .. }}), got {other:?}"),
    }
}

pub(super) async fn create<S: Store>(store: &S, id: &str, created_at: SystemTime) -> InstanceId {
    let id = iid(id);
    ok(
        store
            .create_instance(new_instance(&id, NAME, created_at))
            .await,
        &format!("create_instance(`{id}`)"),
    );
    id
}

pub(super) async fn fetch<S: Store>(store: &S, now: SystemTime, what: &str) -> OrchestrationWork {
    ok(
        store.fetch_orchestration(now, LEASE).await,
        &format!("{what}: fetch_orchestration"),
    )
    .unwrap_or_else(|| panic!("{what}: fetch_orchestration returned None, expected work"))
}

pub(super) async fn fetch_none<S: Store>(store: &S, now: SystemTime, what: &str) {
    let work = ok(
        store.fetch_orchestration(now, LEASE).await,
        &format!("{what}: fetch_orchestration"),
    );
    assert!(
        work.is_none(),
        "{what}: fetch_orchestration should return None, got {work:?}"
    );
}

pub(super) async fn lease<S: Store>(
    store: &S,
    id: &InstanceId,
    now: SystemTime,
    what: &str,
) -> OrchestrationWork {
    ok(
        store.lease_orchestration(id, now, LEASE).await,
        &format!("{what}: lease_orchestration(`{id}`)"),
    )
    .unwrap_or_else(|| {
        panic!("{what}: lease_orchestration(`{id}`) returned None for an idle instance")
    })
}

pub(super) async fn commit<S: Store>(store: &S, commit: TurnCommit, what: &str) {
    ok(
        store.commit_turn(commit).await,
        &format!("{what}: commit_turn"),
    );
}

pub(super) async fn fetch_activity<S: Store>(
    store: &S,
    now: SystemTime,
    lease_for: Duration,
    what: &str,
) -> ActivityWork {
    ok(
        store.fetch_activity(now, lease_for).await,
        &format!("{what}: fetch_activity"),
    )
    .unwrap_or_else(|| panic!("{what}: fetch_activity returned None, expected an attempt"))
}

pub(super) async fn fetch_activity_none<S: Store>(store: &S, now: SystemTime, what: &str) {
    let work = ok(
        store.fetch_activity(now, LEASE).await,
        &format!("{what}: fetch_activity"),
    );
    assert!(
        work.is_none(),
        "{what}: fetch_activity should return None, got {work:?}"
    );
}

pub(super) async fn history<S: Store>(store: &S, id: &InstanceId, what: &str) -> Vec<HistoryEvent> {
    ok(
        store.load_history(id).await,
        &format!("{what}: load_history(`{id}`)"),
    )
}

pub(super) async fn status<S: Store>(store: &S, id: &InstanceId, what: &str) -> InstanceStatus {
    ok(store.status(id).await, &format!("{what}: status(`{id}`)"))
        .unwrap_or_else(|| panic!("{what}: status(`{id}`) is None for an existing instance"))
}

/// Creates `id` at `t(0)` and commits its first turn: `Running`, idle, no messages.
pub(super) async fn running<S: Store>(store: &S, id: &str) -> InstanceId {
    let id = create(store, id, t(0)).await;
    let work = lease(store, &id, t(0), "first turn").await;
    commit(store, turn(&work, t(0)), "first turn").await;
    id
}

/// Creates `id` and commits a first turn that schedules `count` activities.
pub(super) async fn scheduling<S: Store>(
    store: &S,
    id: &str,
    count: u64,
) -> (InstanceId, Vec<ActivityTask>) {
    let id = create(store, id, t(0)).await;
    let tasks: Vec<_> = (0..count).map(|seq| task(&id, seq)).collect();
    let work = lease(store, &id, t(0), "scheduling turn").await;
    commit(
        store,
        with_activities(turn(&work, t(0)), &tasks),
        "scheduling turn",
    )
    .await;
    (id, tasks)
}

/// Leases `id` and commits a turn that finishes it with `status`.
pub(super) async fn finish<S: Store>(
    store: &S,
    id: &InstanceId,
    now: SystemTime,
    status: RuntimeStatus,
) {
    let work = lease(store, id, now, "finishing turn").await;
    let mut commit_ = completing(turn(&work, now));
    commit_.status.runtime_status = status;
    if status == RuntimeStatus::Failed {
        commit_.status.output = None;
        commit_.status.failure = Some(Failure::new("boom", "it broke"));
    }
    commit(store, commit_, "finishing turn").await;
}

/// Awaits `notify` after `write`, with the waiter registered before the write.
pub(super) async fn expect_signal<Fut: Future>(
    notify: &Notify,
    what: &str,
    write: Fut,
) -> Fut::Output {
    let notified = std::pin::pin!(notify.notified());
    let mut notified = notified;
    notified.as_mut().enable();
    let output = write.await;
    assert!(
        tokio::time::timeout(SIGNAL_TIMEOUT, notified).await.is_ok(),
        "{what}: the work signal was not notified within {SIGNAL_TIMEOUT:?}"
    );
    output
}
