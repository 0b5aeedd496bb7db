use std::time::Duration;

use durable::{activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy};

#[activity(name = "charge-card", retry = RetryPolicy::new(5, Duration::from_secs(1)), crate = "::durable")]
pub(crate) async fn charge(_ctx: ActivityContext, (order, cents): (u64, u64)) -> Result<u64, String> {
    Ok(order * cents)
}

#[orchestrator(name = "checkout", version = 2, allow(clock), crate = "::durable")]
pub async fn checkout(ctx: OrchestrationContext, order: u64) -> Result<u64, String> {
    let _started = std::time::SystemTime::now();
    ctx.call(charge, (order, 100)).await.map_err(|e| e.to_string())
}
