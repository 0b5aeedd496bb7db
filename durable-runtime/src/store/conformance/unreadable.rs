//! Records that cannot be read (written before the payload limits, or damaged) never block:
//! an inbox message is delivered as the failure of its instance, an activity task is handed
//! back to be failed, and statuses, listings and purges keep working.

use std::sync::Arc;

use serde_json::{json, Value};

use super::support::*;
use crate::history::{kinds, CompletionStatus, Event, HistoryEvent};
use crate::status::RuntimeStatus;
use crate::store::{InstanceQuery, Store, StoreError};

/// `levels` arrays inside each other: past 127, serde_json does not read it back.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}

/// A message the store cannot read is delivered, in its place, as an `ExecutionCompleted`
/// that fails the instance with an `unreadable` failure; the messages after it are delivered
/// as sent.
pub async fn unreadable_message_is_delivered_as_a_failure<S: Store>(store: Arc<S>) {
    let id = running(&*store, "unreadable-message").await;
    let sent = [raised("deep", nested(130)), raised("after", json!(1))];
    for event in sent.clone() {
        ok(store.send(&id, event, None).await, "send");
    }
    let work = fetch(&*store, t(1), "the messages").await;
    let delivered = events(&work);
    assert_eq!(
        delivered.len(),
        2,
        "both messages are delivered: {delivered:?}"
    );
    match &delivered[0].event {
        Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            failure: Some(failure),
            ..
        } => assert_eq!(failure.kind, kinds::UNREADABLE, "{failure:?}"),
        other => panic!("expected the unreadable message as a failure, got {other:?}"),
    }
    assert_eq!(delivered[1], sent[1]);
    commit(
        &*store,
        completing(turn(&work, t(1))),
        "failing the instance",
    )
    .await;
    assert!(status(&*store, &id, "after")
        .await
        .runtime_status
        .is_finished());
    ok(store.purge(&id).await, "purge");
}

/// An activity attempt whose task the store cannot read is leased and handed back as
/// `UnreadableTask`; completing it with that lease delivers the result as usual.
pub async fn unreadable_task_is_handed_back_to_be_failed<S: Store>(store: Arc<S>) {
    let id = create(&*store, "unreadable-task", t(0)).await;
    let mut deep = task(&id, 0);
    deep.input = nested(130);
    let work = lease(&*store, &id, t(0), "scheduling turn").await;
    commit(
        &*store,
        with_activities(turn(&work, t(0)), &[deep]),
        "scheduling turn",
    )
    .await;
    let lease = match store.fetch_activity(t(1), LEASE).await {
        Err(StoreError::UnreadableTask { lease, error }) => {
            assert!(!error.is_empty());
            lease
        }
        other => panic!("expected UnreadableTask, got {other:?}"),
    };
    assert_eq!((&lease.instance_id, lease.id), (&id, 0));
    let failed = HistoryEvent::new(Event::TaskFailed {
        id: 0,
        failure: crate::history::Failure::new(kinds::UNREADABLE, "cannot be read"),
    });
    ok(
        store.complete_activity(&lease, failed.clone()).await,
        "complete the unreadable attempt",
    );
    let work = fetch(&*store, t(2), "the failure").await;
    assert_eq!(events(&work), vec![failed]);
    fetch_activity_none(&*store, t(3), "the attempt is done").await;
}

/// An instance whose input no store reads back still has a status, is listed, and once
/// finished is purged.
pub async fn unreadable_payloads_never_block_status_list_or_purge<S: Store>(store: Arc<S>) {
    let id = iid("unreadable-input");
    let mut new = new_instance(&id, NAME, t(0));
    new.status.input = nested(130);
    if let Event::ExecutionStarted { input, .. } = &mut new.start.event {
        *input = nested(130);
    }
    ok(store.create_instance(new).await, "create");
    let read = status(&*store, &id, "before").await;
    assert_eq!(
        (read.name.as_str(), read.runtime_status),
        (NAME, RuntimeStatus::Pending)
    );
    let page = ok(store.list(&InstanceQuery::default()).await, "list");
    assert_eq!(page.instances.len(), 1);
    let work = fetch(&*store, t(1), "the start").await;
    commit(&*store, completing(turn(&work, t(1))), "finishing turn").await;
    assert!(status(&*store, &id, "after")
        .await
        .runtime_status
        .is_finished());
    ok(store.list(&InstanceQuery::default()).await, "list after");
    ok(store.purge(&id).await, "purge");
    assert_eq!(ok(store.status(&id).await, "status after purge"), None);
}
