//! Rows to and from the runtime's types: times as nanoseconds, statuses as text, payloads as
//! the JSON bytes the runtime serialised; anything unreadable is `Corrupt`, never a panic,
//! except a payload of a status or an inbox message, which fails its own instance instead.

use std::time::{Duration, SystemTime};

use durable_runtime::limits::unreadable_message;
use durable_runtime::store::{Delivery, OrchestrationWork, StoreError};
use durable_runtime::{InstanceId, InstanceStatus, RuntimeStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

/// The `visible_at` (or `due_at`) of something deliverable at once, whatever `now` is.
pub(crate) const IMMEDIATE: i64 = i64::MIN;

/// Nanoseconds since the Unix epoch, saturated to what a `bigint` holds (the years 1677 to
/// 2262): a timer beyond that fires in 2262, which is the same as never.
pub(crate) fn nanos(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i64::MIN + 1),
    }
}

/// The instant `nanos` nanoseconds after the Unix epoch.
pub(crate) fn time(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// `now + lease_for` in nanoseconds, saturated.
pub(crate) fn deadline(now: SystemTime, lease_for: Duration) -> i64 {
    nanos(now).saturating_add(i64::try_from(lease_for.as_nanos()).unwrap_or(i64::MAX))
}

/// The status's name in the `status` column.
pub(crate) fn status_name(status: RuntimeStatus) -> &'static str {
    match status {
        RuntimeStatus::Pending => "Pending",
        RuntimeStatus::Running => "Running",
        RuntimeStatus::Suspended => "Suspended",
        RuntimeStatus::Completed => "Completed",
        RuntimeStatus::Failed => "Failed",
        RuntimeStatus::Terminated => "Terminated",
    }
}

/// The status named `name` in the `status` column of `id`.
pub(crate) fn parse_status(id: &str, name: &str) -> Result<RuntimeStatus, StoreError> {
    Ok(match name {
        "Pending" => RuntimeStatus::Pending,
        "Running" => RuntimeStatus::Running,
        "Suspended" => RuntimeStatus::Suspended,
        "Completed" => RuntimeStatus::Completed,
        "Failed" => RuntimeStatus::Failed,
        "Terminated" => RuntimeStatus::Terminated,
        other => {
            return Err(StoreError::Corrupt(format!(
                "instance `{id}` has the unknown status `{other}`"
            )))
        }
    })
}

/// The JSON bytes of a value the runtime hands the store. Its types always serialise; a map
/// with non-string keys inside user JSON cannot occur in a `serde_json::Value`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise")
}

/// The JSON text of a value (for `text` columns).
pub(crate) fn encode_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store records always serialise")
}

/// Decodes `bytes`, naming `what` (a row) if they are not what the runtime wrote.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|error| StoreError::Corrupt(format!("{} cannot be read: {error}", what())))
}

/// An instance id read back from a row.
pub(crate) fn instance_id(raw: &str) -> Result<InstanceId, StoreError> {
    InstanceId::new(raw).map_err(|error| {
        StoreError::Corrupt(format!(
            "the stored instance id `{raw}` is invalid: {error}"
        ))
    })
}

/// A `u64` the runtime hands the store (a sequence number, a token), as a `bigint`.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::InvalidQuery(format!(
            "{what} {value} is larger than the store keeps (2^63 - 1)"
        ))
    })
}

/// A `bigint` read back as the runtime's `u64`.
pub(crate) fn to_u64(value: i64, what: impl FnOnce() -> String) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{} is negative: {value}", what())))
}

/// Column `index` of a row of instance `id`, or `Corrupt` if it is not what the schema says.
pub(crate) fn col<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    id: &str,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|error| {
        StoreError::Corrupt(format!(
            "a row of instance `{id}` has an unreadable column {index}: {error}"
        ))
    })
}

/// An orchestration lease and its messages from the rows of a claim.
fn work_from_rows(rows: Vec<Row>) -> Result<Option<OrchestrationWork>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let raw_id: String = col(first, 0, "?")?;
    let id = instance_id(&raw_id)?;
    let lease = to_u64(col(first, 1, &raw_id)?, || {
        format!("the lease of `{raw_id}`")
    })?;
    let history_len = to_u64(col(first, 2, &raw_id)?, || {
        format!("the history length of `{raw_id}`")
    })?;
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let (Some(message), Some(bytes)) = (
            col::<Option<i64>>(row, 3, &raw_id)?,
            col::<Option<Vec<u8>>>(row, 4, &raw_id)?,
        ) else {
            continue;
        };
        let what = || format!("message {message} of instance `{raw_id}`");
        // One that cannot be read fails the instance instead of blocking it for ever.
        let event = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            unreadable_message(format_args!("message {message} of its inbox"), error)
        });
        messages.push(Delivery {
            id: to_u64(message, what)?,
            event,
        });
    }
    Ok(Some(OrchestrationWork {
        instance_id: id,
        lease,
        history_len,
        messages,
    }))
}

