//! Every endpoint of the management API, in-process: answers, filters and paging, and each
//! error as `{"error": "…"}`.

mod support;

use std::time::Duration;

use axum::body::Body;
use durable_http::{router, RouterOptions};
use durable_runtime::RuntimeStatus;
use serde_json::{json, Value};
use support::{completed, empty, get, post_json, runtime, send, waiting};

#[tokio::test]
async fn status_with_and_without_history() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    completed(&client, "done-1").await;

    let answer = get(&app, "/instances/done-1").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let status = answer.json();
    assert_eq!(status["instanceId"], "done-1");
    assert_eq!(status["name"], "echo");
    assert_eq!(status["runtimeStatus"], "Completed");
    assert_eq!(status["input"], "done-1");
    assert_eq!(status["output"], "done-1");
    assert_eq!(status["customStatus"], Value::Null);
    assert_eq!(status["failure"], Value::Null);
    for key in ["createdAt", "lastUpdatedAt"] {
        let time = status[key].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{key}: {time}");
    }
    assert!(status.get("historyEvents").is_none());

    let with_history = get(&app, "/instances/done-1?showHistory=true").await.json();
    let events = with_history["historyEvents"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "ExecutionStarted"),
        "{events:?}"
    );
    assert_eq!(
        events.last().unwrap()["kind"],
        "ExecutionCompleted",
        "{events:?}"
    );

    get(&app, "/instances/nope").await.error(404);
    get(&app, "/instances/done-1?showHistory=maybe")
        .await
        .error(400);
    // Ids are checked by the library's rule: no control characters, at most 256 bytes,
    // valid UTF-8.
    let long = "x".repeat(300);
    for id in ["bad%0Aid", "bad%00id", "%FF%FE", long.as_str()] {
        let message = get(&app, &format!("/instances/{id}")).await.error(400);
        assert!(
            message.contains("instance id") || message.contains("path"),
            "{message}"
        );
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn raise_event_delivers_any_json_and_refuses_the_finished() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    waiting(&client, "w-1").await;

    let data = r#"{"items": [1, 2], "note": "ok"}"#;
    let answer = post_json(&app, "/instances/w-1/raiseEvent/go", data).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(
        answer.json(),
        json!({ "instanceId": "w-1", "eventName": "go", "accepted": true })
    );
    let status = client
        .wait_for_completion("w-1", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        status.output,
        Some(json!({ "items": [1, 2], "note": "ok" }))
    );

    post_json(&app, "/instances/w-1/raiseEvent/go", "1")
        .await
        .error(410);
    post_json(&app, "/instances/nope/raiseEvent/go", "1")
        .await
        .error(404);

    // An empty body is `null`; malformed JSON is a 400.
    waiting(&client, "w-2").await;
    post_json(&app, "/instances/w-2/raiseEvent/go", "{")
        .await
        .error(400);
    let answer = post_json(&app, "/instances/w-2/raiseEvent/go", "  ").await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let status = client
        .wait_for_completion("w-2", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status.output, Some(Value::Null));

    // An event name is any path segment, percent-decoded.
    waiting(&client, "w-3").await;
    let answer = post_json(&app, "/instances/w-3/raiseEvent/a%20b%2Fc", "1").await;
    assert_eq!(answer.json()["eventName"], "a b/c");
    runtime.shutdown().await;
}

/// `levels` arrays inside each other around `1`, as JSON text.
fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

