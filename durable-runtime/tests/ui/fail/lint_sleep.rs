use std::time::Duration;

use durable_runtime::{orchestrator, OrchestrationContext};
use tokio::time;

#[orchestrator]
async fn reminder(_ctx: OrchestrationContext) -> Result<(), String> {
    std::thread::sleep(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(60)).await;
    time::sleep(Duration::from_secs(60)).await;
    let _ = time::timeout(Duration::from_secs(5), async {}).await;
    Ok(())
}

fn main() {
    let _ = reminder;
}
