//! The stores' own metrics (the `metrics` feature): a lease that expires while held is
//! counted as taken over, and the ready queues are reported as gauges, on the memory and file
//! stores (the engine both share). The runtime's metrics are checked end to end in
//! `tests/tests/metrics.rs`.

#![cfg(feature = "metrics")]

use std::time::{Duration, SystemTime};

use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::metric::names;
use durable_runtime::store::{FileStore, MemoryStore, NewInstance, Store};
use durable_runtime::{InstanceId, InstanceStatus, RuntimeStatus};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn instance(id: &InstanceId) -> NewInstance {
    NewInstance {
        status: InstanceStatus {
            instance_id: id.clone(),
            name: "flow".into(),
            version: 1,
            runtime_status: RuntimeStatus::Pending,
            created_at: t(0),
            last_updated_at: t(0),
            input: serde_json::Value::Null,
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: "flow".into(),
            version: 1,
            input: serde_json::Value::Null,
            seed: 1,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        }),
        start_at: None,
        replace_finished: false,
    }
}

/// Runs `work` on this thread with a recorder of its own; returns what it recorded.
fn recorded(work: impl std::future::Future<Output = ()>) -> Vec<(String, String, f64)> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(work));
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match (kind, value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => n as f64,
                (MetricKind::Gauge, DebugValue::Gauge(g)) => g.into_inner(),
                (_, DebugValue::Histogram(h)) => h.len() as f64,
                _ => f64::NAN,
            };
            (key.name().to_string(), labels.join(","), value)
        })
        .collect()
}

fn value(metrics: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
    metrics
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {metrics:#?}"))
        .2
}

async fn take_over(store: &dyn Store) {
    let id = InstanceId::new("taken-over").unwrap();
    store.create_instance(instance(&id)).await.unwrap();
    let lease = Duration::from_secs(10);
    assert!(store
        .fetch_orchestration(t(1), lease)
        .await
        .unwrap()
        .is_some());
    // Held: nobody else gets it, and no takeover is counted.
    assert!(store
        .fetch_orchestration(t(5), lease)
        .await
        .unwrap()
        .is_none());
    // Expired while held (its worker died): the next fetch takes it over.
    assert!(store
        .fetch_orchestration(t(12), lease)
        .await
        .unwrap()
        .is_some());
}

#[test]
fn an_expired_lease_is_counted_as_taken_over_on_the_memory_store() {
    let metrics = recorded(async { take_over(&MemoryStore::new()).await });
    assert_eq!(
        value(&metrics, names::LEASE_TAKEOVERS, "kind=orchestration"),
        1.0
    );
    assert_eq!(value(&metrics, names::QUEUE_READY_TURNS, ""), 0.0);
    assert_eq!(value(&metrics, names::QUEUE_READY_ACTIVITIES, ""), 0.0);
}

#[test]
fn an_expired_lease_is_counted_as_taken_over_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = recorded(async {
        let store = FileStore::open(dir.path()).await.unwrap();
        take_over(&store).await;
        store.close().await;
    });
    assert_eq!(
        value(&metrics, names::LEASE_TAKEOVERS, "kind=orchestration"),
        1.0
    );
    assert_eq!(value(&metrics, names::QUEUE_TIMERS, ""), 0.0);
}