#[tokio::test]
async fn payloads_over_the_limits_are_400s_that_say_why() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    waiting(&client, "w-1").await;

    // One level over the runtime's limit, one that serde_json itself refuses, and far more.
    for levels in [101, 127, 128, 10_000] {
        let answer = post_json(&app, "/instances/w-1/raiseEvent/go", &nested(levels)).await;
        let message = answer.error(400);
        assert!(
            message.contains("nested") || message.contains("recursion limit"),
            "{levels}: {message}"
        );
    }
    let answer = post_json(&app, "/instances/w-1/raiseEvent/go", &nested(101)).await;
    let message = answer.error(400);
    assert!(
        message.contains("the data of event `go` is refused: it is nested more than 100 levels"),
        "{message}"
    );

    // The largest accepted value is delivered, and reads back.
    let answer = post_json(&app, "/instances/w-1/raiseEvent/go", &nested(100)).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let status = client
        .wait_for_completion("w-1", Duration::from_secs(10))
        .await
        .unwrap();
    let expected: Value = serde_json::from_str(&nested(100)).unwrap();
    assert_eq!(status.output, Some(expected));
    for path in ["/instances/w-1", "/instances", "/instances/w-1/history"] {
        let answer = get(&app, path).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn suspend_resume_terminate_and_purge() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    waiting(&client, "w-1").await;

    let answer = empty(&app, "POST", "/instances/w-1/suspend?reason=lunch").await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(
        answer.json(),
        json!({ "instanceId": "w-1", "accepted": "suspend" })
    );
    client
        .wait_until("w-1", Duration::from_secs(10), |s| {
            s.runtime_status == RuntimeStatus::Suspended
        })
        .await
        .unwrap();
    // Purging an instance that has not finished is refused.
    empty(&app, "DELETE", "/instances/w-1").await.error(409);

    let answer = empty(&app, "POST", "/instances/w-1/resume").await;
    assert_eq!(answer.json()["accepted"], "resume");
    let answer = empty(&app, "POST", "/instances/w-1/terminate?reason=enough").await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.json()["accepted"], "terminate");
    let status = client
        .wait_for_completion("w-1", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(status.output, Some(json!("enough")));

    for action in ["terminate", "suspend", "resume"] {
        empty(&app, "POST", &format!("/instances/w-1/{action}"))
            .await
            .error(410);
        empty(&app, "POST", &format!("/instances/nope/{action}"))
            .await
            .error(404);
    }

    let answer = empty(&app, "DELETE", "/instances/w-1").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), json!({ "instancesDeleted": 1 }));
    get(&app, "/instances/w-1").await.error(404);
    empty(&app, "DELETE", "/instances/w-1").await.error(404);

    // Without a reason, terminate says where it came from.
    waiting(&client, "w-2").await;
    empty(&app, "POST", "/instances/w-2/terminate").await;
    let status = client
        .wait_for_completion("w-2", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status.output, Some(json!("terminated over HTTP")));
    runtime.shutdown().await;
}

