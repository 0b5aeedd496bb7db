// A wait whose result nothing uses leaves the type of the event's data unnamed. Edition 2021
// would infer `()` (and fail at run time on any event with data): the macro reports it, with
// the fix, in every edition. The same file runs under edition 2024 in `edition2024/`.
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
