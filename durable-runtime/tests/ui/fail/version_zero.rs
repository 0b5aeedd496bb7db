use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator(version = 0)]
async fn signup(_ctx: OrchestrationContext, user: String) -> Result<String, String> {
    Ok(user)
}

fn main() {
    let _ = signup;
}
