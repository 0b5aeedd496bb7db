// A blocking activity's body runs on a thread of its own: it is a plain `fn`.
use durable_runtime::{activity, ActivityContext};

#[activity(blocking)]
async fn resize(_ctx: ActivityContext, image: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(image)
}

fn main() {
    let _ = resize;
}
