//! Clients: send, has_work, list, purge, watch.

use std::sync::Arc;

use serde_json::json;

use super::support::*;
use crate::status::{InstanceStatus, RuntimeStatus};
use crate::store::{InstanceQuery, Store, StoreError};

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
