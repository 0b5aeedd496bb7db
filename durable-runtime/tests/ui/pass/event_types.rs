//! The type of an event's data: inferred from its use, named with a turbofish, `()` for an
//! event raised without data, `IgnoredAny` to ignore whatever data it has.

use durable_runtime::{orchestrator, OrchestrationContext, TaskError};
use serde::de::IgnoredAny;

#[orchestrator]
async fn ship(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let carrier: String = ctx.wait_for_event("shipped").await?;
    let count = ctx.wait_for_event::<u32>("parcels").await?;
    ctx.wait_for_event::<()>("delivered").await?;
    let _: () = ctx.wait_for_event("signed").await?;
    ctx.wait_for_event::<IgnoredAny>("ping").await?;
    Ok(format!("{count} by {carrier}"))
}

fn main() {
    let _ = ship;
}
