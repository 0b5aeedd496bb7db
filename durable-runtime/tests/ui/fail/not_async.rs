use durable_runtime::{activity, ActivityContext};

#[activity]
fn send_email(_ctx: ActivityContext, to: String) -> Result<(), String> {
    let _ = to;
    Ok(())
}

fn main() {}
