//! The child process of the crash test (`tests/tests/crash.rs`), which kills it with SIGKILL
//! at random moments.
//!
//! `crash_child DIR RUN_LOG ROUND FROM TO [wait-only]` opens a `FileStore` (fsync on) in `DIR`, makes
//! sure the instances `crash-<n>` for `n` in `FROM..TO` exist (starting those that do not),
//! and waits for each to complete. With `wait-only` it starts nothing: it prints
//! `missing <id>` for an instance that does not exist and waits for the others (the last
//! round, which must find every acknowledged start). It prints one line per acknowledgement on stdout:
//!
//! - `started <id>` once `client.start(..).instance_id(id).await` has returned (or the
//!   instance was found to exist already: a start acknowledged in an earlier round);
//! - `completed <id> <output as JSON>` once `wait_for_completion` has returned it.
//!
//! Every activity run appends `<ROUND> <instance> <step> <attempt>` to `RUN_LOG` and fsyncs it
//! before returning, so a run the child did is never missing from the log (a crash before its
//! result was stored shows it twice). Instances of earlier rounds left unfinished by a kill
//! are run too: the runtime runs whatever the store holds.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use durable_runtime::store::{FileStore, FileStoreOptions};
use durable_runtime::{
    activity, orchestrator, ActivityContext, ClientError, OrchestrationContext, RetryPolicy,
    Runtime, TaskError,
};

/// The steps of the workflow, each an activity run.
pub const STEPS: u32 = 3;
/// The step that fails its first attempts.
pub const FLAKY_STEP: u32 = 2;
/// The attempt of the flaky step that first succeeds.
pub const FLAKY_SUCCEEDS_AT: u32 = 3;

struct RunLog {
    round: u64,
    file: Mutex<File>,
}

static RUN_LOG: OnceLock<RunLog> = OnceLock::new();

/// Appends `line` to the run log and makes it durable before the activity returns.
fn log_run(instance: &str, step: u32, attempt: u32) {
    let log = RUN_LOG.get().expect("the run log is open");
    let line = format!("{} {instance} {step} {attempt}\n", log.round);
    let mut file = log.file.lock().unwrap();
    // One write of a whole line to a file opened for appending: a kill never splits it.
    file.write_all(line.as_bytes())
        .expect("append to the run log");
    file.sync_data().expect("sync the run log");
}

#[activity]
async fn crash_step(ctx: ActivityContext, step: u32) -> Result<String, String> {
    log_run(ctx.instance_id().as_str(), step, ctx.attempt());
    if step == FLAKY_STEP && ctx.attempt() < FLAKY_SUCCEEDS_AT {
        return Err(format!("step {step} fails attempt {}", ctx.attempt()));
    }
    Ok(format!("{}/{step}/{}", ctx.instance_id(), ctx.attempt()))
}

#[orchestrator]
async fn crash_chain(ctx: OrchestrationContext) -> Result<Vec<String>, TaskError> {
    let mut outputs = Vec::new();
    for step in 1..=STEPS {
        let call = ctx.call(crash_step, step);
        let output = if step == FLAKY_STEP {
            call.retry(RetryPolicy::new(5, Duration::from_millis(1)))
                .await?
        } else {
            call.await?
        };
        outputs.push(output);
    }
    Ok(outputs)
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).expect("stdout");
    out.write_all(b"\n").expect("stdout");
    out.flush().expect("stdout");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(6..=7).contains(&args.len()) || args.get(6).is_some_and(|a| a != "wait-only") {
        eprintln!("usage: crash_child DIR RUN_LOG ROUND FROM TO [wait-only]");
        std::process::exit(2);
    }
    let dir = args[1].clone();
    let round: u64 = args[3].parse().expect("ROUND is a number");
    let from: u64 = args[4].parse().expect("FROM is a number");
    let to: u64 = args[5].parse().expect("TO is a number");
    let wait_only = args.len() == 7;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args[2])
        .expect("open the run log");
    RUN_LOG
        .set(RunLog {
            round,
            file: Mutex::new(file),
        })
        .ok()
        .expect("set once");

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    tokio.block_on(async move {
        let store = FileStore::open_with(&dir, FileStoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("open {dir}: {e}"));
        let runtime = Runtime::builder()
            .store(store)
            .orchestrator(crash_chain)
            .activity(crash_step)
            .start()
            .expect("a runtime");
        let client = runtime.client();
        let mut tasks = Vec::new();
        for n in from..to {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("crash-{n}");
                match client.status(&id).await {
                    Ok(_) => {}
                    Err(ClientError::NotFound(_)) if wait_only => {
                        say(format!("missing {id}"));
                        return;
                    }
                    Err(ClientError::NotFound(_)) => {
                        client
                            .start(crash_chain, ())
                            .instance_id(&id)
                            .await
                            .unwrap_or_else(|e| panic!("start {id}: {e}"));
                    }
                    Err(e) => panic!("status of {id}: {e}"),
                }
                if !wait_only {
                    say(format!("started {id}"));
                }
                let status = client
                    .wait_for_completion(&id, Duration::from_secs(60))
                    .await
                    .unwrap_or_else(|e| panic!("{id} did not complete: {e}"));
                let output = serde_json::to_string(&status.output).expect("JSON");
                say(format!("completed {id} {output}"));
            }));
        }
        for task in tasks {
            task.await.expect("an instance task panicked");
        }
        runtime.shutdown().await;
    });
}
