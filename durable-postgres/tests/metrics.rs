//! The store's metrics (the `metrics` feature), under the runtime's names: a claim that takes
//! an expired lease counts a takeover by kind, and the queues' depths are read now and then
//! into gauges. Runs when `DURABLE_TEST_POSTGRES_URL` is set:
//! `cargo test -p durable-postgres --features metrics --test metrics`.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use durable_postgres::testing::{self, TestSchema};
use durable_postgres::PostgresStore;
use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::metric::names;
use durable_runtime::store::{ActivityTask, NewInstance, StatusUpdate, Store, TurnCommit};
use durable_runtime::{InstanceId, InstanceStatus, RuntimeStatus};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use serde_json::json;

/// Real time allowed for anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn new_instance(id: &str) -> NewInstance {
    let id = InstanceId::new(id).unwrap();
    NewInstance {
        status: InstanceStatus {
            instance_id: id.clone(),
            name: "work".into(),
            version: 1,
            runtime_status: RuntimeStatus::Pending,
            created_at: at(0),
            last_updated_at: at(0),
            input: json!(null),
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: "work".into(),
            version: 1,
            input: json!(null),
            seed: 7,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        }),
        start_at: None,
        replace_finished: false,
    }
}

fn task(id: &str, seq: u64) -> ActivityTask {
    ActivityTask {
        instance_id: InstanceId::new(id).unwrap(),
        id: seq,
        name: "step".into(),
        input: json!(seq),
        attempt: 1,
        timeout: None,
        parent_span: None,
    }
}

/// Runs `work` on a runtime of this thread, with a recorder of its own.
fn recording(work: impl FnOnce(Snapshotter) -> std::pin::Pin<Box<dyn Future<Output = ()>>>) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(work(snapshotter)));
}

/// What a snapshot holds (a snapshot takes the values: counters start again from 0 and
/// gauges read 0 until set again): `(name, labels as key=value,..., value)`.
fn snapshot(snapshotter: &Snapshotter) -> Vec<(String, String, f64)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match (kind, value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => n as f64,
                (MetricKind::Gauge, DebugValue::Gauge(g)) => g.into_inner(),
                _ => return None,
            };
            Some((key.name().to_string(), labels.join(","), value))
        })
        .collect()
}

/// Counters, summed over the snapshots taken.
struct Counters {
    snapshotter: Snapshotter,
    totals: HashMap<(String, String), f64>,
}

impl Counters {
    fn get(&mut self, name: &str, labels: &str) -> f64 {
        for (name, labels, value) in snapshot(&self.snapshotter) {
            *self.totals.entry((name, labels)).or_default() += value;
        }
        self.totals
            .get(&(name.to_string(), labels.to_string()))
            .copied()
            .unwrap_or(0.0)
    }
}

/// Leases a new instance `id` on `store` and commits a turn that schedules `attempts`.
async fn with_attempts(store: &PostgresStore, id: &str, attempts: u64) {
    store.create_instance(new_instance(id)).await.unwrap();
    let work = store
        .fetch_orchestration(at(1), Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the new instance is ready");
    assert_eq!(work.instance_id.as_str(), id);
    let mut turn = TurnCommit::for_work(&work, StatusUpdate::running());
    turn.activities = (1..=attempts).map(|seq| task(id, seq)).collect();
    store.commit_turn(turn).await.unwrap();
}

#[test]
fn a_claim_that_takes_an_expired_lease_counts_a_takeover_by_kind() {
    let Some(url) = testing::url() else { return };
    recording(|snapshotter| {
        Box::pin(async move {
            let schema = TestSchema::new(&url).await;
            let dead = schema.store().await.unwrap();
            let lease = Duration::from_secs(10);
            with_attempts(&dead, "slow", 1).await;
            dead.create_instance(new_instance("stuck")).await.unwrap();
            let held = dead.fetch_orchestration(at(1), lease).await.unwrap();
            assert_eq!(held.unwrap().instance_id.as_str(), "stuck");
            let held = dead.fetch_activity(at(1), lease).await.unwrap();
            assert_eq!(held.unwrap().lease.instance_id.as_str(), "slow");
            let taker = schema.store().await.unwrap();
            // Still held: nothing to take, nothing counted.
            assert!(taker
                .fetch_orchestration(at(5), lease)
                .await
                .unwrap()
                .is_none());
            assert!(taker.fetch_activity(at(5), lease).await.unwrap().is_none());
            let mut counters = Counters {
                snapshotter,
                totals: HashMap::new(),
            };
            let mut takeovers =
                |kind: &str| counters.get(names::LEASE_TAKEOVERS, &format!("kind={kind}"));
            assert_eq!(takeovers("orchestration"), 0.0);
            assert_eq!(takeovers("activity"), 0.0);
            // Expired (at 11): taken over, and counted once each.
            let taken = taker.fetch_orchestration(at(12), lease).await.unwrap();
            assert_eq!(taken.unwrap().instance_id.as_str(), "stuck");
            let taken = taker.fetch_activity(at(12), lease).await.unwrap();
            assert_eq!(taken.unwrap().lease.instance_id.as_str(), "slow");
            assert_eq!(takeovers("orchestration"), 1.0);
            assert_eq!(takeovers("activity"), 1.0);
            // A ready instance is no takeover.
            taker.create_instance(new_instance("fresh")).await.unwrap();
            let fresh = taker.fetch_orchestration(at(13), lease).await.unwrap();
            assert_eq!(fresh.unwrap().instance_id.as_str(), "fresh");
            assert_eq!(takeovers("orchestration"), 1.0);
        })
    });
}

#[test]
fn the_queues_depths_are_read_into_gauges() {
    let Some(url) = testing::url() else { return };
    recording(|snapshotter| {
        Box::pin(async move {
            let schema = TestSchema::new(&url).await;
            let store = PostgresStore::connect_with(
                &url,
                schema.options().poll_interval(Duration::from_millis(10)),
            )
            .await
            .unwrap();
            // One instance leased and turned (two attempts ready), two ready, one scheduled
            // for later (a message not yet due).
            with_attempts(&store, "a-turned", 2).await;
            store
                .create_instance(new_instance("b-ready"))
                .await
                .unwrap();
            store
                .create_instance(new_instance("c-ready"))
                .await
                .unwrap();
            let mut later = new_instance("d-later");
            later.start_at = Some(at(100));
            store.create_instance(later).await.unwrap();
            let expected = [
                (names::QUEUE_READY_TURNS, 2.0),
                (names::QUEUE_READY_ACTIVITIES, 2.0),
                (names::QUEUE_TIMERS, 1.0),
            ];
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                // One snapshot: the three are set together.
                let now = snapshot(&snapshotter);
                let seen: Vec<Option<f64>> = expected
                    .iter()
                    .map(|(name, _)| {
                        now.iter()
                            .find(|(n, labels, _)| n == name && labels.is_empty())
                            .map(|(_, _, value)| *value)
                    })
                    .collect();
                if seen
                    .iter()
                    .zip(&expected)
                    .all(|(seen, (_, want))| *seen == Some(*want))
                {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the depths read {seen:?}, expected {expected:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
}
