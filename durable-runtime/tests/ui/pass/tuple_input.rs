//! Several values as one tuple input, destructured in the parameter.

use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, Runtime};

#[activity]
async fn add(_ctx: ActivityContext, (a, b): (u32, u32)) -> Result<u32, String> {
    a.checked_add(b).ok_or_else(|| "overflow".to_string())
}

#[orchestrator]
async fn sum(ctx: OrchestrationContext, mut numbers: Vec<u32>) -> Result<u32, String> {
    numbers.sort();
    let mut total = 0;
    for n in numbers {
        total = ctx.call(add, (total, n)).await.map_err(|e| e.to_string())?;
    }
    Ok(total)
}

fn main() {
    let _builder = Runtime::builder().activity(add).orchestrator(sum);
}
