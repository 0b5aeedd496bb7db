// The data of an event is decoded into a type that implements `serde::Deserialize` and owns
// its data.
use durable_runtime::{orchestrator, OrchestrationContext, TaskError};

pub struct Shipment {
    pub carrier: String,
}

#[orchestrator]
async fn ship(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let shipment: Shipment = ctx.wait_for_event("shipped").await?;
    Ok(shipment.carrier)
}

#[orchestrator]
async fn label(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let text: &'static str = ctx.wait_for_event("labelled").await?;
    Ok(text.to_owned())
}

fn main() {
    let _ = (ship, label);
}
