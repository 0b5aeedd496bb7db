//! Spans across a crash: the POC's retry workflow, its process killed (SIGKILL) during the
//! first back-off and started again, still yields one orchestration span, one span per
//! attempt (none twice for an attempt that finished before the kill) and one per back-off,
//! all in one trace under the orchestration span that the history recorded.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn child(dir: &std::path::Path, mode: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_span_child"))
        .arg(dir)
        .arg("traced-retry")
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts")
}

/// Reads the child's lines until `stop` says so; returns the spans seen.
fn read_until(child: &mut Child, mut stop: impl FnMut(&str) -> bool) -> Vec<Value> {
    let out = child.stdout.as_mut().expect("piped");
    let mut spans = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("a line");
        if let Some(json) = line.strip_prefix("span ") {
            spans.push(serde_json::from_str(json).expect("a span as JSON"));
        }
        if stop(&line) {
            return spans;
        }
    }
    panic!("the child ended before the expected line; spans so far: {spans:#?}");
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a str {
    span["attributes"][key].as_str().unwrap_or_default()
}

#[test]
fn killed_during_a_back_off_one_orchestration_span_seven_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = child(dir.path(), "start");
    let mut spans = read_until(&mut first, |line| line == "retry 1");
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert_eq!(
        spans.len(),
        3,
        "two steps and a failed attempt before the kill: {spans:#?}"
    );
    assert!(spans
        .iter()
        .all(|s| attr(s, "durabletask.type") == "activity"));

    let mut second = child(dir.path(), "resume");
    spans.extend(read_until(&mut second, |line| line == "completed"));
    assert!(second.wait().unwrap().success());

    let of = |kind: &str| -> Vec<&Value> {
        spans
            .iter()
            .filter(|s| attr(s, "durabletask.type") == kind)
            .collect()
    };
    let orchestrations = of("orchestration");
    assert_eq!(orchestrations.len(), 1, "{spans:#?}");
    let root = orchestrations[0];
    assert_eq!(root["name"], "orchestration:retry_orchestrator");
    assert_eq!(root["parent_span_id"], "0000000000000000");
    assert_eq!(root["error"], Value::Null);

    let activities = of("activity");
    assert_eq!(activities.len(), 7, "{activities:#?}");
    let attempts: BTreeSet<_> = activities
        .iter()
        .map(|s| {
            (
                attr(s, "durabletask.task.task_id"),
                attr(s, "durabletask.task.attempt"),
            )
        })
        .collect();
    assert_eq!(attempts.len(), 7, "no attempt twice: {attempts:?}");
    let errors: Vec<_> = activities
        .iter()
        .filter_map(|s| s["error"].as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "Network connection error (simulated)",
            "Database timeout (simulated)",
            "Service temporarily unavailable (simulated)",
        ]
    );
    let timers = of("timer");
    assert_eq!(timers.len(), 3, "{timers:#?}");
    for span in activities.iter().chain(&timers) {
        assert_eq!(span["parent_span_id"], root["span_id"], "{span:#?}");
        assert_eq!(span["trace_id"], root["trace_id"]);
    }
    assert_eq!(spans.len(), 1 + 7 + 3);
}
