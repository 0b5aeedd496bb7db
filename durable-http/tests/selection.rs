//! What a filter selects: counts per status, id-prefix and custom-status search, time
//! ranges, and bulk terminate and purge (dry run first, then batches), with the worst a
//! caller can send.

mod support;

use std::time::Duration;

use durable_http::{router, RouterOptions};
use durable_runtime::RuntimeStatus;
use serde_json::{json, Value};
use support::{completed, empty, get, runtime, waiting};

fn ids(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["instanceId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn counts_and_search_by_id_prefix_custom_status_and_time() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    for id in ["order-1", "order-2", "other-1"] {
        waiting(&client, id).await;
    }
    for id in ["order-3", "done-1"] {
        completed(&client, id).await;
    }

    let counts = get(&app, "/counts").await.json();
    assert_eq!(counts["counts"]["running"], 3, "{counts}");
    assert_eq!(counts["counts"]["completed"], 2, "{counts}");
    assert_eq!(counts["counts"]["pending"], 0, "{counts}");
    assert_eq!(counts["total"], 5, "{counts}");
    let counts = get(&app, "/counts?instanceIdPrefix=order-").await.json();
    assert_eq!(counts["counts"]["running"], 2, "{counts}");
    assert_eq!(counts["counts"]["completed"], 1, "{counts}");
    let counts = get(&app, "/counts?runtimeStatus=Running&customStatus=for%20go")
        .await
        .json();
    assert_eq!(counts["total"], 3, "{counts}");

    let list = get(&app, "/instances?instanceIdPrefix=order-").await.json();
    assert_eq!(ids(&list), ["order-1", "order-2", "order-3"]);
    let list = get(&app, "/instances?customStatus=waiting").await.json();
    assert_eq!(ids(&list), ["order-1", "order-2", "other-1"]);
    let list = get(&app, "/instances?customStatus=Waiting").await.json();
    assert_eq!(ids(&list), Vec::<String>::new(), "case-sensitive");
    let list = get(
        &app,
        "/instances?instanceIdPrefix=o&runtimeStatus=Completed",
    )
    .await
    .json();
    assert_eq!(ids(&list), ["order-3"]);
    let list = get(
        &app,
        "/instances?createdTimeFrom=2000-01-01T00:00:00Z&createdTimeTo=2999-01-01T00:00:00Z",
    )
    .await
    .json();
    assert_eq!(ids(&list).len(), 5);

    // The worst a caller sends: 400s that say the rule.
    let long = "x".repeat(257);
    let message = get(&app, &format!("/instances?instanceIdPrefix={long}"))
        .await
        .error(400);
    assert!(message.contains("at most 256"), "{message}");
    get(&app, &format!("/counts?instanceIdPrefix={long}"))
        .await
        .error(400);
    let message = get(
        &app,
        &format!("/instances?customStatus={}", "y".repeat(1025)),
    )
    .await
    .error(400);
    assert!(message.contains("1024"), "{message}");
    let backwards = "createdTimeFrom=2030-01-01T00:00:00Z&createdTimeTo=2020-01-01T00:00:00Z";
    let message = get(&app, &format!("/instances?{backwards}"))
        .await
        .error(400);
    assert!(message.contains("before"), "{message}");
    get(&app, &format!("/counts?{backwards}")).await.error(400);
    let same = "createdTimeFrom=2030-01-01T00:00:00Z&createdTimeTo=2030-01-01T00:00:00Z";
    get(&app, &format!("/counts?{same}")).await.error(400);
    get(&app, "/counts?createdTimeFrom=yesterday")
        .await
        .error(400);
    get(&app, "/counts?createdTimeFrom=99999-01-01T00:00:00Z")
        .await
        .error(400);
    get(&app, "/counts?runtimeStatus=Sleeping").await.error(400);
    runtime.shutdown().await;
}

#[tokio::test]
async fn bulk_terminate_counts_first_then_acts_in_batches() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    for n in 0..7 {
        waiting(&client, &format!("batch-{n}")).await;
    }
    waiting(&client, "keep-1").await;
    completed(&client, "batch-done").await;

    let dry = empty(
        &app,
        "POST",
        "/bulk/terminate?instanceIdPrefix=batch-&dryRun=true",
    )
    .await;
    assert_eq!(dry.status, 200, "{dry:?}");
    assert_eq!(dry.json(), json!({ "dryRun": true, "selected": 7 }));
    // A dry run changes nothing.
    let counts = get(&app, "/counts?instanceIdPrefix=batch-").await.json();
    assert_eq!(counts["counts"]["running"], 7, "{counts}");

    // Batches of 3: the caller repeats with the token until it is null.
    let mut token: Option<String> = None;
    let mut batches = 0;
    let mut terminated = 0;
    loop {
        let mut path = "/bulk/terminate?instanceIdPrefix=batch-&top=3&reason=cleanup".to_string();
        if let Some(token) = &token {
            path.push_str(&format!("&continuationToken={}", urlencode(token)));
        }
        let answer = empty(&app, "POST", &path).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let body = answer.json();
        batches += 1;
        terminated += body["terminated"].as_u64().unwrap();
        assert!(body["terminated"].as_u64().unwrap() <= 3, "{body}");
        match body["continuationToken"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
        assert!(batches < 10, "the batches never end");
    }
    assert_eq!(terminated, 7);
    assert_eq!(batches, 3);
    for n in 0..7 {
        let status = client
            .wait_for_completion(&format!("batch-{n}"), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    }
    let keep = client.status("keep-1").await.unwrap();
    assert_eq!(
        keep.runtime_status,
        RuntimeStatus::Running,
        "outside the filter"
    );

    // Only finished statuses asked for: a terminate selects nothing.
    let none = empty(
        &app,
        "POST",
        "/bulk/terminate?runtimeStatus=Completed&dryRun=true",
    )
    .await;
    assert_eq!(none.json(), json!({ "dryRun": true, "selected": 0 }));
    empty(&app, "POST", "/bulk/terminate?dryRun=maybe")
        .await
        .error(400);
    empty(&app, "POST", "/bulk/terminate?top=0")
        .await
        .error(400);
    // A huge `top` is capped at a page of 1000, never unbounded.
    let huge = empty(
        &app,
        "POST",
        "/bulk/terminate?instanceIdPrefix=nothing-&top=99999999",
    )
    .await;
    assert_eq!(huge.status, 200, "{huge:?}");
    empty(&app, "GET", "/bulk/terminate").await.error(405);
    runtime.shutdown().await;
}

#[tokio::test]
async fn bulk_purge_removes_only_finished_instances() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    for n in 0..4 {
        completed(&client, &format!("old-{n}")).await;
    }
    waiting(&client, "old-running").await;

    let dry = empty(
        &app,
        "POST",
        "/bulk/purge?instanceIdPrefix=old-&dryRun=true",
    )
    .await;
    assert_eq!(dry.json(), json!({ "dryRun": true, "selected": 4 }));
    let answer = empty(&app, "POST", "/bulk/purge?instanceIdPrefix=old-").await;
    assert_eq!(
        answer.json(),
        json!({ "purged": 4, "skipped": 0, "continuationToken": null })
    );
    let left = get(&app, "/instances?instanceIdPrefix=old-").await.json();
    assert_eq!(
        ids(&left),
        ["old-running"],
        "a running instance is never purged"
    );
    runtime.shutdown().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
