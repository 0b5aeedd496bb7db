//! `list`: filtering and paging the instances held in memory.

use std::time::{Duration, SystemTime};

use super::state::{Instance, State};
use crate::store::{InstancePage, InstanceQuery, StoreError};
use crate::InstanceId;

pub(crate) fn list(state: &State, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
    let after = query
        .continuation
        .as_deref()
        .map(parse_continuation)
        .transpose()?;
    let mut matching: Vec<(&SystemTime, &InstanceId, &Instance)> = state
        .instances
        .iter()
        .filter(|(_, i)| {
            (query.statuses.is_empty() || query.statuses.contains(&i.runtime_status))
                && query.name.as_ref().is_none_or(|name| *name == i.name)
                && query.created_from.is_none_or(|from| i.created_at >= from)
                && query.created_to.is_none_or(|to| i.created_at < to)
        })
        .map(|(id, i)| (&i.created_at, id, i))
        .filter(|(at, id, _)| {
            after
                .as_ref()
                .is_none_or(|(after_at, after_id)| (**at, id.as_str()) > (*after_at, after_id))
        })
        .collect();
    matching.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let page_size = if query.page_size == 0 {
        100
    } else {
        query.page_size
    };
    let more = matching.len() > page_size;
    matching.truncate(page_size);
    let continuation = more
        .then(|| matching.last().map(|(at, id, _)| continuation(**at, id)))
        .flatten();
    let instances = matching
        .iter()
        .map(|(_, _, i)| State::decode_status(i))
        .collect::<Result<_, _>>()?;
    Ok(InstancePage {
        instances,
        continuation,
    })
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
        StoreError::Corrupt(format!(
            "`{token}` is not a continuation token of this store"
        ))
    };
    let (nanos, id) = token.split_once(':').ok_or_else(bad)?;
    let nanos: u64 = nanos.parse().map_err(|_| bad())?;
    Ok((
        SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos),
        id.to_string(),
    ))
}
