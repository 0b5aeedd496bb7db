//! Activities: attempts handed out once, their leases and results.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::support::*;
use crate::status::RuntimeStatus;
use crate::store::{ActivityLease, Store, StoreError};

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
