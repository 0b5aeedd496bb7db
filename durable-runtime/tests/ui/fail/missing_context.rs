use durable_runtime::orchestrator;

#[orchestrator]
async fn nightly_report() -> Result<(), String> {
    Ok(())
}

fn main() {}
