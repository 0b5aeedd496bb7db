//! Fencing: a stale lease or history length changes nothing.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::support::*;
use crate::history::HistoryEvent;
use crate::instance_id::InstanceId;
use crate::status::InstanceStatus;
use crate::store::{OrchestrationWork, Store, StoreError, TurnCommit};

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
pub async fn commit_with_wrong_history_len_conflicts_and_changes_nothing<S: Store>(store: Arc<S>) {
    let id = iid("wrong-history-len");
    let new = new_instance(&id, NAME, t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let before = status(&*store, &id, "before").await;
    let holder = fetch(&*store, t(1), "first fetch").await;
    for wrong in [1, 7] {
        let mut bad = everything(&holder, t(3));
        bad.expected_history_len = wrong;
        assert_conflict(
            store.commit_turn(bad).await,
            &format!("commit expecting a history of {wrong} events, against an empty one"),
        );
    }
    fetch_none(
        &*store,
        t(4),
        "after a refused commit the lease is still held",
    )
    .await;
    assert_untouched(
        &*store,
        &id,
        &before,
        &new.start,
        holder,
        "wrong history length",
    )
    .await;
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
