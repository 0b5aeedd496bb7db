//! The demo survives a crash: SIGKILL during the retry back-off, start again on the same
//! data directory, and the instance carries on where it was.

mod demo_support;

use demo_support::{reliable_runs, unreliable_attempts, Demo, TempDir};

#[test]
fn killed_during_the_back_off_it_carries_on_after_a_restart() {
    let dir = TempDir::new();
    let mut first = Demo::start(dir.path());
    let id = first.start_instance("/start-retry");
    first.wait_for_line(|l| l == "⏳ Framework will retry in 1s...");
    // The line is logged while the turn that schedules the back-off runs, just before the
    // turn is committed; the history shows when the commit (with attempt 1's result) is
    // durable. Then kill at once, well inside the 1 s back-off.
    first.wait_for_status(&id, |_| {
        let history = first.request("GET", &format!("/status/{id}?showHistory=true"), None);
        history.json()["historyEvents"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["kind"] == "TimerCreated"))
    });
    first.kill();
    let before = first.lines();
    assert_eq!(unreliable_attempts(&before), [1], "{}", before.join("\n"));
    assert!(!before.iter().any(|l| l.contains("Attempt #2")));

    let second = Demo::start(dir.path());
    let status = second.finished(&id);
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"].as_array().unwrap().len(), 4, "{status}");
    second.wait_for_line(|l| l == "🎉 ORCHESTRATION COMPLETED SUCCESSFULLY!");

    let after = second.lines();
    let both: Vec<String> = before.iter().chain(&after).cloned().collect();
    let console = both.join("\n");
    assert_eq!(reliable_runs(&both, "Step 1: Initialize"), 1, "{console}");
    assert_eq!(reliable_runs(&both, "Step 2: Prepare data"), 1, "{console}");
    assert_eq!(reliable_runs(&both, "Step 4: Finalize"), 1, "{console}");
    assert_eq!(unreliable_attempts(&both), [1, 2, 3, 4], "{console}");
    // The restarted process replayed the instance silently: no orchestrator line twice.
    assert!(!after
        .iter()
        .any(|l| l == "🎯 Retry orchestrator started..."));
}
