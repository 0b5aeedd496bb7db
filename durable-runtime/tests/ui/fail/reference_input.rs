use durable_runtime::{activity, ActivityContext};

#[activity]
async fn shout(_ctx: ActivityContext, text: &str) -> Result<String, String> {
    Ok(text.to_uppercase())
}

fn main() {}
