// The edition 2024 twin of `../../fail/not_send.rs`.
use std::rc::Rc;
use std::time::Duration;

use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn counter(ctx: OrchestrationContext) -> Result<usize, String> {
    let shared = Rc::new(5);
    ctx.sleep(Duration::from_secs(1)).await;
    Ok(*shared)
}

fn main() {
    let _ = counter;
}
