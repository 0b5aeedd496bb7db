//! Every hot query has an index to use: planned with sequential scans disabled, none
//! falls back to one (as it must when no index fits).

use std::time::{Duration, SystemTime};

use durable_runtime::store::InstanceQuery;
use durable_runtime::RuntimeStatus;
use tokio_postgres::types::ToSql;

use crate::sql::Sql;
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
    let id = "some-id";
    let bytes: Vec<u8> = b"{}".to_vec();
    let (no_bytes, no_text, no_time): (Option<Vec<u8>>, Option<String>, Option<i64>) =
        (None, None, None);
    let (seqs, events) = (vec![1i64], vec![bytes.clone()]);
    let ids = vec![id.to_string()];
    let fixed: Vec<(&str, &str, Vec<&(dyn ToSql + Sync)>)> = vec![
        ("status", &sql.status, vec![&id]),
        ("load_history", &sql.load_history, vec![&id]),
        ("purge", &sql.purge, vec![&id]),
        (
            "fetch_orchestration",
            &sql.fetch_orchestration,
            vec![&0i64, &1i64, &id, &8i64],
        ),
        (
            "fetch_expired_orchestrations",
            &sql.fetch_expired_orchestrations,
            vec![&0i64, &1i64, &id, &8i64],
        ),
        (
            "fetch_expired_activities",
            &sql.fetch_expired_activities,
            vec![&0i64, &1i64, &id, &8i64],
        ),
        (
            "lease_orchestration",
            &sql.lease_orchestration,
            vec![&0i64, &1i64, &id, &id],
        ),
        (
            "fetch_activity",
            &sql.fetch_activity,
            vec![&0i64, &1i64, &id, &8i64],
        ),
        (
            "complete_activity",
            &sql.complete_activity,
            vec![&id, &1i64, &1i64, &bytes],
        ),
        (
            "renew_activity",
            &sql.renew_activity,
            vec![&id, &1i64, &1i64, &1i64],
        ),
        (
            "load_history_page",
            &sql.load_history_page,
            vec![&id, &0i64, &100i64],
        ),
        (
            "commit_turn",
            &sql.commit_turn,
            vec![
                &id, &1i64, &0i64, &"Running", &no_bytes, &no_text, &no_bytes, &no_bytes, &no_time,
                &false, &seqs, &seqs, &events, &seqs, &seqs, &events, &0i64, &true,
            ],
        ),
        (
            "insert_instance",
            &sql.insert_instance,
            vec![
                &id, &id, &1i64, &"Pending", &0i64, &0i64, &bytes, &no_bytes, &no_text, &no_bytes,
                &no_text, &0i64, &bytes,
            ],
        ),
        (
            "claimed_inbox",
            &sql.claimed_inbox,
            vec![&0i64, &ids, &seqs],
        ),
        ("next_wakeup", &sql.next_wakeup, vec![&0i64]),
        ("has_work", &sql.has_work, vec![&0i64]),
        ("queue_depths", &sql.queue_depths, vec![&0i64]),
    ];
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
            continuation: Some(format!("1700000000000000000:{id}")),
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
        let params: Vec<&(dyn ToSql + Sync)> = count
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        plans.push((
            format!("count {query:?}"),
            explain(&client, &count.text, &params).await,
        ));
    }
    for query in queries {
        let list = sql.list(&query).unwrap();
        let params: Vec<&(dyn ToSql + Sync)> = list
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        plans.push((
            format!("list {query:?}"),
            explain(&client, &list.text, &params).await,
        ));
    }
    for (name, plan) in plans {
        assert!(!plan.contains("Seq Scan"), "{name} scans a table:\n{plan}");
    }
}

/// Statements given arrays of ids look them up by key whatever the planner guesses: in the
/// generic plan of a prepared statement it takes an array for ten ids, and with a thousand
/// instances it would rather hash every row than look ten ids up, so that a claim of one
/// instance read them all.
#[tokio::test]
async fn arrays_of_ids_are_looked_up_by_key_not_by_scanning_every_instance() {
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
            "INSERT INTO {s}.instances (id, name, version, status, created_at, updated_at, input)
             SELECT 'instance-' || g, 'work', 1, 'Running', g, g, '\\x7b7d'::bytea
             FROM generate_series(1, 1000) g;
             INSERT INTO {s}.messages (instance_id, visible_at, event)
             SELECT 'instance-' || g, 0, '\\x7b7d'::bytea FROM generate_series(1, 1000) g;
             ANALYZE {s}.instances; ANALYZE {s}.messages;
             SET plan_cache_mode = force_generic_plan;"
        ))
        .await
        .unwrap();
    let statements = [
        (
            "claimed_inbox",
            &sql.claimed_inbox,
            "1, '{instance-7}', '{0}'",
        ),
        ("send_many", &sql.send_many, "'{instance-7}', '{\\\\x7b7d}'"),
        (
            "release_orchestrations",
            &sql.release_orchestrations,
            "'{instance-7}', '{1}'",
        ),
        (
            "release_activities",
            &sql.release_activities,
            "'{instance-7}', '{1}', '{1}'",
        ),
    ];
    for (name, text, args) in statements {
        client
            .batch_execute(&format!("PREPARE {name} AS {text}"))
            .await
            .unwrap();
        let plan = explain(&client, &format!("EXECUTE {name}({args})"), &[]).await;
        assert!(!plan.contains("Seq Scan"), "{name} scans a table:\n{plan}");
    }
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
