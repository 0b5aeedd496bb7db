//! Every option, including `crate = ".."` for a renamed runtime dependency.

extern crate durable_runtime as durable;

use std::time::Duration;

use durable::{
    activity, orchestrator, Activity, ActivityContext, OrchestrationContext, Orchestrator,
    RetryPolicy,
};

/// Renamed from `charge_card`: the durable name stays.
#[activity(name = "charge_card", retry = RetryPolicy::new(3, Duration::from_millis(10)), crate = "::durable")]
pub async fn charge(_ctx: ActivityContext, cents: u64) -> anyhow::Result<u64> {
    Ok(cents)
}

#[orchestrator(name = "checkout", version = 2, crate = "::durable")]
pub async fn checkout_v2(ctx: OrchestrationContext, cents: u64) -> anyhow::Result<u64> {
    Ok(ctx.call(charge, cents).await?)
}

fn main() {
    assert_eq!(<charge as Activity>::NAME, "charge_card");
    assert!(<charge as Activity>::default_retry().is_some());
    assert_eq!(<checkout_v2 as Orchestrator>::NAME, "checkout");
    assert_eq!(<checkout_v2 as Orchestrator>::VERSION, 2);
    let _builder = durable::Runtime::builder()
        .activity(charge)
        .orchestrator(checkout_v2);
}
