//! A history event's JSON, written and read directly. The derived `Serialize` and
//! `Deserialize` stay the definition; these are faster paths to the same results, checked
//! against them for every kind of event:
//! - Writing makes the exact text `serde_json::to_string` makes, without serde's flattening
//!   layers and with the keys written as literals, not escaped one by one.
//! - Reading parses every field once into one flat struct, instead of buffering the object
//!   twice (the flattened event, then its tag); whatever that path does not take exactly as
//!   the derived code would (a missing or misplaced field, a `null`, an unknown kind) goes
//!   to the derived code, which decides.
//!
//! Stores write every event of every turn and read every delivered one: this was a quarter of
//! a turn's instructions.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{timestamp, AttemptTimes, CompletionStatus, Event, Failure, HistoryEvent, ParentRef};
use crate::instance_id::InstanceId;

/// The JSON text of `event`.
pub(crate) fn to_string(event: &HistoryEvent) -> String {
    if event.span.is_some() {
        // A span record (once per instance) goes through the derived code.
        return serde_json::to_string(event).expect("events always serialise");
    }
    let mut out = Vec::with_capacity(room_for(event));
    write(event, &mut out);
    // Every piece is UTF-8: literals, and what serde_json writes.
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Appends the JSON text of `event` (what [`to_string`] makes) to `out`.
pub(crate) fn append(event: &HistoryEvent, out: &mut Vec<u8>) {
    if event.span.is_some() {
        serde_json::to_writer(out, event).expect("events always serialise");
    } else {
        write(event, out);
    }
}

/// About how many bytes the text of `event` takes: an attempt's two times take about 90
/// bytes more, room made at once rather than by a regrowth.
pub(crate) fn room_for(event: &HistoryEvent) -> usize {
    if event.attempt.is_some() {
        224
    } else {
        128
    }
}

/// The event `text` holds: what `serde_json::from_str::<HistoryEvent>` returns.
pub(crate) fn from_str(text: &str) -> serde_json::Result<HistoryEvent> {
    match serde_json::from_str::<Wire>(text)
        .ok()
        .and_then(Wire::event)
    {
        Some(event) => Ok(event),
        None => serde_json::from_str(text),
    }
}

/// Present (`Some`, `null` included where the type takes it), or absent (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn present_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
    timestamp::deserialize(d).map(Some)
}

/// Every field of every kind, each as the kinds that have it type it (the same type in
/// every kind that has it), `None` when absent.
#[derive(Deserialize)]
struct Wire {
    #[serde(default, deserialize_with = "present")]
    v: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "present_time")]
    timestamp: Option<SystemTime>,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    version: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    input: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    seed: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    parent: Option<Option<ParentRef>>,
    #[serde(default, deserialize_with = "present")]
    generation: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    eager_restarts: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    id: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    attempt: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    output: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    failure: Option<Failure>,
    #[serde(default, deserialize_with = "present_time")]
    fire_at: Option<SystemTime>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    status: Option<CompletionStatus>,
    #[serde(default, deserialize_with = "present_time")]
    started_at: Option<SystemTime>,
    #[serde(default, deserialize_with = "present_time")]
    ended_at: Option<SystemTime>,
    #[serde(default, deserialize_with = "present")]
    instance_id: Option<InstanceId>,
    // A span record's fields: any of them leaves the event to the derived code.
    #[serde(default, deserialize_with = "present")]
    trace_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    span_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    parent_span_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    span_started_at: Option<Value>,
}

