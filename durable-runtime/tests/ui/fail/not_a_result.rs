use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn count(_ctx: OrchestrationContext, items: Vec<String>) -> usize {
    items.len()
}

fn main() {}
