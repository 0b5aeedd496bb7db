//! A first figure for the PostgreSQL store: `n` chains of 3 trivial activities started
//! together, timed from the first start to the last completion, then the start-to-complete
//! latency of chains run one at a time. Each run uses a schema of its own, dropped after.
//!
//! ```text
//! cargo run --release -p durable-postgres --example chains -- [URL] [N]
//! ```
//!
//! `URL` defaults to `DURABLE_TEST_POSTGRES_URL`; `N` to 1,000. The benchmark harness
//! (`durable-bench`) is where comparisons live; this is a smoke figure.

use std::time::{Duration, Instant};

use durable_postgres::testing::TestSchema;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, Runtime, RuntimeStatus,
    TaskError,
};

#[activity]
async fn noop(_ctx: ActivityContext, n: u64) -> Result<u64, String> {
    Ok(n + 1)
}

#[orchestrator]
async fn chain3(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
    let a = ctx.call(noop, n).await?;
    let b = ctx.call(noop, a).await?;
    ctx.call(noop, b).await
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(durable_postgres::testing::url)
        .expect("pass a PostgreSQL URL or set DURABLE_TEST_POSTGRES_URL");
    let n: u64 = args
        .next()
        .map_or(1_000, |n| n.parse().expect("N is a number"));
    let schema = TestSchema::new(&url).await;
    let store = durable_postgres::PostgresStore::connect_with(&url, schema.options().pool_size(16))
        .await
        .expect("connect");
    let runtime = Runtime::builder()
        .store(store)
        .orchestrator(chain3)
        .activity(noop)
        .start()
        .expect("start the runtime");
    let client = runtime.client();

    let t = Instant::now();
    let starts: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.start(chain3, i).await })
        })
        .collect();
    let mut ids = Vec::new();
    for start in starts {
        ids.push(start.await.unwrap().expect("start"));
    }
    let mut failed = 0;
    for id in &ids {
        let status = client
            .wait_for_completion(id, Duration::from_secs(600))
            .await
            .expect("wait");
        failed += usize::from(status.runtime_status != RuntimeStatus::Completed);
    }
    let elapsed = t.elapsed();
    println!(
        "{n} chains of 3 activities: {:.2} s, {:.0} chains/s, {failed} failed; {:?}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        runtime.stats()
    );

    let mut latencies = Vec::new();
    for i in 0..110 {
        let t = Instant::now();
        let id = client.start(chain3, i).await.expect("start");
        client
            .wait_for_completion(&id, Duration::from_secs(60))
            .await
            .expect("wait");
        if i >= 10 {
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "one chain at a time, start to complete: p50 {:.2} ms, p90 {:.2} ms",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10]
    );
    runtime.shutdown().await;
}
