use durable_runtime::{activity, ActivityContext};

#[activity]
async fn charge(cents: u64, ctx: ActivityContext) -> Result<u64, String> {
    let _ = ctx;
    Ok(cents)
}

fn main() {}
