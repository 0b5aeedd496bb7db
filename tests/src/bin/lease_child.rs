//! The child process of the lease crash test (`tests/tests/lease_crash.rs`), which kills it
//! with SIGKILL while it runs an activity attempt.
//!
//! `lease_child URL SCHEMA ID LEASE_MS` runs a runtime on the PostgreSQL store at `URL`,
//! schema `SCHEMA`, with an activity lease of `LEASE_MS` milliseconds, and starts the instance
//! `ID` of `lease_crash_chain`; `lease_child --file DIR ID LEASE_MS` does the same on the file
//! store in `DIR`. Its activity prints `running <id> <attempt>` on stdout each
//! time an attempt starts, then runs until the process is killed.

#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use durable_postgres::{PostgresOptions, PostgresStore};
use durable_runtime::store::{FileStore, Store};
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, Runtime, TaskError,
};

/// Runs until the process dies: the attempt the test kills.
#[activity(name = "lease_crash_step")]
async fn endless_step(ctx: ActivityContext, _input: ()) -> Result<u32, String> {
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "running {} {}", ctx.instance_id(), ctx.attempt()).unwrap();
        out.flush().unwrap();
    }
    std::future::pending().await
}

#[orchestrator(name = "lease_crash_chain")]
async fn chain(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    ctx.call(endless_step, ()).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (store, id, lease_ms): (Arc<dyn Store>, _, _) = match args.as_slice() {
        [flag, dir, id, lease_ms] if flag == "--file" => {
            (Arc::new(FileStore::open(dir).await?), id, lease_ms)
        }
        [url, schema, id, lease_ms] => {
            let options = PostgresOptions::default().schema(schema).pool_size(4);
            (
                Arc::new(PostgresStore::connect_with(url, options).await?),
                id,
                lease_ms,
            )
        }
        _ => anyhow::bail!("usage: lease_child (URL SCHEMA | --file DIR) ID LEASE_MS"),
    };
    let lease = Duration::from_millis(lease_ms.parse()?);
    let runtime = Runtime::builder()
        .shared_store(store)
        .activity_lease(lease)
        .orchestrator(chain)
        .activity(endless_step)
        .start()?;
    runtime.client().start(chain, ()).instance_id(id).await?;
    std::future::pending::<()>().await;
    Ok(())
}
