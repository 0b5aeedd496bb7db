//! The generated `run` calls the body directly, for unit tests of an activity.

use durable_runtime::{activity, ActivityContext};

#[activity]
async fn greet(ctx: ActivityContext, name: String) -> Result<String, String> {
    Ok(format!("hello {name} (attempt {})", ctx.attempt()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let greeting = greet::run(ActivityContext::for_test("greeting-1", 2), "ada".into()).await;
    assert_eq!(greeting.unwrap(), "hello ada (attempt 2)");
    let _copy: greet = greet;
    assert_eq!(format!("{:?}", greet), "greet");
}
