//! Time: delayed messages, timers and scheduled starts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::support::*;
use crate::history::Event;
use crate::store::Store;

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

/// `next_timer(now)` is the earliest due time after `now` of a timer, a scheduled start or a
/// delayed send, never a lease's expiry; cancelled and fired timers no longer count.
pub async fn next_timer_reports_timers_not_leases<S: Store>(store: Arc<S>) {
    let next = |now| {
        let store = Arc::clone(&store);
        async move { ok(store.next_timer(now).await, "next_timer") }
    };
    assert_eq!(next(t(0)).await, None, "an empty store has no timer");
    let later = iid("scheduled");
    let mut scheduled = new_instance(&later, NAME, t(0));
    scheduled.start_at = Some(t(500));
    ok(store.create_instance(scheduled).await, "scheduled create");
    let id = create(&*store, "timers", t(0)).await;
    let work = lease(&*store, &id, t(0), "first turn").await;
    assert_eq!(
        next(t(0)).await,
        Some(t(500)),
        "a lease (until {:?}) is no timer; the scheduled start is",
        t(0) + LEASE
    );
    commit(
        &*store,
        with_timers(turn(&work, t(0)), &[(1, t(300)), (2, t(100))]),
        "turn starting two timers",
    )
    .await;
    assert_eq!(next(t(0)).await, Some(t(100)), "the earliest timer");
    assert_eq!(
        next(t(100)).await,
        Some(t(300)),
        "a time due at `now` is not after it"
    );
    ok(
        store.send(&id, raised("soon", json!(1)), Some(t(50))).await,
        "delayed send",
    );
    assert_eq!(next(t(0)).await, Some(t(50)), "a delayed send counts");
    let work = fetch(&*store, t(60), "the delayed send").await;
    assert_eq!(events(&work), vec![raised("soon", json!(1))]);
    let mut cancelling = turn(&work, t(60));
    cancelling.cancelled_timers = vec![2];
    commit(&*store, cancelling, "turn cancelling timer 2").await;
    assert_eq!(
        next(t(60)).await,
        Some(t(300)),
        "a cancelled timer no longer counts"
    );
    let work = fetch(&*store, t(300), "timer 1").await;
    assert_eq!(events(&work), vec![timer_fired(1, t(300))]);
    commit(&*store, turn(&work, t(300)), "turn after timer 1").await;
    assert_eq!(
        next(t(300)).await,
        Some(t(500)),
        "a fired timer no longer counts"
    );
}
