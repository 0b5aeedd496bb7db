use durable_runtime::activity;

#[activity]
struct SendEmail {
    to: String,
}

fn main() {}
