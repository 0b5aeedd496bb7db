//! The store conformance suite: every [`Store`] implementation runs it.
//!
//! Each check is a `pub async fn` taking a fresh, empty store (`Arc<S>`) and panicking with the
//! check's name and what went wrong. [`run_all`] runs every check, each on a new store from a
//! factory, and reports all failures at once; [`checks`] lists them so an implementer can run
//! them one by one (for instance one `#[tokio::test]` per check, or with an async factory).
//!
//! The kit tests the contract documented on [`Store`] and nothing of any store's internals. It
//! passes time in explicitly: every `now` is a fixed instant (whole seconds after
//! 2023-11-14T22:13:20Z), it never sleeps and never reads the wall clock. Notifications are
//! awaited with a generous one-second `tokio::time::timeout`: a check only fails when a signal
//! never arrives. The kit needs a Tokio runtime with the time driver; the concurrency checks
//! spawn tasks, so a multi-threaded runtime exercises them best.
//!
//! ```no_run
//! use std::sync::Arc;
//! use durable_runtime::store::{conformance, MemoryStore};
//!
//! # async fn demo() {
//! // Everything at once, each check on a new store:
//! conformance::run_all(MemoryStore::new).await;
//! // Or one check:
//! conformance::commit_with_stale_lease_conflicts_and_changes_nothing(Arc::new(MemoryStore::new()))
//!     .await;
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{
    ActivityLease, ActivityTask, ActivityWork, InstanceQuery, InstanceStatus, NewInstance,
    NewTimer, OrchestrationWork, OutgoingMessage, RuntimeStatus, StatusUpdate, Store, StoreError,
    TurnCommit,
};
use crate::history::{CompletionStatus, Event, Failure, HistoryEvent};
use crate::instance_id::InstanceId;

// ---------------------------------------------------------------------------------------------
// Running the kit
// ---------------------------------------------------------------------------------------------

/// One named check of the kit.
pub struct Check<S> {
    /// The check's name: the name of its `pub async fn`.
    pub name: &'static str,
    run: fn(Arc<S>) -> BoxFuture<'static, ()>,
}

impl<S: Store> Check<S> {
    #[doc(hidden)]
    pub fn __new(name: &'static str, run: fn(Arc<S>) -> BoxFuture<'static, ()>) -> Self {
        Check { name, run }
    }

    /// Runs the check on `store`, which must be new and empty; panics if the store fails it.
    pub fn run(&self, store: Arc<S>) -> BoxFuture<'static, ()> {
        (self.run)(store)
    }
}

