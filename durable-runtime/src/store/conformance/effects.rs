//! A turn's effects beyond its own history: sub-instances, messages, continue-as-new.

use std::sync::Arc;

use serde_json::json;

use super::support::*;
use crate::history::{Event, HistoryEvent};
use crate::status::RuntimeStatus;
use crate::store::{OutgoingMessage, Store, StoreError};

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
