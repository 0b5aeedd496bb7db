//! A JSON body must say it is JSON: a cross-site "simple" request (a form, `text/plain`, no
//! type at all) cannot, so it cannot carry one.

mod support;

use axum::body::Body;
use durable_http::{router, RouterOptions};
use support::{runtime, send, waiting};

#[tokio::test]
async fn a_body_that_does_not_say_json_gets_415() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    waiting(&client, "w-1").await;
    let path = "/instances/w-1/raiseEvent/go";
    for content_type in [
        None,
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("application/json-seq"),
        Some("text/json"),
        Some("json"),
        Some(""),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        let answer = send(&app, "POST", path, &headers, r#"{"a": 1}"#).await;
        let message = answer.error(415);
        assert!(
            message.contains("Content-Type: application/json"),
            "{content_type:?}: {message}"
        );
    }
    // Nothing was delivered.
    let status = client.status("w-1").await.unwrap();
    assert!(!status.runtime_status.is_finished());

    for content_type in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/cloudevents+json",
    ] {
        waiting(&client, content_type).await;
        let path = format!("/instances/{}/raiseEvent/go", encode(content_type));
        let headers = [("content-type", content_type)];
        let answer = send(&app, "POST", &path, &headers, "1").await;
        assert_eq!(answer.status, 202, "{content_type}: {answer:?}");
    }

    // No body needs no type: `curl -X POST` sends neither.
    let answer = send(&app, "POST", path, &[], Body::empty()).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    runtime.shutdown().await;
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
