//! The same workloads on duroxide 0.1.x: its SQLite provider in memory and in a file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duroxide::providers::sqlite::SqliteProvider;
use duroxide::providers::Provider;
use duroxide::runtime::registry::ActivityRegistry;
use duroxide::runtime::{self, RuntimeOptions};
use duroxide::{ActivityContext, Client, OrchestrationContext, OrchestrationRegistry};

/// How often the harness polls duroxide's instance row while waiting for an instance (its
/// own `wait_for_orchestration` backs off from 5 ms to 100 ms; 1 ms favours duroxide).
const POLL: Duration = Duration::from_millis(1);
const WAIT: Duration = Duration::from_secs(3600);
/// The longest the first instance of a batch may take (all the others start meanwhile).
const WAIT_FIRST: Duration = Duration::from_secs(600);

/// Which of duroxide's providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    File,
}

/// Tuned per duroxide's docs: the provider guide recommends a 10 ms
/// `dispatcher_min_poll_interval` for local SQLite (the default is 100 ms; the SQLite
/// provider does not long-poll), and the observability guide's production example uses 4
/// orchestration and 8 worker dispatchers (the default is 2 and 2).
pub fn options() -> RuntimeOptions {
    RuntimeOptions {
        dispatcher_min_poll_interval: Duration::from_millis(10),
        orchestration_concurrency: 4,
        worker_concurrency: 8,
        ..Default::default()
    }
}

pub fn describe_options() -> String {
    let o = options();
    format!(
        "duroxide {}: dispatcher_min_poll_interval {:?}, orchestration_concurrency {}, \
         worker_concurrency {}, orchestrator_lock_timeout {:?}, worker_lock_timeout {:?}, \
         max_attempts {}; client waits poll get_instance_info every {:?}",
        duroxide_version(),
        o.dispatcher_min_poll_interval,
        o.orchestration_concurrency,
        o.worker_concurrency,
        o.orchestrator_lock_timeout,
        o.worker_lock_timeout,
        o.max_attempts,
        POLL,
    )
}

fn duroxide_version() -> &'static str {
    "0.1.32"
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

fn next_id(prefix: &str) -> String {
    format!("{prefix}-{}", INSTANCE.fetch_add(1, Ordering::Relaxed))
}

pub struct Env {
    runtime: Arc<runtime::Runtime>,
    pub client: Client,
    store: Arc<SqliteProvider>,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    pub async fn new(kind: StoreKind, root: &Path) -> Env {
        let (store, dir) = match kind {
            StoreKind::Memory => (
                SqliteProvider::new_in_memory()
                    .await
                    .expect("in-memory SQLite"),
                None,
            ),
            StoreKind::File => {
                let dir = tempfile::Builder::new()
                    .prefix("duroxide-bench-")
                    .tempdir_in(root)
                    .expect("create a temporary directory");
                let path = dir.path().join("duroxide.db");
                std::fs::File::create(&path).expect("create the database file");
                let url = format!("sqlite:{}", path.display());
                (
                    SqliteProvider::new(&url, None).await.expect("file SQLite"),
                    Some(dir),
                )
            }
        };
        let store = Arc::new(store);
        let activities = ActivityRegistry::builder()
            .register("Noop", |_ctx: ActivityContext, input: String| async move {
                let n: u64 = input.parse().unwrap_or(0);
                Ok((n + 1).to_string())
            })
            .build();
        let orchestrations = OrchestrationRegistry::builder()
            .register(
                "Chain3",
                |ctx: OrchestrationContext, input: String| async move {
                    let a = ctx.schedule_activity("Noop", input).await?;
                    let b = ctx.schedule_activity("Noop", a).await?;
                    ctx.schedule_activity("Noop", b).await
                },
            )
            .register(
                "Sequential",
                |ctx: OrchestrationContext, input: String| async move {
                    let steps: u64 = input.parse().unwrap_or(0);
                    let mut x = "0".to_string();
                    for _ in 0..steps {
                        x = ctx.schedule_activity("Noop", x).await?;
                    }
                    Ok(x)
                },
            )
            .build();
        let provider: Arc<dyn Provider> = store.clone();
        let runtime = runtime::Runtime::start_with_options(
            provider.clone(),
            activities,
            orchestrations,
            options(),
        )
        .await;
        Env {
            runtime,
            client: Client::new(provider),
            store,
            _dir: dir,
        }
    }

