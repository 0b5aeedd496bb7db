// Edition 2024 twin of `../../fail/event_type_missing.rs`: the same message, from the macro.
use std::time::Duration;

use durable_runtime::{orchestrator, OrchestrationContext, TaskError};

#[orchestrator]
async fn ship(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.wait_for_event("shipped").await?;
    let _ = ctx.wait_for_event("delivered").timeout(Duration::from_secs(60)).await;
    Ok(())
}

fn main() {
    let _ = ship;
}
