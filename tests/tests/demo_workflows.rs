//! The demo binary over real HTTP: both POC workflows end to end, an event raised before its
//! wait, instance ids, the management endpoints and the replay setting.

mod demo_support;

use demo_support::{reliable_runs, unreliable_attempts, Demo, TempDir};
use serde_json::{json, Value};

#[test]
fn retry_workflow_runs_as_the_poc_shows() {
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    let id = demo.start_instance("/start-retry");
    assert!(id.starts_with("retry-"), "{id}");
    let status = demo.finished(&id);
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    let output: Vec<String> = serde_json::from_value(status["output"].clone()).unwrap();
    let prefixes = [
        "Step 1: Initialize completed at ",
        "Step 2: Prepare data completed at ",
        "Step 3: Critical operation completed at ",
        "Step 4: Finalize completed at ",
    ];
    assert_eq!(output.len(), 4, "{output:?}");
    for (step, prefix) in output.iter().zip(prefixes) {
        assert!(step.starts_with(prefix), "{step}");
    }

    let lines = demo.lines();
    let expected_in_order = [
        "🎯 Retry orchestrator started...",
        "🚀 Calling Activity 1 (Always succeeds)...",
        "🔄 ReliableActivity execution #1: Step 1: Initialize",
        "✅ ReliableActivity succeeded: Step 1: Initialize completed at",
        "✅ Activity 1 completed: Step 1: Initialize completed at",
        "🚀 Calling Activity 2 (Always succeeds)...",
        "🔄 ReliableActivity execution #2: Step 2: Prepare data",
        "🚀 Calling Activity 3 (Will fail and retry)...",
        "🔄 UnreliableActivity - Attempt #1",
        "❌ Attempt #1: Network connection error (simulated)",
        "⏳ Framework will retry in 1s...",
        "💡 NOTE: Activities 1 & 2 will NOT re-execute on retry!",
        "🔄 UnreliableActivity - Attempt #2",
        "❌ Attempt #2: Database timeout (simulated)",
        "⏳ Framework will retry in 2s...",
        "🔄 UnreliableActivity - Attempt #3",
        "❌ Attempt #3: Service temporarily unavailable (simulated)",
        "⏳ Framework will retry in 4s...",
        "🔄 UnreliableActivity - Attempt #4",
        "✅ Success on attempt #4: Step 3: Critical operation completed at",
        "🎉 RETRY POLICY WORKED! Activity succeeded after 4 attempts!",
        "✅ Activity 3 completed: Step 3: Critical operation completed at",
        "🚀 Calling Activity 4 (Final step)...",
        "🔄 ReliableActivity execution #3: Step 4: Finalize",
        "✅ Activity 4 completed: Step 4: Finalize completed at",
        "🎉 ORCHESTRATION COMPLETED SUCCESSFULLY!",
    ];
    let mut rest = lines.iter();
    for expected in expected_in_order {
        assert!(
            rest.any(|line| line.starts_with(expected)),
            "missing, or out of order: {expected}\nconsole:\n{}",
            lines.join("\n")
        );
    }
    // Unlike the POC, the orchestrator's lines are not repeated when it replays.
    let once = |text: &str| lines.iter().filter(|l| l.as_str() == text).count();
    assert_eq!(once("🎯 Retry orchestrator started..."), 1);
    assert_eq!(reliable_runs(&lines, "Step 1: Initialize"), 1);
    assert_eq!(reliable_runs(&lines, "Step 2: Prepare data"), 1);
    assert_eq!(unreliable_attempts(&lines), [1, 2, 3, 4]);
    assert!(!lines.iter().any(|l| l.contains("replay")));

    // The back-offs are durable timers in the history.
    let response = demo.request("GET", &format!("/status/{id}?showHistory=true"), None);
    let history = response.json()["historyEvents"].clone();
    let timers = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "TimerCreated")
        .count();
    assert_eq!(timers, 3, "{history:#}");
}

