//! The workloads on durable: its in-memory store and its file store (fsync on).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_runtime::store::{FileStore, Store};
use durable_runtime::{
    activity, orchestrator, ActivityContext, Client, InstanceId, OrchestrationContext, Runtime,
    RuntimeBuilder, RuntimeStatus, Stats, TaskError,
};

use crate::sys::proc_status_kb;

const WAIT: Duration = Duration::from_secs(3600);

/// A trivial activity.
#[activity]
pub async fn noop(_ctx: ActivityContext, n: u64) -> Result<u64, String> {
    Ok(n + 1)
}

/// Workloads 1 and 3: a chain of 3 trivial activities.
#[orchestrator]
pub async fn chain3(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
    let a = ctx.call(noop, n).await?;
    let b = ctx.call(noop, a).await?;
    ctx.call(noop, b).await
}

/// Workloads 2 and 6: `steps` sequential activities.
#[orchestrator]
pub async fn sequential(ctx: OrchestrationContext, steps: u64) -> Result<u64, TaskError> {
    let mut x = 0;
    for _ in 0..steps {
        x = ctx.call(noop, x).await?;
    }
    Ok(x)
}

/// Workloads 4 and 5: one activity, a pause on an external event, one more activity.
#[orchestrator]
async fn paused(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
    let a = ctx.call(noop, n).await?;
    ctx.set_custom_status("waiting");
    let go: u64 = ctx.wait_for_event("go").await?;
    ctx.call(noop, a + go).await
}

/// Which of durable's stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    File,
}

/// A runtime on a fresh store (a fresh temporary directory for the file store).
pub struct Env {
    runtime: Runtime,
    pub client: Client,
    file: Option<Arc<FileStore>>,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    pub async fn new(kind: StoreKind, root: &Path, cache: Option<usize>) -> Env {
        Self::with(kind, root, cache, |b| b).await
    }

    /// The same, with `configure` applied to the runtime's builder.
    async fn with(
        kind: StoreKind,
        root: &Path,
        cache: Option<usize>,
        configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
    ) -> Env {
        match kind {
            StoreKind::Memory => Self::build(None, None, cache, configure),
            StoreKind::File => {
                let dir = tempfile::Builder::new()
                    .prefix("durable-bench-")
                    .tempdir_in(root)
                    .expect("create a temporary directory");
                let store = FileStore::open(dir.path())
                    .await
                    .expect("open the file store");
                Self::build(Some(Arc::new(store)), Some(dir), cache, configure)
            }
        }
    }

    /// A runtime over the file store in `dir` (kept after the run).
    pub async fn in_dir(dir: &Path, cache: Option<usize>) -> Env {
        let store = FileStore::open(dir).await.expect("open the file store");
        Self::build(Some(Arc::new(store)), None, cache, |b| b)
    }

    fn build(
        file: Option<Arc<FileStore>>,
        dir: Option<tempfile::TempDir>,
        cache: Option<usize>,
        configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
    ) -> Env {
        let mut builder = Runtime::builder()
            .orchestrator(chain3)
            .orchestrator(sequential)
            .orchestrator(paused)
            .activity(noop);
        if let Some(store) = &file {
            builder = builder.shared_store(Arc::clone(store) as Arc<dyn Store>);
        }
        if let Some(capacity) = cache {
            builder = builder.cache_capacity(capacity);
        }
        let runtime = configure(builder).start().expect("start the runtime");
        let client = runtime.client();
        Env {
            runtime,
            client,
            file,
            _dir: dir,
        }
    }

    pub fn stats(&self) -> Stats {
        self.runtime.stats()
    }

    pub async fn close(self) {
        self.runtime.shutdown().await;
        if let Some(store) = &self.file {
            store.close().await;
        }
    }
}

async fn finished(client: &Client, id: &InstanceId) -> bool {
    let status = client
        .wait_for_completion(id, WAIT)
        .await
        .expect("wait for an instance");
    status.runtime_status == RuntimeStatus::Completed
}

/// Workload 1: `n` chains started together (each start spawned, none awaited before the
/// next), timed from the first start to the last completion. Returns the time and how many
/// instances did not complete.
pub async fn chains(kind: StoreKind, root: &Path, n: usize) -> (Duration, usize) {
    chains_on(Env::new(kind, root, None).await, n).await
}

/// Workload 1 with spans exported: the runtime given a tracer whose provider hands every
/// span, in batches, to an exporter that counts them (as an OTLP exporter would receive
/// them, without the network). Returns the time, the instances not completed, and the
/// spans exported.
#[cfg(feature = "telemetry")]
pub async fn chains_exported(kind: StoreKind, root: &Path, n: usize) -> (Duration, usize, u64) {
    use opentelemetry::trace::TracerProvider as _;

    let counter = spans::Counting::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(counter.clone())
        .build();
    let tracer = provider.tracer("durable");
    let env = Env::with(kind, root, None, |b| b.tracer(tracer)).await;
    let (elapsed, failed) = chains_on(env, n).await;
    let _ = provider.shutdown();
    (elapsed, failed, counter.count())
}

