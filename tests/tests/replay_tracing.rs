//! Tracing events written in orchestrator code are emitted once, never again on replay.

use std::time::Duration;

use durable_runtime::{orchestrator, OrchestrationContext, TaskError};
use durable_tests::{finished, matrix, CapturedLog};

#[orchestrator]
async fn chatty(ctx: OrchestrationContext) -> Result<(), TaskError> {
    tracing::info!("before the first timer");
    ctx.sleep(Duration::from_secs(1)).await;
    tracing::info!("between the timers");
    ctx.sleep(Duration::from_secs(1)).await;
    tracing::info!("after the timers");
    Ok(())
}

matrix!(
    orchestrator_logs_are_not_repeated_on_replay,
    |setup: durable_tests::Setup| async move {
        let captured = CapturedLog::default();
        let _guard = captured.set_default();

        let runtime = setup.builder().orchestrator(chatty).start().unwrap();
        let client = runtime.client();
        let id = client.start(chatty, ()).await.unwrap();
        finished(&client, &id).await;

        let output = captured.text();
        for line in [
            "before the first timer",
            "between the timers",
            "after the timers",
        ] {
            assert_eq!(output.matches(line).count(), 1, "{line:?} in:\n{output}");
        }
        // Each line carries the orchestration's span with the instance id.
        assert!(
            output.contains(&format!(
                "orchestration{{instance_id={id} name=\"chatty\"}}"
            )),
            "{output}"
        );
        if !setup.cached() {
            assert!(runtime.stats().replays >= 2);
        }
    }
);
