use durable_runtime::{orchestrator, OrchestrationContext};
use uuid::Uuid;

#[orchestrator]
async fn create_account(_ctx: OrchestrationContext) -> Result<String, String> {
    let id = Uuid::new_v4();
    Ok(id.to_string())
}

fn main() {
    let _ = create_account;
}
