use durable_runtime::{activity, ActivityContext};

#[activity]
async fn transfer(
    _ctx: ActivityContext,
    from: String,
    to: String,
    cents: u64,
) -> Result<(), String> {
    let _ = (from, to, cents);
    Ok(())
}

fn main() {}