#[test]
fn external_event_workflow_pauses_twice() {
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    let id = demo.start_instance("/start-external-event");
    assert!(id.starts_with("external-event-"), "{id}");

    let waiting = demo.wait_for_status(&id, |s| s["customStatus"] == "waiting for event step2");
    assert_eq!(waiting["runtimeStatus"], "Running");
    assert_eq!(waiting["name"], "external_event_orchestrator");
    for key in ["createdAt", "lastUpdatedAt"] {
        let time = waiting[key].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{key}: {time}");
    }
    demo.wait_for_line(|l| l.starts_with("⏸️  PAUSE: waiting for event `step2`"));

    // The POC's curl command, unchanged: `-d` with a JSON Content-Type.
    let response = demo.request(
        "POST",
        &format!("/send-event/{id}"),
        Some(r#"{"eventName": "step2", "data": "ok"}"#),
    );
    assert_eq!(response.status, 202, "{response:?}");
    demo.wait_for_status(&id, |s| s["customStatus"] == "waiting for event step4");
    demo.wait_for_line(|l| l.starts_with("▶️  RESUME: received step2"));

    demo.send_event(&id, "step4", json!({ "done": true, "items": [1, 2] }));
    let status = demo.finished(&id);
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    let output = &status["output"];
    assert_eq!(output["step2Data"], "ok");
    assert_eq!(
        output["step4Data"],
        json!({ "done": true, "items": [1, 2] })
    );
    assert!(output["step5"]
        .as_str()
        .unwrap()
        .starts_with("Step 5: Final processing"));
    demo.wait_for_line(|l| l == "🎉 ORCHESTRATION COMPLETED SUCCESSFULLY!");
}

#[test]
fn an_event_raised_before_its_wait_is_kept() {
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    let id = demo.start_instance("/start-external-event");
    // step4 arrives while the workflow has not even reached its wait for step2.
    demo.send_event(&id, "step4", json!("early"));
    let waiting = demo.wait_for_status(&id, |s| s["customStatus"] == "waiting for event step2");
    assert_eq!(waiting["runtimeStatus"], "Running");
    demo.send_event(&id, "step2", json!("late"));
    let status = demo.finished(&id);
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"]["step2Data"], "late");
    assert_eq!(status["output"]["step4Data"], "early");
}

#[test]
fn starts_in_one_second_get_numbered_ids_and_the_list_pages() {
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    let ids: Vec<String> = (0..4)
        .map(|_| demo.start_instance("/start-external-event"))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{ids:?}");
    for id in &ids {
        let rest = id.strip_prefix("external-event-").unwrap();
        let mut parts = rest.split('-');
        let seconds: u64 = parts.next().unwrap().parse().unwrap();
        assert!(seconds > 1_700_000_000, "{id}");
        if let Some(n) = parts.next() {
            assert!(n.parse::<u32>().unwrap() >= 2, "{id}");
        }
    }
    // Starts in the same second as the first one are numbered.
    let first_second = ids[0].strip_prefix("external-event-").unwrap();
    if ids[1].starts_with(&format!("external-event-{first_second}")) {
        assert_eq!(ids[1], format!("{}-2", ids[0]));
    }

    // Paging: two at a time, following the continuation token.
    let mut seen = Vec::new();
    let mut path = "/instances?top=2&runtimeStatus=Running,Pending".to_string();
    loop {
        let response = demo.request("GET", &path, None);
        assert_eq!(response.status, 200, "{response:?}");
        let page = response.json();
        let instances = page["instances"].as_array().unwrap();
        assert!(instances.len() <= 2);
        seen.extend(
            instances
                .iter()
                .map(|i| i["instanceId"].as_str().unwrap().to_string()),
        );
        match page["continuationToken"].as_str() {
            Some(token) => {
                assert_eq!(response.header("x-ms-continuation-token"), Some(token));
                path = format!(
                    "/instances?top=2&runtimeStatus=Running,Pending&continuationToken={}",
                    encode(token)
                );
            }
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, unique);

    let completed = demo.request("GET", "/instances?runtimeStatus=Completed", None);
    assert_eq!(completed.json()["instances"], json!([]));
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn suspend_resume_terminate_and_purge() {
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    let id = demo.start_instance("/start-external-event");
    demo.wait_for_status(&id, |s| s["customStatus"] == "waiting for event step2");

    let response = demo.request(
        "POST",
        &format!("/instances/{id}/suspend?reason=lunch"),
        None,
    );
    assert_eq!(response.status, 202, "{response:?}");
    demo.wait_for_status(&id, |s| s["runtimeStatus"] == "Suspended");
    // An event raised meanwhile is held until the instance resumes.
    let response = demo.request(
        "POST",
        &format!("/instances/{id}/raiseEvent/step2"),
        Some(r#""held""#),
    );
    assert_eq!(response.status, 202, "{response:?}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(demo.status(&id)["runtimeStatus"], "Suspended");

    let response = demo.request("POST", &format!("/instances/{id}/resume"), None);
    assert_eq!(response.status, 202, "{response:?}");
    demo.wait_for_status(&id, |s| s["customStatus"] == "waiting for event step4");

    // Purging a running instance is refused.
    demo.request("DELETE", &format!("/instances/{id}"), None)
        .error(409);

    let response = demo.request(
        "POST",
        &format!("/instances/{id}/terminate?reason=enough"),
        None,
    );
    assert_eq!(response.status, 202, "{response:?}");
    let status = demo.finished(&id);
    assert_eq!(status["runtimeStatus"], "Terminated", "{status}");
    assert_eq!(status["output"], "enough");

    let listed = demo.request("GET", "/instances?runtimeStatus=Terminated", None);
    assert_eq!(listed.json()["instances"][0]["instanceId"], id.as_str());

    let response = demo.request("DELETE", &format!("/instances/{id}"), None);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json(), json!({ "instancesDeleted": 1 }));
    demo.request("GET", &format!("/status/{id}"), None)
        .error(404);
    let all: Value = demo.request("GET", "/instances", None).json();
    assert_eq!(all["instances"], json!([]));
}

#[test]
fn show_replays_marks_the_lines_a_replay_re_runs() {
    let dir = TempDir::new();
    let demo = Demo::start_with(dir.path(), &["--show-replays"]);
    let id = demo.start_instance("/start-external-event");
    demo.wait_for_status(&id, |s| s["customStatus"] == "waiting for event step2");
    demo.send_event(&id, "step2", json!("ok"));
    demo.send_event(&id, "step4", json!("done"));
    demo.finished(&id);
    demo.wait_for_line(|l| l == "🎉 ORCHESTRATION COMPLETED SUCCESSFULLY!");
    let lines = demo.lines();
    let count = |text: &str| lines.iter().filter(|l| l.as_str() == text).count();
    // Live once; every later turn replays from the start and says so.
    assert_eq!(count("🎯 External event orchestrator started..."), 1);
    assert!(
        count("↺ replay: 🎯 External event orchestrator started...") >= 2,
        "{}",
        lines.join("\n")
    );
    // Activities are never replayed: each step ran once.
    assert_eq!(reliable_runs(&lines, "Step 1: Initial processing"), 1);
}
