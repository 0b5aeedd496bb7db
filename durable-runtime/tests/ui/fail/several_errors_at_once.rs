// Every signature error is reported in one build, each on its token.
use durable_runtime::{activity, ActivityContext};

#[activity]
fn import<T>(_ctx: ActivityContext, path: String, retries: u32) -> Option<T> {
    let _ = (path, retries);
    None
}

fn main() {}
