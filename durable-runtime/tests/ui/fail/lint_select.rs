use std::time::Duration;

use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn approval(ctx: OrchestrationContext) -> Result<bool, String> {
    let approved = ctx.wait_for_event::<bool>("approved");
    let deadline = ctx.sleep(Duration::from_secs(3600));
    tokio::select! {
        decision = approved => decision.map_err(|e| e.to_string()),
        () = deadline => Ok(false),
    }
}

fn main() {
    let _ = approval;
}