/// The ids of a page.
fn ids(page: &Value) -> Vec<String> {
    page["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_filters_and_pages() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    for n in 0..5 {
        completed(&client, &format!("done-{n}")).await;
    }
    waiting(&client, "waiting-0").await;

    let all = get(&app, "/instances").await;
    assert_eq!(all.status, 200, "{all:?}");
    assert_eq!(all.json()["continuationToken"], Value::Null);
    assert_eq!(ids(&all.json()).len(), 6);

    let running = get(&app, "/instances?runtimeStatus=Running,Pending").await;
    assert_eq!(ids(&running.json()), ["waiting-0"]);
    let none = get(&app, "/instances?runtimeStatus=Failed").await;
    assert_eq!(ids(&none.json()), Vec::<String>::new());

    // By the orchestrator's name, exactly; an empty name is no filter.
    assert_eq!(
        ids(&get(&app, "/instances?name=waiter").await.json()),
        ["waiting-0"]
    );
    assert_eq!(
        ids(&get(&app, "/instances?name=echo").await.json()).len(),
        5
    );
    for other in ["wait", "Waiter", "waiter%20", "%00"] {
        let answer = get(&app, &format!("/instances?name={other}")).await;
        assert_eq!(ids(&answer.json()), Vec::<String>::new(), "{other}");
    }
    assert_eq!(ids(&get(&app, "/instances?name=").await.json()).len(), 6);
    let both = get(&app, "/instances?name=echo&runtimeStatus=Running").await;
    assert_eq!(ids(&both.json()), Vec::<String>::new());

    // Pages of two, following the token in the query and, alternately, in the header.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for page_number in 0.. {
        let answer = match &token {
            None => get(&app, "/instances?top=2&runtimeStatus=Completed").await,
            Some(token) if page_number % 2 == 0 => {
                let path = format!(
                    "/instances?top=2&runtimeStatus=Completed&continuationToken={}",
                    encode(token)
                );
                get(&app, &path).await
            }
            Some(token) => {
                let headers = [("x-ms-continuation-token", token.as_str())];
                let path = "/instances?top=2&runtimeStatus=Completed";
                send(&app, "GET", path, &headers, Body::empty()).await
            }
        };
        assert_eq!(answer.status, 200, "{answer:?}");
        let page = answer.json();
        assert!(ids(&page).len() <= 2);
        seen.extend(ids(&page));
        match page["continuationToken"].as_str() {
            Some(next) => {
                let header = answer.headers.get("x-ms-continuation-token").unwrap();
                assert_eq!(header.to_str().unwrap(), next);
                token = Some(next.to_string());
            }
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["done-0", "done-1", "done-2", "done-3", "done-4"]);

    // Creation time: everything was created after 2020, nothing after 2999.
    let from = get(&app, "/instances?createdTimeFrom=2020-01-01T00:00:00Z").await;
    assert_eq!(ids(&from.json()).len(), 6);
    let to = get(&app, "/instances?createdTimeTo=2020-01-01T00:00:00Z").await;
    assert_eq!(ids(&to.json()).len(), 0);

    // A continuation token the store did not make is the client's mistake, not damage.
    let long = "9".repeat(8 * 1024);
    for token in [
        "garbage",
        "123",
        "abc%3Adef",
        "99999999999999999999999%3Ax",
        "%3A",
        &long,
    ] {
        let message = get(&app, &format!("/instances?continuationToken={token}"))
            .await
            .error(400);
        assert!(message.contains("continuation"), "{message}");
        let headers = [("x-ms-continuation-token", token)];
        send(&app, "GET", "/instances", &headers, Body::empty())
            .await
            .error(400);
    }

    for bad in [
        "/instances?runtimeStatus=Sleeping",
        "/instances?top=0",
        "/instances?top=many",
        "/instances?top=-1",
        "/instances?createdTimeFrom=yesterday",
    ] {
        get(&app, bad).await.error(400);
    }
    runtime.shutdown().await;
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

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    get(&app, "/nowhere").await.error(404);
    get(&app, "/instances/x/terminate").await.error(405);
    empty(&app, "PUT", "/instances").await.error(405);
    runtime.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default().max_body(64));
    waiting(&client, "w-1").await;
    let big = format!("\"{}\"", "a".repeat(100));

    // Announced by Content-Length: refused before the body is read.
    let headers = [
        ("content-type", "application/json"),
        ("content-length", "100000000"),
    ];
    let message = send(
        &app,
        "POST",
        "/instances/w-1/raiseEvent/go",
        &headers,
        Body::empty(),
    )
    .await
    .error(413);
    assert!(message.contains("64"), "{message}");

    // Streamed without a length: cut off at the limit.
    let stream = Body::from_stream(tokio_stream_of(big.clone()));
    let headers = [("content-type", "application/json")];
    let message = send(
        &app,
        "POST",
        "/instances/w-1/raiseEvent/go",
        &headers,
        stream,
    )
    .await
    .error(413);
    assert!(message.contains("64"), "{message}");

    // At the limit, it is read.
    let small = format!("\"{}\"", "a".repeat(62));
    let answer = post_json(&app, "/instances/w-1/raiseEvent/go", &small).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    runtime.shutdown().await;
}

/// A body of `text` in chunks of 10 bytes, with no length known in advance.
fn tokio_stream_of(
    text: String,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(10)
        .map(|c| Ok(c.to_vec()))
        .collect();
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn the_bearer_token_guards_every_endpoint() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(
        client.clone(),
        RouterOptions::default().auth_token("s3cret"),
    );
    completed(&client, "done-1").await;
    for (method, path) in [
        ("GET", "/instances"),
        ("GET", "/instances/done-1"),
        ("DELETE", "/instances/done-1"),
        ("POST", "/instances/done-1/terminate"),
        ("GET", "/nowhere"),
    ] {
        for headers in [
            &[][..],
            &[("authorization", "Bearer s3cre")][..],
            &[("authorization", "Bearer s3cret2")][..],
            &[("authorization", "Basic s3cret")][..],
            &[("authorization", "s3cret")][..],
        ] {
            let answer = send(&app, method, path, headers, Body::empty()).await;
            answer.error(401);
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
        }
    }
    // Nothing was purged by the refused requests.
    let token = [("authorization", "Bearer s3cret")];
    let answer = send(&app, "GET", "/instances/done-1", &token, Body::empty()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    runtime.shutdown().await;
}
