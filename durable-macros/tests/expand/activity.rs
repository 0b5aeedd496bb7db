use durable_runtime::{activity, ActivityContext};

/// Sends the step's notification; safe to repeat.
#[activity]
pub async fn reliable_activity(ctx: ActivityContext, step: String) -> Result<String, anyhow::Error> {
    Ok(format!("{step} done by {}", ctx.idempotency_key()))
}
