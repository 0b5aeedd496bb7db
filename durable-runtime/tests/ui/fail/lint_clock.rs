use std::time::{Instant, SystemTime};

use durable_runtime::{orchestrator, OrchestrationContext};

// Stands in for the `chrono` crate.
mod chrono {
    pub struct Utc;
    impl Utc {
        pub fn now() -> u64 {
            0
        }
    }
}

#[orchestrator]
async fn billing_cycle(_ctx: OrchestrationContext) -> Result<(), String> {
    let _started = SystemTime::now();
    let _timer = Instant::now();
    let _full_path = std::time::SystemTime::now();
    let _today = chrono::Utc::now();
    Ok(())
}

fn main() {
    let _ = billing_cycle;
}
