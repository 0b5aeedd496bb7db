use durable_runtime::{orchestrator, OrchestrationContext};

// Stands in for the `rand` crate.
mod rand {
    pub fn random<T: Default>() -> T {
        T::default()
    }
    pub fn thread_rng() -> u64 {
        4
    }
}

#[orchestrator]
async fn lottery(_ctx: OrchestrationContext) -> Result<u64, String> {
    let a: u64 = rand::random();
    let b = rand::thread_rng();
    Ok(a + b)
}

fn main() {
    let _ = lottery;
}
