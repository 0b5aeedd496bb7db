//! Metrics: after a few workflows, `/metrics` (durable-http's router, behind its checks)
//! parses as Prometheus text and holds the expected counts (the process's recorder: one
//! test); a paused worker's stale turn commit and stale activity result are counted, as the
//! lease takeovers that made them stale (on a recorder of the test's own, on its thread).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use durable_http::RouterOptions;
use durable_runtime::metric::{self, names};
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, Client, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::roles::RoleStore;
use durable_tests::{finished, tally, Cache, Setup};
use http::Request;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// The POC's workflows, as the demo runs them.
#[allow(dead_code)]
#[path = "../../demo/src/workflows.rs"]
mod workflows;

/// What the demo's workflows print replayed lines with.
#[allow(dead_code)]
mod console {
    pub fn replay_line(_: &str) {}
}

use workflows::{
    external_event_orchestrator, reliable_activity, retry_orchestrator, unreliable_activity,
};

#[orchestrator]
async fn doomed(ctx: OrchestrationContext) -> Result<(), String> {
    let _ = ctx;
    Err("doomed from the start".to_string())
}

/// One sample: a metric's name, its labels, its value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the Prometheus text format (0.0.4) strictly: `# HELP`/`# TYPE` comments and
/// `name{label="value",...} number` samples; anything else fails the test.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    let mut typed = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(_), _) => {}
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary"].contains(&kind),
                        "{line}"
                    );
                    typed.insert(name.to_string(), kind.to_string());
                }
                _ => panic!("not a Prometheus comment: {line}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed: {line}"));
                let labels = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                        (
                            k.to_string(),
                            v.unwrap_or_else(|| panic!("{line}")).to_string(),
                        )
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "a metric name: {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| typed.contains_key(*base))
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "a sample without a TYPE: {line}"
        );
        samples.insert((name.to_string(), labels), value);
    }
    samples
}

fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<_, _> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    *samples
        .get(&(name.to_string(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {samples:#?}"))
}

/// Scrapes `/metrics` as an operator would: through durable-http's router, guarded like
/// every route.
async fn scrape(client: &Client, handle: &PrometheusHandle) -> String {
    let render = handle.clone();
    let app = durable_http::router(
        client.clone(),
        RouterOptions::default().metrics(move || render.render()),
    );
    let scrape = |host: &'static str| {
        Request::get("/metrics")
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    // A request addressed to another host is refused.
    let refused = app.clone().oneshot(scrape("evil.example")).await.unwrap();
    assert_eq!(refused.status(), 403);
    let response = app.oneshot(scrape("localhost")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn metrics_after_a_few_workflows() {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), metric::LATENCY_BUCKETS)
        .unwrap()
        .set_buckets_for_metric(
            Matcher::Full(names::FILE_BATCH_WRITES.into()),
            metric::BATCH_BUCKETS,
        )
        .unwrap()
        .install_recorder()
        .expect("the only recorder of this process");
    let setup = Setup::file(Cache::On).await;
    let runtime = setup
        .builder()
        .orchestrator(retry_orchestrator)
        .orchestrator(external_event_orchestrator)
        .orchestrator(doomed)
        .activity(reliable_activity)
        .activity(unreliable_activity)
        .start()
        .unwrap();
    let client = runtime.client();
    for n in 0..2 {
        let id = client
            .start(retry_orchestrator, ())
            .instance_id(format!("retry-{n}"))
            .await
            .unwrap();
        assert_eq!(
            finished(&client, &id).await.runtime_status,
            RuntimeStatus::Completed
        );
    }
    let id = client.start(doomed, ()).await.unwrap();
    assert_eq!(
        finished(&client, &id).await.runtime_status,
        RuntimeStatus::Failed
    );
    let id = client.start(external_event_orchestrator, ()).await.unwrap();
    durable_tests::custom_status_is(&client, &id, "waiting for event step2").await;
    client.terminate(&id, "enough").await.unwrap();
    assert_eq!(
        finished(&client, &id).await.runtime_status,
        RuntimeStatus::Terminated
    );

    // Metrics are recorded right after a commit, which a client may hear of first: let the
    // workers finish.
    runtime.shutdown().await;
    let text = scrape(&client, &handle).await;
    let samples = parse(&text);
    if std::env::var_os("SHOW_METRICS").is_some() {
        println!("{text}");
    }

    let retry = [("orchestrator", "retry_orchestrator")];
    assert_eq!(get(&samples, names::INSTANCES_STARTED, &retry), 2.0);
    assert_eq!(get(&samples, names::INSTANCES_COMPLETED, &retry), 2.0);
    assert_eq!(
        get(
            &samples,
            names::INSTANCES_FAILED,
            &[("orchestrator", "doomed")]
        ),
        1.0
    );
    let events = [("orchestrator", "external_event_orchestrator")];
    assert_eq!(get(&samples, names::INSTANCES_STARTED, &events), 1.0);
    assert_eq!(get(&samples, names::INSTANCES_TERMINATED, &events), 1.0);
    // Attempts by name and outcome: the latency histogram's count.
    let attempts = |activity, outcome| {
        let name = format!("{}_count", names::ACTIVITY_SECONDS);
        get(
            &samples,
            &name,
            &[("activity", activity), ("outcome", outcome)],
        )
    };
    assert_eq!(attempts("unreliable_activity", "failed"), 6.0);
    assert_eq!(attempts("unreliable_activity", "completed"), 2.0);
    assert_eq!(attempts("reliable_activity", "completed"), 7.0);
    // Every turn committed is timed, and each one's commit; the store synced each write.
    let turns = get(&samples, &format!("{}_count", names::TURN_SECONDS), &[]);
    // The retry workflow takes 11 turns (its start, the results of steps 1 and 2, three
    // failures and three back-offs, step 3's success, step 4's result), the failing one 1,
    // the terminated one 3 (its start, step 1's result, the terminate).
    assert_eq!(turns, 2.0 * 11.0 + 1.0 + 3.0, "{text}");
    assert_eq!(
        get(
            &samples,
            &format!("{}_count", names::STORE_COMMIT_SECONDS),
            &[]
        ),
        turns
    );
    assert!(
        get(
            &samples,
            &format!("{}_count", names::FILE_FDATASYNC_SECONDS),
            &[]
        ) > 0.0
    );
    assert!(get(&samples, &format!("{}_sum", names::FILE_BATCH_WRITES), &[]) >= turns);
    assert_eq!(
        get(&samples, names::CACHE_MISSES, &[]),
        4.0,
        "each instance's first turn"
    );
    assert!(get(&samples, names::CACHE_HITS, &[]) >= turns - 4.0);
    assert_eq!(get(&samples, names::QUEUE_READY_TURNS, &[]), 0.0);
    assert_eq!(get(&samples, names::QUEUE_READY_ACTIVITIES, &[]), 0.0);
}

/// The gate that holds an instance's first `paused_step` attempt: its worker is paused.
fn gate(id: &str) -> Arc<Semaphore> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let mut gates = GATES.get_or_init(Default::default).lock().unwrap();
    Arc::clone(
        gates
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(0))),
    )
}