    /// The SQLite settings the provider's connections run with.
    pub async fn sqlite_settings(&self) -> String {
        let pool = self.store.get_pool();
        let mut out = Vec::new();
        for pragma in ["journal_mode", "synchronous", "busy_timeout", "cache_size"] {
            let value: Result<String, _> =
                sqlx::query_scalar::<_, String>(&format!("PRAGMA {pragma}"))
                    .fetch_one(pool)
                    .await;
            let value = match value {
                Ok(v) => v,
                Err(_) => sqlx::query_scalar::<_, i64>(&format!("PRAGMA {pragma}"))
                    .fetch_one(pool)
                    .await
                    .map(|v| v.to_string())
                    .unwrap_or_else(|e| format!("? ({e})")),
            };
            out.push(format!("{pragma}={value}"));
        }
        format!(
            "{} (pool of {} connections)",
            out.join(", "),
            pool.options().get_max_connections()
        )
    }

    pub async fn close(self) {
        self.runtime.shutdown(Some(1000)).await;
        self.store.get_pool().close().await;
    }
}

/// How long an instance may show no progress before the harness gives up on it (counted as
/// not completed). duroxide can leave an instance behind after "database is locked" errors.
const STALL: Duration = Duration::from_secs(60);

/// Polls the instance's row until it has finished or `deadline` passes; true if it
/// completed. (Uses `get_instance_info`, one indexed row, rather than
/// `get_orchestration_status`, which reads the whole history on every poll and would slow
/// duroxide down on long histories.)
async fn finished(client: &Client, id: &str, deadline: Instant) -> bool {
    loop {
        if let Ok(info) = client.get_instance_info(id).await {
            match info.status.as_str() {
                "Completed" => return true,
                "Failed" => return false,
                _ => {}
            }
        }
        if Instant::now() > deadline {
            eprintln!(
                "duroxide: instance {id} not finished by the deadline; counted as not completed"
            );
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Workload 1 (see the durable side).
pub async fn chains(kind: StoreKind, root: &Path, n: usize) -> (Duration, usize) {
    let env = Env::new(kind, root).await;
    let client = env.client.clone();
    let ids: Vec<String> = (0..n).map(|_| next_id("chain")).collect();
    let t = Instant::now();
    let starts: Vec<_> = ids
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, id)| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .start_orchestration(id, "Chain3", i.to_string())
                    .await
            })
        })
        .collect();
    let mut failed = 0;
    let mut started = Vec::with_capacity(n);
    for (start, id) in starts.into_iter().zip(&ids) {
        match start.await.expect("start task") {
            Ok(()) => started.push(id),
            Err(_) => failed += 1,
        }
    }
    // Give up on the rest once nothing has finished for STALL.
    let mut deadline = Instant::now() + STALL.max(WAIT_FIRST);
    for id in started {
        if finished(&client, id, deadline).await {
            deadline = Instant::now() + STALL;
        } else {
            failed += 1;
        }
    }
    let elapsed = t.elapsed();
    env.close().await;
    (elapsed, failed)
}

/// Workload 2 (see the durable side).
pub async fn sequential_run(kind: StoreKind, root: &Path, steps: u64) -> Duration {
    let env = Env::new(kind, root).await;
    let id = next_id("seq");
    let t = Instant::now();
    env.client
        .start_orchestration(&id, "Sequential", steps.to_string())
        .await
        .expect("start");
    assert!(
        finished(&env.client, &id, Instant::now() + WAIT).await,
        "sequential failed"
    );
    let elapsed = t.elapsed();
    env.close().await;
    elapsed
}

/// Workload 3 (see the durable side).
pub async fn latency(kind: StoreKind, root: &Path, runs: usize, warmup: usize) -> Vec<f64> {
    let env = Env::new(kind, root).await;
    let mut samples = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let id = next_id("latency");
        let t = Instant::now();
        env.client
            .start_orchestration(&id, "Chain3", i.to_string())
            .await
            .expect("start");
        if !finished(&env.client, &id, Instant::now() + STALL).await {
            eprintln!("duroxide: latency run {i} did not complete; left out");
            continue;
        }
        if i >= warmup {
            samples.push(t.elapsed().as_secs_f64());
        }
    }
    env.close().await;
    samples
}

/// The settings of both providers, read from live connections.
pub async fn settings(root: &Path) -> Vec<String> {
    let mut out = vec![describe_options()];
    for (name, kind) in [("in-memory", StoreKind::Memory), ("file", StoreKind::File)] {
        let env = Env::new(kind, root).await;
        out.push(format!(
            "duroxide SQLite {name}: {}",
            env.sqlite_settings().await
        ));
        env.close().await;
    }
    out
}
