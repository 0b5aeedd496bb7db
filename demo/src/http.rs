//! The HTTP API: the POC's endpoints, and management in the style of Azure Durable
//! Functions' HTTP API. JSON in and out; every error is `{"error": "…"}`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use durable_runtime::{
    Client, ClientError, InstanceId, InstanceQuery, InstanceStatus, Orchestrator, RuntimeStatus,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::workflows::{external_event_orchestrator, retry_orchestrator};

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    client: Client,
    auth_token: Option<Arc<str>>,
    max_body: usize,
    /// Held while an id is picked and its instance created, so two starts in one second
    /// get different ids.
    starting: Arc<Mutex<()>>,
}

impl Api {
    /// The API over `client`; requests must carry `auth_token` if set, and bodies are at most
    /// `max_body` bytes.
    pub fn new(client: Client, auth_token: Option<String>, max_body: usize) -> Self {
        Api {
            client,
            auth_token: auth_token.map(Arc::from),
            max_body,
            starting: Arc::new(Mutex::new(())),
        }
    }
}

/// The routes, with authentication and the body size limit in front of them.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/start-retry", post(start_retry))
        .route("/start-external-event", post(start_external_event))
        .route("/send-event/{instance_id}", post(send_event))
        .route("/status/{instance_id}", get(status))
        .route("/instances", get(list))
        .route("/instances/{instance_id}", get(status))
        .route("/instances/{instance_id}", delete(purge))
        .route(
            "/instances/{instance_id}/raiseEvent/{event_name}",
            post(raise_event),
        )
        .route("/instances/{instance_id}/terminate", post(terminate))
        .route("/instances/{instance_id}/suspend", post(suspend))
        .route("/instances/{instance_id}/resume", post(resume))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(api.clone(), limit_body))
        .layer(middleware::from_fn_with_state(api.clone(), authenticate))
        .with_state(api)
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        let status = match &error {
            ClientError::InvalidInstanceId(_) | ClientError::BadPayload { .. } => {
                StatusCode::BAD_REQUEST
            }
            ClientError::NotFound(_) => StatusCode::NOT_FOUND,
            ClientError::Finished { .. } => StatusCode::GONE,
            ClientError::AlreadyExists(_) | ClientError::NotFinished(_) => StatusCode::CONFLICT,
            ClientError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

/// Rejects a request without the bearer token, when one is configured.
async fn authenticate(State(api): State<Api>, request: Request, next: Next) -> Response {
    let Some(expected) = &api.auth_token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match given {
        Some(token) if same_secret(token.trim().as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        given => {
            let message = if given.is_some() {
                "wrong bearer token"
            } else {
                "this server needs a bearer token: send `Authorization: Bearer <token>`, the token given to --auth-token"
            };
            let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Compares in time independent of where the inputs differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answers 413 from the Content-Length, before a byte of the body is read.
async fn limit_body(State(api): State<Api>, request: Request, next: Next) -> Response {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match length {
        Some(length) if length > api.max_body as u64 => too_large(api.max_body).into_response(),
        _ => next.run(request).await,
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {max} bytes (the server's --max-body)"),
    )
}

/// Reads a body of at most `max_body` bytes (a body without Content-Length is cut off there).
async fn read_body(api: &Api, body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, api.max_body)
        .await
        .map_err(|_| too_large(api.max_body))
}

/// Parses a body as JSON whatever its Content-Type says: curl's `-d` without `-H` sends
/// `application/x-www-form-urlencoded`, and its users still mean JSON.
fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], expected: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body must be {expected}: {e}")))
}

/// An instance id from the path, checked against the id rule.
fn instance_id(path: Result<Path<String>, PathRejection>) -> ApiResult<InstanceId> {
    let Path(id) = path.map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    InstanceId::new(id).map_err(|e| ApiError::bad_request(format!("invalid instance id: {e}")))
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
    api: &Api,
    orchestrator: O,
    prefix: &str,
    headers: &HeaderMap,
) -> ApiResult {
    let _one_at_a_time = api.starting.lock().await;
    let base = format!("{prefix}-{}", unix_seconds());
    let mut n = 1;
    let id = loop {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        n += 1;
        match api.client.status(&candidate).await {
            Err(ClientError::NotFound(_)) => {}
            Ok(_) => continue,
            Err(error) => return Err(error.into()),
        }
        // A start replaces a finished instance of the same id: the check above keeps them.
        match api
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

async fn start_retry(State(api): State<Api>, headers: HeaderMap) -> ApiResult {
    start(&api, retry_orchestrator, "retry", &headers).await
}

async fn start_external_event(State(api): State<Api>, headers: HeaderMap) -> ApiResult {
    start(
        &api,
        external_event_orchestrator,
        "external-event",
        &headers,
    )
    .await
}

/// The body of `POST /send-event/{instanceId}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendEvent {
    event_name: String,
    #[serde(default)]
    data: Value,
}

async fn send_event(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult {
    let id = instance_id(path)?;
    let bytes = read_body(&api, body).await?;
    const SHAPE: &str = r#"a JSON object {"eventName": "<name>", "data": <any JSON>}"#;
    let value: Value = parse_json(&bytes, SHAPE)?;
    // serde would also take a struct from an array (`["step2"]`): only an object will do.
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be {SHAPE}, not {value}"
        )));
    }
    let event: SendEvent = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the body must be {SHAPE}: {e}")))?;
    raise(&api, &id, &event.event_name, event.data).await
}

async fn raise_event(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> ApiResult {
    let Path((id, event_name)) =
        path.map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    let id = InstanceId::new(id)
        .map_err(|e| ApiError::bad_request(format!("invalid instance id: {e}")))?;
    let bytes = read_body(&api, body).await?;
    let data = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_json(&bytes, "the event's data as JSON")?
    };
    raise(&api, &id, &event_name, data).await
}

async fn raise(api: &Api, id: &InstanceId, event_name: &str, data: Value) -> ApiResult {
    if event_name.is_empty() {
        return Err(ApiError::bad_request("`eventName` cannot be empty"));
    }
    // The store would take an event for an unknown instance's id as an error too; checking
    // first gives the 404 and 410 their clearest messages.
    let status = api.client.status(id).await?;
    if status.runtime_status.is_finished() {
        return Err(ClientError::Finished {
            id: id.clone(),
            status: status.runtime_status,
        }
        .into());
    }
    api.client.raise_event(id, event_name, data).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "instanceId": id, "eventName": event_name, "accepted": true })),
    )
        .into_response())
}

