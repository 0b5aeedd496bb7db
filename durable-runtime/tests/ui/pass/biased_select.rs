//! `tokio::select!` with `biased;` is deterministic: the first ready branch in source order wins.

use std::time::Duration;

use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn approval(ctx: OrchestrationContext, order: u64) -> Result<bool, String> {
    let approved = ctx.wait_for_event::<bool>("approved");
    let deadline = ctx.sleep(Duration::from_secs(3600));
    tokio::select! {
        biased;
        decision = approved => Ok(decision.map_err(|e| e.to_string())? && order > 0),
        () = deadline => Ok(false),
    }
}

fn main() {
    let _ = approval;
}
