//! What a filter selects, counted and acted on: `GET /counts`, and bulk terminate and purge
//! (`POST /bulk/terminate`, `POST /bulk/purge`), a dry-run count first and then a batch at a
//! time, so that no request does unbounded work.

use axum::extract::State;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::Json;
use durable_runtime::store::InstanceQuery;
use durable_runtime::{Client, ClientError, RuntimeStatus};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{page_size, query};
use crate::filter::FilterParams;

const LIVE: [RuntimeStatus; 3] = [
    RuntimeStatus::Pending,
    RuntimeStatus::Running,
    RuntimeStatus::Suspended,
];
const FINISHED: [RuntimeStatus; 3] = [
    RuntimeStatus::Completed,
    RuntimeStatus::Failed,
    RuntimeStatus::Terminated,
];

/// `GET /counts?<filters>`: how many instances the filters select, per status.
pub(crate) async fn counts(State(client): State<Client>, uri: Uri) -> ApiResult {
    let filter: FilterParams = query(&uri)?;
    let counts = client.count(&filter.to_query()?).await?;
    Ok(Json(json!({ "counts": counts, "total": counts.total() })).into_response())
}

/// The query of the bulk endpoints.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BulkQuery {
    #[serde(flatten)]
    filter: FilterParams,
    /// `true`: count what would be acted on, and do nothing.
    dry_run: Option<String>,
    /// The most instances this request acts on.
    top: Option<usize>,
    continuation_token: Option<String>,
    /// Why (terminate only).
    reason: Option<String>,
}

/// A bulk action: which statuses it can act on, and the action.
#[derive(Clone, Copy)]
enum Action {
    Terminate,
    Purge,
}

impl Action {
    fn statuses(self) -> [RuntimeStatus; 3] {
        match self {
            Action::Terminate => LIVE,
            Action::Purge => FINISHED,
        }
    }

    fn done_name(self) -> &'static str {
        match self {
            Action::Terminate => "terminated",
            Action::Purge => "purged",
        }
    }
}

/// `POST /bulk/terminate?<filters>[&dryRun=true][&top=N][&continuationToken=…][&reason=…]`.
pub(crate) async fn terminate(State(client): State<Client>, uri: Uri) -> ApiResult {
    bulk(client, uri, Action::Terminate).await
}

/// `POST /bulk/purge?<filters>[&dryRun=true][&top=N][&continuationToken=…]`.
pub(crate) async fn purge(State(client): State<Client>, uri: Uri) -> ApiResult {
    bulk(client, uri, Action::Purge).await
}

async fn bulk(client: Client, uri: Uri, action: Action) -> ApiResult {
    let q: BulkQuery = query(&uri)?;
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`dryRun` is `true` or `false`, not `{other}`"
            )))
        }
    };
    let mut selection = q.filter.to_query()?;
    // Only the statuses the action applies to: a running instance is never purged, a
    // finished one never terminated.
    let applicable = action.statuses();
    selection.statuses = if selection.statuses.is_empty() {
        applicable.to_vec()
    } else {
        selection
            .statuses
            .iter()
            .copied()
            .filter(|s| applicable.contains(s))
            .collect()
    };
    if selection.statuses.is_empty() {
        // The filter asks only for statuses the action does not apply to.
        return Ok(Json(if dry_run {
            json!({ "dryRun": true, "selected": 0 })
        } else {
            json!({ action.done_name(): 0, "skipped": 0, "continuationToken": null })
        })
        .into_response());
    }
    if dry_run {
        let counts = client.count(&selection).await?;
        return Ok(Json(json!({ "dryRun": true, "selected": counts.total() })).into_response());
    }
    let page = client
        .list(&InstanceQuery {
            page_size: page_size(q.top)?,
            continuation: q.continuation_token,
            ..selection
        })
        .await?;
    let reason = q
        .reason
        .unwrap_or_else(|| "terminated over HTTP (bulk)".into());
    let (mut done, mut skipped) = (0u64, 0u64);
    for status in &page.instances {
        let id = status.instance_id.as_str();
        let outcome = match action {
            Action::Terminate => client.terminate(id, &reason).await,
            Action::Purge => client.purge(id).await,
        };
        match outcome {
            Ok(()) => done += 1,
            // It finished, started again or went meanwhile: not this action's any more.
            Err(
                ClientError::NotFound(_)
                | ClientError::Finished { .. }
                | ClientError::NotFinished(_),
            ) => skipped += 1,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Json(json!({
        action.done_name(): done,
        "skipped": skipped,
        "continuationToken": page.continuation,
    }))
    .into_response())
}
