use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durable_runtime::__private::{BoxFuture, Seal};
use durable_runtime::*;

static RELIABLE_RUNS: AtomicU32 = AtomicU32::new(0);
static UNRELIABLE_RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy)]
struct reliable;
impl Activity for reliable {
    const NAME: &'static str = "reliable";
    type Input = String;
    type Output = String;
    type Error = String;
    fn __invoke(_ctx: ActivityContext, input: String, _: Seal) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            RELIABLE_RUNS.fetch_add(1, Ordering::SeqCst);
            Ok(format!("{input} done"))
        })
    }
}

#[derive(Clone, Copy)]
struct unreliable;
impl Activity for unreliable {
    const NAME: &'static str = "unreliable";
    type Input = String;
    type Output = String;
    type Error = String;
    fn __invoke(ctx: ActivityContext, input: String, _: Seal) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            UNRELIABLE_RUNS.fetch_add(1, Ordering::SeqCst);
            if ctx.attempt() < 4 {
                Err(format!("attempt {} failed", ctx.attempt()))
            } else {
                Ok(format!("{input} done"))
            }
        })
    }
}

#[derive(Clone, Copy)]
struct retry_flow;
impl Orchestrator for retry_flow {
    const NAME: &'static str = "retry_flow";
    type Input = ();
    type Output = Vec<String>;
    type Error = TaskError;
    fn __invoke(ctx: OrchestrationContext, _: (), _: Seal) -> BoxFuture<'static, Result<Vec<String>, TaskError>> {
        Box::pin(async move {
            let policy = RetryPolicy::new(5, Duration::from_secs(1)).backoff_coefficient(2.0).max_interval(Duration::from_secs(10));
            let a = ctx.call(reliable, "Step 1".to_string()).await?;
            let b = ctx.call(reliable, "Step 2".to_string()).await?;
            let c = ctx.call(unreliable, "Step 3".to_string()).retry(policy).await?;
            let evt: String = ctx.wait_for_event("go").await?;
            let d = ctx.call(reliable, format!("Step 4 {evt}")).await?;
            Ok(vec![a, b, c, d])
        })
    }
}

#[tokio::test]
async fn retry_flow_runs_on_virtual_time() {
    for cache in [10, 0] {
        RELIABLE_RUNS.store(0, Ordering::SeqCst);
        UNRELIABLE_RUNS.store(0, Ordering::SeqCst);
        let clock = VirtualClock::new();
        let start = clock.now();
        let rt = Runtime::builder()
            .virtual_clock(clock.clone(), Advance::Auto)
            .cache_capacity(cache)
            .activity(reliable)
            .activity(unreliable)
            .orchestrator(retry_flow)
            .start()
            .unwrap();
        let client = rt.client();
        let id = client.start(retry_flow, ()).instance_id("r1").await.unwrap();
        client.raise_event(&id, "go", "now").await.unwrap();
        let status = client.wait_for_completion(&id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Completed, "{status:?}");
        let out: Vec<String> = status.output_as().unwrap().unwrap();
        assert_eq!(out, ["Step 1 done", "Step 2 done", "Step 3 done", "Step 4 now done"]);
        assert_eq!(RELIABLE_RUNS.load(Ordering::SeqCst), 3);
        assert_eq!(UNRELIABLE_RUNS.load(Ordering::SeqCst), 4);
        assert_eq!(clock.elapsed_since(start), Duration::from_secs(7));
        let stats = rt.stats();
        println!("cache {cache}: {stats:?}");
        let history = client.history(&id).await.unwrap();
        for e in &history { println!("{}", serde_json::to_string(e).unwrap()); }
        rt.shutdown().await;
    }
}
