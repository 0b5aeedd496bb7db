// The orchestrator twin of `error_without_unused_warnings`: a macro error comes alone, with
// no `unused variable` warning for the `ctx` and input its half-written body does not use yet.
use durable_runtime::{orchestrator, OrchestrationContext, TaskError};

#[orchestrator]
fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<String, TaskError> {
    Ok("not yet".into())
}

fn main() {}
