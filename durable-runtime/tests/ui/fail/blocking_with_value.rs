// `blocking` is a flag.
use durable_runtime::{activity, ActivityContext};

#[activity(blocking = true)]
fn resize(_ctx: ActivityContext, image: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(image)
}

fn main() {}
