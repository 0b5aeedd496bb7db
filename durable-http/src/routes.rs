//! The management API, in the style of Azure Durable Functions' HTTP API: list, status with
//! history, raise an event, terminate, suspend, resume, purge.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use durable_runtime::store::InstanceQuery;
use durable_runtime::{Client, InstanceId, InstanceStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{parse_json, read_body, require_json};
use crate::bulk;
use crate::dashboard;
use crate::error::{ApiError, ApiResult};
use crate::extract::{checked_id, instance_id, page_size, query};
use crate::filter::FilterParams;
use crate::guard::guard;
use crate::history::history_page;
use crate::metrics;
use crate::options::RouterOptions;

/// The management API over `client`, behind the checks of `options`.
///
/// | method and path | answer |
/// |---|---|
/// | `GET /instances` | a page of instances, filtered by `runtimeStatus`, `name`, `instanceIdPrefix`, `customStatus` (text in its JSON), `createdTimeFrom`, `createdTimeTo`; `top` and `continuationToken` page |
/// | `GET /instances/{id}` | the instance's status; `?showHistory=true` adds its history |
/// | `GET /instances/{id}/history?from=…&top=…` | a page of its history |
/// | `POST /instances/{id}/raiseEvent/{name}` | raises the event, the body its JSON data |
/// | `POST /instances/{id}/terminate?reason=…` | terminates it |
/// | `POST /instances/{id}/suspend?reason=…` | suspends it |
/// | `POST /instances/{id}/resume?reason=…` | resumes it |
/// | `DELETE /instances/{id}` | purges a finished instance |
/// | `GET /metrics` | the metrics, in the Prometheus text format (with [`RouterOptions::metrics`]) |
/// | `GET /counts` | how many instances the filters of `GET /instances` (and `instanceIdPrefix`, `customStatus`) select, per status |
/// | `POST /bulk/terminate` | terminates what the filters select: `dryRun=true` counts it; otherwise one batch of at most `top` (default 100, at most 1000), with the `continuationToken` of the next |
/// | `POST /bulk/purge` | purges what the filters select, the same way |
/// | `GET /` | the web dashboard (unless [`RouterOptions::dashboard`] turns it off) |
///
/// Other paths get 404 and other methods 405, and every error is `{"error": "…"}`. The
/// [crate docs](crate) give each answer, and the checks every request passes first:
///
/// ```
/// use axum::body::Body;
/// use axum::http::Request;
/// use durable_http::{router, RouterOptions};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = durable_runtime::Runtime::builder().start()?;
/// let app = router(runtime.client(), RouterOptions::default());
///
/// let from_curl = Request::get("/instances")
///     .header("host", "localhost:8080")
///     .body(Body::empty())?;
/// assert_eq!(app.clone().oneshot(from_curl).await?.status(), 200);
///
/// let from_another_page = Request::get("/instances")
///     .header("host", "localhost:8080")
///     .header("origin", "https://evil.example")
///     .body(Body::empty())?;
/// assert_eq!(app.oneshot(from_another_page).await?.status(), 403);
/// # runtime.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub fn router(client: Client, options: RouterOptions) -> Router {
    let routes = Router::new()
        .route("/instances", get(list))
        .route("/instances/{instance_id}", get(status).delete(purge))
        .route("/instances/{instance_id}/history", get(history_page))
        .route(
            "/instances/{instance_id}/raiseEvent/{event_name}",
            post(raise_event),
        )
        .route("/instances/{instance_id}/terminate", post(terminate))
        .route("/instances/{instance_id}/suspend", post(suspend))
        .route("/instances/{instance_id}/resume", post(resume))
        .route("/counts", get(bulk::counts))
        .route("/bulk/terminate", post(bulk::terminate))
        .route("/bulk/purge", post(bulk::purge));
    let routes = match &options.metrics {
        Some(render) => {
            let render = render.clone();
            routes.route("/metrics", get(move || metrics::scrape(render.clone())))
        }
        None => routes,
    };
    let routes = routes
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(client);
    let api = guard(routes, &options);
    if options.dashboard {
        api.merge(dashboard::routes(&options))
    } else {
        api
    }
}

async fn raise_event(
    State(client): State<Client>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Path((id, event_name)) =
        path.map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    let id = checked_id(id)?;
    let bytes = read_body(body).await?;
    // `curl -X POST` sends no body and no type: that is the event without data.
    let data = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        require_json(&headers)?;
        parse_json(&bytes, "the event's data as JSON")?
    };
    // The store would take an event for an unknown instance's id as an error too; checking
    // first gives the 404 and 410 their clearest messages.
    let status = client.status(&id).await?;
    if status.runtime_status.is_finished() {
        return Err(durable_runtime::ClientError::Finished {
            id: id.clone(),
            status: status.runtime_status,
        }
        .into());
    }
    client.raise_event(&id, &event_name, data).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "instanceId": id, "eventName": event_name, "accepted": true })),
    )
        .into_response())
}

/// The query of `GET /instances/{id}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StatusQuery {
    #[serde(default)]
    show_history: bool,
}

async fn status(
    State(client): State<Client>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let options: StatusQuery = query(&uri)?;
    let status = client.status(&id).await?;
    let mut body = status_json(&status);
    if options.show_history {
        let history = client.history(&id).await?;
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
    #[serde(flatten)]
    filter: FilterParams,
    /// Page size.
    top: Option<usize>,
    continuation_token: Option<String>,
}

/// The header Azure's clients send the continuation token in.
const CONTINUATION_HEADER: &str = "x-ms-continuation-token";

async fn list(State(client): State<Client>, uri: Uri, headers: HeaderMap) -> ApiResult {
    let q: ListQuery = query(&uri)?;
    // Azure's clients send the token in a header; a query parameter is easier with curl.
    let continuation = q.continuation_token.clone().or_else(|| {
        headers
            .get(CONTINUATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let query = InstanceQuery {
        page_size: page_size(q.top)?,
        continuation,
        ..q.filter.to_query()?
    };
    let page = client.list(&query).await?;
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
        response.headers_mut().insert(CONTINUATION_HEADER, token);
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
    State(client): State<Client>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let q: ReasonQuery = query(&uri)?;
    let reason = q.reason.unwrap_or_else(|| "terminated over HTTP".into());
    client.terminate(&id, reason).await?;
    Ok(accepted(&id, "terminate"))
}

async fn suspend(
    State(client): State<Client>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let q: ReasonQuery = query(&uri)?;
    client.suspend(&id, q.reason.as_deref()).await?;
    Ok(accepted(&id, "suspend"))
}

async fn resume(
    State(client): State<Client>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let q: ReasonQuery = query(&uri)?;
    client.resume(&id, q.reason.as_deref()).await?;
    Ok(accepted(&id, "resume"))
}

async fn purge(
    State(client): State<Client>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = instance_id(path)?;
    client.purge(&id).await?;
    Ok(Json(json!({ "instancesDeleted": 1 })).into_response())
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}: the management endpoints are GET /instances, \
             GET, DELETE /instances/{{instanceId}}, GET /instances/{{instanceId}}/history \
             and POST /instances/{{instanceId}}/… (raiseEvent/{{eventName}}, terminate, \
             suspend, resume); GET /counts, POST /bulk/terminate and POST /bulk/purge",
            uri.path()
        ),
    )
}

/// The 405 answer, as JSON: routes of your own can use it as their
/// `method_not_allowed_fallback`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path (each endpoint's method is in the API's docs)",
    )
}
