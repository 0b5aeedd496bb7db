use durable_runtime::{activity, ActivityContext};

#[activity(nmae = "send-email")]
async fn send_email(_ctx: ActivityContext, to: String) -> Result<String, String> {
    Ok(to)
}

fn main() {}
