use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator(version = 2, name = "signup", version = 3)]
async fn signup(_ctx: OrchestrationContext, user: String) -> Result<String, String> {
    Ok(user)
}

fn main() {}
