use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator(allow(clock, time))]
async fn report(_ctx: OrchestrationContext) -> Result<(), String> {
    Ok(())
}

fn main() {}
