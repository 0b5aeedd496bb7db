//! Selection: what a query's id prefix and custom-status text select, and counts per status.

use std::sync::Arc;

use serde_json::{json, Value};

use super::support::*;
use crate::status::RuntimeStatus;
use crate::store::{InstanceQuery, StatusCounts, Store};

/// Creates `id` (created at `t(created)`) and, unless `status` is `Pending`, runs a turn
/// leaving `custom` as its custom status, then finishes it if `status` is a finished one.
async fn instance<S: Store>(
    store: &S,
    id: &str,
    created: u64,
    status: RuntimeStatus,
    custom: Option<Value>,
) {
    let id = create(store, id, t(created)).await;
    if status == RuntimeStatus::Pending {
        return;
    }
    let work = lease(store, &id, t(500), "a turn").await;
    let mut commit_ = turn(&work, t(500));
    commit_.status.custom_status = custom.clone();
    commit(store, commit_, "a turn").await;
    if status != RuntimeStatus::Running {
        let work = lease(store, &id, t(501), "finishing turn").await;
        let mut commit_ = completing(turn(&work, t(501)));
        commit_.status.runtime_status = status;
        commit_.status.custom_status = custom;
        if status != RuntimeStatus::Completed {
            commit_.status.output = None;
        }
        if status == RuntimeStatus::Failed {
            commit_.status.failure = Some(crate::history::Failure::new("boom", "it broke"));
        }
        commit(store, commit_, "finishing turn").await;
    }
}

async fn listed<S: Store>(store: &S, query: InstanceQuery) -> Vec<String> {
    let page = ok(store.list(&query).await, &format!("list({query:?})"));
    assert_eq!(
        page.continuation, None,
        "a small result is one page: {query:?}"
    );
    page.instances
        .into_iter()
        .map(|s| s.instance_id.to_string())
        .collect()
}

/// `list` and `count` select by id prefix (any UTF-8, the last character of the largest
/// code point included) and by text of the custom status's JSON, together with the other
/// filters.
pub async fn list_filters_by_id_prefix_and_custom_status<S: Store>(store: Arc<S>) {
    use RuntimeStatus::*;
    let max = '\u{10FFFF}';
    let spec: Vec<(String, u64, RuntimeStatus, Option<Value>)> = vec![
        (
            "order-1".into(),
            1,
            Running,
            Some(json!("waiting for approval")),
        ),
        (
            "order-2".into(),
            2,
            Completed,
            Some(json!({"stage": "shipping"})),
        ),
        ("orders".into(), 3, Running, None),
        ("ord".into(), 4, Pending, None),
        ("other".into(), 5, Failed, Some(json!("approval refused"))),
        ("é-1".into(), 6, Running, Some(json!("wait"))),
        ("é".into(), 7, Running, None),
        ("f".into(), 8, Running, None),
        (format!("{max}a"), 9, Running, None),
        (format!("z{max}"), 10, Running, None),
        (format!("z{max}{max}b"), 11, Running, None),
    ];
    for (id, created, status, custom) in &spec {
        instance(&*store, id, *created, *status, custom.clone()).await;
    }
    let prefix = |p: &str| InstanceQuery {
        id_prefix: Some(p.to_string()),
        ..Default::default()
    };
    let text = |c: &str| InstanceQuery {
        custom_status: Some(c.to_string()),
        ..Default::default()
    };
    let cases: Vec<(InstanceQuery, Vec<String>)> = vec![
        (prefix("order-"), vec!["order-1".into(), "order-2".into()]),
        (
            prefix("ord"),
            vec![
                "order-1".into(),
                "order-2".into(),
                "orders".into(),
                "ord".into(),
            ],
        ),
        (prefix("order-10"), vec![]),
        (prefix("é"), vec!["é-1".into(), "é".into()]),
        (prefix(&max.to_string()), vec![format!("{max}a")]),
        (
            prefix(&format!("z{max}")),
            vec![format!("z{max}"), format!("z{max}{max}b")],
        ),
        (prefix(&"x".repeat(300)), vec![]),
        (text("approval"), vec!["order-1".into(), "other".into()]),
        (text("shipping"), vec!["order-2".into()]),
        (text("\"stage\""), vec!["order-2".into()]),
        (text("Approval"), vec![]),
        (
            InstanceQuery {
                statuses: vec![Running],
                custom_status: Some("wait".into()),
                ..Default::default()
            },
            vec!["order-1".into(), "é-1".into()],
        ),
        (
            InstanceQuery {
                id_prefix: Some("o".into()),
                created_from: Some(t(2)),
                created_to: Some(t(5)),
                ..Default::default()
            },
            vec!["order-2".into(), "orders".into(), "ord".into()],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(listed(&*store, query.clone()).await, expected, "{query:?}");
        let counts = ok(store.count(&query).await, &format!("count({query:?})"));
        assert_eq!(
            counts.total(),
            expected.len() as u64,
            "count({query:?}) should count what list lists: {counts:?}"
        );
    }
}

/// `count` counts the instances a query selects, per status, ignoring its paging.
pub async fn count_counts_per_status<S: Store>(store: Arc<S>) {
    use RuntimeStatus::*;
    assert_eq!(
        store.count(&InstanceQuery::default()).await,
        Ok(StatusCounts::default()),
        "an empty store counts nothing"
    );
    let spec = [
        ("c-1", 1, Running),
        ("c-2", 2, Running),
        ("c-3", 3, Completed),
        ("c-4", 4, Failed),
        ("c-5", 5, Pending),
        ("c-6", 6, Terminated),
        ("d-1", 7, Completed),
    ];
    for (id, created, status) in spec {
        instance(&*store, id, created, status, None).await;
    }
    let all = ok(store.count(&InstanceQuery::default()).await, "count all");
    assert_eq!(
        all,
        StatusCounts {
            pending: 1,
            running: 2,
            suspended: 0,
            completed: 2,
            failed: 1,
            terminated: 1,
        }
    );
    let query = InstanceQuery {
        statuses: vec![Completed, Running],
        id_prefix: Some("c-".into()),
        page_size: 1,
        continuation: Some(format!("{}:c-1", 1)),
        ..Default::default()
    };
    let some = ok(store.count(&query).await, "count with filters");
    assert_eq!(
        some,
        StatusCounts {
            running: 2,
            completed: 1,
            ..StatusCounts::default()
        },
        "statuses and prefix filter, paging is ignored"
    );
    let range = InstanceQuery {
        created_from: Some(t(3)),
        created_to: Some(t(7)),
        ..Default::default()
    };
    assert_eq!(
        ok(store.count(&range).await, "count a time range").total(),
        4
    );
    let empty = InstanceQuery {
        created_from: Some(t(7)),
        created_to: Some(t(3)),
        ..Default::default()
    };
    assert_eq!(
        ok(store.count(&empty).await, "count an empty time range").total(),
        0
    );
}
