use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext};

#[activity]
async fn send_email(_ctx: ActivityContext, to: String) -> Result<(), String> {
    let _ = to;
    Ok(())
}

#[orchestrator]
async fn signup(ctx: OrchestrationContext) -> Result<(), String> {
    ctx.call(send_email, 42).await.map_err(|e| e.to_string())
}

fn main() {
    let _ = signup;
}
