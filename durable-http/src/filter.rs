//! Which instances a request selects: the filters of `GET /instances`, read from its query
//! into the store's [`InstanceQuery`]. One place, so that every endpoint that selects
//! instances (a list, and counts or bulk actions next) reads them alike.

use std::time::SystemTime;

use durable_runtime::store::InstanceQuery;
use durable_runtime::{InstanceId, RuntimeStatus};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

/// The filter parameters of a query string.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FilterParams {
    /// Comma-separated statuses.
    runtime_status: Option<String>,
    /// The orchestrator's name, exactly.
    name: Option<String>,
    created_time_from: Option<String>,
    created_time_to: Option<String>,
    /// The start of the instance id.
    instance_id_prefix: Option<String>,
    /// Text the custom status (as JSON) contains.
    custom_status: Option<String>,
}

/// The longest custom-status text a filter may search for.
pub(crate) const MAX_CUSTOM_STATUS_FILTER: usize = 1024;

impl FilterParams {
    /// The store query these parameters select, without its paging.
    pub(crate) fn to_query(&self) -> ApiResult<InstanceQuery> {
        let statuses = match &self.runtime_status {
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(parse_status)
                .collect::<ApiResult<Vec<_>>>()?,
            None => Vec::new(),
        };
        let created_from = parse_time("createdTimeFrom", self.created_time_from.as_deref())?;
        let created_to = parse_time("createdTimeTo", self.created_time_to.as_deref())?;
        if let (Some(from), Some(to)) = (created_from, created_to) {
            if from >= to {
                return Err(ApiError::bad_request(
                    "`createdTimeFrom` must be before `createdTimeTo` (from is inclusive, to \
                     exclusive)",
                ));
            }
        }
        let id_prefix = self.instance_id_prefix.clone().filter(|p| !p.is_empty());
        if let Some(prefix) = &id_prefix {
            if prefix.len() > InstanceId::MAX_LEN {
                return Err(ApiError::bad_request(format!(
                    "`instanceIdPrefix` has {} bytes: an instance id has at most {}",
                    prefix.len(),
                    InstanceId::MAX_LEN
                )));
            }
        }
        let custom_status = self.custom_status.clone().filter(|c| !c.is_empty());
        if let Some(text) = &custom_status {
            if text.len() > MAX_CUSTOM_STATUS_FILTER {
                return Err(ApiError::bad_request(format!(
                    "`customStatus` has {} bytes: search for at most {MAX_CUSTOM_STATUS_FILTER}",
                    text.len()
                )));
            }
        }
        Ok(InstanceQuery {
            statuses,
            name: self.name.clone().filter(|name| !name.is_empty()),
            created_from,
            created_to,
            id_prefix,
            custom_status,
            ..InstanceQuery::default()
        })
    }
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
