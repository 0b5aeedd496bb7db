//! Long attempts: a lease renewed while its attempt runs, and results that arrive late.

use std::sync::Arc;
use std::time::Duration;

use super::support::*;
use crate::status::RuntimeStatus;
use crate::store::Store;

const TERM: Duration = Duration::from_secs(10);

/// A renewed lease runs from the renewal: the attempt is not handed out at the first term's
/// end, only once the renewed term has passed without another renewal. Then the old holder's
/// renewal and completion are refused.
pub async fn renewed_activity_lease_is_not_handed_out_again<S: Store>(store: Arc<S>) {
    let (_, tasks) = scheduling(&*store, "renewed-activity", 1).await;
    let held = fetch_activity(&*store, t(1), TERM, "first fetch").await;
    for now in [8, 15, 22] {
        ok(
            store.renew_activity(&held.lease, t(now), TERM).await,
            &format!("renewal at {now} s, inside the lease"),
        );
        fetch_activity_none(
            &*store,
            t(now + 9),
            &format!("after the first term, before the term renewed at {now} s ends"),
        )
        .await;
    }
    assert_eq!(
        store.next_wakeup().await,
        Ok(Some(t(32))),
        "next_wakeup should report the renewed lease's expiry"
    );
    let taken = fetch_activity(&*store, t(33), TERM, "once the renewals stopped").await;
    assert_eq!(taken.task, tasks[0], "the same attempt, handed out again");
    assert_ne!(taken.lease.token, held.lease.token, "under a new token");
    assert_conflict(
        store.renew_activity(&held.lease, t(34), TERM).await,
        "renewal by the holder of a lease another worker took",
    );
    assert_conflict(
        store
            .complete_activity(&held.lease, task_completed(0))
            .await,
        "completion by the holder of a lease another worker took",
    );
    fetch_activity_none(&*store, t(40), "the new holder's lease still runs").await;
    ok(
        store
            .complete_activity(&taken.lease, task_completed(0))
            .await,
        "completion by the new holder",
    );
    let work = fetch(&*store, t(41), "the result's turn").await;
    assert_eq!(events(&work), vec![task_completed(0)]);
}

/// A lease that expired while nobody took the attempt still belongs to its holder: its
/// result is accepted, and a renewal holds the attempt again.
pub async fn expired_activity_lease_not_taken_over_still_counts<S: Store>(store: Arc<S>) {
    let (_, _) = scheduling(&*store, "late-result", 2).await;
    let first = fetch_activity(&*store, t(1), TERM, "first attempt").await;
    let second = fetch_activity(&*store, t(1), TERM, "second attempt").await;
    // Expired at 11 s, not taken since.
    ok(
        store.renew_activity(&second.lease, t(30), TERM).await,
        "renewal after the lease expired, nobody having taken the attempt",
    );
    ok(
        store
            .complete_activity(&first.lease, task_completed(first.task.id))
            .await,
        "a result after the lease expired, nobody having taken the attempt",
    );
    fetch_activity_none(
        &*store,
        t(35),
        "the renewed attempt is held again; the completed one is done",
    )
    .await;
    let work = fetch(&*store, t(35), "the late result's turn").await;
    assert_eq!(events(&work), vec![task_completed(first.task.id)]);
    commit(&*store, turn(&work, t(35)), "the late result's turn").await;
    ok(
        store
            .complete_activity(&second.lease, task_completed(second.task.id))
            .await,
        "the renewed attempt's result",
    );
    let work = fetch(&*store, t(36), "the renewed attempt's turn").await;
    assert_eq!(events(&work), vec![task_completed(second.task.id)]);
}

/// An attempt that is no longer wanted (completed, abandoned, or its instance finished)
/// cannot be renewed: the renewal is `Conflict` and changes nothing.
pub async fn renewal_of_an_attempt_no_longer_held_conflicts<S: Store>(store: Arc<S>) {
    let (id, _) = scheduling(&*store, "unwanted", 3).await;
    let completed = fetch_activity(&*store, t(1), TERM, "attempt to complete").await;
    let abandoned = fetch_activity(&*store, t(1), TERM, "attempt to abandon").await;
    let orphaned = fetch_activity(&*store, t(1), TERM, "attempt of a finished instance").await;
    ok(
        store
            .complete_activity(&completed.lease, task_completed(completed.task.id))
            .await,
        "complete",
    );
    assert_conflict(
        store.renew_activity(&completed.lease, t(2), TERM).await,
        "renewal of a completed attempt",
    );
    ok(store.abandon_activity(&abandoned.lease).await, "abandon");
    assert_conflict(
        store.renew_activity(&abandoned.lease, t(2), TERM).await,
        "renewal of an abandoned attempt",
    );
    let again = fetch_activity(&*store, t(3), TERM, "the abandoned attempt, again").await;
    assert_eq!(again.task.id, abandoned.task.id);
    finish(&*store, &id, t(4), RuntimeStatus::Terminated).await;
    assert_conflict(
        store.renew_activity(&orphaned.lease, t(5), TERM).await,
        "renewal of an attempt whose instance finished",
    );
    assert_conflict(
        store.renew_activity(&again.lease, t(5), TERM).await,
        "renewal of an attempt whose instance finished",
    );
    fetch_activity_none(&*store, t(100), "a finished instance's attempts").await;
}
