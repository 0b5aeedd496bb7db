//! The POC's routes (start either workflow, send it an event, read its status), beside the
//! management API of `durable_http`, which serves the rest (`/instances/…`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use durable_http::{ApiError, LocalAddr, RouterOptions};
use durable_runtime::{Client, ClientError, Orchestrator};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::Mutex;
use tower::ServiceExt as _;

use crate::workflows::{external_event_orchestrator, retry_orchestrator};

/// What the POC's handlers share.
#[derive(Clone)]
struct Demo {
    client: Client,
    /// The management API, which `/status` and `/send-event` answer through.
    management: Router,
    /// Held while an id is picked and its instance created, so two starts in one second
    /// get different ids.
    starting: Arc<Mutex<()>>,
}

/// The POC's routes and the management API, both behind the checks of `options`.
pub fn app(client: Client, options: RouterOptions) -> Router {
    let management = durable_http::router(client.clone(), options.clone());
    let demo = Demo {
        client,
        management: management.clone(),
        starting: Arc::new(Mutex::new(())),
    };
    let poc = Router::new()
        .route("/start-retry", post(start_retry))
        .route("/start-external-event", post(start_external_event))
        .route("/send-event/{instance_id}", post(send_event))
        .route("/status/{instance_id}", get(status))
        .method_not_allowed_fallback(durable_http::method_not_allowed)
        .with_state(demo);
    durable_http::guard(poc, &options).merge(management)
}

/// Percent-encodes an id for a URL path segment.
fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `http://<Host>` of the request, for the URLs a start returns.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Starts `orchestrator` as `<prefix>-<unix seconds>`, or `<prefix>-<unix seconds>-<n>` when
/// that id is taken (two starts in one second, or an instance kept from an earlier run).
async fn start<O: Orchestrator<Input = ()> + Copy>(
    demo: &Demo,
    orchestrator: O,
    prefix: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let _one_at_a_time = demo.starting.lock().await;
    let base = format!("{prefix}-{}", unix_seconds());
    let mut n = 1;
    let id = loop {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        n += 1;
        match demo.client.status(&candidate).await {
            Err(ClientError::NotFound(_)) => {}
            Ok(_) => continue,
            Err(error) => return Err(error.into()),
        }
        // A start replaces a finished instance of the same id: the check above keeps them.
        // Other demo processes on the same store pick ids the same way: whoever creates the
        // id first wins and the others find it taken (`AlreadyExists`, or the check). Only
        // an instance created and finished between another process's check and its start
        // could be replaced, and these workflows run for seconds.
        match demo
            .client
            .start(orchestrator, ())
            .instance_id(candidate)
            .await
        {
            Ok(id) => break id,
            Err(ClientError::AlreadyExists(_)) => continue,
            Err(error) => return Err(error.into()),
        }
    };
    let base = base_url(headers);
    let status_url = format!("{base}/status/{}", path_segment(&id));
    let instance_url = format!("{base}/instances/{}", path_segment(&id));
    let body = json!({
        "instanceId": id,
        "statusQueryGetUri": status_url,
        "sendEventPostUri": format!("{base}/send-event/{}", path_segment(&id)),
        "terminatePostUri": format!("{instance_url}/terminate"),
        "suspendPostUri": format!("{instance_url}/suspend"),
        "resumePostUri": format!("{instance_url}/resume"),
        "purgeHistoryDeleteUri": instance_url,
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn start_retry(State(demo): State<Demo>, headers: HeaderMap) -> Result<Response, ApiError> {
    start(&demo, retry_orchestrator, "retry", &headers).await
}

async fn start_external_event(
    State(demo): State<Demo>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    start(
        &demo,
        external_event_orchestrator,
        "external-event",
        &headers,
    )
    .await
}

/// The body of `POST /send-event/{instanceId}`. A misspelt field (`eventData`) is refused
/// with the names expected, rather than sending the event without its data.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendEvent {
    event_name: String,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

const SEND_EVENT: &str = r#"a JSON object {"eventName": "<name>", "data": <any JSON>}"#;

/// `POST /send-event/{id}` is `POST /instances/{id}/raiseEvent/{eventName}` with the data
/// as the body.
async fn send_event(State(demo): State<Demo>, request: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let raw: Box<RawValue> = durable_http::json_body(&parts.headers, body, SEND_EVENT).await?;
    // serde would also take a struct from an array (`["step2"]`): only an object will do.
    if !raw.get().starts_with('{') {
        return Err(ApiError::bad_request(format!(
            "the body must be {SEND_EVENT}, not {}",
            raw.get()
        )));
    }
    let event: SendEvent = serde_json::from_str(raw.get())
        .map_err(|e| ApiError::bad_request(format!("the body must be {SEND_EVENT}: {e}")))?;
    if event.event_name.is_empty() {
        return Err(ApiError::bad_request("`eventName` cannot be empty"));
    }
    let id = raw_id(&parts.uri, "/send-event/");
    let path = format!(
        "/instances/{id}/raiseEvent/{}",
        path_segment(&event.event_name)
    );
    let data = event
        .data
        .map(|data| data.get().to_owned())
        .unwrap_or_default();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    forward(&demo, parts, &path, Body::from(data)).await
}

/// `GET /status/{id}` is `GET /instances/{id}`, with the same query.
async fn status(State(demo): State<Demo>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let id = raw_id(&parts.uri, "/status/");
    let path = match parts.uri.query() {
        Some(query) => format!("/instances/{id}?{query}"),
        None => format!("/instances/{id}"),
    };
    forward(&demo, parts, &path, body).await
}

/// The instance id of the path, still percent-encoded, after `prefix`.
fn raw_id<'a>(uri: &'a Uri, prefix: &str) -> &'a str {
    uri.path().strip_prefix(prefix).unwrap_or_default()
}

/// Answers as the management API answers `path`: the POC's routes are its aliases, so they
/// give the same answers and errors by construction.
async fn forward(
    demo: &Demo,
    mut parts: Parts,
    path: &str,
    body: Body,
) -> Result<Response, ApiError> {
    parts.uri = path
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    // The outer route's path parameters are extensions too, and the inner router would add
    // its own to them: carry over only what `serve` put there.
    let mut extensions = Extensions::new();
    if let Some(local) = parts.extensions.get::<LocalAddr>() {
        extensions.insert(*local);
    }
    if let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        extensions.insert(*peer);
    }
    parts.extensions = extensions;
    let request = Request::from_parts(parts, body);
    match demo.management.clone().oneshot(request).await {
        Ok(response) => Ok(response),
        Err(never) => match never {},
    }
}
