// Edition 2024 twin of `../../fail/event_type_missing_outside_orchestrator.rs`: the type falls
// back to `!`, and the `EventData` bound says what to write.
use durable_runtime::{OrchestrationContext, TaskError};

pub async fn wait_until_shipped(ctx: &OrchestrationContext) -> Result<(), TaskError> {
    ctx.wait_for_event("shipped").await?;
    Ok(())
}

fn main() {}
