use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext};

#[orchestrator(retry = durable_runtime::RetryPolicy::new(3, std::time::Duration::from_secs(1)))]
async fn signup(_ctx: OrchestrationContext, user: String) -> Result<String, String> {
    Ok(user)
}

#[activity(version = 2)]
async fn welcome(_ctx: ActivityContext, user: String) -> Result<String, String> {
    Ok(user)
}

#[orchestrator(blocking)]
async fn onboarding(_ctx: OrchestrationContext, user: String) -> Result<String, String> {
    Ok(user)
}

fn main() {
    let _ = (signup, welcome, onboarding);
}
