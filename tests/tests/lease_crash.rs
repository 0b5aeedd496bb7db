//! A worker process killed mid-attempt (issue 9, item 1): its renewals stop, so another
//! process takes the attempt once its lease has run out, about one lease after the kill, and
//! runs it exactly once more, as the same attempt. Until the kill, the renewals keep the
//! attempt with the first process, however long it runs.
//!
//! Only PostgreSQL lets two processes share a store, so the test needs
//! `DURABLE_TEST_POSTGRES_URL` (it says so and passes without). The child is
//! `src/bin/lease_child.rs`; it runs on the system clock, and so does this test's runtime.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use durable_postgres::testing::{self, TestSchema};
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, Runtime, RuntimeStatus,
    TaskError,
};

const LEASE: Duration = Duration::from_millis(1_500);

/// The attempts this process ran: attempt number and when.
static RUNS: Mutex<Vec<(u32, Instant)>> = Mutex::new(Vec::new());

#[activity(name = "lease_crash_step")]
async fn quick_step(ctx: ActivityContext, _input: ()) -> Result<u32, String> {
    RUNS.lock().unwrap().push((ctx.attempt(), Instant::now()));
    Ok(ctx.attempt())
}

#[orchestrator(name = "lease_crash_chain")]
async fn chain(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(quick_step, ()).await
}

/// Kills the child if the test fails before it does: an orphan would hold the test's output
/// open.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_attempt_runs_again_once_one_lease_later() {
    let Some(url) = testing::url() else {
        eprintln!(
            "a_killed_worker_s_attempt_runs_again_once_one_lease_later: skipped, {} is not set",
            testing::URL_VAR
        );
        return;
    };
    let schema = TestSchema::new(&url).await;
    let name = schema.name().to_string();
    let store = schema.into_store().await.expect("the test database");
    let id = "killed-mid-attempt";

    let mut child = Command::new(env!("CARGO_BIN_EXE_lease_child"))
        .args([&url, &name, id, &LEASE.as_millis().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = received
        .recv_timeout(Duration::from_secs(60))
        .expect("the child starts the attempt");
    assert_eq!(first, format!("running {id} 1"));
    // Three leases of running: without renewals the child would run the attempt again.
    let more = received.recv_timeout(LEASE * 3);
    assert!(
        more.is_err(),
        "the child ran the attempt again while it still ran: {more:?}"
    );
    child.0.kill().expect("SIGKILL the child");
    let killed_at = Instant::now();
    child.0.wait().unwrap();

    let runtime = Runtime::builder()
        .store(store)
        .activity_lease(LEASE)
        .orchestrator(chain)
        .activity(quick_step)
        .start()
        .unwrap();
    let status = runtime
        .client()
        .wait_for_completion(id, Duration::from_secs(60))
        .await
        .expect("the instance completes in this process");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(
        status.output,
        Some(serde_json::json!(1)),
        "the same attempt"
    );
    let runs = RUNS.lock().unwrap().clone();
    assert_eq!(
        runs.len(),
        1,
        "the attempt ran again exactly once: {runs:?}"
    );
    let (attempt, at) = runs[0];
    assert_eq!(attempt, 1, "the same attempt number");
    // The last renewal was at most a third of a lease before the kill.
    let after = at - killed_at;
    assert!(
        after >= LEASE / 2,
        "the attempt was taken {after:?} after the kill, before its lease ({LEASE:?}) ran out"
    );
    assert!(
        after <= LEASE * 3,
        "the attempt was taken {after:?} after the kill: not about one lease ({LEASE:?})"
    );
    eprintln!("the attempt ran again {after:?} after the kill (lease {LEASE:?})");
    runtime.shutdown().await;
}
