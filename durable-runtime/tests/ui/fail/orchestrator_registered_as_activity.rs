use durable_runtime::{orchestrator, OrchestrationContext, Runtime};

#[orchestrator]
async fn signup(_ctx: OrchestrationContext, user: String) -> Result<String, String> {
    Ok(user)
}

fn main() {
    let _builder = Runtime::builder().activity(signup);
}
