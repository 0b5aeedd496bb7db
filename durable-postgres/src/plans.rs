//! Every hot query has an index to use: planned with sequential scans disabled, none
//! falls back to one (as it must when no index fits); and the generic plans the store's
//! sessions use keep to it in tables of a thousand rows, where the planner may scan.

use std::time::{Duration, SystemTime};

use durable_runtime::store::InstanceQuery;
use durable_runtime::RuntimeStatus;
use tokio_postgres::types::ToSql;

use crate::sql::{param_refs, Sql};
use crate::testing::{self, TestSchema};

#[tokio::test]
async fn every_hot_query_uses_an_index() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let _store = schema.store().await.unwrap();
    let sql = Sql::new(&format!("\"{}\"", schema.name()));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    let values = Values::new();
    let fixed = hot_statements(&sql, &values);
    let mut plans = Vec::new();
    for (name, text, params) in fixed {
        plans.push((name.to_string(), explain(&client, text, &params).await));
    }
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let queries = [
        InstanceQuery::default(),
        InstanceQuery {
            statuses: vec![RuntimeStatus::Running],
            ..InstanceQuery::default()
        },
        InstanceQuery {
            statuses: vec![RuntimeStatus::Completed, RuntimeStatus::Failed],
            created_from: Some(at),
            ..InstanceQuery::default()
        },
        InstanceQuery {
            name: Some("work".into()),
            continuation: Some(format!("1700000000000000000:{}", values.id)),
            ..InstanceQuery::default()
        },
        InstanceQuery {
            created_from: Some(at),
            created_to: Some(at + Duration::from_secs(60)),
            page_size: 10,
            ..InstanceQuery::default()
        },
        InstanceQuery {
            id_prefix: Some("order-".into()),
            ..InstanceQuery::default()
        },
        InstanceQuery {
            statuses: vec![RuntimeStatus::Running],
            custom_status: Some("waiting".into()),
            ..InstanceQuery::default()
        },
    ];
    for query in &queries {
        let count = sql.count(query);
        plans.push((
            format!("count {query:?}"),
            explain(&client, &count.text, &param_refs(&count.params)).await,
        ));
    }
    for query in queries {
        let list = sql.list(&query).unwrap();
        plans.push((
            format!("list {query:?}"),
            explain(&client, &list.text, &param_refs(&list.params)).await,
        ));
    }
    for (name, plan) in plans {
        assert!(!plan.contains("Seq Scan"), "{name} scans a table:\n{plan}");
    }
}

/// The store's sessions use generic plans (`plan_cache_mode = force_generic_plan`, see the
/// crate docs): planned once per connection, blind to the parameters. Each must still look
/// rows up by key with a thousand instances, messages, attempts and events in the tables,
/// and the planner free to scan. (Given an array, the planner assumes ten ids, and would
/// rather hash a thousand instances than look ten up: a claim of one instance read them all.)
#[tokio::test]
async fn generic_plans_look_rows_up_by_key_in_full_tables() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let _store = schema.store().await.unwrap();
    let s = format!("\"{}\"", schema.name());
    let sql = Sql::new(&s);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "INSERT INTO {s}.instances (id, name, version, status, created_at, updated_at, input,
                                        history_len, lease_until)
             SELECT 'instance-' || g, 'work', 1, 'Running', g, g, '\\x7b7d'::bytea, 3,
                    CASE WHEN g % 2 = 0 THEN g END
             FROM generate_series(1, 1000) g;
             INSERT INTO {s}.messages (instance_id, visible_at, event)
             SELECT 'instance-' || g, g % 3 - 1, '\\x7b7d'::bytea FROM generate_series(1, 1000) g;
             INSERT INTO {s}.activities (instance_id, seq, task, due_at)
             SELECT 'instance-' || g, 1, '\\x7b7d'::bytea, g % 3 - 1 FROM generate_series(1, 1000) g;
             INSERT INTO {s}.history (instance_id, generation, seq, event)
             SELECT 'instance-' || g, 0, n, '\\x7b7d'::bytea
             FROM generate_series(1, 1000) g, generate_series(0, 2) n;
             ANALYZE {s}.instances; ANALYZE {s}.messages; ANALYZE {s}.activities;
             ANALYZE {s}.history;
             SET plan_cache_mode = force_generic_plan;"
        ))
        .await
        .unwrap();
    let values = Values::new();
    let (receivers, letters) = (vec!["instance-7".to_string()], vec![values.bytes.clone()]);
    let mut statements = hot_statements(&sql, &values);
    statements.extend([
        (
            "send_many",
            sql.send_many.as_str(),
            vec![&receivers as &(dyn ToSql + Sync), &letters],
        ),
        (
            "release_orchestrations",
            &sql.release_orchestrations,
            vec![&values.ids, &values.seqs],
        ),
        (
            "release_activities",
            &sql.release_activities,
            vec![&values.ids, &values.seqs, &values.seqs],
        ),
    ]);
    // Not on a hot path, and the planner is right that a scan of these tables is cheap at
    // this size (it looks up by key as they grow): a claim of expired leases runs at most
    // once per poll interval while a process is busy; `has_work` is not called by the
    // runtime's loops; the queue depths are read once per metrics interval, capped.
    let rare = ["fetch_expired_orchestrations", "has_work", "queue_depths"];
    let mut scans = Vec::new();
    for (name, text, params) in statements {
        if rare.contains(&name) {
            continue;
        }
        client
            .batch_execute(&format!("PREPARE {name} AS {text}"))
            .await
            .unwrap();
        // A generic plan is the same whatever the values: NULLs will do.
        let nulls = vec!["NULL"; params.len()].join(", ");
        let plan = explain(&client, &format!("EXECUTE {name}({nulls})"), &[]).await;
        if plan.contains("Seq Scan") {
            scans.push(format!("{name}:\n{plan}"));
        }
    }
    assert!(
        scans.is_empty(),
        "generic plans scan tables:\n{}",
        scans.join("\n\n")
    );
}

