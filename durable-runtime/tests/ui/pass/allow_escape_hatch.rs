//! `allow(rule, ..)` silences a rule for one orchestrator when the use is deliberate.

use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator(allow(clock, env))]
async fn diagnostics(ctx: OrchestrationContext) -> Result<String, String> {
    // Only logged, never used for a decision.
    let wall = std::time::SystemTime::now();
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    Ok(format!("{} {wall:?} {host}", ctx.is_replaying()))
}

fn main() {
    let _ = diagnostics;
}
