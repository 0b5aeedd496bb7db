use durable_runtime::{orchestrator, OrchestrationContext};

/// Runs the two steps in order.
#[orchestrator]
async fn two_steps(ctx: OrchestrationContext) -> anyhow::Result<Vec<String>> {
    let first = ctx.call(reliable_activity, "first".to_string()).await?;
    let second = ctx.call(reliable_activity, "second".to_string()).await?;
    Ok(vec![first, second])
}