#[cfg(feature = "telemetry")]
mod spans {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};

    /// Counts the spans it is handed.
    #[derive(Debug, Default, Clone)]
    pub struct Counting(Arc<AtomicU64>);

    impl Counting {
        pub fn count(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    impl SpanExporter for Counting {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// Starts chains `0..n` together (each start spawned, none awaited before the next).
pub async fn start_chains(client: &Client, n: usize) -> Vec<InstanceId> {
    let starts: Vec<_> = (0..n as u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.start(chain3, i).await })
        })
        .collect();
    let mut ids = Vec::with_capacity(n);
    for start in starts {
        ids.push(start.await.expect("start task").expect("start"));
    }
    ids
}

async fn chains_on(env: Env, n: usize) -> (Duration, usize) {
    let client = env.client.clone();
    let t = Instant::now();
    let ids = start_chains(&client, n).await;
    let mut failed = 0;
    for id in &ids {
        if !finished(&client, id).await {
            failed += 1;
        }
    }
    let elapsed = t.elapsed();
    env.close().await;
    (elapsed, failed)
}

/// Workloads 2 and 6: one orchestration of `steps` sequential activities, start to
/// completion, with the runtime's counters.
pub async fn sequential_run(
    kind: StoreKind,
    root: &Path,
    steps: u64,
    cache: Option<usize>,
) -> (Duration, Stats) {
    let env = Env::new(kind, root, cache).await;
    let t = Instant::now();
    let id = env
        .client
        .start(sequential, steps)
        .await
        .expect("start sequential");
    assert!(finished(&env.client, &id).await, "sequential failed");
    let elapsed = t.elapsed();
    let stats = env.stats();
    env.close().await;
    (elapsed, stats)
}

/// Workload 3: start-to-complete latencies (seconds) of `runs` chains run one after the
/// other, after `warmup` unmeasured ones.
pub async fn latency(kind: StoreKind, root: &Path, runs: usize, warmup: usize) -> Vec<f64> {
    let env = Env::new(kind, root, None).await;
    let mut samples = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let t = Instant::now();
        let id = env.client.start(chain3, i as u64).await.expect("start");
        assert!(finished(&env.client, &id).await, "chain failed");
        if i >= warmup {
            samples.push(t.elapsed().as_secs_f64());
        }
    }
    env.close().await;
    samples
}

fn rss_line(key: &str) {
    let rss = proc_status_kb("VmRSS").unwrap_or(0);
    let hwm = proc_status_kb("VmHWM").unwrap_or(0);
    println!("RESULT {key}_rss_kb={rss}");
    println!("RESULT {key}_hwm_kb={hwm}");
}

/// Workload 4, in a child process: `n` instances paused on an external event in the file
/// store in `dir`; prints `RESULT key=value` lines for the parent.
pub async fn paused_child(dir: PathBuf, n: usize) {
    rss_line("baseline");
    let env = Env::in_dir(&dir, None).await;
    let client = env.client.clone();
    let t = Instant::now();
    // At most START_BATCH starts in flight: what stays resident is then what each paused
    // instance keeps, not the transient peak of 100,000 start tasks alive at once.
    const START_BATCH: usize = 1_000;
    let mut ids = Vec::with_capacity(n);
    for batch in (0..n as u64).collect::<Vec<_>>().chunks(START_BATCH) {
        let starts: Vec<_> = batch
            .iter()
            .map(|&i| {
                let client = client.clone();
                tokio::spawn(async move { client.start(paused, i).await })
            })
            .collect();
        for start in starts {
            ids.push(start.await.expect("start task").expect("start"));
        }
    }
    for id in &ids {
        client
            .wait_until(id, WAIT, |s| s.custom_status.is_some())
            .await
            .expect("wait for the pause");
    }
    let to_pause = t.elapsed();
    println!("RESULT pause_s={}", to_pause.as_secs_f64());
    // Let the allocator and the writer settle before reading the resident size.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss_line("paused");
    println!("RESULT cached={}", env.stats().cached);

    let t = Instant::now();
    let raises: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let client = client.clone();
            tokio::spawn(async move { client.raise_event(&id, "go", 1u64).await })
        })
        .collect();
    for raise in raises {
        raise.await.expect("raise task").expect("raise");
    }
    let mut failed = 0;
    for id in &ids {
        if !finished(&client, id).await {
            failed += 1;
        }
    }
    let to_complete = t.elapsed();
    println!("RESULT complete_s={}", to_complete.as_secs_f64());
    println!("RESULT failed={failed}");
    rss_line("completed");
    let stats = env.stats();
    println!("RESULT stats={stats:?}");
    env.close().await;
}

/// Workload 5, in a child process: open the file store in `dir` (as the previous run left
/// it), then again after a checkpoint; prints `RESULT key=value` lines.
pub async fn reopen_child(dir: PathBuf) {
    rss_line("baseline");
    let t = Instant::now();
    let store = FileStore::open(&dir).await.expect("open the file store");
    println!("RESULT open_s={}", t.elapsed().as_secs_f64());
    rss_line("opened");
    let t = Instant::now();
    store.checkpoint().await.expect("checkpoint");
    println!("RESULT checkpoint_s={}", t.elapsed().as_secs_f64());
    store.close().await;
    drop(store);
    let t = Instant::now();
    let store = FileStore::open(&dir).await.expect("reopen the file store");
    println!("RESULT reopen_checkpointed_s={}", t.elapsed().as_secs_f64());
    store.close().await;
}

/// Bytes on disk under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
