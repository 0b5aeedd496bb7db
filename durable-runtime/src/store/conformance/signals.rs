//! Signals: writes that make work ready wake the workers.

use std::sync::Arc;

use serde_json::json;

use super::support::*;
use crate::store::Store;

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
