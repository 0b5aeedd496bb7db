//! Payload limits: how deep and how large a payload may be, checked where payloads enter, so
//! that everything acknowledged can be read back; and what a stored record that still cannot
//! be read becomes (a failure of its own instance).
//!
//! serde_json writes values of any depth but reads at most 128 levels of nesting, and the
//! stores wrap a payload in one or two more (an event's object, a status's object). A value
//! within [`MAX_DEPTH_CEILING`] levels therefore always reads back, on every store.
//!
//! The limits ([`RuntimeBuilder::max_payload_depth`](crate::RuntimeBuilder::max_payload_depth),
//! [`RuntimeBuilder::max_payload_bytes`](crate::RuntimeBuilder::max_payload_bytes)) are
//! checked where a payload enters:
//! - a client call (a start's input, an event's data, a terminate's output) fails with
//!   [`ClientError::PayloadLimit`](crate::ClientError::PayloadLimit), storing nothing;
//! - an activity's output fails that attempt ([`kinds::PAYLOAD_LIMIT`]);
//! - what an orchestration produces in a turn (its output, its custom status, the input of
//!   an activity call, a sub-orchestration or a continue-as-new) fails the instance
//!   ([`kinds::PAYLOAD_LIMIT`]), keeping nothing else of that turn.
//!
//! A stored record that cannot be read anyway (written before the limits, or damaged) fails
//! its own instance ([`kinds::UNREADABLE`], [`unreadable`]): a store delivers an inbox message
//! it cannot read as [`unreadable_message`], hands back an activity attempt whose task it
//! cannot read as [`StoreError::UnreadableTask`](crate::store::StoreError::UnreadableTask)
//! (the runtime fails the attempt), and shows a status whose payloads it cannot read
//! without them ([`InstanceStatus::unreadable`](crate::InstanceStatus::unreadable)); the
//! runtime fails an instance whose history it cannot read at its next turn. The store
//! conformance kit checks each of these.

use std::fmt;
use std::io;

use serde_json::Value;

use crate::history::{kinds, CompletionStatus, Event, Failure, HistoryEvent};

/// The default limit on a payload's nesting depth (arrays and objects inside each other).
pub const DEFAULT_MAX_DEPTH: usize = 100;

/// The largest depth limit a runtime accepts: serde_json reads 127 levels, and a store wraps
/// a payload in at most two more; the rest is a margin.
pub const MAX_DEPTH_CEILING: usize = 120;

/// The default limit on a payload's size as compact JSON: 16 MiB.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The largest size limit a runtime accepts, 512 MiB: PostgreSQL keeps at most 1 GB in a
/// field, and the file store at most 4 GiB in a record's field.
pub const MAX_BYTES_CEILING: usize = 512 * 1024 * 1024;

/// How deep and how large a payload may be (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadLimits {
    /// Levels of nesting: a scalar is 0 deep, `[]` and `{}` are 1, `[[1]]` is 2.
    pub(crate) max_depth: usize,
    /// Bytes of compact JSON (`serde_json::to_vec`).
    pub(crate) max_bytes: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        PayloadLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadLimitError {
    /// It nests arrays and objects deeper than the limit.
    #[error(
        "it is nested more than {limit} levels deep (the payload depth limit): flatten it, \
         or raise the limit with `RuntimeBuilder::max_payload_depth` (at most {MAX_DEPTH_CEILING})"
    )]
    TooDeep {
        /// The depth limit.
        limit: usize,
    },
    /// Its compact JSON is larger than the limit.
    #[error(
        "it is larger than {limit} bytes as JSON (the payload size limit): store large data \
         elsewhere and pass a reference, or raise the limit with \
         `RuntimeBuilder::max_payload_bytes`"
    )]
    TooLarge {
        /// The size limit, in bytes.
        limit: usize,
    },
}

impl PayloadLimits {
    /// Limits clamped to [`MAX_DEPTH_CEILING`] and [`MAX_BYTES_CEILING`].
    pub(crate) fn new(max_depth: usize, max_bytes: usize) -> Self {
        PayloadLimits {
            max_depth: max_depth.min(MAX_DEPTH_CEILING),
            max_bytes: max_bytes.min(MAX_BYTES_CEILING),
        }
    }

    /// Checks `value` against both limits. Costs one walk of the value and, within the depth
    /// limit, one serialisation into a counter that stops at the size limit; it never
    /// recurses deeper than the depth limit, whatever `value` holds.
    pub(crate) fn check(&self, value: &Value) -> Result<(), PayloadLimitError> {
        if deeper_than(value, self.max_depth) {
            return Err(PayloadLimitError::TooDeep {
                limit: self.max_depth,
            });
        }
        let mut counter = Counter {
            left: self.max_bytes,
        };
        serde_json::to_writer(&mut counter, value).map_err(|_| PayloadLimitError::TooLarge {
            limit: self.max_bytes,
        })
    }

    /// [`check`](Self::check), as the failure of the instance or attempt that produced
    /// `what` (e.g. "the output of activity `charge`").
    pub(crate) fn check_produced(
        &self,
        value: &Value,
        what: impl fmt::Display,
    ) -> Result<(), Failure> {
        self.check(value).map_err(|error| {
            Failure::new(kinds::PAYLOAD_LIMIT, format!("{what} is refused: {error}"))
        })
    }
}