impl<S> fmt::Debug for Check<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// Calls `$callback!` with every check's name: the one list of the kit.
#[doc(hidden)]
#[macro_export]
macro_rules! __durable_store_checks {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {
            ($($args)*)
            create_and_status_round_trip,
            create_twice_is_already_exists,
            unknown_instance_is_not_found,
            ids_are_plain_keys,
            start_message_is_delivered_with_a_lease,
            leased_instance_is_not_handed_out_twice,
            messages_sent_while_leased_are_delivered_after_commit,
            message_order_is_preserved,
            commit_appends_history_across_turns,
            history_round_trips_every_event_kind,
            history_round_trips_floats_exactly,
            commit_consumes_only_listed_messages,
            commit_updates_status,
            commit_with_stale_lease_conflicts_and_changes_nothing,
            commit_with_wrong_version_conflicts_and_changes_nothing,
            expired_lease_is_taken_over_and_old_holder_is_fenced,
            abandon_makes_messages_deliverable_again,
            delayed_send_is_delivered_from_visible_at,
            timer_fires_at_fire_at,
            next_wakeup_reports_earliest_timer_and_lease,
            cancelled_timer_is_not_delivered,
            finishing_drops_timers_and_inbox,
            timer_due_while_leased_is_delivered_after_commit,
            abandoned_fired_timer_is_delivered_again,
            activities_are_handed_out_once_with_a_lease,
            activity_result_is_delivered_to_the_instance,
            activity_completion_with_stale_lease_conflicts,
            expired_activity_lease_is_handed_out_again,
            abandoned_activity_is_handed_out_again,
            activity_result_for_finished_instance_is_dropped,
            completed_activities_commit_with_the_turn,
            completed_activities_with_stale_lease_conflict_and_change_nothing,
            lease_orchestration_leases_idle_instances_only,
            send_to_finished_instance_is_refused,
            has_work_reflects_ready_messages_and_activities,
            list_filters_by_status_name_and_creation_time,
            list_pages_return_every_instance_once_in_order,
            list_of_nothing_is_empty,
            purge_only_finished_instances,
            purged_id_can_be_reused,
            watch_status_sees_status_changes,
            signals_wake_orchestration_workers,
            signals_wake_activity_workers,
            concurrent_orchestration_workers_commit_each_turn_once,
            concurrent_activity_workers_run_each_attempt_once,
            scheduled_start_is_delivered_at_start_at,
            replace_finished_recreates_only_finished_instances,
            sub_instances_are_created_with_the_turn,
            messages_reach_other_instances_with_the_turn,
            replace_history_drops_the_old_generation,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __durable_named_checks {
    (($store:ty) $($name:ident,)*) => {
        vec![$($crate::store::conformance::Check::<$store>::__new(
            stringify!($name),
            |store| ::futures::FutureExt::boxed($crate::store::conformance::$name(store)),
        )),*]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __durable_store_test_fns {
    (($new_store:expr) $($name:ident,)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::store::conformance::$name(::std::sync::Arc::new($new_store)).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per check of the kit, each on a store made by `$new_store`
/// (an expression, evaluated once per test), so a failure names its check. The calling crate
/// needs `tokio` (with the `macros` and `rt-multi-thread` features) among its
/// dev-dependencies.
///
/// ```ignore
/// durable_runtime::store_conformance_tests!(durable_runtime::store::MemoryStore::new());
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($new_store:expr) => {
        $crate::__durable_store_checks!(__durable_store_test_fns!($new_store));
    };
}

/// Every check of the kit, in a stable order.
pub fn checks<S: Store>() -> Vec<Check<S>> {
    crate::__durable_store_checks!(__durable_named_checks!(S))
}

/// Runs every check, each on a new store from `new_store`; panics listing every failed check.
pub async fn run_all<S: Store, F: FnMut() -> S>(new_store: F) {
    run_all_except(new_store, &[]).await
}

/// Runs every check but those named in `skip` (known failures), each on a new store from
/// `new_store`; panics listing every failed check, or if `skip` names no check.
pub async fn run_all_except<S: Store, F: FnMut() -> S>(mut new_store: F, skip: &[&str]) {
    let all = checks::<S>();
    for name in skip {
        assert!(
            all.iter().any(|c| c.name == *name),
            "store conformance: `{name}` in the skip list is not a check of the kit"
        );
    }
    let mut failures = Vec::new();
    for check in all.iter().filter(|c| !skip.contains(&c.name)) {
        let outcome = AssertUnwindSafe(check.run(Arc::new(new_store())))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            failures.push(format!("  {}: {}", check.name, panic_message(&*panic)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} store conformance check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".into())
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The lease every check takes unless it tests expiry.
const LEASE: Duration = Duration::from_secs(60);
/// How long a check waits for a notification before calling it missing.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a concurrency check may take before it is declared stuck.
const STUCK: Duration = Duration::from_secs(60);
const NAME: &str = "conformance";

/// A fixed instant, `secs` seconds into the kit's timeline.
fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

#[track_caller]
fn iid(id: &str) -> InstanceId {
    InstanceId::new(id).unwrap_or_else(|e| panic!("`{id}` should be a valid id: {e}"))
}

fn new_instance(id: &InstanceId, name: &str, created_at: SystemTime) -> NewInstance {
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

fn raised(name: &str, data: Value) -> HistoryEvent {
    HistoryEvent::new(Event::EventRaised {
        name: name.into(),
        data,
    })
}

fn started(now: SystemTime) -> HistoryEvent {
    HistoryEvent::new(Event::OrchestratorStarted { timestamp: now })
}

fn timer_fired(id: u64, fire_at: SystemTime) -> HistoryEvent {
    HistoryEvent::new(Event::TimerFired { id, fire_at })
}

fn task_completed(id: u64) -> HistoryEvent {
    HistoryEvent::new(Event::TaskCompleted {
        id,
        output: json!({ "result": id }),
    })
}

fn task(instance: &InstanceId, id: u64) -> ActivityTask {
    ActivityTask {
        instance_id: instance.clone(),
        id,
        name: format!("activity-{id}"),
        input: json!({ "n": id, "text": "ünïcødé" }),
        attempt: 1,
        timeout: Some(Duration::from_secs(30)),
    }
}

fn events(work: &OrchestrationWork) -> Vec<HistoryEvent> {
    work.messages.iter().map(|m| m.event.clone()).collect()
}

/// A turn that records and consumes everything `work` delivered and leaves the instance
/// `Running`.
fn turn(work: &OrchestrationWork, now: SystemTime) -> TurnCommit {
    let mut commit = TurnCommit::for_work(work, StatusUpdate::running());
    commit.history = std::iter::once(started(now))
        .chain(work.messages.iter().map(|m| m.event.clone()))
        .collect();
    commit
}

/// `commit` made into the instance's last turn, ending `Completed`.
fn completing(mut commit: TurnCommit) -> TurnCommit {
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
fn with_timers(mut commit: TurnCommit, timers: &[(u64, SystemTime)]) -> TurnCommit {
    for &(id, fire_at) in timers {
        commit
            .history
            .push(HistoryEvent::new(Event::TimerCreated { id, fire_at }));
        commit.timers.push(NewTimer { id, fire_at });
    }
    commit
}

/// `commit` with activities added (and their `TaskScheduled` events).
fn with_activities(mut commit: TurnCommit, tasks: &[ActivityTask]) -> TurnCommit {
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
fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: unexpected error {error:?} ({error})"),
    }
}

#[track_caller]
fn assert_conflict<T: fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("{what}: expected Err(Conflict {{ .. }}), got {other:?}"),
    }
}

async fn create<S: Store>(store: &S, id: &str, created_at: SystemTime) -> InstanceId {
    let id = iid(id);
    ok(
        store
            .create_instance(new_instance(&id, NAME, created_at))
            .await,
        &format!("create_instance(`{id}`)"),
    );
    id
}

async fn fetch<S: Store>(store: &S, now: SystemTime, what: &str) -> OrchestrationWork {
    ok(
        store.fetch_orchestration(now, LEASE).await,
        &format!("{what}: fetch_orchestration"),
    )
    .unwrap_or_else(|| panic!("{what}: fetch_orchestration returned None, expected work"))
}

async fn fetch_none<S: Store>(store: &S, now: SystemTime, what: &str) {
    let work = ok(
        store.fetch_orchestration(now, LEASE).await,
        &format!("{what}: fetch_orchestration"),
    );
    assert!(
        work.is_none(),
        "{what}: fetch_orchestration should return None, got {work:?}"
    );
}

async fn lease<S: Store>(
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

async fn commit<S: Store>(store: &S, commit: TurnCommit, what: &str) {
    ok(
        store.commit_turn(commit).await,
        &format!("{what}: commit_turn"),
    );
}

async fn fetch_activity<S: Store>(
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

async fn fetch_activity_none<S: Store>(store: &S, now: SystemTime, what: &str) {
    let work = ok(
        store.fetch_activity(now, LEASE).await,
        &format!("{what}: fetch_activity"),
    );
    assert!(
        work.is_none(),
        "{what}: fetch_activity should return None, got {work:?}"
    );
}

async fn history<S: Store>(store: &S, id: &InstanceId, what: &str) -> Vec<HistoryEvent> {
    ok(
        store.load_history(id).await,
        &format!("{what}: load_history(`{id}`)"),
    )
}

async fn status<S: Store>(store: &S, id: &InstanceId, what: &str) -> InstanceStatus {
    ok(store.status(id).await, &format!("{what}: status(`{id}`)"))
        .unwrap_or_else(|| panic!("{what}: status(`{id}`) is None for an existing instance"))
}

/// Creates `id` at `t(0)` and commits its first turn: `Running`, idle, no messages.
async fn running<S: Store>(store: &S, id: &str) -> InstanceId {
    let id = create(store, id, t(0)).await;
    let work = lease(store, &id, t(0), "first turn").await;
    commit(store, turn(&work, t(0)), "first turn").await;
    id
}

/// Creates `id` and commits a first turn that schedules `count` activities.
async fn scheduling<S: Store>(store: &S, id: &str, count: u64) -> (InstanceId, Vec<ActivityTask>) {
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
async fn finish<S: Store>(store: &S, id: &InstanceId, now: SystemTime, status: RuntimeStatus) {
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
async fn expect_signal<Fut: Future>(notify: &Notify, what: &str, write: Fut) -> Fut::Output {
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

// ---------------------------------------------------------------------------------------------
// Instances and ids
// ---------------------------------------------------------------------------------------------

/// `status` returns exactly the status `create_instance` stored, and the history starts empty.
pub async fn create_and_status_round_trip<S: Store>(store: Arc<S>) {
    let id = iid("round-trip");
    let new = new_instance(&id, "greeter", t(5));
    ok(store.create_instance(new.clone()).await, "create_instance");
    assert_eq!(
        status(&*store, &id, "after create").await,
        new.status,
        "status() should return exactly what create_instance stored"
    );
    assert_eq!(
        history(&*store, &id, "after create").await,
        Vec::<HistoryEvent>::new(),
        "a new instance's history should be empty (the start is an inbox message)"
    );
}

/// A second `create_instance` of an id fails with `AlreadyExists` and changes nothing.
pub async fn create_twice_is_already_exists<S: Store>(store: Arc<S>) {
    let id = iid("twice");
    let first = new_instance(&id, "first", t(1));
    ok(store.create_instance(first.clone()).await, "first create");
    let mut second = new_instance(&id, "second", t(2));
    second.status.input = json!("other input");
    assert_eq!(
        store.create_instance(second).await,
        Err(StoreError::AlreadyExists(id.clone())),
        "a second create_instance of `{id}` should fail with AlreadyExists"
    );
    assert_eq!(
        status(&*store, &id, "after the refused create").await,
        first.status,
        "a refused create_instance should leave the first status"
    );
    let work = fetch(&*store, t(3), "after the refused create").await;
    assert_eq!(
        events(&work),
        vec![first.start],
        "only the first create's start message should be in the inbox"
    );
}

/// Reads and writes of an id never created fail with `NotFound` (`status` is `None`), and an
/// empty store has no work.
pub async fn unknown_instance_is_not_found<S: Store>(store: Arc<S>) {
    let ghost = iid("never-created");
    let not_found = StoreError::NotFound(ghost.clone());
    assert_eq!(
        store.status(&ghost).await,
        Ok(None),
        "status of an unknown id"
    );
    assert_eq!(
        store.load_history(&ghost).await,
        Err(not_found.clone()),
        "load_history of an unknown id"
    );
    assert_eq!(
        store.send(&ghost, raised("e", json!(1)), None).await,
        Err(not_found.clone()),
        "send to an unknown id"
    );
    assert_eq!(
        store.send(&ghost, raised("e", json!(1)), Some(t(10))).await,
        Err(not_found.clone()),
        "delayed send to an unknown id"
    );
    assert_eq!(
        store.purge(&ghost).await,
        Err(not_found),
        "purge of an unknown id"
    );
    assert_eq!(
        store.status(&ghost).await,
        Ok(None),
        "a refused send should not create the instance"
    );
    let lease = store.lease_orchestration(&ghost, t(0), LEASE).await;
    assert!(
        matches!(lease, Ok(None) | Err(StoreError::NotFound(_))),
        "lease_orchestration of an unknown id should be Ok(None) or NotFound, got {lease:?}"
    );
    let commit = TurnCommit {
        instance_id: ghost.clone(),
        lease: 1,
        expected_history_len: 0,
        history: vec![started(t(0))],
        replace_history: false,
        consumed: vec![],
        completed_activities: vec![],
        activities: vec![],
        timers: vec![],
        cancelled_timers: vec![],
        sub_instances: vec![],
        messages: vec![],
        status: StatusUpdate {
            runtime_status: RuntimeStatus::Running,
            output: None,
            custom_status: None,
            failure: None,
            input: None,
        },
    };
    let result = store.commit_turn(commit).await;
    assert!(
        matches!(
            result,
            Err(StoreError::NotFound(_) | StoreError::Conflict { .. })
        ),
        "commit_turn for an unknown id should fail with NotFound or Conflict, got {result:?}"
    );
    let result = store.abandon_orchestration(&ghost, 1).await;
    assert!(
        matches!(
            result,
            Err(StoreError::NotFound(_) | StoreError::Conflict { .. })
        ),
        "abandon_orchestration for an unknown id should fail with NotFound or Conflict, got {result:?}"
    );
    assert_eq!(
        store.status(&ghost).await,
        Ok(None),
        "refused calls should not create the instance"
    );
    fetch_none(&*store, t(0), "empty store").await;
    fetch_activity_none(&*store, t(0), "empty store").await;
    assert_eq!(
        store.has_work(t(0)).await,
        Ok(false),
        "has_work of an empty store"
    );
    assert_eq!(
        store.next_wakeup().await,
        Ok(None),
        "next_wakeup of an empty store"
    );
}

/// Ids that look like paths, differ only in case or trailing characters, hold separators of
/// common encodings, unicode or 256 bytes are plain, distinct keys.
pub async fn ids_are_plain_keys<S: Store>(store: Arc<S>) {
    let long_ascii = "x".repeat(256);
    let long_unicode = "é".repeat(128);
    let ids: Vec<String> = [
        "../../etc/passwd",
        "a/b",
        "a",
        "b",
        "a\\b",
        ".",
        "..",
        "A",
        "a.",
        "a ",
        " a",
        "a:b",
        "a:b:c",
        "a%2Fb",
        "a?b#c",
        "a*",
        "CON",
        "nul",
        "'; DROP TABLE instances; --",
        "\"quoted\"",
        "commande-é-✓",
        "日本語",
        "🦀",
        "e\u{301}",
        long_ascii.as_str(),
        long_unicode.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(long_unicode.len(), 256);
    let mut created = Vec::new();
    for (i, raw) in ids.iter().enumerate() {
        let id = iid(raw);
        let new = new_instance(&id, NAME, t(i as u64));
        ok(
            store.create_instance(new.clone()).await,
            &format!("create_instance(`{id}`)"),
        );
        created.push((id, new));
    }
    for (i, (id, new)) in created.iter().enumerate() {
        assert_eq!(
            status(&*store, id, "after creating every id").await,
            new.status,
            "status of `{id}` should be its own (no two ids may share a key)"
        );
        ok(
            store.send(id, raised("id", json!(id.as_str())), None).await,
            &format!("send to `{id}`"),
        );
        let _ = i;
    }
    let mut seen = HashSet::new();
    while let Some(work) = ok(
        store.fetch_orchestration(t(100), LEASE).await,
        "fetch_orchestration over every id",
    ) {
        let id = work.instance_id.clone();
        assert!(seen.insert(id.clone()), "`{id}` was handed out twice");
        let (_, new) = created
            .iter()
            .find(|(i, _)| *i == id)
            .unwrap_or_else(|| panic!("fetch_orchestration returned an id never created: {id:?}"));
        assert_eq!(
            events(&work),
            vec![new.start.clone(), raised("id", json!(id.as_str()))],
            "`{id}` should receive exactly its own start and event"
        );
        commit(&*store, turn(&work, t(100)), &format!("turn of `{id}`")).await;
    }
    assert_eq!(
        seen.len(),
        created.len(),
        "every id should be handed out once"
    );
    let mut listed = Vec::new();
    let mut query = InstanceQuery {
        page_size: 4,
        ..InstanceQuery::default()
    };
    for _ in 0..=created.len() {
        let page = ok(store.list(&query).await, "list over every id");
        listed.extend(page.instances.into_iter().map(|s| s.instance_id));
        match page.continuation {
            Some(next) => query.continuation = Some(next),
            None => break,
        }
    }
    let expected: Vec<InstanceId> = created.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        listed, expected,
        "list with page_size 4 should return every id exactly once, in creation order"
    );
    let a = iid("a");
    finish(&*store, &a, t(200), RuntimeStatus::Completed).await;
    ok(store.purge(&a).await, "purge `a`");
    for (id, new) in &created {
        if *id == a {
            continue;
        }
        let history = history(&*store, id, "after purging `a`").await;
        assert_eq!(
            history.get(1),
            Some(&new.start),
            "purging `a` should leave `{id}` and its history alone"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery and leases
// ---------------------------------------------------------------------------------------------

/// `fetch_orchestration` delivers the start message with a lease and version 0.
pub async fn start_message_is_delivered_with_a_lease<S: Store>(store: Arc<S>) {
    let id = iid("start");
    let new = new_instance(&id, NAME, t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let work = fetch(&*store, t(1), "after create").await;
    assert_eq!(work.instance_id, id, "the fetched instance");
    assert_eq!(work.history_len, 0, "a new instance's history length");
    assert_eq!(
        events(&work),
        vec![new.start],
        "the first delivery should be exactly the start message"
    );
    commit(&*store, turn(&work, t(1)), "first turn").await;
}

/// A leased instance is handed out neither by `fetch_orchestration` (even with new messages)
/// nor by `lease_orchestration`, and is not counted as work.
pub async fn leased_instance_is_not_handed_out_twice<S: Store>(store: Arc<S>) {
    let id = create(&*store, "leased", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    fetch_none(&*store, t(1), "while leased").await;
    ok(
        store.send(&id, raised("e", json!(1)), None).await,
        "send while leased",
    );
    fetch_none(&*store, t(2), "while leased, with a new message").await;
    let again = ok(
        store.lease_orchestration(&id, t(3), LEASE).await,
        "lease_orchestration while leased",
    );
    assert!(
        again.is_none(),
        "lease_orchestration should refuse a leased instance, got {again:?}"
    );
    assert_eq!(
        store.has_work(t(3)).await,
        Ok(false),
        "has_work while the only instance is leased"
    );
    commit(&*store, turn(&work, t(4)), "the holder's turn").await;
}

/// Messages sent while an instance is leased are delivered by the next fetch after the commit.
pub async fn messages_sent_while_leased_are_delivered_after_commit<S: Store>(store: Arc<S>) {
    let id = create(&*store, "busy", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let sent = vec![raised("one", json!(1)), raised("two", json!(2))];
    for event in &sent {
        ok(
            store.send(&id, event.clone(), None).await,
            "send while leased",
        );
    }
    let first = turn(&work, t(1));
    let appended = first.history.len() as u64;
    commit(&*store, first, "first turn").await;
    let next = fetch(&*store, t(2), "after the commit").await;
    assert_eq!(next.instance_id, id);
    assert_eq!(
        events(&next),
        sent,
        "messages sent while leased should be delivered after the commit, in order"
    );
    assert_eq!(
        next.history_len, appended,
        "history length after the first turn"
    );
    commit(&*store, turn(&next, t(2)), "second turn").await;
}

/// The inbox is delivered oldest first, and what a turn leaves unconsumed keeps its place.
pub async fn message_order_is_preserved<S: Store>(store: Arc<S>) {
    let id = create(&*store, "ordered", t(0)).await;
    let sent: Vec<_> = (0..10).map(|i| raised("n", json!(i))).collect();
    for event in &sent {
        ok(store.send(&id, event.clone(), None).await, "send");
    }
    let work = fetch(&*store, t(1), "first fetch").await;
    let delivered = events(&work);
    assert_eq!(
        delivered.len(),
        11,
        "the start and ten events should be delivered"
    );
    assert_eq!(
        &delivered[1..],
        &sent[..],
        "events should be delivered in send order"
    );
    let ids: HashSet<_> = work.messages.iter().map(|m| m.id).collect();
    assert_eq!(
        ids.len(),
        11,
        "message ids within an inbox should be unique"
    );
    let mut first = turn(&work, t(1));
    first.history.truncate(4); // OrchestratorStarted, start, n=0, n=1
    first.consumed.truncate(3);
    commit(&*store, first, "turn consuming three messages").await;
    let late = raised("n", json!(10));
    ok(
        store.send(&id, late.clone(), None).await,
        "send after the turn",
    );
    let work = fetch(&*store, t(2), "second fetch").await;
    let mut expected = sent[2..].to_vec();
    expected.push(late);
    assert_eq!(
        events(&work),
        expected,
        "unconsumed messages should come first, in order, then the new one"
    );
}

/// `load_history` returns exactly what the turns appended, in order, and each fetch's version is
/// the history's length.
pub async fn commit_appends_history_across_turns<S: Store>(store: Arc<S>) {
    let id = create(&*store, "turns", t(0)).await;
    let mut expected = Vec::new();
    for round in 0..3u64 {
        let work = fetch(&*store, t(10 * round), &format!("turn {round}")).await;
        assert_eq!(
            work.history_len,
            expected.len() as u64,
            "turn {round}: history_len should be the history length"
        );
        let mut commit_ = turn(&work, t(10 * round));
        if round < 2 {
            commit_
                .history
                .push(HistoryEvent::new(Event::EventWaitStarted {
                    id: round,
                    name: format!("go-{round}"),
                }));
        } else {
            commit_ = completing(commit_);
        }
        expected.extend(commit_.history.clone());
        commit(&*store, commit_, &format!("turn {round}")).await;
        assert_eq!(
            history(&*store, &id, &format!("after turn {round}")).await,
            expected,
            "after turn {round}: load_history should return every appended event in order"
        );
        if round < 2 {
            ok(
                store
                    .send(&id, raised(&format!("go-{round}"), json!(round)), None)
                    .await,
                "send",
            );
        }
    }
}

/// Every kind of event survives the store byte for byte, nanosecond timestamps and unicode
/// included.
pub async fn history_round_trips_every_event_kind<S: Store>(store: Arc<S>) {
    let id = create(&*store, "every-kind", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let odd_time = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_123, 456_789_123);
    let big = "ß∂ƒ©˙∆˚¬…æ".repeat(100);
    let extra = vec![
        HistoryEvent::new(Event::OrchestratorStarted {
            timestamp: odd_time,
        }),
        HistoryEvent::new(Event::ExecutionStarted {
            name: "nom-é".into(),
            version: u32::MAX,
            input: json!({ "big": big, "n": u64::MAX, "i": i64::MIN, "f": 0.1 }),
            seed: u64::MAX,
            parent: Some(crate::history::ParentRef {
                instance_id: iid("the/parent"),
                id: 9,
                generation: 2,
            }),
            generation: 3,
            eager_restarts: 1,
        }),
        HistoryEvent::new(Event::TaskScheduled {
            id: 1,
            name: "charge".into(),
            input: json!([null, {}, []]),
            attempt: 7,
        }),
        HistoryEvent::new(Event::TaskCompleted {
            id: 1,
            output: json!("\u{0}\u{1f}\"\\"),
        }),
        HistoryEvent::new(Event::TaskFailed {
            id: 2,
            failure: Failure::new("kind::Error<T>", "line 1\nline 2 ✓"),
        }),
        HistoryEvent::new(Event::TimerCreated {
            id: 3,
            fire_at: odd_time,
        }),
        HistoryEvent::new(Event::TimerFired {
            id: 3,
            fire_at: odd_time,
        }),
        HistoryEvent::new(Event::EventWaitStarted {
            id: 4,
            name: "approval".into(),
        }),
        raised("approval", json!({ "by": "🦀" })),
        HistoryEvent::new(Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            output: None,
            failure: Some(Failure::new("panic", "oh no")),
        }),
        HistoryEvent::new(Event::ExecutionCompleted {
            status: CompletionStatus::Completed,
            output: Some(json!(0)),
            failure: None,
        }),
    ];
    let mut commit_ = turn(&work, t(0));
    commit_.history.extend(extra);
    let expected = commit_.history.clone();
    commit(&*store, commit_, "turn with every kind").await;
    assert_eq!(
        history(&*store, &id, "after the turn").await,
        expected,
        "load_history should return every event exactly as committed"
    );
}

/// Floating-point payloads come back bit for bit: a replay from the stored history must see
/// the very numbers the live execution saw.
pub async fn history_round_trips_floats_exactly<S: Store>(store: Arc<S>) {
    let id = create(&*store, "floats", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let floats: [f64; 7] = [
        0.1,
        1.0 / 3.0,
        -1.5e-300,
        2.2250738585072014e-308,
        5e-324,
        1.7976931348623157e308,
        123_456.789_012_345_67,
    ];
    let mut commit_ = turn(&work, t(0));
    for (id, value) in floats.iter().enumerate() {
        commit_
            .history
            .push(HistoryEvent::new(Event::TaskCompleted {
                id: id as u64,
                output: json!(value),
            }));
    }
    commit(&*store, commit_, "turn with float outputs").await;
    let history = history(&*store, &id, "after the turn").await;
    for (id, value) in floats.iter().enumerate() {
        let stored = history.iter().find_map(|e| match &e.event {
            Event::TaskCompleted { id: seq, output } if *seq == id as u64 => output.as_f64(),
            _ => None,
        });
        assert!(
            stored.is_some_and(|s| s.to_bits() == value.to_bits()),
            "the float {value:e} should come back bit for bit, got {stored:?}"
        );
    }
}

/// A commit consumes exactly the listed messages; the others are delivered again.
pub async fn commit_consumes_only_listed_messages<S: Store>(store: Arc<S>) {
    let id = create(&*store, "partial", t(0)).await;
    let a = raised("a", json!("a"));
    let b = raised("b", json!("b"));
    ok(store.send(&id, a.clone(), None).await, "send a");
    ok(store.send(&id, b.clone(), None).await, "send b");
    let work = fetch(&*store, t(0), "first fetch").await;
    assert_eq!(work.messages.len(), 3, "start, a and b should be delivered");
    let mut commit_ = turn(&work, t(0));
    // Consume the start and `b`, leave `a`.
    commit_.consumed = vec![work.messages[0].id, work.messages[2].id];
    commit_.history = vec![started(t(0)), work.messages[0].event.clone(), b];
    commit(&*store, commit_, "turn consuming start and b").await;
    let next = fetch(&*store, t(1), "after the partial turn").await;
    assert_eq!(
        events(&next),
        vec![a],
        "only the unconsumed message should be delivered again"
    );
    commit(&*store, turn(&next, t(1)), "second turn").await;
    fetch_none(&*store, t(2), "after consuming everything").await;
}

/// A commit sets the status fields, `last_updated_at` to the turn's `OrchestratorStarted`
/// timestamp, and keeps name, version, input and creation time.
pub async fn commit_updates_status<S: Store>(store: Arc<S>) {
    let id = iid("status");
    let new = new_instance(&id, "status-name", t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let work = fetch(&*store, t(10), "first fetch").await;
    let mut commit_ = turn(&work, t(10));
    commit_.status.custom_status = Some(json!({ "step": 1 }));
    commit(&*store, commit_, "first turn").await;
    let expected = InstanceStatus {
        runtime_status: RuntimeStatus::Running,
        custom_status: Some(json!({ "step": 1 })),
        last_updated_at: t(10),
        ..new.status.clone()
    };
    assert_eq!(
        status(&*store, &id, "after the first turn").await,
        expected,
        "status after a Running turn"
    );

    ok(store.send(&id, raised("go", json!(1)), None).await, "send");
    let work = fetch(&*store, t(20), "second fetch").await;
    let mut commit_ = turn(&work, t(20));
    commit_
        .history
        .push(HistoryEvent::new(Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            output: None,
            failure: Some(Failure::new("boom", "it broke")),
        }));
    commit_.status = StatusUpdate {
        runtime_status: RuntimeStatus::Failed,
        output: None,
        custom_status: Some(json!("last words")),
        failure: Some(Failure::new("boom", "it broke")),
        input: None,
    };
    commit(&*store, commit_, "failing turn").await;
    let expected = InstanceStatus {
        runtime_status: RuntimeStatus::Failed,
        custom_status: Some(json!("last words")),
        failure: Some(Failure::new("boom", "it broke")),
        last_updated_at: t(20),
        ..new.status
    };
    assert_eq!(
        status(&*store, &id, "after the failing turn").await,
        expected,
        "status after a Failed turn"
    );

    let other = create(&*store, "completes", t(1)).await;
    let work = fetch(&*store, t(30), "completing fetch").await;
    assert_eq!(work.instance_id, other);
    commit(&*store, completing(turn(&work, t(30))), "completing turn").await;
    let done = status(&*store, &other, "after completing").await;
    assert_eq!(done.runtime_status, RuntimeStatus::Completed);
    assert_eq!(
        done.output,
        Some(json!("done")),
        "output of a Completed instance"
    );
    assert_eq!(done.failure, None);
    assert_eq!(done.last_updated_at, t(30));
    assert_eq!(done.created_at, t(1), "created_at never changes");
}

// ---------------------------------------------------------------------------------------------
// Fencing
// ---------------------------------------------------------------------------------------------

/// The full set of side effects a fenced commit tries to make.
fn everything(work: &OrchestrationWork, now: SystemTime) -> TurnCommit {
    let tasks = [task(&work.instance_id, 1)];
    let commit_ = with_timers(turn(work, now), &[(2, now + Duration::from_secs(5))]);
    let mut commit_ = with_activities(commit_, &tasks);
    commit_.status.custom_status = Some(json!("should not be seen"));
    commit_
}

/// Asserts that a refused commit left `id` exactly as `before`: status, history, inbox (the
/// start is delivered again), no activity and no timer.
async fn assert_untouched<S: Store>(
    store: &S,
    id: &InstanceId,
    before: &InstanceStatus,
    start: &HistoryEvent,
    mut holder: OrchestrationWork,
    what: &str,
) {
    assert_eq!(
        &status(store, id, what).await,
        before,
        "{what}: a refused commit should not change the status"
    );
    assert_eq!(
        history(store, id, what).await,
        Vec::<HistoryEvent>::new(),
        "{what}: a refused commit should not append history"
    );
    fetch_activity_none(store, t(7), what).await;
    // Hand the instance over once more to see its inbox.
    ok(
        store.abandon_orchestration(id, holder.lease).await,
        &format!("{what}: abandon by the holder"),
    );
    holder = fetch(store, t(8), what).await;
    assert_eq!(
        events(&holder),
        vec![start.clone()],
        "{what}: a refused commit should not consume messages"
    );
    assert_eq!(
        holder.history_len, 0,
        "{what}: history length after a refused commit"
    );
    commit(store, turn(&holder, t(8)), what).await;
    fetch_none(
        store,
        t(1_000),
        &format!("{what} (the refused timer must not exist)"),
    )
    .await;
    fetch_activity_none(store, t(1_000), what).await;
    assert_eq!(
        store.next_wakeup().await,
        Ok(None),
        "{what}: no timer or lease should remain"
    );
}

/// A commit with a lease token that is no longer current fails with `Conflict` and applies
/// nothing.
pub async fn commit_with_stale_lease_conflicts_and_changes_nothing<S: Store>(store: Arc<S>) {
    let id = iid("stale");
    let new = new_instance(&id, NAME, t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let before = status(&*store, &id, "before").await;
    let stale = fetch(&*store, t(1), "first fetch").await;
    ok(
        store.abandon_orchestration(&id, stale.lease).await,
        "abandon",
    );
    let holder = fetch(&*store, t(2), "second fetch").await;
    assert_ne!(
        holder.lease, stale.lease,
        "a new lease should carry a new token"
    );
    assert_conflict(
        store.commit_turn(everything(&stale, t(3))).await,
        "commit with a stale lease",
    );
    assert_untouched(&*store, &id, &before, &new.start, holder, "stale lease").await;
}

/// A commit whose `expected_history_len` is not the history length fails with `Conflict`, applies
/// nothing and keeps the lease.
pub async fn commit_with_wrong_version_conflicts_and_changes_nothing<S: Store>(store: Arc<S>) {
    let id = iid("wrong-version");
    let new = new_instance(&id, NAME, t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let before = status(&*store, &id, "before").await;
    let holder = fetch(&*store, t(1), "first fetch").await;
    for wrong in [1, 7] {
        let mut bad = everything(&holder, t(3));
        bad.expected_history_len = wrong;
        assert_conflict(
            store.commit_turn(bad).await,
            &format!("commit expecting version {wrong} of an empty history"),
        );
    }
    fetch_none(
        &*store,
        t(4),
        "after a refused commit the lease is still held",
    )
    .await;
    assert_untouched(&*store, &id, &before, &new.start, holder, "wrong version").await;
}

/// An expired lease is taken over by a later fetch, after which the old holder can neither
/// commit nor abandon, and the new holder commits.
pub async fn expired_lease_is_taken_over_and_old_holder_is_fenced<S: Store>(store: Arc<S>) {
    let id = iid("expiring");
    let new = new_instance(&id, NAME, t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let short = Duration::from_secs(10);
    let old = ok(store.fetch_orchestration(t(0), short).await, "first fetch")
        .expect("first fetch should deliver the start");
    assert_eq!(
        store.next_wakeup().await,
        Ok(Some(t(10))),
        "next_wakeup should report the lease's expiry"
    );
    fetch_none(&*store, t(5), "before the lease expires").await;
    let early = ok(
        store.lease_orchestration(&id, t(5), LEASE).await,
        "lease_orchestration before expiry",
    );
    assert!(
        early.is_none(),
        "lease_orchestration before expiry: {early:?}"
    );
    let new_holder = fetch(&*store, t(11), "after the lease expired").await;
    assert_eq!(new_holder.instance_id, id);
    assert_ne!(
        new_holder.lease, old.lease,
        "the new lease needs a new token"
    );
    assert_eq!(new_holder.history_len, 0);
    assert_eq!(
        events(&new_holder),
        vec![new.start],
        "the new holder gets the messages again"
    );
    assert_conflict(
        store.commit_turn(turn(&old, t(12))).await,
        "commit by the holder of an expired, taken-over lease",
    );
    // Whether a stale abandon fails or is ignored is open; it must not release the new lease.
    let abandon = store.abandon_orchestration(&id, old.lease).await;
    assert!(
        matches!(abandon, Ok(()) | Err(StoreError::Conflict { .. })),
        "abandon with a taken-over lease should be Conflict (or ignored), got {abandon:?}"
    );
    fetch_none(
        &*store,
        t(13),
        "the old holder's abandon must not release the new lease",
    )
    .await;
    let commit_ = turn(&new_holder, t(13));
    let expected = commit_.history.clone();
    commit(&*store, commit_, "the new holder's turn").await;
    assert_eq!(history(&*store, &id, "after the takeover").await, expected);
}

/// `abandon_orchestration` releases the lease: the same messages are delivered again, and a
/// stale token cannot release the next holder's lease.
pub async fn abandon_makes_messages_deliverable_again<S: Store>(store: Arc<S>) {
    let id = iid("abandoned");
    let new = new_instance(&id, NAME, t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let event = raised("e", json!("x"));
    ok(store.send(&id, event.clone(), None).await, "send");
    let first = fetch(&*store, t(1), "first fetch").await;
    ok(
        store.abandon_orchestration(&id, first.lease).await,
        "abandon by the holder",
    );
    let second = fetch(&*store, t(2), "after the abandon").await;
    assert_eq!(
        events(&second),
        vec![new.start, event],
        "abandoned messages should be delivered again, in order"
    );
    assert_eq!(second.history_len, 0);
    let _ = store.abandon_orchestration(&id, first.lease).await;
    fetch_none(
        &*store,
        t(3),
        "a stale abandon must not release the current holder's lease",
    )
    .await;
    commit(&*store, turn(&second, t(3)), "the second holder's turn").await;
}

// ---------------------------------------------------------------------------------------------
// Time: delayed messages and timers
// ---------------------------------------------------------------------------------------------

/// A message sent with `visible_at` is deliverable from then on, not before.
pub async fn delayed_send_is_delivered_from_visible_at<S: Store>(store: Arc<S>) {
    let id = running(&*store, "delayed").await;
    let event = raised("later", json!(1));
    ok(
        store.send(&id, event.clone(), Some(t(100))).await,
        "delayed send",
    );
    fetch_none(&*store, t(99), "before visible_at").await;
    assert_eq!(
        store.has_work(t(99)).await,
        Ok(false),
        "has_work before visible_at"
    );
    assert_eq!(
        store.has_work(t(100)).await,
        Ok(true),
        "has_work at visible_at"
    );
    let work = fetch(&*store, t(100), "at visible_at").await;
    assert_eq!(events(&work), vec![event]);
}

/// A timer is delivered as `TimerFired` at its `fire_at` or later, never before.
pub async fn timer_fires_at_fire_at<S: Store>(store: Arc<S>) {
    let id = create(&*store, "timer", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    commit(
        &*store,
        with_timers(turn(&work, t(0)), &[(1, t(60)), (2, t(70))]),
        "turn starting timers",
    )
    .await;
    fetch_none(&*store, t(59), "before the first timer").await;
    assert_eq!(
        store.has_work(t(59)).await,
        Ok(false),
        "has_work before fire_at"
    );
    let work = fetch(&*store, t(60), "at the first timer's fire_at").await;
    assert_eq!(work.instance_id, id);
    assert_eq!(
        events(&work),
        vec![timer_fired(1, t(60))],
        "exactly the due timer should fire"
    );
    commit(&*store, turn(&work, t(60)), "turn after the first timer").await;
    let work = fetch(&*store, t(90), "after the second timer's fire_at").await;
    assert_eq!(events(&work), vec![timer_fired(2, t(70))]);
    commit(&*store, turn(&work, t(90)), "turn after the second timer").await;
    fetch_none(&*store, t(1_000), "after every timer fired").await;
}

/// `next_wakeup` reports the earliest pending timer, and while an instance is leased, no later
/// than the lease's expiry.
pub async fn next_wakeup_reports_earliest_timer_and_lease<S: Store>(store: Arc<S>) {
    create(&*store, "wakeup", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let leased = ok(store.next_wakeup().await, "next_wakeup while leased");
    assert!(
        leased.is_some_and(|at| at <= t(0) + LEASE),
        "next_wakeup while leased should be at most the lease expiry, got {leased:?}"
    );
    commit(
        &*store,
        with_timers(turn(&work, t(0)), &[(1, t(300)), (2, t(100)), (3, t(200))]),
        "turn starting three timers",
    )
    .await;
    assert_eq!(
        store.next_wakeup().await,
        Ok(Some(t(100))),
        "next_wakeup should be the earliest fire_at"
    );
    let work = fetch(&*store, t(150), "after the earliest timer").await;
    assert_eq!(events(&work), vec![timer_fired(2, t(100))]);
    commit(&*store, turn(&work, t(150)), "turn consuming it").await;
    assert_eq!(
        store.next_wakeup().await,
        Ok(Some(t(200))),
        "next_wakeup after the earliest timer fired"
    );
}

/// A cancelled timer is never delivered and no longer wakes anyone.
pub async fn cancelled_timer_is_not_delivered<S: Store>(store: Arc<S>) {
    let id = create(&*store, "cancel", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    commit(
        &*store,
        with_timers(turn(&work, t(0)), &[(1, t(100)), (2, t(200))]),
        "turn starting two timers",
    )
    .await;
    ok(
        store.send(&id, raised("stop", json!(1)), None).await,
        "send",
    );
    let work = fetch(&*store, t(10), "second fetch").await;
    let mut commit_ = turn(&work, t(10));
    commit_.cancelled_timers = vec![1];
    commit(&*store, commit_, "turn cancelling timer 1").await;
    assert_eq!(
        store.next_wakeup().await,
        Ok(Some(t(200))),
        "next_wakeup should skip the cancelled timer"
    );
    fetch_none(&*store, t(150), "after the cancelled timer's fire_at").await;
    let work = fetch(&*store, t(250), "after the other timer's fire_at").await;
    assert_eq!(
        events(&work),
        vec![timer_fired(2, t(200))],
        "only the timer not cancelled should fire"
    );
}

/// A turn with a finished status drops the instance's pending timers and inbox.
pub async fn finishing_drops_timers_and_inbox<S: Store>(store: Arc<S>) {
    let id = create(&*store, "finishing", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let first = with_timers(turn(&work, t(0)), &[(1, t(100))]);
    let mut expected = first.history.clone();
    commit(&*store, first, "turn starting a timer").await;
    ok(store.send(&id, raised("a", json!(1)), None).await, "send a");
    let work = fetch(&*store, t(10), "second fetch").await;
    ok(
        store.send(&id, raised("b", json!(2)), None).await,
        "send b while leased",
    );
    let mut last = completing(turn(&work, t(10)));
    last.consumed.clear(); // leave `a` in the inbox too
    last.history
        .retain(|e| !matches!(e.event, Event::EventRaised { .. }));
    expected.extend(last.history.clone());
    commit(&*store, last, "completing turn").await;
    fetch_none(&*store, t(1_000), "after finishing").await;
    assert_eq!(
        store.has_work(t(1_000)).await,
        Ok(false),
        "has_work after finishing"
    );
    assert_eq!(
        store.next_wakeup().await,
        Ok(None),
        "a finished instance's timers should be dropped"
    );
    assert_eq!(history(&*store, &id, "after finishing").await, expected);
    let none = ok(
        store.lease_orchestration(&id, t(1_000), LEASE).await,
        "lease_orchestration of a finished instance",
    );
    assert!(
        none.is_none(),
        "a finished instance cannot be leased: {none:?}"
    );
}

/// A timer that falls due while its instance is leased (and another worker looks for work) is
/// delivered after the holder commits.
pub async fn timer_due_while_leased_is_delivered_after_commit<S: Store>(store: Arc<S>) {
    let id = create(&*store, "timer-while-leased", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    commit(
        &*store,
        with_timers(turn(&work, t(0)), &[(1, t(100))]),
        "turn starting a timer",
    )
    .await;
    ok(store.send(&id, raised("e", json!(1)), None).await, "send");
    let holder = ok(
        store
            .fetch_orchestration(t(50), Duration::from_secs(600))
            .await,
        "fetch of the event",
    )
    .expect("the event should be delivered");
    assert_eq!(events(&holder), vec![raised("e", json!(1))]);
    // Another worker looks for work after the timer fell due, while the lease is held.
    fetch_none(&*store, t(150), "while leased, after the timer is due").await;
    let _ = ok(store.has_work(t(150)).await, "has_work while leased");
    commit(&*store, turn(&holder, t(150)), "the holder's turn").await;
    assert_eq!(
        store.has_work(t(160)).await,
        Ok(true),
        "has_work should see the due timer after the commit"
    );
    let work = fetch(&*store, t(160), "after the commit").await;
    assert_eq!(
        events(&work),
        vec![timer_fired(1, t(100))],
        "the timer that fell due while leased should be delivered"
    );
}

/// A fired timer that was delivered and then abandoned (for instance because the history
/// could not be loaded) is delivered again.
pub async fn abandoned_fired_timer_is_delivered_again<S: Store>(store: Arc<S>) {
    let id = create(&*store, "abandoned-timer", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    commit(
        &*store,
        with_timers(turn(&work, t(0)), &[(1, t(100))]),
        "turn starting a timer",
    )
    .await;
    let work = fetch(&*store, t(100), "at fire_at").await;
    assert_eq!(events(&work), vec![timer_fired(1, t(100))]);
    ok(
        store.abandon_orchestration(&id, work.lease).await,
        "abandon",
    );
    assert_eq!(
        store.has_work(t(101)).await,
        Ok(true),
        "has_work should see the abandoned timer"
    );
    let again = fetch(&*store, t(101), "after the abandon").await;
    assert_eq!(
        events(&again),
        vec![timer_fired(1, t(100))],
        "an abandoned TimerFired should be delivered again"
    );
}

// ---------------------------------------------------------------------------------------------
// Activities
// ---------------------------------------------------------------------------------------------

/// Every scheduled attempt is handed out exactly once, as committed, with its own lease.
pub async fn activities_are_handed_out_once_with_a_lease<S: Store>(store: Arc<S>) {
    let (id, tasks) = scheduling(&*store, "fan-out", 3).await;
    let mut handed = Vec::new();
    for i in 0..3 {
        let work = fetch_activity(&*store, t(1), LEASE, &format!("attempt {i}")).await;
        assert_eq!(work.lease.instance_id, id, "the lease names the instance");
        assert_eq!(work.lease.id, work.task.id, "the lease names the attempt");
        handed.push(work);
    }
    fetch_activity_none(&*store, t(1), "after every attempt was handed out").await;
    let mut got: Vec<_> = handed.iter().map(|w| w.task.clone()).collect();
    got.sort_by_key(|task| task.id);
    assert_eq!(
        got, tasks,
        "the attempts handed out should be exactly those committed"
    );
    let tokens: HashSet<_> = handed.iter().map(|w| w.lease.token).collect();
    assert_eq!(
        tokens.len(),
        3,
        "each attempt should have its own lease token"
    );
    assert_eq!(
        store.has_work(t(1)).await,
        Ok(false),
        "has_work while every attempt is leased"
    );
}

/// `complete_activity` delivers the result to the instance's inbox, once.
pub async fn activity_result_is_delivered_to_the_instance<S: Store>(store: Arc<S>) {
    let (id, _) = scheduling(&*store, "one-activity", 1).await;
    let work = fetch_activity(&*store, t(1), LEASE, "fetch the attempt").await;
    ok(
        store
            .complete_activity(&work.lease, task_completed(0))
            .await,
        "complete_activity",
    );
    fetch_activity_none(&*store, t(2), "after the completion").await;
    let turn_work = fetch(&*store, t(2), "the result's turn").await;
    assert_eq!(turn_work.instance_id, id);
    assert_eq!(
        events(&turn_work),
        vec![task_completed(0)],
        "the result should be delivered to the instance"
    );
    commit(&*store, turn(&turn_work, t(2)), "the result's turn").await;
    let again = store
        .complete_activity(&work.lease, task_completed(0))
        .await;
    assert!(
        matches!(again, Ok(()) | Err(StoreError::Conflict { .. })),
        "a second completion should be Conflict (or ignored), got {again:?}"
    );
    fetch_none(&*store, t(3), "a second completion must not deliver twice").await;
}

/// A completion with a token that does not hold the attempt fails with `Conflict` and delivers
/// nothing.
pub async fn activity_completion_with_stale_lease_conflicts<S: Store>(store: Arc<S>) {
    scheduling(&*store, "stale-activity", 1).await;
    let work = fetch_activity(&*store, t(1), LEASE, "fetch the attempt").await;
    let forged = ActivityLease {
        token: work.lease.token.wrapping_add(1_000_003),
        ..work.lease.clone()
    };
    assert_conflict(
        store.complete_activity(&forged, task_completed(0)).await,
        "complete_activity with a token never handed out",
    );
    fetch_none(&*store, t(2), "a refused completion delivers nothing").await;
    ok(
        store
            .complete_activity(&work.lease, task_completed(0))
            .await,
        "complete_activity by the holder",
    );
    let work = fetch(&*store, t(2), "the result's turn").await;
    assert_eq!(events(&work), vec![task_completed(0)]);
}

/// An attempt whose lease expired is handed out again at a later `now`; the old holder's
/// completion is then refused.
pub async fn expired_activity_lease_is_handed_out_again<S: Store>(store: Arc<S>) {
    let (_, tasks) = scheduling(&*store, "expiring-activity", 1).await;
    let old = fetch_activity(&*store, t(1), Duration::from_secs(10), "first fetch").await;
    fetch_activity_none(&*store, t(5), "before the lease expires").await;
    assert_eq!(
        store.next_wakeup().await,
        Ok(Some(t(11))),
        "next_wakeup should report the activity lease's expiry"
    );
    let new = fetch_activity(&*store, t(12), LEASE, "after the lease expired").await;
    assert_eq!(
        new.task, tasks[0],
        "the same attempt should be handed out again"
    );
    assert_ne!(
        new.lease.token, old.lease.token,
        "the new lease needs a new token"
    );
    assert_conflict(
        store.complete_activity(&old.lease, task_completed(0)).await,
        "completion by the holder of an expired, taken-over lease",
    );
    fetch_none(&*store, t(13), "the refused completion delivers nothing").await;
    ok(
        store.complete_activity(&new.lease, task_completed(0)).await,
        "completion by the new holder",
    );
    let work = fetch(&*store, t(13), "the result's turn").await;
    assert_eq!(events(&work), vec![task_completed(0)]);
}

/// `abandon_activity` makes the attempt available again.
pub async fn abandoned_activity_is_handed_out_again<S: Store>(store: Arc<S>) {
    let (_, tasks) = scheduling(&*store, "abandoned-activity", 1).await;
    let first = fetch_activity(&*store, t(1), LEASE, "first fetch").await;
    ok(
        store.abandon_activity(&first.lease).await,
        "abandon_activity",
    );
    let second = fetch_activity(&*store, t(2), LEASE, "after the abandon").await;
    assert_eq!(second.task, tasks[0]);
    fetch_activity_none(&*store, t(2), "the attempt is leased again").await;
    ok(
        store
            .complete_activity(&second.lease, task_completed(0))
            .await,
        "completion by the second holder",
    );
    let work = fetch(&*store, t(3), "the result's turn").await;
    assert_eq!(events(&work), vec![task_completed(0)]);
}

/// A result for an instance that finished meanwhile is dropped without error.
pub async fn activity_result_for_finished_instance_is_dropped<S: Store>(store: Arc<S>) {
    let (id, _) = scheduling(&*store, "terminated-meanwhile", 1).await;
    let work = fetch_activity(&*store, t(1), LEASE, "fetch the attempt").await;
    finish(&*store, &id, t(2), RuntimeStatus::Terminated).await;
    let before = history(&*store, &id, "after finishing").await;
    let status_before = status(&*store, &id, "after finishing").await;
    assert_eq!(
        store
            .complete_activity(&work.lease, task_completed(0))
            .await,
        Ok(()),
        "a result for a finished instance should be dropped without error"
    );
    fetch_none(&*store, t(3), "the dropped result").await;
    assert_eq!(store.has_work(t(3)).await, Ok(false));
    assert_eq!(history(&*store, &id, "after the result").await, before);
    assert_eq!(
        status(&*store, &id, "after the result").await,
        status_before
    );
}

/// `completed_activities` completes the attempts atomically with the turn: no inbox message,
/// no second hand-out, and the old lease can no longer complete it.
pub async fn completed_activities_commit_with_the_turn<S: Store>(store: Arc<S>) {
    let (id, _) = scheduling(&*store, "inline-result", 1).await;
    let attempt = fetch_activity(&*store, t(1), LEASE, "fetch the attempt").await;
    let work = lease(&*store, &id, t(2), "inline turn").await;
    assert!(
        work.messages.is_empty(),
        "nothing waits in the inbox: {work:?}"
    );
    let mut commit_ = turn(&work, t(2));
    commit_.history.push(task_completed(0));
    commit_.completed_activities = vec![attempt.lease.clone()];
    commit(&*store, commit_, "turn with the inline result").await;
    let again = store
        .complete_activity(&attempt.lease, task_completed(0))
        .await;
    assert!(
        matches!(again, Ok(()) | Err(StoreError::Conflict { .. })),
        "completing an attempt already completed with a turn should be Conflict (or ignored), got {again:?}"
    );
    fetch_none(&*store, t(3), "the inline result must not reach the inbox").await;
    fetch_activity_none(
        &*store,
        t(1) + LEASE + Duration::from_secs(1),
        "the completed attempt must not be handed out again",
    )
    .await;
    assert_eq!(
        store.next_wakeup().await,
        Ok(None),
        "no lease or timer should remain"
    );
}

/// A turn whose `completed_activities` names a lost attempt lease fails with `Conflict` and
/// applies nothing.
pub async fn completed_activities_with_stale_lease_conflict_and_change_nothing<S: Store>(
    store: Arc<S>,
) {
    let (id, _) = scheduling(&*store, "inline-stale", 1).await;
    let history_before = history(&*store, &id, "before").await;
    let status_before = status(&*store, &id, "before").await;
    let old = fetch_activity(&*store, t(1), Duration::from_secs(10), "first fetch").await;
    let current = fetch_activity(&*store, t(20), LEASE, "after expiry").await;
    let work = lease(&*store, &id, t(21), "inline turn").await;
    let mut bad = with_activities(
        with_timers(turn(&work, t(21)), &[(5, t(30))]),
        &[task(&id, 9)],
    );
    bad.history.push(task_completed(0));
    bad.completed_activities = vec![old.lease.clone()];
    bad.status.custom_status = Some(json!("should not be seen"));
    assert_conflict(
        store.commit_turn(bad).await,
        "commit completing an attempt with a lost lease",
    );
    assert_eq!(
        history(&*store, &id, "after the refused commit").await,
        history_before
    );
    assert_eq!(
        status(&*store, &id, "after the refused commit").await,
        status_before
    );
    fetch_activity_none(&*store, t(22), "the refused turn's activity must not exist").await;
    ok(
        store
            .complete_activity(&current.lease, task_completed(0))
            .await,
        "the current holder's completion (its lease is intact)",
    );
    ok(
        store.abandon_orchestration(&id, work.lease).await,
        "abandon the inline turn",
    );
    let work = fetch(&*store, t(23), "the result's turn").await;
    assert_eq!(events(&work), vec![task_completed(0)]);
    commit(&*store, turn(&work, t(23)), "the result's turn").await;
    fetch_none(&*store, t(100), "the refused turn's timer must not exist").await;
}

/// `lease_orchestration` leases an idle instance even with an empty inbox, delivers what is
/// waiting, and refuses a leased or finished instance.
pub async fn lease_orchestration_leases_idle_instances_only<S: Store>(store: Arc<S>) {
    let id = running(&*store, "lease-me").await;
    let length = history(&*store, &id, "after the first turn").await.len() as u64;
    let work = lease(&*store, &id, t(1), "idle instance").await;
    assert_eq!(work.instance_id, id);
    assert!(work.messages.is_empty(), "nothing waits: {work:?}");
    assert_eq!(
        work.history_len, length,
        "history_len should be the history length"
    );
    let again = ok(
        store.lease_orchestration(&id, t(2), LEASE).await,
        "lease_orchestration while leased",
    );
    assert!(
        again.is_none(),
        "a leased instance cannot be leased again: {again:?}"
    );
    fetch_none(&*store, t(2), "while leased by lease_orchestration").await;
    let mut commit_ = turn(&work, t(2));
    commit_.history.push(task_completed(0));
    commit(&*store, commit_, "turn under lease_orchestration").await;

    let event = raised("waiting", json!(1));
    ok(store.send(&id, event.clone(), None).await, "send");
    let work = lease(&*store, &id, t(3), "instance with a message").await;
    assert_eq!(
        events(&work),
        vec![event],
        "lease_orchestration delivers the inbox"
    );
    commit(&*store, turn(&work, t(3)), "turn consuming it").await;

    finish(&*store, &id, t(4), RuntimeStatus::Completed).await;
    let finished = ok(
        store.lease_orchestration(&id, t(5), LEASE).await,
        "lease_orchestration of a finished instance",
    );
    assert!(
        finished.is_none(),
        "a finished instance cannot be leased: {finished:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Clients: send, has_work, list, purge, watch
// ---------------------------------------------------------------------------------------------

/// `send` to a finished instance fails with `Finished` and its status.
pub async fn send_to_finished_instance_is_refused<S: Store>(store: Arc<S>) {
    for (name, end) in [
        ("completed", RuntimeStatus::Completed),
        ("failed", RuntimeStatus::Failed),
        ("terminated", RuntimeStatus::Terminated),
    ] {
        let id = running(&*store, name).await;
        finish(&*store, &id, t(1), end).await;
        for visible_at in [None, Some(t(10))] {
            assert_eq!(
                store.send(&id, raised("late", json!(1)), visible_at).await,
                Err(StoreError::Finished {
                    id: id.clone(),
                    status: end
                }),
                "send (visible_at {visible_at:?}) to an instance that ended {end:?}"
            );
        }
    }
    fetch_none(&*store, t(100), "refused sends deliver nothing").await;
}

/// `has_work` is true exactly while an unleased instance has deliverable messages or an
/// attempt is ready.
pub async fn has_work_reflects_ready_messages_and_activities<S: Store>(store: Arc<S>) {
    let has = |now| {
        let store = Arc::clone(&store);
        async move { ok(store.has_work(now).await, "has_work") }
    };
    assert!(!has(t(0)).await, "an empty store has no work");
    let id = create(&*store, "work", t(0)).await;
    assert!(has(t(0)).await, "a created instance's start is work");
    let work = fetch(&*store, t(0), "first fetch").await;
    assert!(!has(t(0)).await, "a leased instance is not work");
    commit(
        &*store,
        with_activities(turn(&work, t(0)), &[task(&id, 0)]),
        "scheduling turn",
    )
    .await;
    assert!(has(t(0)).await, "a ready attempt is work");
    let attempt = fetch_activity(&*store, t(0), LEASE, "fetch the attempt").await;
    assert!(!has(t(0)).await, "a leased attempt is not work");
    ok(
        store
            .complete_activity(&attempt.lease, task_completed(0))
            .await,
        "complete",
    );
    assert!(has(t(1)).await, "a delivered result is work");
    let work = fetch(&*store, t(1), "the result's turn").await;
    commit(&*store, turn(&work, t(1)), "the result's turn").await;
    assert!(!has(t(1)).await, "nothing left");
    ok(
        store
            .send(&id, raised("later", json!(1)), Some(t(100)))
            .await,
        "delayed send",
    );
    assert!(!has(t(50)).await, "a message not yet visible is not work");
    assert!(has(t(100)).await, "a message visible at now is work");
}

/// Creates instances with given names and creation times and drives them to statuses.
async fn population<S: Store>(
    store: &S,
    spec: &[(&str, &str, u64, RuntimeStatus)],
) -> Vec<InstanceStatus> {
    for &(id, name, created, _) in spec {
        let id = iid(id);
        ok(
            store
                .create_instance(new_instance(&id, name, t(created)))
                .await,
            "create_instance",
        );
    }
    let mut statuses = Vec::new();
    for &(id, _, _, runtime_status) in spec {
        let id = iid(id);
        if runtime_status != RuntimeStatus::Pending {
            let work = lease(store, &id, t(500), "population").await;
            commit(store, turn(&work, t(500)), "population").await;
            if runtime_status != RuntimeStatus::Running {
                finish(store, &id, t(501), runtime_status).await;
            }
        }
        statuses.push(status(store, &id, "population").await);
    }
    statuses
}

fn ids_of(statuses: &[InstanceStatus]) -> Vec<&str> {
    statuses.iter().map(|s| s.instance_id.as_str()).collect()
}

/// `list` filters by status, name and creation range (from inclusive, to exclusive), and
/// returns full statuses in (created_at, id) order.
pub async fn list_filters_by_status_name_and_creation_time<S: Store>(store: Arc<S>) {
    use RuntimeStatus::*;
    let all = population(
        &*store,
        &[
            ("f-1", "alpha", 10, Completed),
            ("f-2", "beta", 20, Running),
            ("f-3", "alpha", 30, Failed),
            ("f-4", "beta", 40, Pending),
            ("f-5", "alpha", 50, Completed),
            ("f-6", "beta", 60, Terminated),
        ],
    )
    .await;
    let list = |query: InstanceQuery| {
        let store = Arc::clone(&store);
        async move {
            let page = ok(store.list(&query).await, &format!("list({query:?})"));
            assert_eq!(
                page.continuation, None,
                "a small result is one page: {query:?}"
            );
            page.instances
        }
    };
    let everything = list(InstanceQuery::default()).await;
    assert_eq!(
        everything, all,
        "an empty query lists every instance, full statuses, in order"
    );
    let cases: Vec<(InstanceQuery, Vec<&str>)> = vec![
        (
            InstanceQuery {
                statuses: vec![Completed],
                ..Default::default()
            },
            vec!["f-1", "f-5"],
        ),
        (
            InstanceQuery {
                statuses: vec![Running, Failed, Pending],
                ..Default::default()
            },
            vec!["f-2", "f-3", "f-4"],
        ),
        (
            InstanceQuery {
                name: Some("beta".into()),
                ..Default::default()
            },
            vec!["f-2", "f-4", "f-6"],
        ),
        (
            InstanceQuery {
                created_from: Some(t(20)),
                created_to: Some(t(50)),
                ..Default::default()
            },
            vec!["f-2", "f-3", "f-4"],
        ),
        (
            InstanceQuery {
                created_from: Some(t(41)),
                ..Default::default()
            },
            vec!["f-5", "f-6"],
        ),
        (
            InstanceQuery {
                created_to: Some(t(10)),
                ..Default::default()
            },
            vec![],
        ),
        (
            InstanceQuery {
                name: Some("alpha".into()),
                statuses: vec![Completed, Terminated],
                created_from: Some(t(11)),
                ..Default::default()
            },
            vec!["f-5"],
        ),
        (
            InstanceQuery {
                name: Some("gamma".into()),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (query, expected) in cases {
        let got = list(query.clone()).await;
        assert_eq!(ids_of(&got), expected, "list({query:?})");
    }
}

/// Paging with a page size smaller than the total returns every matching instance exactly
/// once, in (created_at, id) order, also with a filter and ties in creation time.
pub async fn list_pages_return_every_instance_once_in_order<S: Store>(store: Arc<S>) {
    const COUNT: u64 = 25;
    let mut expected = Vec::new();
    // Create in a scrambled order; every three share a creation time.
    for k in 0..COUNT {
        let i = (k * 7) % COUNT;
        let id = iid(&format!("page-{i:03}"));
        ok(
            store
                .create_instance(new_instance(&id, NAME, t(i / 3)))
                .await,
            "create_instance",
        );
    }
    for i in 0..COUNT {
        expected.push((t(i / 3), format!("page-{i:03}")));
    }
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    // Complete every other one, to page through a filter too.
    for i in (0..COUNT).step_by(2) {
        let id = iid(&format!("page-{i:03}"));
        let work = lease(&*store, &id, t(100), "turn").await;
        commit(&*store, completing(turn(&work, t(100))), "completing turn").await;
    }
    let page_through = |query: InstanceQuery| {
        let store = Arc::clone(&store);
        async move {
            let mut query = query;
            let mut ids = Vec::new();
            for _ in 0..=COUNT {
                let page = ok(store.list(&query).await, "list");
                assert!(
                    page.instances.len() <= query.page_size.max(1),
                    "a page holds at most page_size ({}) instances, got {}",
                    query.page_size,
                    page.instances.len()
                );
                ids.extend(
                    page.instances
                        .into_iter()
                        .map(|s| s.instance_id.to_string()),
                );
                match page.continuation {
                    Some(next) => query.continuation = Some(next),
                    None => return ids,
                }
            }
            panic!("list kept returning continuations after {COUNT} pages: {ids:?}")
        }
    };
    for page_size in [1, 4, 10] {
        let got = page_through(InstanceQuery {
            page_size,
            ..Default::default()
        })
        .await;
        assert_eq!(
            got, expected,
            "paging with page_size {page_size} should return every instance once in order"
        );
    }
    let completed: Vec<String> = expected
        .iter()
        .filter(|id| id[5..].parse::<u64>().is_ok_and(|i| i % 2 == 0))
        .cloned()
        .collect();
    let got = page_through(InstanceQuery {
        statuses: vec![RuntimeStatus::Completed],
        page_size: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(got, completed, "paging through a status filter");
    let page = ok(store.list(&InstanceQuery::default()).await, "list");
    assert_eq!(
        page.instances.len(),
        COUNT as usize,
        "page_size 0 means 100: all {COUNT} in one page"
    );
    assert_eq!(page.continuation, None);
}

/// `list` of an empty store, or of a query nothing matches, is one empty page.
pub async fn list_of_nothing_is_empty<S: Store>(store: Arc<S>) {
    let page = ok(
        store.list(&InstanceQuery::default()).await,
        "list of an empty store",
    );
    assert!(
        page.instances.is_empty(),
        "an empty store lists nothing: {page:?}"
    );
    assert_eq!(page.continuation, None, "an empty result is the last page");
    create(&*store, "someone", t(0)).await;
    let query = InstanceQuery {
        statuses: vec![RuntimeStatus::Completed],
        page_size: 1,
        ..Default::default()
    };
    let page = ok(store.list(&query).await, "list matching nothing");
    assert!(page.instances.is_empty(), "nothing is Completed: {page:?}");
    assert_eq!(page.continuation, None);
}

/// `purge` refuses an unfinished instance, deletes a finished one with its history, then
/// reports `NotFound`.
pub async fn purge_only_finished_instances<S: Store>(store: Arc<S>) {
    let pending = create(&*store, "purge-pending", t(0)).await;
    assert_eq!(
        store.purge(&pending).await,
        Err(StoreError::NotFinished(pending.clone())),
        "purge of a Pending instance"
    );
    let id = running(&*store, "purge-me").await;
    assert_eq!(
        store.purge(&id).await,
        Err(StoreError::NotFinished(id.clone())),
        "purge of a Running instance"
    );
    assert!(
        !history(&*store, &id, "after the refused purge")
            .await
            .is_empty(),
        "a refused purge keeps the history"
    );
    finish(&*store, &id, t(1), RuntimeStatus::Completed).await;
    ok(store.purge(&id).await, "purge of a Completed instance");
    assert_eq!(store.status(&id).await, Ok(None), "status after purge");
    assert_eq!(
        store.load_history(&id).await,
        Err(StoreError::NotFound(id.clone())),
        "the history is gone after purge"
    );
    assert_eq!(
        store.purge(&id).await,
        Err(StoreError::NotFound(id.clone())),
        "a second purge"
    );
    assert_eq!(
        store.send(&id, raised("e", json!(1)), None).await,
        Err(StoreError::NotFound(id.clone())),
        "send after purge"
    );
    let page = ok(
        store.list(&InstanceQuery::default()).await,
        "list after purge",
    );
    assert_eq!(
        ids_of(&page.instances),
        vec!["purge-pending"],
        "list after purge"
    );
}

/// After a purge, the id can be created again as a brand-new instance.
pub async fn purged_id_can_be_reused<S: Store>(store: Arc<S>) {
    let id = running(&*store, "reused").await;
    let work = lease(&*store, &id, t(1), "timer turn").await;
    commit(
        &*store,
        with_timers(turn(&work, t(1)), &[(1, t(50))]),
        "timer turn",
    )
    .await;
    finish(&*store, &id, t(2), RuntimeStatus::Terminated).await;
    ok(store.purge(&id).await, "purge");
    let mut new = new_instance(&id, "second-life", t(10));
    new.status.input = json!("second");
    ok(
        store.create_instance(new.clone()).await,
        "create again after purge",
    );
    assert_eq!(status(&*store, &id, "after re-create").await, new.status);
    assert_eq!(history(&*store, &id, "after re-create").await, vec![]);
    let work = fetch(&*store, t(100), "the new start").await;
    assert_eq!(
        work.history_len, 0,
        "a re-created instance starts with an empty history"
    );
    assert_eq!(
        events(&work),
        vec![new.start],
        "only the new start is delivered (no leftovers of the purged instance)"
    );
}

/// A `watch_status` receiver changes when create or a commit changes the status.
pub async fn watch_status_sees_status_changes<S: Store>(store: Arc<S>) {
    let id = iid("watched");
    let mut rx = store.watch_status(&id);
    rx.borrow_and_update();
    ok(
        store.create_instance(new_instance(&id, NAME, t(0))).await,
        "create_instance",
    );
    assert!(
        tokio::time::timeout(SIGNAL_TIMEOUT, rx.changed())
            .await
            .is_ok_and(|r| r.is_ok()),
        "a receiver taken before create should change when the instance is created"
    );
    let work = fetch(&*store, t(1), "first fetch").await;
    rx.borrow_and_update();
    commit(&*store, turn(&work, t(1)), "Running turn").await;
    assert!(
        tokio::time::timeout(SIGNAL_TIMEOUT, rx.changed())
            .await
            .is_ok_and(|r| r.is_ok()),
        "the receiver should change when a commit makes the instance Running"
    );
    let mut late = store.watch_status(&id);
    late.borrow_and_update();
    rx.borrow_and_update();
    finish(&*store, &id, t(2), RuntimeStatus::Completed).await;
    for (name, rx) in [("first", &mut rx), ("second", &mut late)] {
        assert!(
            tokio::time::timeout(SIGNAL_TIMEOUT, rx.changed())
                .await
                .is_ok_and(|r| r.is_ok()),
            "the {name} receiver should change when a commit completes the instance"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

/// `signals().orchestrations` is notified by every write that makes instance work ready:
/// create, send, a commit leaving messages, abandon, and an activity result.
pub async fn signals_wake_orchestration_workers<S: Store>(store: Arc<S>) {
    let signals = store.signals();
    let ready = &signals.orchestrations;
    let id = iid("signalled");
    expect_signal(
        ready,
        "create_instance",
        store.create_instance(new_instance(&id, NAME, t(0))),
    )
    .await
    .expect("create_instance");
    let work = fetch(&*store, t(0), "first fetch").await;
    expect_signal(
        ready,
        "abandon_orchestration",
        store.abandon_orchestration(&id, work.lease),
    )
    .await
    .expect("abandon_orchestration");
    let work = fetch(&*store, t(0), "second fetch").await;
    ok(
        store.send(&id, raised("e", json!(1)), None).await,
        "send while leased",
    );
    let tasks = [task(&id, 0)];
    expect_signal(
        ready,
        "commit_turn leaving a deliverable message",
        store.commit_turn(with_activities(turn(&work, t(0)), &tasks)),
    )
    .await
    .expect("commit_turn");
    let work = fetch(&*store, t(1), "third fetch").await;
    commit(&*store, turn(&work, t(1)), "consuming the event").await;
    expect_signal(ready, "send", store.send(&id, raised("f", json!(2)), None))
        .await
        .expect("send");
    let work = fetch(&*store, t(2), "fourth fetch").await;
    commit(&*store, turn(&work, t(2)), "consuming the second event").await;
    let attempt = fetch_activity(&*store, t(3), LEASE, "fetch the attempt").await;
    expect_signal(
        ready,
        "complete_activity",
        store.complete_activity(&attempt.lease, task_completed(0)),
    )
    .await
    .expect("complete_activity");
}

/// `signals().activities` is notified by a commit that schedules attempts and by
/// `abandon_activity`.
pub async fn signals_wake_activity_workers<S: Store>(store: Arc<S>) {
    let signals = store.signals();
    let ready = &signals.activities;
    let id = create(&*store, "activity-signals", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    expect_signal(
        ready,
        "commit_turn scheduling an activity",
        store.commit_turn(with_activities(turn(&work, t(0)), &[task(&id, 0)])),
    )
    .await
    .expect("commit_turn");
    let attempt = fetch_activity(&*store, t(1), LEASE, "fetch the attempt").await;
    expect_signal(
        ready,
        "abandon_activity",
        store.abandon_activity(&attempt.lease),
    )
    .await
    .expect("abandon_activity");
    fetch_activity(&*store, t(2), LEASE, "after the abandon").await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

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
/// once and that each fetch's version is the history length committed so far.
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

/// A start with `start_at` is not deliverable before then, and is afterwards.
pub async fn scheduled_start_is_delivered_at_start_at<S: Store>(store: Arc<S>) {
    let id = iid("scheduled");
    let mut new = new_instance(&id, NAME, t(0));
    new.start_at = Some(t(100));
    ok(store.create_instance(new).await, "scheduled create");
    fetch_none(&*store, t(99), "before start_at").await;
    assert_eq!(
        ok(store.next_wakeup().await, "next_wakeup"),
        Some(t(100)),
        "the scheduled start is the next wake-up"
    );
    let work = fetch(&*store, t(100), "at start_at").await;
    assert_eq!(work.instance_id, id);
    assert!(
        matches!(work.messages[0].event.event, Event::ExecutionStarted { .. }),
        "the start message is delivered: {:?}",
        work.messages
    );
}

/// `replace_finished` re-creates a finished instance from scratch, never a running one.
pub async fn replace_finished_recreates_only_finished_instances<S: Store>(store: Arc<S>) {
    let id = running(&*store, "replaceable").await;
    let mut again = new_instance(&id, "second", t(5));
    again.replace_finished = true;
    assert_eq!(
        store.create_instance(again.clone()).await,
        Err(StoreError::AlreadyExists(id.clone())),
        "a running instance is never replaced"
    );
    finish(&*store, &id, t(1), RuntimeStatus::Completed).await;
    ok(
        store.create_instance(again.clone()).await,
        "replace the finished instance",
    );
    assert_eq!(status(&*store, &id, "after replace").await, again.status);
    assert!(
        history(&*store, &id, "after replace").await.is_empty(),
        "the old history is gone"
    );
    let work = fetch(&*store, t(6), "the new start").await;
    assert_eq!(work.history_len, 0);
    assert_eq!(events(&work), vec![again.start]);
}

/// `sub_instances` are created atomically with the turn; one that exists is left alone.
pub async fn sub_instances_are_created_with_the_turn<S: Store>(store: Arc<S>) {
    let parent = running(&*store, "parent").await;
    let existing = create(&*store, "existing-child", t(0)).await;
    let before = status(&*store, &existing, "existing child").await;
    let _ = fetch(&*store, t(0), "take the existing child's start").await;
    let child = iid("parent:0");
    let mut new_child = new_instance(&child, "child", t(1));
    new_child.status.parent = Some(parent.clone());
    let mut clash = new_instance(&existing, "clash", t(1));
    clash.status.parent = Some(parent.clone());
    let work = lease(&*store, &parent, t(1), "parent turn").await;
    let mut commit_ = turn(&work, t(1));
    commit_.sub_instances = vec![new_child.clone(), clash];
    commit(&*store, commit_, "parent turn").await;
    assert_eq!(
        status(&*store, &child, "child").await,
        new_child.status,
        "the child exists with its parent"
    );
    assert_eq!(
        status(&*store, &existing, "existing").await,
        before,
        "an existing id is left as it is"
    );
    let work = fetch(&*store, t(2), "the child's start").await;
    assert_eq!(work.instance_id, child);
    assert_eq!(events(&work), vec![new_child.start]);
}

/// `messages` reach other live instances with the turn; those to missing or finished
/// instances are dropped without failing the turn.
pub async fn messages_reach_other_instances_with_the_turn<S: Store>(store: Arc<S>) {
    let sender = running(&*store, "sender").await;
    let receiver = running(&*store, "receiver").await;
    let done = running(&*store, "done").await;
    finish(&*store, &done, t(1), RuntimeStatus::Completed).await;
    let work = lease(&*store, &sender, t(2), "sending turn").await;
    let mut commit_ = turn(&work, t(2));
    let note = raised("note", json!({"from": "sender"}));
    commit_.messages = vec![
        OutgoingMessage {
            instance_id: receiver.clone(),
            event: note.clone(),
        },
        OutgoingMessage {
            instance_id: iid("nobody"),
            event: note.clone(),
        },
        OutgoingMessage {
            instance_id: done.clone(),
            event: note.clone(),
        },
    ];
    commit(&*store, commit_, "sending turn").await;
    let work = fetch(&*store, t(3), "the receiver's turn").await;
    assert_eq!(work.instance_id, receiver);
    assert_eq!(events(&work), vec![note]);
    fetch_none(&*store, t(3), "nothing else").await;
    assert_eq!(
        store.status(&iid("nobody")).await,
        Ok(None),
        "no instance is created"
    );
}

/// `replace_history` (continue-as-new) drops the old generation and sets the new input.
pub async fn replace_history_drops_the_old_generation<S: Store>(store: Arc<S>) {
    let id = running(&*store, "generations").await;
    let work = lease(&*store, &id, t(1), "scheduling turn").await;
    let mut scheduling = with_timers(turn(&work, t(1)), &[(5, t(10))]);
    scheduling.activities = vec![task(&id, 6)];
    commit(&*store, scheduling, "scheduling turn").await;
    let attempt = fetch_activity(&*store, t(1), LEASE, "the old generation's attempt").await;
    let work = lease(&*store, &id, t(1), "restart turn").await;
    let mut commit_ = turn(&work, t(1));
    let restart = HistoryEvent::new(Event::ExecutionStarted {
        name: NAME.into(),
        version: 3,
        input: json!(2),
        seed: 7,
        parent: None,
        generation: 0,
        eager_restarts: 0,
    });
    commit_.replace_history = true;
    commit_.history = Vec::new();
    commit_.messages = vec![OutgoingMessage {
        instance_id: id.clone(),
        event: restart.clone(),
    }];
    commit_.status.input = Some(json!(2));
    commit(&*store, commit_, "restart turn").await;
    assert!(history(&*store, &id, "after restart").await.is_empty());
    assert_eq!(status(&*store, &id, "after restart").await.input, json!(2));
    let work = fetch(&*store, t(2), "the new generation").await;
    assert_eq!(
        work.history_len, 0,
        "the history length restarts with the history"
    );
    assert_eq!(events(&work), vec![restart]);
    let late = store
        .complete_activity(&attempt.lease, task_completed(6))
        .await;
    assert!(
        matches!(late, Err(StoreError::Conflict { .. })),
        "a late result of the old generation is refused, got {late:?}"
    );
    fetch_activity_none(&*store, t(100), "the old generation's activities are gone").await;
    assert!(
        ok(store.next_wakeup().await, "next_wakeup").is_none_or(|at| at >= t(1) + LEASE),
        "the old generation's timer is gone"
    );
}
