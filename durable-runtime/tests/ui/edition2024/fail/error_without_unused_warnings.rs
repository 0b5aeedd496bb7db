// The edition 2024 twin of `../../fail/error_without_unused_warnings.rs`.
// A macro error comes alone: the function emitted unchanged beside it adds no
// `unused variable` warnings for the parameters its half-written body does not use yet.
use durable_runtime::{activity, ActivityContext};

#[activity]
fn send_email(ctx: ActivityContext, to: String) -> Result<(), String> {
    Ok(())
}

fn main() {}