impl PayloadLimits {
    /// `failure` with its message cut to the size limit (at a character boundary, saying how
    /// much was cut): an error's text is stored like any payload.
    pub(crate) fn trim(&self, mut failure: Failure) -> Failure {
        let limit = self.max_bytes;
        if failure.message.len() > limit {
            let mut end = limit;
            while !failure.message.is_char_boundary(end) {
                end -= 1;
            }
            let cut = failure.message.len() - end;
            failure.message.truncate(end);
            failure.message += &format!("… ({cut} more bytes cut: the payload size limit)");
        }
        failure
    }
}

/// Whether `value` nests more than `limit` levels, found without recursion.
fn deeper_than(value: &Value, limit: usize) -> bool {
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        // A scalar encloses nothing (and needs no stack: most payloads are one).
        return false;
    }
    // Each entry: a value and how many arrays and objects enclose it.
    let mut pending: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, enclosing)) = pending.pop() {
        let level = enclosing + 1;
        match value {
            Value::Array(_) | Value::Object(_) if level > limit => return true,
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, level))),
            Value::Object(map) => pending.extend(map.values().map(|item| (item, level))),
            _ => {}
        }
    }
    false
}

/// Counts bytes written, failing once more than `left` arrive.
struct Counter {
    left: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.left = self
            .left
            .checked_sub(buf.len())
            .ok_or_else(|| io::Error::other("over the size limit"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The failure of an instance one of whose stored records cannot be read (`what`, e.g.
/// "message 3 of the inbox"), because serde_json refuses it (`error`).
pub fn unreadable(what: impl fmt::Display, error: impl fmt::Display) -> Failure {
    Failure::new(
        kinds::UNREADABLE,
        format!(
            "{what} cannot be read ({error}): it was stored before payload limits existed, or \
             it is damaged; the instance is failed so that it can be inspected and purged"
        ),
    )
}

/// What a store delivers in place of an inbox message it cannot read: an
/// `ExecutionCompleted` that fails the instance with [`unreadable`]'s failure, so that the
/// message never blocks the instance (nor a terminate sent after it).
pub fn unreadable_message(what: impl fmt::Display, error: impl fmt::Display) -> HistoryEvent {
    HistoryEvent::new(Event::ExecutionCompleted {
        status: CompletionStatus::Failed,
        output: None,
        failure: Some(unreadable(what, error)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `levels` arrays inside each other around `1`.
    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..levels {
            value = Value::Array(vec![value]);
        }
        value
    }

    #[test]
    fn depth_counts_arrays_and_objects() {
        let limits = PayloadLimits::new(2, usize::MAX);
        for ok in [
            json!(1),
            json!([]),
            json!({}),
            json!([[1]]),
            json!({"a": [1]}),
            json!([[]]),
        ] {
            assert_eq!(limits.check(&ok), Ok(()), "{ok}");
        }
        for deep in [
            json!([[[1]]]),
            json!({"a": {"b": {}}}),
            json!([1, [2, [3]]]),
            json!([[[]]]),
        ] {
            assert_eq!(
                limits.check(&deep),
                Err(PayloadLimitError::TooDeep { limit: 2 }),
                "{deep}"
            );
        }
    }

    #[test]
    fn the_boundary_of_the_default_depth() {
        let limits = PayloadLimits::default();
        assert_eq!(limits.check(&nested(DEFAULT_MAX_DEPTH)), Ok(()));
        assert_eq!(
            limits.check(&nested(DEFAULT_MAX_DEPTH + 1)),
            Err(PayloadLimitError::TooDeep { limit: 100 })
        );
    }

    #[test]
    fn a_value_within_the_ceiling_reads_back_wrapped_twice() {
        let value = nested(MAX_DEPTH_CEILING);
        let wrapped = json!({ "status": { "output": value } });
        let text = serde_json::to_string(&wrapped).unwrap();
        let read: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(read, wrapped);
    }

    #[test]
    fn the_limits_are_clamped_to_their_ceilings() {
        let limits = PayloadLimits::new(10_000, usize::MAX);
        assert_eq!(limits.max_depth, MAX_DEPTH_CEILING);
        assert_eq!(limits.max_bytes, MAX_BYTES_CEILING);
    }

    #[test]
    fn size_is_compact_json_bytes() {
        let value = json!({"a": "xyz"}); // {"a":"xyz"}: 11 bytes
        assert_eq!(PayloadLimits::new(10, 11).check(&value), Ok(()));
        assert_eq!(
            PayloadLimits::new(10, 10).check(&value),
            Err(PayloadLimitError::TooLarge { limit: 10 })
        );
    }

    #[test]
    fn a_very_deep_value_is_measured_without_recursion() {
        // Built and dropped by hand: serde_json's own drop would recurse this deep.
        let mut value = nested(0);
        for _ in 0..1_000_000 {
            value = Value::Array(vec![value]);
        }
        assert!(PayloadLimits::default().check(&value).is_err());
        let mut next = Some(value);
        while let Some(Value::Array(mut items)) = next.take() {
            next = items.pop();
        }
    }

    #[test]
    fn long_failure_messages_are_cut_at_a_character() {
        let limits = PayloadLimits::new(10, 5);
        assert_eq!(limits.trim(Failure::new("k", "abcde")).message, "abcde");
        // Six bytes; the fifth is inside the third `é`: the cut falls before it.
        assert_eq!(
            limits.trim(Failure::new("k", "ééé")).message,
            "éé… (2 more bytes cut: the payload size limit)"
        );
    }

    #[test]
    fn an_unreadable_message_is_a_readable_failure() {
        let event = unreadable_message("message 3 of the inbox", "recursion limit exceeded");
        let text = serde_json::to_string(&event).unwrap();
        let read: HistoryEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(read, event);
        assert!(
            text.contains("message 3 of the inbox cannot be read"),
            "{text}"
        );
    }
}
