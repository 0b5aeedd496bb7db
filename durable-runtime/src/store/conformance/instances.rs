//! Instances and ids: creation, status, unknown ids, ids as plain keys, replacement.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::support::*;
use crate::history::HistoryEvent;
use crate::instance_id::InstanceId;
use crate::status::RuntimeStatus;
use crate::store::{InstanceQuery, StatusUpdate, Store, StoreError, TurnCommit};

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

/// Without `replace_finished`, a create refuses an id in any state: a finished instance
/// (completed, failed or terminated) stays as it was, status, history and all.
pub async fn create_without_replace_finished_refuses_finished_instances<S: Store>(store: Arc<S>) {
    for (n, ended) in [
        RuntimeStatus::Completed,
        RuntimeStatus::Failed,
        RuntimeStatus::Terminated,
    ]
    .into_iter()
    .enumerate()
    {
        let id = running(&*store, &format!("kept-{n}")).await;
        finish(&*store, &id, t(1), ended).await;
        let before = status(&*store, &id, "after finishing").await;
        let recorded = history(&*store, &id, "after finishing").await;
        let again = new_instance(&id, "second", t(5));
        assert!(!again.replace_finished);
        assert_eq!(
            store.create_instance(again).await,
            Err(StoreError::AlreadyExists(id.clone())),
            "a create without replace_finished should refuse the {ended:?} instance `{id}`"
        );
        assert_eq!(
            status(&*store, &id, "after the refused create").await,
            before,
            "a refused create should leave the {ended:?} status"
        );
        assert_eq!(
            history(&*store, &id, "after the refused create").await,
            recorded,
            "a refused create should leave the {ended:?} history"
        );
    }
    fetch_none(&*store, t(6), "after the refused creates").await;
}
