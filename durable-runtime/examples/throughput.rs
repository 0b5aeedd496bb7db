use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, Runtime, TaskError,
};
use std::time::{Duration, Instant};

#[activity]
async fn noop(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    Ok(n + 1)
}

#[orchestrator]
async fn chain3(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    let a = ctx.call(noop, n).await?;
    let b = ctx.call(noop, a).await?;
    ctx.call(noop, b).await
}

#[orchestrator]
async fn seq(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    let mut x = 0;
    for _ in 0..n {
        x = ctx.call(noop, x).await?;
    }
    Ok(x)
}

fn main() {
    let threads: usize = std::env::var("DURABLE_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(run());
}

async fn run() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let rt = Runtime::builder()
        .orchestrator(chain3)
        .orchestrator(seq)
        .activity(noop)
        .start()
        .unwrap();
    let client = rt.client();
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(client.start(chain3, i as u32).await.unwrap());
    }
    for id in &ids {
        client
            .wait_for_completion(id, Duration::from_secs(600))
            .await
            .unwrap();
    }
    let el = t.elapsed();
    println!(
        "{n} x chain3: {:?} = {:.0} orch/s",
        el,
        n as f64 / el.as_secs_f64()
    );
    let steps: &[u32] = if std::env::args().any(|a| a == "--chains-only") {
        &[]
    } else {
        &[100, 1000, 10000]
    };
    for &steps in steps {
        let t = Instant::now();
        let id = client.start(seq, steps).await.unwrap();
        client
            .wait_for_completion(&id, Duration::from_secs(600))
            .await
            .unwrap();
        let el = t.elapsed();
        println!(
            "seq {steps}: {:?} = {:.1} us/step",
            el,
            el.as_secs_f64() * 1e6 / steps as f64
        );
    }
    println!("{:?}", rt.stats());
}
