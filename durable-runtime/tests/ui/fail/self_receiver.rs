use durable_runtime::{activity, ActivityContext};

struct Mailer;

impl Mailer {
    #[activity]
    async fn send(&self, _ctx: ActivityContext, to: String) -> Result<(), String> {
        let _ = to;
        Ok(())
    }
}

fn main() {
    let _ = Mailer;
}
