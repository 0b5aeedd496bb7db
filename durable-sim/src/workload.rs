//! The workload: ONE generic orchestrator that interprets the program in its input, and the
//! one activity it calls, whose failures, panics and durations the run's seed decides.

use std::time::Duration;

use durable_runtime::future::{join_all, select, Either};
use durable_runtime::{
    activity, orchestrator, ActivityContext, Clock, OrchestrationContext, RetryPolicy, TaskError,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::program::{event_name, gate_status, CallSpec, Input, Op};
use crate::world::{self, PLANNED_PANIC};

/// The activity's input: which call of which generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInput {
    /// The call.
    pub call: CallSpec,
    /// The calling instance's generation.
    pub generation: u32,
}

/// The generic orchestrator: runs the program in its input.
#[orchestrator]
pub async fn sim_program(ctx: OrchestrationContext, input: Input) -> Result<Vec<Value>, TaskError> {
    interpret(ctx, input).await
}

/// The activity every program calls.
#[activity]
pub async fn sim_step(ctx: ActivityContext, input: StepInput) -> Result<String, String> {
    step(ctx, input).await
}

async fn interpret(ctx: OrchestrationContext, mut input: Input) -> Result<Vec<Value>, TaskError> {
    while let Some(op) = input.ops.get(input.pc as usize).cloned() {
        input.pc += 1;
        let generation = input.generation;
        match op {
            Op::Call(call) => {
                let result = call_step(&ctx, generation, &call).await;
                input.acc.push(result);
            }
            Op::Sleep { secs } => {
                let before = ctx.now();
                let secs = Duration::from_secs(u64::from(secs));
                ctx.sleep(secs).await;
                let woke_early = ctx.now() < before + secs;
                input
                    .acc
                    .push(json!(if woke_early { "EARLY" } else { "slept" }));
            }
            Op::Gate { g } => ctx.set_custom_status(gate_status(g)),
            Op::Wait { g, timeout_secs } => {
                let wait = ctx.wait_for_event::<u64>(event_name(g));
                let result = match timeout_secs {
                    Some(secs) => wait.timeout(Duration::from_secs(u64::from(secs))).await,
                    None => wait.await,
                };
                input.acc.push(match result {
                    Ok(data) => json!(data),
                    Err(TaskError::EventTimedOut { .. }) => json!("timeout"),
                    Err(other) => json!(format!("wait failed: {other}")),
                });
            }
            Op::FanOut { calls } => {
                let results = join_all(calls.iter().map(|c| call_step(&ctx, generation, c))).await;
                input.acc.push(Value::Array(results));
            }
            Op::Race { g, timer_secs } => {
                let wait = ctx.wait_for_event::<u64>(event_name(g));
                let timer = ctx.sleep(Duration::from_secs(u64::from(timer_secs)));
                input.acc.push(match select(wait, timer).await {
                    Either::Left((Ok(data), _)) => json!(data),
                    Either::Left((Err(e), _)) => json!(format!("wait failed: {e}")),
                    Either::Right(((), _)) => json!("timer"),
                });
            }
            Op::Child { ops } => {
                let result = ctx.call(sim_program, Input::new(ops)).await;
                input.acc.push(match result {
                    Ok(output) => Value::Array(output),
                    Err(e) => json!(format!("child failed: {e}")),
                });
            }
            Op::ContinueAsNew { keep_events } => {
                input.generation += 1;
                let next = ctx.continue_as_new(input);
                return if keep_events {
                    next.keep_events().await
                } else {
                    next.await
                };
            }
            Op::Status { s } => ctx.set_custom_status(format!("s:{s}")),
        }
    }
    Ok(input.acc)
}

async fn call_step(ctx: &OrchestrationContext, generation: u32, call: &CallSpec) -> Value {
    let input = StepInput {
        call: call.clone(),
        generation,
    };
    let policy = RetryPolicy::new(call.attempts, Duration::from_secs(1));
    match ctx.call(sim_step, input).retry(policy).await {
        Ok(output) => json!(output),
        Err(_) => json!(format!("fail:{}", call.k)),
    }
}

async fn step(ctx: ActivityContext, input: StepInput) -> Result<String, String> {
    let world = world::current();
    let attempt = ctx.attempt();
    let k = input.call.k;
    let (delay, panics) = {
        let mut state = world.lock();
        let instance = ctx.instance_id().to_string();
        state.record(&format!(
            "run {instance} {} {k} {attempt}",
            input.generation
        ));
        *state
            .runs
            .entry((instance, input.generation, k))
            .or_default()
            .entry(attempt)
            .or_default() += 1;
        state.epoch.activity_runs += 1;
        let long = state.long_activities;
        let choices = &mut state.choices;
        // Mostly instant; some take a while, their lease renewed meanwhile; a few outlive
        // their lease (10 s): their worker is cut off from the store for renewals (a pause,
        // a partition), so the attempt is leased and run again while the first run goes on.
        let delay = if choices.chance(long) {
            12_000
        } else if choices.chance(0.2) {
            choices.range(1, 8_000)
        } else {
            0
        };
        if delay == 12_000 {
            let key = (ctx.instance_id().to_string(), input.generation, k, attempt);
            state.cut_off.insert(key);
        }
        (delay, state.choices.chance(0.3))
    };
    if delay > 0 {
        let until = world.clock.now() + Duration::from_millis(delay);
        world.clock.sleep_until(until).await;
    }
    if attempt <= input.call.fail_until {
        if panics {
            std::panic::panic_any(PLANNED_PANIC);
        }
        return Err(format!("planned failure of attempt {attempt}"));
    }
    Ok(format!("ok:{k}"))
}
