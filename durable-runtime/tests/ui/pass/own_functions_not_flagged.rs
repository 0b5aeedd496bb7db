//! The lint matches paths, not bare names: the user's own `now`, `sleep` and `spawn` are fine,
//! and so are the context's methods of the same names.

use std::time::{Duration, SystemTime};

use durable_runtime::{orchestrator, OrchestrationContext};

fn now(ctx: &OrchestrationContext) -> SystemTime {
    ctx.now()
}

async fn sleep(ctx: &OrchestrationContext, duration: Duration) {
    ctx.sleep(duration).await;
}

fn spawn(label: &str) -> String {
    label.to_uppercase()
}

mod clock {
    pub fn now() -> u64 {
        42
    }
}

#[orchestrator]
async fn remind(ctx: OrchestrationContext, minutes: u64) -> Result<String, String> {
    let started = now(&ctx);
    sleep(&ctx, Duration::from_secs(minutes * 60)).await;
    let elapsed = ctx.now().duration_since(started).unwrap_or_default();
    let _ = (
        ctx.random(),
        ctx.new_uuid(),
        clock::now(),
        SystemTime::UNIX_EPOCH,
    );
    Ok(format!("{} after {elapsed:?}", spawn("done")))
}

fn main() {
    let _ = remind;
}
