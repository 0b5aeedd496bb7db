//! The POC's two workflows and their activities, written in the DSL.
//!
//! Orchestrators narrate through `say`: a line is logged once, when the code runs live, and
//! with `--show-replays` the lines a replay re-runs are printed too, marked `↺ replay:`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, TaskError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::console;

/// Whether replayed orchestrator lines are printed (`--show-replays`).
static SHOW_REPLAYS: AtomicBool = AtomicBool::new(false);

/// How many times the reliable activity ran in this process, as the POC counts them.
static RELIABLE_EXECUTIONS: AtomicU64 = AtomicU64::new(0);

/// Prints the lines orchestrators re-run while replaying, marked as such.
pub fn show_replays(on: bool) {
    SHOW_REPLAYS.store(on, Ordering::Relaxed);
}

/// One line of an orchestrator's narrative.
///
/// The runtime drops `tracing` events while an orchestrator replays, so a replayed line is
/// written straight to the console instead, and only when asked for.
fn say(ctx: &OrchestrationContext, line: &str) {
    if !ctx.is_replaying() {
        tracing::info!(target: "demo", "{line}");
    } else if SHOW_REPLAYS.load(Ordering::Relaxed) {
        console::replay_line(line);
    }
}

/// The wall-clock time of day, as the POC prints it (UTC: the demo has no time-zone database).
fn time_of_day(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The retry policy of the POC: 5 attempts, waiting 1 s, 2 s, 4 s, 8 s (capped at 10 s).
pub fn poc_policy() -> RetryPolicy {
    RetryPolicy::new(5, Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .max_interval(Duration::from_secs(10))
}

/// A step that always succeeds.
#[activity]
pub async fn reliable_activity(_ctx: ActivityContext, step: String) -> Result<String, String> {
    let execution = RELIABLE_EXECUTIONS.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!(target: "demo", "🔄 ReliableActivity execution #{execution}: {step}");
    let result = format!("{step} completed at {}", time_of_day(SystemTime::now()));
    tracing::info!(target: "demo", "✅ ReliableActivity succeeded: {result}");
    Ok(result)
}

/// A step that fails its first three attempts. It decides by the attempt number the runtime
/// reads from the history, so a crash does not reset the count.
#[activity]
pub async fn unreliable_activity(ctx: ActivityContext, step: String) -> Result<String, String> {
    let attempt = ctx.attempt();
    tracing::info!(target: "demo", "🔄 UnreliableActivity - Attempt #{attempt}");
    let error = match attempt {
        1 => "Network connection error (simulated)",
        2 => "Database timeout (simulated)",
        3 => "Service temporarily unavailable (simulated)",
        _ => {
            let result = format!("{step} completed at {}", time_of_day(SystemTime::now()));
            tracing::info!(target: "demo", "✅ Success on attempt #{attempt}: {result}");
            tracing::info!(
                target: "demo",
                "🎉 RETRY POLICY WORKED! Activity succeeded after {attempt} attempts!"
            );
            return Ok(result);
        }
    };
    tracing::info!(target: "demo", "❌ Attempt #{attempt}: {error}");
    Err(error.to_string())
}

/// Four steps; the third fails three times and is retried with back-off, while the first
/// two, already recorded, never run again.
#[orchestrator]
pub async fn retry_orchestrator(ctx: OrchestrationContext) -> Result<Vec<String>, TaskError> {
    say(&ctx, "🎯 Retry orchestrator started...");

    say(&ctx, "🚀 Calling Activity 1 (Always succeeds)...");
    let step1 = ctx
        .call(reliable_activity, "Step 1: Initialize".to_string())
        .await?;
    say(&ctx, &format!("✅ Activity 1 completed: {step1}\n"));

    say(&ctx, "🚀 Calling Activity 2 (Always succeeds)...");
    let step2 = ctx
        .call(reliable_activity, "Step 2: Prepare data".to_string())
        .await?;
    say(&ctx, &format!("✅ Activity 2 completed: {step2}\n"));

    say(&ctx, "🚀 Calling Activity 3 (Will fail and retry)...");
    let step3 = ctx
        .call(
            unreliable_activity,
            "Step 3: Critical operation".to_string(),
        )
        .retry(poc_policy())
        .await?;
    say(&ctx, &format!("✅ Activity 3 completed: {step3}\n"));

    say(&ctx, "🚀 Calling Activity 4 (Final step)...");
    let step4 = ctx
        .call(reliable_activity, "Step 4: Finalize".to_string())
        .await?;
    say(&ctx, &format!("✅ Activity 4 completed: {step4}\n"));

    say(&ctx, "🎉 ORCHESTRATION COMPLETED SUCCESSFULLY!");
    Ok(vec![step1, step2, step3, step4])
}

/// What the external-event workflow returns: each step's result, and both events' data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalEventOutput {
    /// The result of step 1.
    pub step1: String,
    /// The data of the `step2` event.
    pub step2_data: Value,
    /// The result of processing it.
    pub step3: String,
    /// The data of the `step4` event.
    pub step4_data: Value,
    /// The result of the final processing.
    pub step5: String,
}

/// Pauses twice for events; its custom status names the event it waits for.
#[orchestrator]
pub async fn external_event_orchestrator(
    ctx: OrchestrationContext,
) -> Result<ExternalEventOutput, TaskError> {
    let id = ctx.instance_id();
    say(&ctx, "🎯 External event orchestrator started...");

    say(&ctx, "🚀 Step 1: Initial processing...");
    let step1 = ctx
        .call(reliable_activity, "Step 1: Initial processing".to_string())
        .await?;
    say(&ctx, &format!("✅ Step 1 completed: {step1}\n"));

    ctx.set_custom_status("waiting for event step2");
    say(
        &ctx,
        &format!("⏸️  PAUSE: waiting for event `step2` (POST /send-event/{id})..."),
    );
    let step2_data: Value = ctx.wait_for_event("step2").await?;
    say(
        &ctx,
        &format!("▶️  RESUME: received step2 with data {step2_data}"),
    );
    ctx.set_custom_status("processing step2");
    let step3 = ctx
        .call(
            reliable_activity,
            format!("Step 3: Process step2 data {step2_data}"),
        )
        .await?;
    say(&ctx, &format!("✅ Step 3 completed: {step3}\n"));

    ctx.set_custom_status("waiting for event step4");
    say(
        &ctx,
        &format!("⏸️  PAUSE: waiting for event `step4` (POST /send-event/{id})..."),
    );
    let step4_data: Value = ctx.wait_for_event("step4").await?;
    say(
        &ctx,
        &format!("▶️  RESUME: received step4 with data {step4_data}"),
    );
    ctx.set_custom_status("final processing");
    let step5 = ctx
        .call(
            reliable_activity,
            format!("Step 5: Final processing {step4_data}"),
        )
        .await?;
    say(&ctx, &format!("✅ Step 5 completed: {step5}\n"));

    ctx.set_custom_status("completed");
    say(&ctx, "🎉 ORCHESTRATION COMPLETED SUCCESSFULLY!");
    Ok(ExternalEventOutput {
        step1,
        step2_data,
        step3,
        step4_data,
        step5,
    })
}
