use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn fan_out(_ctx: OrchestrationContext, jobs: Vec<u32>) -> Result<(), String> {
    for job in jobs {
        tokio::spawn(async move { job * 2 });
    }
    let _ = tokio::task::spawn_blocking(|| 1);
    let _ = std::thread::spawn(|| 1);
    Ok(())
}

fn main() {
    let _ = fan_out;
}
