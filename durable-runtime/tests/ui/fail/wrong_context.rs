use durable_runtime::{orchestrator, ActivityContext};

#[orchestrator]
async fn onboarding(ctx: ActivityContext, user: String) -> Result<(), String> {
    let _ = (ctx, user);
    Ok(())
}

fn main() {}
