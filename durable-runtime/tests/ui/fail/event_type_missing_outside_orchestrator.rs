// Outside an orchestrator's body the macro cannot see the wait. Under edition 2021 the
// compiler's own lint rejects it (and suggests `()`, which fits only an event raised without
// data); under edition 2024 the `EventData` bound names the fix (see `edition2024/`).
use durable_runtime::{OrchestrationContext, TaskError};

pub async fn wait_until_shipped(ctx: &OrchestrationContext) -> Result<(), TaskError> {
    ctx.wait_for_event("shipped").await?;
    Ok(())
}

fn main() {}
