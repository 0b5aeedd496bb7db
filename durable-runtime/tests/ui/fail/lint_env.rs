use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn deploy(_ctx: OrchestrationContext) -> Result<String, String> {
    let region = std::env::var("REGION").map_err(|e| e.to_string())?;
    let _all: Vec<_> = std::env::vars().collect();
    Ok(region)
}

fn main() {
    let _ = deploy;
}
