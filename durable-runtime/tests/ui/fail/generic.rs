use durable_runtime::{activity, ActivityContext};

#[activity]
async fn store<T: serde::Serialize>(_ctx: ActivityContext, value: T) -> Result<(), String> {
    let _ = value;
    Ok(())
}

fn main() {}
