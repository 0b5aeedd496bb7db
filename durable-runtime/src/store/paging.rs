//! Filtering and paging for `Store::list` and `Store::count`, shared by the stores that list
//! from memory.

use std::time::{Duration, SystemTime};

use super::{InstanceQuery, StatusCounts, StoreError};
use crate::instance_id::InstanceId;
use crate::status::RuntimeStatus;

/// An instance as `list` sees it: what the query filters and orders on, and the store's own
/// record of it.
pub(crate) struct Candidate<'a, T> {
    pub(crate) created_at: SystemTime,
    pub(crate) id: &'a InstanceId,
    pub(crate) status: RuntimeStatus,
    pub(crate) name: &'a str,
    pub(crate) record: T,
}

/// Whether `c` passes `query`'s filters; `custom_status` reads a record's custom status as
/// JSON text, only when the query filters on it.
fn matches<T>(
    query: &InstanceQuery,
    c: &Candidate<'_, T>,
    custom_status: &impl Fn(&T) -> Result<Option<String>, StoreError>,
) -> Result<bool, StoreError> {
    let cheap = (query.statuses.is_empty() || query.statuses.contains(&c.status))
        && query.name.as_deref().is_none_or(|name| name == c.name)
        && query.created_from.is_none_or(|from| c.created_at >= from)
        && query.created_to.is_none_or(|to| c.created_at < to)
        && query
            .id_prefix
            .as_deref()
            .is_none_or(|prefix| c.id.as_str().starts_with(prefix));
    if !cheap {
        return Ok(false);
    }
    match query.custom_status.as_deref() {
        None => Ok(true),
        Some(text) => Ok(custom_status(&c.record)?.is_some_and(|s| s.contains(text))),
    }
}

/// The records of one page of `query`, ordered by creation time then id, and the
/// continuation token of the next page (`None` on the last).
pub(crate) fn page<'a, T>(
    query: &InstanceQuery,
    candidates: impl IntoIterator<Item = Candidate<'a, T>>,
    custom_status: impl Fn(&T) -> Result<Option<String>, StoreError>,
) -> Result<(Vec<T>, Option<String>), StoreError> {
    let after = query
        .continuation
        .as_deref()
        .map(parse_continuation)
        .transpose()?;
    let mut matching: Vec<Candidate<'a, T>> = Vec::new();
    for c in candidates {
        let after_position = after.as_ref().is_none_or(|(after_at, after_id)| {
            (c.created_at, c.id.as_str()) > (*after_at, after_id.as_str())
        });
        if after_position && matches(query, &c, &custom_status)? {
            matching.push(c);
        }
    }
    matching.sort_by(|a, b| (a.created_at, a.id).cmp(&(b.created_at, b.id)));
    let page_size = if query.page_size == 0 {
        100
    } else {
        query.page_size
    };
    let more = matching.len() > page_size;
    matching.truncate(page_size);
    let continuation = more
        .then(|| matching.last().map(|c| continuation(c.created_at, c.id)))
        .flatten();
    Ok((
        matching.into_iter().map(|c| c.record).collect(),
        continuation,
    ))
}

/// How many of `candidates` pass `query`'s filters, per status.
pub(crate) fn count<'a, T>(
    query: &InstanceQuery,
    candidates: impl IntoIterator<Item = Candidate<'a, T>>,
    custom_status: impl Fn(&T) -> Result<Option<String>, StoreError>,
) -> Result<StatusCounts, StoreError> {
    let mut counts = StatusCounts::default();
    for c in candidates {
        if matches(query, &c, &custom_status)? {
            counts.add(c.status, 1);
        }
    }
    Ok(counts)
}

fn continuation(at: SystemTime, id: &InstanceId) -> String {
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos}:{id}")
}

fn parse_continuation(token: &str) -> Result<(SystemTime, String), StoreError> {
    let bad = || {
        StoreError::InvalidQuery(format!(
            "`{token}` is not a continuation token of this store: pass back the one the \
             previous page returned"
        ))
    };
    let (nanos, id) = token.split_once(':').ok_or_else(bad)?;
    let nanos: u64 = nanos.parse().map_err(|_| bad())?;
    Ok((
        SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos),
        id.to_string(),
    ))
}