/// The query of `GET /status/{id}` and `GET /instances/{id}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StatusQuery {
    #[serde(default)]
    show_history: bool,
}

fn query<T: for<'de> Deserialize<'de> + Default>(uri: &Uri) -> ApiResult<T> {
    if uri.query().is_none() {
        return Ok(T::default());
    }
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
}

async fn status(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let options: StatusQuery = query(&uri)?;
    let status = api.client.status(&id).await?;
    let mut body = status_json(&status);
    if options.show_history {
        let history = api.client.history(&id).await?;
        body["historyEvents"] = serde_json::to_value(history)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    Ok(Json(body).into_response())
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// An instance's status as the API shows it.
fn status_json(status: &InstanceStatus) -> Value {
    json!({
        "instanceId": status.instance_id,
        "name": status.name,
        "runtimeStatus": status.runtime_status,
        "createdAt": rfc3339(status.created_at),
        "lastUpdatedAt": rfc3339(status.last_updated_at),
        "input": status.input,
        "output": status.output,
        "customStatus": status.custom_status,
        "failure": status.failure,
    })
}

/// The query of `GET /instances`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    /// Comma-separated statuses.
    runtime_status: Option<String>,
    /// Page size.
    top: Option<usize>,
    continuation_token: Option<String>,
    created_time_from: Option<String>,
    created_time_to: Option<String>,
}

fn parse_status(name: &str) -> ApiResult<RuntimeStatus> {
    Ok(match name.trim() {
        "Pending" => RuntimeStatus::Pending,
        "Running" => RuntimeStatus::Running,
        "Suspended" => RuntimeStatus::Suspended,
        "Completed" => RuntimeStatus::Completed,
        "Failed" => RuntimeStatus::Failed,
        "Terminated" => RuntimeStatus::Terminated,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown runtimeStatus `{other}`: use Pending, Running, Suspended, Completed, Failed or Terminated"
            )))
        }
    })
}

