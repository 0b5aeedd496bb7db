// A `use` inside the body is followed, renames included.
use std::time::Duration;

use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn reminder(_ctx: OrchestrationContext) -> Result<(), String> {
    use std::time::SystemTime as Clock;
    use tokio::time::sleep;
    let _started = Clock::now();
    sleep(Duration::from_secs(60)).await;
    Ok(())
}

fn main() {
    let _ = reminder;
}