impl Wire {
    /// The event, if these fields make one exactly as the derived code reads them; `None`
    /// leaves the decision to the derived code.
    fn event(self) -> Option<HistoryEvent> {
        if self.trace_id.is_some()
            || self.span_id.is_some()
            || self.parent_span_id.is_some()
            || self.span_started_at.is_some()
        {
            return None;
        }
        let attempt = match (self.started_at, self.ended_at) {
            (Some(started_at), Some(ended_at)) => Some(AttemptTimes {
                started_at,
                ended_at,
            }),
            (None, None) => None,
            _ => return None,
        };
        let event = match self.kind?.as_str() {
            "OrchestratorStarted" => Event::OrchestratorStarted {
                timestamp: self.timestamp?,
            },
            "ExecutionStarted" => Event::ExecutionStarted {
                name: self.name?,
                version: self.version?,
                input: self.input?,
                seed: self.seed?,
                parent: self.parent.flatten(),
                generation: self.generation.unwrap_or(0),
                eager_restarts: self.eager_restarts.unwrap_or(0),
            },
            "TaskScheduled" => Event::TaskScheduled {
                id: self.id?,
                name: self.name?,
                input: self.input?,
                attempt: self.attempt?,
            },
            "TaskCompleted" => Event::TaskCompleted {
                id: self.id?,
                output: self.output?,
            },
            "TaskFailed" => Event::TaskFailed {
                id: self.id?,
                failure: self.failure?,
            },
            "TimerCreated" => Event::TimerCreated {
                id: self.id?,
                fire_at: self.fire_at?,
            },
            "TimerFired" => Event::TimerFired {
                id: self.id?,
                fire_at: self.fire_at?,
            },
            "EventWaitStarted" => Event::EventWaitStarted {
                id: self.id?,
                name: self.name?,
            },
            "EventRaised" => Event::EventRaised {
                name: self.name?,
                data: self.data?,
            },
            "ExecutionCompleted" => Event::ExecutionCompleted {
                status: self.status?,
                // An `Option<Value>` reads `null` as `None`.
                output: self.output.filter(|v| !v.is_null()),
                failure: self.failure,
            },
            "SubOrchestrationCompleted" => Event::SubOrchestrationCompleted {
                id: self.id?,
                generation: self.generation.unwrap_or(0),
                output: self.output?,
            },
            "SubOrchestrationFailed" => Event::SubOrchestrationFailed {
                id: self.id?,
                generation: self.generation.unwrap_or(0),
                failure: self.failure?,
            },
            "SubOrchestrationCreated" => Event::SubOrchestrationCreated {
                id: self.id?,
                name: self.name?,
                version: self.version?,
                instance_id: self.instance_id?,
                input: self.input?,
            },
            // The rest (rare) are read by the derived code.
            _ => return None,
        };
        Some(HistoryEvent {
            format_version: self.v?,
            event,
            attempt,
            span: None,
        })
    }
}

fn write(event: &HistoryEvent, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"v\":");
    number(out, u64::from(event.format_version));
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(event.event.name().as_bytes());
    out.push(b'"');
    match &event.event {
        Event::OrchestratorStarted { timestamp } => time(out, "timestamp", *timestamp),
        Event::ExecutionStarted {
            name,
            version,
            input,
            seed,
            parent,
            generation,
            eager_restarts,
        } => {
            field(out, "name", name);
            key(out, "version");
            number(out, u64::from(*version));
            field(out, "input", input);
            key(out, "seed");
            number(out, *seed);
            if let Some(parent) = parent {
                field(out, "parent", parent);
            }
            nonzero(out, "generation", *generation);
            nonzero(out, "eager_restarts", *eager_restarts);
        }
        Event::TaskScheduled {
            id,
            name,
            input,
            attempt,
        } => {
            seq(out, *id);
            field(out, "name", name);
            field(out, "input", input);
            key(out, "attempt");
            number(out, u64::from(*attempt));
        }
        Event::TaskCompleted { id, output } => {
            seq(out, *id);
            field(out, "output", output);
        }
        Event::TaskFailed { id, failure } => {
            seq(out, *id);
            field(out, "failure", failure);
        }
        Event::TimerCreated { id, fire_at } | Event::TimerFired { id, fire_at } => {
            seq(out, *id);
            time(out, "fire_at", *fire_at);
        }
        Event::EventWaitStarted { id, name } => {
            seq(out, *id);
            field(out, "name", name);
        }
        Event::EventRaised { name, data } => {
            field(out, "name", name);
            field(out, "data", data);
        }
        Event::ExecutionCompleted {
            status,
            output,
            failure,
        } => {
            field(out, "status", status);
            if let Some(output) = output {
                field(out, "output", output);
            }
            if let Some(failure) = failure {
                field(out, "failure", failure);
            }
        }
        // The rare kinds: the derived code, field by field.
        other => rest(out, other),
    }
    if let Some(attempt) = &event.attempt {
        time(out, "started_at", attempt.started_at);
        time(out, "ended_at", attempt.ended_at);
    }
    out.push(b'}');
}

/// The fields of a kind written through its derived `Serialize`: its JSON object without the
/// braces and the tag (`{"kind":"…",` and `}`), appended after ours.
fn rest(out: &mut Vec<u8>, event: &Event) {
    let text = serde_json::to_vec(event).expect("events always serialise");
    // `{"kind":"<name>"` then `,…}` or `}`.
    let tag = b"{\"kind\":\"".len() + event.name().len() + 1;
    out.extend_from_slice(&text[tag..text.len() - 1]);
}