fn parse_time(name: &str, value: Option<&str>) -> ApiResult<Option<SystemTime>> {
    value
        .map(|v| {
            humantime::parse_rfc3339_weak(v).map_err(|e| {
                ApiError::bad_request(format!("`{name}` must be an RFC 3339 time: {e}"))
            })
        })
        .transpose()
}

/// The most instances one page holds.
const MAX_PAGE: usize = 1000;

async fn list(State(api): State<Api>, uri: Uri, headers: HeaderMap) -> ApiResult {
    let q: ListQuery = query(&uri)?;
    let statuses = match &q.runtime_status {
        Some(list) => list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(parse_status)
            .collect::<ApiResult<Vec<_>>>()?,
        None => Vec::new(),
    };
    let page_size = match q.top {
        Some(0) => return Err(ApiError::bad_request("`top` must be at least 1")),
        Some(n) => n.min(MAX_PAGE),
        None => 100,
    };
    // Azure's clients send the token in a header; a query parameter is easier with curl.
    let continuation = q.continuation_token.clone().or_else(|| {
        headers
            .get("x-ms-continuation-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let query = InstanceQuery {
        statuses,
        created_from: parse_time("createdTimeFrom", q.created_time_from.as_deref())?,
        created_to: parse_time("createdTimeTo", q.created_time_to.as_deref())?,
        page_size,
        continuation,
        ..InstanceQuery::default()
    };
    let page = api.client.list(&query).await?;
    let instances: Vec<Value> = page.instances.iter().map(status_json).collect();
    let mut response = Json(json!({
        "instances": instances,
        "continuationToken": page.continuation,
    }))
    .into_response();
    if let Some(token) = page
        .continuation
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        response
            .headers_mut()
            .insert("x-ms-continuation-token", token);
    }
    Ok(response)
}

/// The query of terminate, suspend and resume.
#[derive(Deserialize, Default)]
struct ReasonQuery {
    reason: Option<String>,
}

fn accepted(id: &InstanceId, action: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "instanceId": id, "accepted": action })),
    )
        .into_response()
}

async fn terminate(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let q: ReasonQuery = query(&uri)?;
    let reason = q.reason.unwrap_or_else(|| "terminated over HTTP".into());
    api.client.terminate(&id, reason).await?;
    Ok(accepted(&id, "terminate"))
}

async fn suspend(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let q: ReasonQuery = query(&uri)?;
    api.client.suspend(&id, q.reason.as_deref()).await?;
    Ok(accepted(&id, "suspend"))
}

async fn resume(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let q: ReasonQuery = query(&uri)?;
    api.client.resume(&id, q.reason.as_deref()).await?;
    Ok(accepted(&id, "resume"))
}

async fn purge(State(api): State<Api>, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let id = instance_id(path)?;
    api.client.purge(&id).await?;
    Ok(Json(json!({ "instancesDeleted": 1 })).into_response())
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}: the endpoints are POST /start-retry, POST /start-external-event, \
             POST /send-event/{{instanceId}}, GET /status/{{instanceId}} and /instances/… \
             (see the README)",
            uri.path()
        ),
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path (see the README for each endpoint's method)",
    )
}
