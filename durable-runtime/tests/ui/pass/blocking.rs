//! A blocking activity: a plain `fn` run on the blocking thread pool, called like any other
//! activity, and its `run` called directly in a unit test.

use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, Runtime};

/// Sums the bytes, the way a CPU-bound or blocking-I/O step would work.
#[activity(blocking, name = "checksum", retry = durable_runtime::RetryPolicy::new(3, std::time::Duration::from_secs(1)))]
pub fn checksum(ctx: ActivityContext, bytes: Vec<u8>) -> Result<u64, std::io::Error> {
    let _ = ctx.attempt();
    Ok(bytes.iter().map(|&b| u64::from(b)).sum())
}

/// Without an input.
#[activity(blocking)]
fn ping(_ctx: ActivityContext) -> Result<(), String> {
    Ok(())
}

#[orchestrator]
async fn verify(ctx: OrchestrationContext, bytes: Vec<u8>) -> Result<u64, anyhow::Error> {
    ctx.call(ping, ()).await?;
    Ok(ctx.call(checksum, bytes).await?)
}

fn main() {
    let sum = checksum::run(ActivityContext::for_test("verify-1", 1), vec![1, 2, 3]).unwrap();
    assert_eq!(sum, 6);
    let _runtime = Runtime::builder()
        .orchestrator(verify)
        .activity(checksum)
        .activity(ping);
}
