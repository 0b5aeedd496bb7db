//! An instance's history a page at a time (`GET /instances/{id}/history`), so that a long
//! history reaches a client in bounded answers, read from the store a page at a time.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use durable_runtime::history::{stable_hash, Event, HistoryEvent};
use durable_runtime::Client;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{instance_id, page_size, query};

/// The events that identify a history: its start is delivered in the first turn, after
/// that turn's `OrchestratorStarted`.
const HEAD: usize = 2;

/// The query of `GET /instances/{id}/history`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HistoryQuery {
    /// The position of the first event wanted, from 0.
    from: Option<u64>,
    /// Page size.
    top: Option<usize>,
}

/// `GET /instances/{id}/history?from=N&top=M`: events `N..N+M` of the history, with where
/// the next page starts and what identifies the history they belong to.
pub(crate) async fn history_page(
    State(client): State<Client>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult {
    let id = instance_id(path)?;
    let q: HistoryQuery = query(&uri)?;
    let top = page_size(q.top)?;
    let from = q.from.unwrap_or(0);
    let page = client.history_page(&id, from, top).await?;
    let total = page.len;
    let from = from.min(total);
    let next = from + page.events.len() as u64;
    let head = if from == 0 && page.events.len() >= HEAD {
        page.events[..HEAD].to_vec()
    } else {
        client.history_page(&id, 0, HEAD).await?.events
    };
    let (execution, generation) = execution_of(&head);
    let events = serde_json::to_value(&page.events)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({
        "instanceId": id,
        "execution": execution,
        "generation": generation,
        "from": from,
        "total": total,
        "events": events,
        "next": (next < total).then_some(next),
    }))
    .into_response())
}

/// What identifies the history's execution, and its generation: the stable hash of its
/// `ExecutionStarted` (which holds the execution's random seed), so that a client paging
/// through it can tell when it was replaced (a continue-as-new, or a new instance under
/// the same id). `null` while the instance has not run its first turn.
fn execution_of(head: &[HistoryEvent]) -> (Value, Value) {
    let started = head.iter().find_map(|e| match &e.event {
        Event::ExecutionStarted { generation, .. } => Some((e, *generation)),
        _ => None,
    });
    match started {
        Some((event, generation)) => {
            let json = serde_json::to_value(event).unwrap_or(Value::Null);
            (
                Value::from(format!("{:016x}", stable_hash(&json))),
                Value::from(generation),
            )
        }
        None => (Value::Null, Value::Null),
    }
}
