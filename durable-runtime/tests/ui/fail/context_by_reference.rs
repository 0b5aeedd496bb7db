use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn onboarding(ctx: &OrchestrationContext, user: String) -> Result<String, String> {
    let _ = ctx;
    Ok(user)
}

fn main() {}