/// The instances a claim leased, from its rows (one per message, ordered by instance).
pub(crate) fn works_from_rows(rows: Vec<Row>) -> Result<Vec<OrchestrationWork>, StoreError> {
    let mut works = Vec::new();
    let mut group: Vec<Row> = Vec::new();
    for row in rows {
        let id: String = col(&row, 0, "?")?;
        if group
            .first()
            .is_some_and(|first| first.get::<_, &str>(0) != id)
        {
            works.extend(work_from_rows(std::mem::take(&mut group))?);
        }
        group.push(row);
    }
    works.extend(work_from_rows(group)?);
    Ok(works)
}

/// An instance's status from a row of `STATUS_COLUMNS`. A payload that cannot be read
/// (written before the payload limits, or damaged) is left out, and the status says why
/// ([`InstanceStatus::unreadable`]): it never blocks a status or a listing page.
pub(crate) fn status_from_row(row: &Row) -> Result<InstanceStatus, StoreError> {
    let raw_id: String = col(row, 0, "?")?;
    let id = &raw_id;
    let unreadable = std::cell::RefCell::new(None);
    let payload = |what: &str, bytes: &[u8]| -> Option<serde_json::Value> {
        serde_json::from_slice(bytes)
            .map_err(|error| unreadable.replace(Some((format!("its stored {what}"), error))))
            .ok()
    };
    let json = |index: usize, what: &str| -> Result<Option<serde_json::Value>, StoreError> {
        let bytes = col::<Option<Vec<u8>>>(row, index, id)?;
        Ok(bytes.and_then(|bytes| payload(what, &bytes)))
    };
    let version: i64 = col(row, 2, id)?;
    let custom_status = col::<Option<String>>(row, 8, id)?;
    let status = InstanceStatus {
        instance_id: instance_id(id)?,
        name: col(row, 1, id)?,
        version: u32::try_from(version).map_err(|_| {
            StoreError::Corrupt(format!("instance `{id}` has the version {version}"))
        })?,
        runtime_status: parse_status(id, &col::<String>(row, 3, id)?)?,
        created_at: time(col(row, 4, id)?),
        last_updated_at: time(col(row, 5, id)?),
        input: json(6, "input")?.unwrap_or(serde_json::Value::Null),
        output: json(7, "output")?,
        custom_status: custom_status.and_then(|text| payload("custom status", text.as_bytes())),
        failure: col::<Option<Vec<u8>>>(row, 9, id)?
            .map(|bytes| decode(&bytes, || format!("the failure of instance `{id}`")))
            .transpose()?,
        parent: col::<Option<String>>(row, 10, id)?
            .map(|p| instance_id(&p))
            .transpose()?,
    };
    Ok(match unreadable.into_inner() {
        None => status,
        Some((what, error)) => status.unreadable(&what, error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_nanosecond() {
        for at in [
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            SystemTime::UNIX_EPOCH - Duration::new(86_400, 1),
        ] {
            assert_eq!(time(nanos(at)), at);
        }
    }

    #[test]
    fn times_beyond_a_bigint_saturate() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert_eq!(nanos(far), i64::MAX);
        assert_eq!(deadline(far, Duration::MAX), i64::MAX);
        assert!(
            nanos(SystemTime::UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400)) > IMMEDIATE
        );
    }

    #[test]
    fn every_status_round_trips() {
        for status in [
            RuntimeStatus::Pending,
            RuntimeStatus::Running,
            RuntimeStatus::Suspended,
            RuntimeStatus::Completed,
            RuntimeStatus::Failed,
            RuntimeStatus::Terminated,
        ] {
            assert_eq!(parse_status("x", status_name(status)), Ok(status));
        }
        assert!(matches!(
            parse_status("x", "Done"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn bad_bytes_are_corrupt_not_a_panic() {
        let result: Result<serde_json::Value, _> = decode(b"\xff{", || "message 7".into());
        match result {
            Err(StoreError::Corrupt(message)) => {
                assert!(message.contains("message 7"), "{message}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