/// Parameter values for the hot statements' plans.
struct Values {
    id: &'static str,
    bytes: Vec<u8>,
    no_bytes: Option<Vec<u8>>,
    no_text: Option<String>,
    no_time: Option<i64>,
    seqs: Vec<i64>,
    events: Vec<Vec<u8>>,
    ids: Vec<String>,
}

impl Values {
    fn new() -> Self {
        let id = "some-id";
        Values {
            id,
            bytes: b"{}".to_vec(),
            no_bytes: None,
            no_text: None,
            no_time: None,
            seqs: vec![1],
            events: vec![b"{}".to_vec()],
            ids: vec![id.to_string()],
        }
    }
}

type Planned<'a> = (&'static str, &'a str, Vec<&'a (dyn ToSql + Sync)>);

/// Every statement a store runs per turn, claim, attempt or poll, with parameters.
fn hot_statements<'a>(sql: &'a Sql, v: &'a Values) -> Vec<Planned<'a>> {
    vec![
        ("status", &sql.status, vec![&v.id]),
        ("load_history", &sql.load_history, vec![&v.id]),
        ("purge", &sql.purge, vec![&v.id]),
        (
            "fetch_orchestration",
            &sql.fetch_orchestration,
            vec![&0i64, &1i64, &v.id, &8i64],
        ),
        (
            "fetch_expired_orchestrations",
            &sql.fetch_expired_orchestrations,
            vec![&0i64, &1i64, &v.id, &8i64],
        ),
        (
            "fetch_expired_activities",
            &sql.fetch_expired_activities,
            vec![&0i64, &1i64, &v.id, &8i64],
        ),
        (
            "lease_orchestration",
            &sql.lease_orchestration,
            vec![&0i64, &1i64, &v.id, &v.id],
        ),
        (
            "fetch_activity",
            &sql.fetch_activity,
            vec![&0i64, &1i64, &v.id, &8i64],
        ),
        (
            "complete_activity",
            &sql.complete_activity,
            vec![&v.id, &1i64, &1i64, &v.bytes],
        ),
        (
            "renew_activity",
            &sql.renew_activity,
            vec![&v.id, &1i64, &1i64, &1i64],
        ),
        (
            "load_history_page",
            &sql.load_history_page,
            vec![&v.id, &0i64, &100i64],
        ),
        (
            "commit_turn",
            &sql.commit_turn,
            vec![
                &v.id,
                &1i64,
                &0i64,
                &"Running",
                &v.no_bytes,
                &v.no_text,
                &v.no_bytes,
                &v.no_bytes,
                &v.no_time,
                &false,
                &v.seqs,
                &v.seqs,
                &v.events,
                &v.seqs,
                &v.seqs,
                &v.events,
                &0i64,
                &true,
            ],
        ),
        (
            "insert_instance",
            &sql.insert_instance,
            vec![
                &v.id,
                &v.id,
                &1i64,
                &"Pending",
                &0i64,
                &0i64,
                &v.bytes,
                &v.no_bytes,
                &v.no_text,
                &v.no_bytes,
                &v.no_text,
                &0i64,
                &v.bytes,
            ],
        ),
        (
            "claimed_inbox",
            &sql.claimed_inbox,
            vec![&0i64, &v.ids, &v.seqs],
        ),
        ("next_wakeup", &sql.next_wakeup, vec![&0i64]),
        ("has_work", &sql.has_work, vec![&0i64]),
        ("queue_depths", &sql.queue_depths, vec![&0i64]),
    ]
}

async fn explain(
    client: &tokio_postgres::Client,
    text: &str,
    params: &[&(dyn ToSql + Sync)],
) -> String {
    client
        .query(&format!("EXPLAIN {text}"), params)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN {text}: {e}"))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}