#[activity]
async fn paused_step(ctx: ActivityContext) -> Result<u32, String> {
    let id = ctx.instance_id().to_string();
    if tally::bump(format!("{id}/paused_step")) == 1 {
        let gate = gate(&id);
        let _pass = gate.acquire().await.unwrap();
    }
    Ok(7)
}

#[orchestrator]
async fn stale_flow(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let step = ctx.call(paused_step, ()).await?;
    ctx.set_custom_status("stepped");
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(step + go)
}

/// Two turn workers and two activity workers on one store, as four processes; the first of
/// each pauses past its lease and comes back with a stale write.
async fn stale_writes(setup: Setup, handle: PrometheusHandle) {
    let lease = Duration::from_secs(30);
    let worker = |store: RoleStore| {
        setup
            .builder_with(Advance::Manual)
            .store(store)
            .orchestration_lease(lease)
            .activity_lease(lease)
            .orchestrator(stale_flow)
            .activity(paused_step)
            .start()
            .unwrap()
    };
    let role = || RoleStore::new(Arc::clone(&setup.store));
    let (store, stall) = role().turns_only().stall_first_commit();
    let paused_turns = worker(store);
    let paused_attempts = worker(role().activities_only().never_renews());
    let client = paused_turns.client();
    let id = format!(
        "stale-{}",
        if setup.dir.is_some() {
            "file"
        } else {
            "memory"
        }
    );
    client.start(stale_flow, ()).instance_id(&id).await.unwrap();

    // The first turn waits at its commit, holding the instance's lease; once the lease has
    // run out, another worker takes the instance over and runs the turn again.
    stall.stalled().await;
    let turns = worker(role().turns_only());
    setup.clock.advance(lease + Duration::from_secs(1));
    // The paused activity worker takes the step and hangs in it, never renewing its lease;
    // once it has run out, another worker takes the attempt over and completes it.
    durable_tests::eventually(|| tally::get(&format!("{id}/paused_step")) == 1).await;
    let attempts = worker(role().activities_only());
    setup.clock.advance(lease + Duration::from_secs(1));
    durable_tests::custom_status_is(&client, &id, "stepped").await;

    // The paused workers come back: their writes are refused.
    stall.release();
    durable_tests::eventually(|| paused_turns.stats().conflicts == 1).await;
    gate(&id).add_permits(1);
    let refused = |kind| {
        let samples = parse(&handle.render());
        let labels = BTreeMap::from([("kind".to_string(), kind)]);
        samples
            .get(&(names::STALE_COMMITS_REFUSED.to_string(), labels))
            .copied()
    };
    durable_tests::eventually(|| refused("activity".to_string()).is_some()).await;

    client.raise_event(&id, "go", 1).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<u32>().unwrap(), Some(8), "{status:?}");
    for runtime in [paused_turns, paused_attempts, turns, attempts] {
        runtime.shutdown().await;
    }
    assert_eq!(
        tally::get(&format!("{id}/paused_step")),
        2,
        "the step ran twice"
    );

    let samples = parse(&scrape(&client, &handle).await);
    let by_kind = |name, kind| get(&samples, name, &[("kind", kind)]);
    assert_eq!(by_kind(names::STALE_COMMITS_REFUSED, "turn"), 1.0);
    assert_eq!(by_kind(names::STALE_COMMITS_REFUSED, "activity"), 1.0);
    assert_eq!(by_kind(names::LEASE_TAKEOVERS, "orchestration"), 1.0);
    assert_eq!(by_kind(names::LEASE_TAKEOVERS, "activity"), 1.0);
}

/// Runs `work` on a runtime on this thread, with a Prometheus recorder of its own (the
/// process's belongs to `metrics_after_a_few_workflows`).
fn with_own_recorder<F: std::future::Future<Output = ()>>(
    work: impl FnOnce(PrometheusHandle) -> F,
) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(work(handle)));
}

#[test]
fn stale_writes_and_lease_takeovers_by_kind_on_the_memory_store() {
    with_own_recorder(|handle| async {
        stale_writes(Setup::memory(Cache::On), handle).await;
    });
}

#[test]
fn stale_writes_and_lease_takeovers_by_kind_on_the_file_store() {
    with_own_recorder(|handle| async {
        stale_writes(Setup::file(Cache::On).await, handle).await;
    });
}
