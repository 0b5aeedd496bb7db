//! A worker process killed mid-attempt (issue 9, item 1): its renewals stop, so another
//! process takes the attempt once its lease has run out, one lease after the last renewal,
//! and runs it exactly once more, as the same attempt. Until the kill, the renewals keep the
//! attempt with the first process, however long it runs.
//!
//! Nothing is measured on a stopwatch (a loaded machine would fail bounds): the test reads
//! the attempt's row as the store keeps it (its lease token and the expiry its last renewal
//! wrote) and compares times that causality orders. A renewal writes `now + lease` before the
//! kill, so that expiry is at most one lease after the kill; the second process's fetch
//! must not hand the attempt out before the expiry, so the re-run starts after it.
//!
//! Only PostgreSQL lets two processes share a store, so that test needs
//! `DURABLE_TEST_POSTGRES_URL` (it says so and passes without). On the file store, one
//! process per directory, the other worker is a process restarted on the directory: leases
//! are not durable there (the directory's lock says the old owner is gone), so the attempt
//! runs again at once, exactly once, as the same attempt. The child is
//! `src/bin/lease_child.rs`; it runs on the system clock, and so does this test's runtime.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use durable_postgres::testing::{self, TestSchema};
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, Runtime, RuntimeStatus,
    TaskError,
};

const LEASE: Duration = Duration::from_millis(1_500);

/// How long the test waits for something that must happen (never a bound on how fast).
const PATIENCE: Duration = Duration::from_secs(60);

/// The attempts this process ran: instance, attempt number and when it started.
static RUNS: Mutex<Vec<(String, u32, SystemTime)>> = Mutex::new(Vec::new());

#[activity(name = "lease_crash_step")]
async fn quick_step(ctx: ActivityContext, _input: ()) -> Result<u32, String> {
    let run = (
        ctx.instance_id().to_string(),
        ctx.attempt(),
        SystemTime::now(),
    );
    RUNS.lock().unwrap().push(run);
    Ok(ctx.attempt())
}

/// The attempts of `id` this process ran: attempt number and when it started.
/// Runs `id` to completion in this process on `store`: it completes with the killed
/// attempt's output, the attempt having run here exactly once with the same number. The
/// runtime (shut down by the caller) and when that run started.
async fn finish_in_this_process(
    store: impl durable_runtime::store::Store + 'static,
    id: &str,
) -> (Runtime, SystemTime) {
    let runtime = Runtime::builder()
        .store(store)
        .activity_lease(LEASE)
        .orchestrator(chain)
        .activity(quick_step)
        .start()
        .unwrap();
    let status = runtime
        .client()
        .wait_for_completion(id, PATIENCE)
        .await
        .expect("the instance completes in this process");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(
        status.output,
        Some(serde_json::json!(1)),
        "the same attempt"
    );
    let runs = runs_of(id);
    assert_eq!(
        runs.len(),
        1,
        "the attempt ran again exactly once: {runs:?}"
    );
    let (attempt_no, started) = runs[0];
    assert_eq!(attempt_no, 1, "the same attempt number");
    (runtime, started)
}

fn runs_of(id: &str) -> Vec<(u32, SystemTime)> {
    let runs = RUNS.lock().unwrap();
    runs.iter()
        .filter(|(of, _, _)| of == id)
        .map(|&(_, attempt, at)| (attempt, at))
        .collect()
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

/// Starts `lease_child` with `args`; its stdout lines arrive on the receiver.
fn child(args: &[&str]) -> (KillOnDrop, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lease_child"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (KillOnDrop(child), received)
}

/// The attempt's row: its lease token (a new one at every hand-out, kept by renewals), its
/// lease's owner, and when its lease runs out.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    token: i64,
    owner: Option<String>,
    expires: SystemTime,
}

async fn attempt(db: &tokio_postgres::Client, schema: &str, id: &str) -> Option<Attempt> {
    let row = db
        .query_opt(
            &format!(
                "SELECT token, lease_owner, due_at FROM \"{schema}\".activities \
                 WHERE instance_id = $1"
            ),
            &[&id],
        )
        .await
        .expect("read the attempt's row")?;
    let due_at: i64 = row.get(2);
    Some(Attempt {
        token: row.get(0),
        owner: row.get(1),
        expires: SystemTime::UNIX_EPOCH + Duration::from_nanos(due_at.try_into().unwrap()),
    })
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
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("the test's own session");
    tokio::spawn(connection);
    let id = "killed-mid-attempt";

    let lease_ms = LEASE.as_millis().to_string();
    let (mut child, received) = child(&[&url, &name, id, &lease_ms]);
    let first = received
        .recv_timeout(PATIENCE)
        .expect("the child starts the attempt");
    assert_eq!(first, format!("running {id} 1"));
    let leased = attempt(&db, &name, id)
        .await
        .expect("the attempt's row while it runs");
    assert!(leased.owner.is_some(), "leased: {leased:?}");

    // The attempt outlives two more leases through renewals alone: the row keeps the lease
    // the child took (the same token: never handed out again) while its expiry moves on.
    let outlived = leased.expires + LEASE * 2;
    let waiting = std::time::Instant::now();
    let renewed = loop {
        let now = attempt(&db, &name, id).await.expect("the attempt's row");
        assert_eq!(
            (now.token, &now.owner),
            (leased.token, &leased.owner),
            "the attempt was handed out again while the child still ran it: {leased:?} → {now:?}"
        );
        if now.expires >= outlived {
            break now;
        }
        assert!(
            waiting.elapsed() < PATIENCE,
            "the child never renewed the lease past {outlived:?}: {now:?}"
        );
        tokio::time::sleep(LEASE / 10).await;
    };
    assert!(
        received.try_recv().is_err(),
        "the child ran the attempt once, however long it runs"
    );
    child.0.kill().expect("SIGKILL the child");
    child.0.wait().unwrap();
    let killed_at = SystemTime::now();
    // The last renewal the child made: nobody else writes the row until it expires.
    let last = attempt(&db, &name, id).await.expect("the attempt's row");
    assert_eq!(
        last.token, renewed.token,
        "still the child's lease: {last:?}"
    );
    assert!(
        last.expires <= killed_at + LEASE,
        "a renewal before the kill runs out at most one lease after it: {last:?}, killed at \
         {killed_at:?}"
    );

    let (runtime, started) = finish_in_this_process(store, id).await;
    assert!(
        started >= last.expires,
        "the attempt ran again at {started:?}, before its lease ran out at {:?}",
        last.expires
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_attempt_runs_again_once_after_a_restart_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let id = "killed-mid-attempt-on-file";
    let lease_ms = LEASE.as_millis().to_string();
    let (mut child, received) = child(&["--file", path, id, &lease_ms]);
    let first = received
        .recv_timeout(PATIENCE)
        .expect("the child starts the attempt");
    assert_eq!(first, format!("running {id} 1"));
    child.0.kill().expect("SIGKILL the child");
    child.0.wait().unwrap();

    // The restarted process: the kill released the directory's lock.
    let store = durable_runtime::store::FileStore::open(dir.path())
        .await
        .expect("the directory opens after the kill");
    let (runtime, _) = finish_in_this_process(store, id).await;
    assert!(
        received.try_recv().is_err(),
        "the killed child ran the attempt only once"
    );
    runtime.shutdown().await;
}
