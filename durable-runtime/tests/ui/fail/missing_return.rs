use durable_runtime::{activity, ActivityContext};

#[activity]
async fn log_line(_ctx: ActivityContext, line: String) {
    println!("{line}");
}

fn main() {}
