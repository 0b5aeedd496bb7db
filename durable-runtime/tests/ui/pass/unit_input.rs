//! No input parameter: the input is `()`, and callers pass `()`.

use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, Runtime};

#[activity]
async fn ping(_ctx: ActivityContext) -> Result<(), String> {
    Ok(())
}

#[orchestrator]
async fn heartbeat(ctx: OrchestrationContext) -> Result<u32, String> {
    ctx.call(ping, ()).await.map_err(|e| e.to_string())?;
    Ok(1)
}

fn main() {
    let _builder = Runtime::builder().activity(ping).orchestrator(heartbeat);
}
