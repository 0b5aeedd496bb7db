//! The workflow of the fleet test (`tests/fleet_postgres.rs`), shared by its worker processes
//! (`src/bin/fleet_worker.rs`) and its client: the POC's retry workflow, four steps of which
//! the third fails its first three attempts, retried after millisecond back-offs.
//!
//! Every run of a step appends `<pid> <instance> <step> <attempt>` to the run log named by
//! [`RUN_LOG_VAR`] before it returns (one `write` to a file opened for appending: a SIGKILL
//! never loses or splits it), so the test sees every run any worker ever made.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, TaskError,
};

/// The steps of the workflow.
pub const STEPS: u32 = 4;
/// The step that fails its first attempts.
pub const FLAKY_STEP: u32 = 3;
/// The first attempt of the flaky step that succeeds.
pub const FLAKY_SUCCEEDS_AT: u32 = 4;
/// The environment variable naming the run log.
pub const RUN_LOG_VAR: &str = "DURABLE_FLEET_RUN_LOG";

static RUN_LOG: OnceLock<Option<Mutex<File>>> = OnceLock::new();

fn log_run(instance: &str, step: u32, attempt: u32) {
    let log = RUN_LOG.get_or_init(|| {
        let path = std::env::var(RUN_LOG_VAR).ok()?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the run log");
        Some(Mutex::new(file))
    });
    if let Some(file) = log {
        let line = format!("{} {instance} {step} {attempt}\n", std::process::id());
        file.lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(line.as_bytes())
            .expect("append to the run log");
    }
}

/// What step `step`'s attempt `attempt` of `instance` returns.
pub fn step_output(instance: &str, step: u32, attempt: u32) -> String {
    format!("{instance}/{step}/{attempt}")
}

/// The output of a completed instance.
pub fn expected_output(instance: &str) -> Vec<String> {
    (1..=STEPS)
        .map(|step| {
            let attempt = if step == FLAKY_STEP {
                FLAKY_SUCCEEDS_AT
            } else {
                1
            };
            step_output(instance, step, attempt)
        })
        .collect()
}

/// One step of the workflow; the flaky one fails until its attempt [`FLAKY_SUCCEEDS_AT`].
#[activity]
pub async fn fleet_step(ctx: ActivityContext, step: u32) -> Result<String, String> {
    let id = ctx.instance_id().as_str().to_string();
    log_run(&id, step, ctx.attempt());
    if step == FLAKY_STEP && ctx.attempt() < FLAKY_SUCCEEDS_AT {
        return Err(format!("step {step} fails attempt {}", ctx.attempt()));
    }
    Ok(step_output(&id, step, ctx.attempt()))
}

/// The POC's retry workflow with millisecond back-offs.
#[orchestrator]
pub async fn fleet_retry(ctx: OrchestrationContext) -> Result<Vec<String>, TaskError> {
    let mut outputs = Vec::new();
    for step in 1..=STEPS {
        let call = ctx.call(fleet_step, step);
        let output = if step == FLAKY_STEP {
            call.retry(
                RetryPolicy::new(5, Duration::from_millis(1))
                    .backoff_coefficient(2.0)
                    .max_interval(Duration::from_millis(10)),
            )
            .await?
        } else {
            call.await?
        };
        outputs.push(output);
    }
    Ok(outputs)
}
