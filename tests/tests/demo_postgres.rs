//! Two demo processes on one PostgreSQL database share the workflows: ids they make stay
//! unique, either answers for any instance, and no activity runs twice. Runs when
//! `DURABLE_TEST_POSTGRES_URL` is set.

mod demo_support;

use std::collections::HashSet;

use demo_support::{reliable_runs, unreliable_attempts, Demo, TempDir};
use durable_postgres::testing::{self, TestSchema};

#[test]
fn two_demos_on_one_database_share_the_workflows() {
    let Some(url) = testing::url() else { return };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Dropped last: the demos are killed first.
    let schema = tokio.block_on(TestSchema::new(&url));
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let args = ["--postgres", &url, "--schema", schema.name()];
    let a = Demo::start_with(dir_a.path(), &args);
    let b = Demo::start_with(dir_b.path(), &args);
    a.wait_for_line(|l| l.contains("Store: PostgreSQL"));

    // Started on both at once, mostly within one second: the same base id each time.
    let ids: Vec<String> = (0..3)
        .flat_map(|_| {
            [
                a.start_instance("/start-retry"),
                b.start_instance("/start-retry"),
            ]
        })
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "ids were reused: {ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("retry-")), "{ids:?}");

    // Each asked of the process that did not start it.
    for (n, id) in ids.iter().enumerate() {
        let other = if n % 2 == 0 { &b } else { &a };
        let status = other.finished(id);
        assert_eq!(status["runtimeStatus"], "Completed", "{status}");
        assert_eq!(status["output"].as_array().unwrap().len(), 4, "{status}");
    }
    let lines: Vec<String> = a.lines().into_iter().chain(b.lines()).collect();
    let console = lines.join("\n");
    // Every attempt and step ran exactly once, on one process or the other.
    assert_eq!(
        unreliable_attempts(&lines).len(),
        4 * ids.len(),
        "{console}"
    );
    for step in [
        "Step 1: Initialize",
        "Step 2: Prepare data",
        "Step 4: Finalize",
    ] {
        assert_eq!(reliable_runs(&lines, step), ids.len(), "{step}\n{console}");
    }
}