fn key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, value: &T) {
    key(out, name);
    serde_json::to_writer(&mut *out, value).expect("events always serialise");
}

fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn seq(out: &mut Vec<u8>, id: u64) {
    key(out, "id");
    number(out, id);
}

fn nonzero(out: &mut Vec<u8>, name: &str, n: u64) {
    if n != 0 {
        key(out, name);
        number(out, n);
    }
}

fn time(out: &mut Vec<u8>, name: &str, at: SystemTime) {
    key(out, name);
    let mut buf = [0; 30];
    match timestamp::format(at, &mut buf) {
        // Digits and punctuation: nothing to escape.
        Some(n) => {
            out.push(b'"');
            out.extend_from_slice(&buf[..n]);
            out.push(b'"');
        }
        None => {
            let mut s = serde_json::Serializer::new(&mut *out);
            timestamp::serialize(&at, &mut s).expect("times in range serialise");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    fn every_kind() -> Vec<Event> {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let whole = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let value = json!({"a": [1, 2.5, "é\"\\\n\u{1}"], "b": null, "c": {"d": true}});
        let failure = Failure::new("k\"ind", "line\nbreak é");
        let id = InstanceId::new("child ü/1").unwrap();
        let mut events = vec![
            Event::OrchestratorStarted { timestamp: at },
            Event::OrchestratorStarted { timestamp: whole },
            Event::OrchestratorStarted {
                timestamp: UNIX_EPOCH,
            },
            Event::TaskScheduled {
                id: 7,
                name: "noop \"q\"".into(),
                input: value.clone(),
                attempt: 2,
            },
            Event::TaskCompleted {
                id: u64::MAX,
                output: json!(1.0e300),
            },
            Event::TaskFailed {
                id: 0,
                failure: failure.clone(),
            },
            Event::TimerCreated { id: 3, fire_at: at },
            Event::TimerFired {
                id: 3,
                fire_at: whole,
            },
            Event::EventWaitStarted {
                id: 4,
                name: "go".into(),
            },
            Event::EventRaised {
                name: "\u{7f}x".into(),
                data: value.clone(),
            },
            Event::SubOrchestrationCreated {
                id: 5,
                name: "c".into(),
                version: 3,
                instance_id: id.clone(),
                input: json!(null),
            },
            Event::ExecutionTerminated {
                output: json!("bye"),
                recursive: true,
            },
            Event::ExecutionSuspended { reason: None },
            Event::ExecutionSuspended {
                reason: Some("why".into()),
            },
            Event::ExecutionResumed { reason: None },
            Event::PatchApplied { name: "p".into() },
        ];
        for generation in [0, 9] {
            events.push(Event::SubOrchestrationCompleted {
                id: 5,
                generation,
                output: value.clone(),
            });
            events.push(Event::SubOrchestrationFailed {
                id: 5,
                generation,
                failure: failure.clone(),
            });
        }
        for (parent, generation, eager_restarts) in [
            (None, 0, 0),
            (
                Some(ParentRef {
                    instance_id: id.clone(),
                    id: 2,
                    generation: 0,
                }),
                1,
                0,
            ),
            (
                Some(ParentRef {
                    instance_id: id.clone(),
                    id: 2,
                    generation: 4,
                }),
                0,
                6,
            ),
        ] {
            events.push(Event::ExecutionStarted {
                name: "chain".into(),
                version: u32::MAX,
                input: value.clone(),
                seed: 0x9e37_79b9_7f4a_7c15,
                parent,
                generation,
                eager_restarts,
            });
        }
        for status in [
            CompletionStatus::Completed,
            CompletionStatus::Failed,
            CompletionStatus::Terminated,
        ] {
            for (output, failure) in [
                (None, None),
                (Some(value.clone()), None),
                (None, Some(failure.clone())),
                (Some(json!(0)), Some(failure.clone())),
            ] {
                events.push(Event::ExecutionCompleted {
                    status,
                    output,
                    failure,
                });
            }
        }
        events
    }

    #[test]
    fn every_kind_is_written_as_the_derived_serialize_writes_it() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        for event in every_kind() {
            for attempt in [
                None,
                Some(AttemptTimes {
                    started_at: at,
                    ended_at: at + Duration::from_millis(3),
                }),
            ] {
                let mut event = HistoryEvent::new(event.clone());
                event.attempt = attempt;
                let derived = serde_json::to_string(&event).unwrap();
                assert_eq!(to_string(&event), derived);
                assert_eq!(from_str(&derived).unwrap(), event);
                let rare = matches!(
                    event.event,
                    Event::ExecutionTerminated { .. }
                        | Event::ExecutionSuspended { .. }
                        | Event::ExecutionResumed { .. }
                        | Event::PatchApplied { .. }
                );
                let fast = serde_json::from_str::<Wire>(&derived)
                    .ok()
                    .and_then(Wire::event);
                assert_eq!(fast.is_some(), !rare, "the fast path reads {derived}");
                event.format_version = 7;
                assert_eq!(to_string(&event), serde_json::to_string(&event).unwrap());
            }
        }
    }

    /// `from_str` against the derived `Deserialize`: the same event or an error for texts
    /// with fields missing, `null`, of the wrong type, duplicated, of other kinds, or unknown.
    #[test]
    fn reading_agrees_with_the_derived_deserialize() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let mut texts = Vec::new();
        for event in every_kind() {
            let mut event = HistoryEvent::new(event);
            let plain = serde_json::to_value(&event).unwrap();
            event.attempt = Some(AttemptTimes {
                started_at: at,
                ended_at: at,
            });
            let timed = serde_json::to_value(&event).unwrap();
            for value in [plain, timed] {
                texts.push(value.to_string());
                let object = value.as_object().unwrap();
                for key in object.keys() {
                    // Each field missing, null, of another type, duplicated.
                    let mut missing = object.clone();
                    missing.remove(key);
                    texts.push(Value::Object(missing).to_string());
                    for other in [json!(null), json!("s"), json!(1), json!(-1), json!({})] {
                        let mut changed = object.clone();
                        changed.insert(key.clone(), other);
                        texts.push(Value::Object(changed).to_string());
                    }
                    let text = value.to_string();
                    let field = format!("\"{key}\":{}", object[key]);
                    texts.push(text.replacen('{', &format!("{{{field},"), 1));
                }
                // Fields of other kinds, valid and not, and unknown ones.
                for (key, extra) in [
                    ("id", json!(3)),
                    ("id", json!("x")),
                    ("output", json!(null)),
                    ("failure", json!(null)),
                    ("status", json!("Completed")),
                    ("seed", json!(1)),
                    ("timestamp", json!("2024-01-01T00:00:00Z")),
                    ("timestamp", json!("yesterday")),
                    ("started_at", json!("2024-01-01T00:00:00Z")),
                    ("parent", json!(null)),
                    ("generation", json!(null)),
                    ("unknown", json!([1])),
                    ("kind", json!("NoSuchKind")),
                ] {
                    let mut changed = object.clone();
                    changed.insert(key.to_string(), extra);
                    texts.push(Value::Object(changed).to_string());
                }
            }
        }
        assert!(texts.len() > 1_000, "{}", texts.len());
        for text in &texts {
            let derived = serde_json::from_str::<HistoryEvent>(text);
            match (from_str(text), derived) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{text}"),
                (Err(_), Err(_)) => {}
                (ours, theirs) => panic!("{text}: ours {ours:?}, derived {theirs:?}"),
            }
        }
    }

    /// Appended one after another into one buffer, events are the texts `to_string` makes,
    /// back to back (span records included).
    #[test]
    fn appended_events_are_their_texts_back_to_back() {
        let mut out = Vec::new();
        let mut expected = String::new();
        for (n, event) in every_kind().into_iter().enumerate() {
            let mut event = HistoryEvent::new(event);
            if n % 3 == 0 {
                event.span = Some(super::super::SpanRecord {
                    trace_id: 1,
                    span_id: 2,
                    parent_span_id: None,
                    started_at: UNIX_EPOCH,
                });
            }
            append(&event, &mut out);
            expected.push_str(&to_string(&event));
            assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        }
    }

    /// A span record (observability) rides on the derived code both ways: written as it
    /// writes it, read back whole, never dropped by the fast reader.
    #[test]
    fn a_span_record_is_kept() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        for event in every_kind() {
            for parent_span_id in [None, Some(7)] {
                let mut event = HistoryEvent::new(event.clone());
                event.span = Some(super::super::SpanRecord {
                    trace_id: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
                    span_id: 0xfeed,
                    parent_span_id,
                    started_at: at,
                });
                let text = to_string(&event);
                assert_eq!(text, serde_json::to_string(&event).unwrap());
                assert_eq!(from_str(&text).unwrap(), event);
            }
        }
    }
}
