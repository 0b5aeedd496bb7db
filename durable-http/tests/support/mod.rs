//! A runtime with two small workflows, and requests sent to a router in-process.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use durable_runtime::{orchestrator, Client, OrchestrationContext, Runtime, TaskError};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Waits for the event `go` and returns its data.
#[orchestrator]
pub async fn waiter(ctx: OrchestrationContext) -> Result<Value, TaskError> {
    ctx.set_custom_status("waiting for go");
    let data: Value = ctx.wait_for_event("go").await?;
    Ok(data)
}

/// Returns its input at once.
#[orchestrator]
pub async fn echo(_ctx: OrchestrationContext, input: Value) -> Result<Value, TaskError> {
    Ok(input)
}

/// A runtime on the in-memory store with both workflows.
pub fn runtime() -> Runtime {
    Runtime::builder()
        .orchestrator(waiter)
        .orchestrator(echo)
        .start()
        .expect("the runtime starts")
}

/// Starts `waiter` as `id` and waits until it waits for its event.
pub async fn waiting(client: &Client, id: &str) {
    client.start(waiter, ()).instance_id(id).await.unwrap();
    client
        .wait_until(id, Duration::from_secs(10), |s| {
            s.custom_status
                .as_ref()
                .is_some_and(|c| c == "waiting for go")
        })
        .await
        .unwrap();
}

/// Starts `echo` as `id` and waits until it has completed.
pub async fn completed(client: &Client, id: &str) {
    client
        .start(echo, Value::from(id))
        .instance_id(id)
        .await
        .unwrap();
    client
        .wait_for_completion(id, Duration::from_secs(10))
        .await
        .unwrap();
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self:?}"))
    }

    /// Checks the status and that the body is `{"error": "<non-empty message>"}`; returns
    /// the message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        let json = self.json();
        let message = json["error"].as_str().unwrap_or_else(|| panic!("{self:?}"));
        assert!(!message.is_empty());
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
        message.to_string()
    }
}

/// Sends one request to `app` in-process, with `Host: localhost` unless `headers` name one.
pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request = request.header("host", "localhost");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `GET path`.
pub async fn get(app: &Router, path: &str) -> Answer {
    send(app, "GET", path, &[], Body::empty()).await
}

/// `POST path` with a JSON body.
pub async fn post_json(app: &Router, path: &str, json: &str) -> Answer {
    let headers = [("content-type", "application/json")];
    send(app, "POST", path, &headers, json.to_string()).await
}

/// `method path` without a body.
pub async fn empty(app: &Router, method: &str, path: &str) -> Answer {
    send(app, method, path, &[], Body::empty()).await
}
