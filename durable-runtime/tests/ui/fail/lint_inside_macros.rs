// Macro arguments that are plain expressions are checked too, and every finding is reported.
use durable_runtime::{orchestrator, OrchestrationContext};

#[orchestrator]
async fn audit(_ctx: OrchestrationContext) -> Result<String, String> {
    let line = format!("audited at {:?}", std::time::SystemTime::now());
    let ids = vec![uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    assert!(std::env::var("AUDIT").is_ok(), "audit disabled");
    Ok(format!("{line} {ids:?}"))
}

fn main() {
    let _ = audit;
}
