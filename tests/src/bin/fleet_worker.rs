//! A worker process of the fleet test (`tests/tests/fleet_postgres.rs`), which SIGKILLs,
//! SIGSTOPs and restarts it at random moments.
//!
//! `fleet_worker URL SCHEMA LEASE_MS` runs the fleet's workflow ([`durable_tests::fleet`]) on
//! the PostgreSQL store in `SCHEMA`, with leases of `LEASE_MS` milliseconds and a poll
//! interval of a twentieth of that. It prints `ready <host:pid>` (its lease owner name) once
//! connected, then `stats <turns> <conflicts>` every 50 ms (commits refused by the fence
//! count as conflicts), until it is killed or its stdin closes.

#![forbid(unsafe_code)]

use std::io::Read;
use std::time::Duration;

use durable_postgres::{PostgresOptions, PostgresStore};
use durable_runtime::Runtime;
use durable_tests::fleet::{fleet_retry, fleet_step};

fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, schema, lease_ms] = &args[..] else {
        eprintln!("usage: fleet_worker URL SCHEMA LEASE_MS");
        std::process::exit(2);
    };
    // Warnings (a store call that failed and is retried) go to the test's stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let lease = Duration::from_millis(lease_ms.parse().expect("LEASE_MS is a number"));
    let options = PostgresOptions::default()
        .schema(schema)
        .pool_size(8)
        .poll_interval(lease / 20)
        // Shorter than a lease: a worker paused inside a transaction loses it (and its row
        // locks) before its lease runs out.
        .idle_in_transaction_timeout(lease / 4);
    let store = PostgresStore::connect_with(url, options)
        .await
        .expect("connect the worker's store");
    let runtime = Runtime::builder()
        .store(store)
        .orchestrator(fleet_retry)
        .activity(fleet_step)
        .orchestration_lease(lease)
        .activity_lease(lease)
        .start()
        .expect("start the worker's runtime");
    println!("ready {}", owner());
    let stats = runtime.stats();
    println!("stats {} {}", stats.turns, stats.conflicts);
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    });
    tokio::pin!(stdin_closed);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let stats = runtime.stats();
                println!("stats {} {}", stats.turns, stats.conflicts);
            }
            _ = &mut stdin_closed => break,
        }
    }
    runtime.shutdown().await;
}
