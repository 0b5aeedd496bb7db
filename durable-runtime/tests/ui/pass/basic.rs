//! The common shape: an activity with an input, an orchestrator calling it, both registered.

use std::time::Duration;

use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, Runtime};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub amount_cents: u64,
}

/// Charges the order's card.
#[activity]
pub async fn charge_card(ctx: ActivityContext, order: Order) -> Result<String, anyhow::Error> {
    Ok(format!("receipt-{}-{}", order.id, ctx.idempotency_key()))
}

/// Charges, waits a day, and reports the receipt.
#[orchestrator]
pub async fn fulfil(ctx: OrchestrationContext, order: Order) -> Result<String, anyhow::Error> {
    let receipt = ctx.call(charge_card, order).await?;
    ctx.sleep(Duration::from_secs(86_400)).await;
    let started = ctx.now();
    let _ = started;
    Ok(receipt)
}

fn main() {
    let _builder = Runtime::builder()
        .activity(charge_card)
        .orchestrator(fulfil);
    // The struct is a value, and `run` calls the body directly.
    let _copy = charge_card;
    let _future = charge_card::run(
        ActivityContext::for_test("order-1", 1),
        Order {
            id: 1,
            amount_cents: 100,
        },
    );
}
