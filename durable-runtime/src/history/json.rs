//! A history event's JSON, written directly: the exact text `serde_json::to_string` makes of
//! the derived `Serialize` (which stays the definition, and which the tests below compare
//! against for every kind of event), without serde's flattening layers and with the keys
//! written as literals, not escaped one by one. Stores serialise every event of every turn;
//! this was a sixth of a turn's instructions.

use std::time::SystemTime;

use serde::Serialize;

use super::{timestamp, Event, HistoryEvent};

/// The JSON text of `event`.
pub(crate) fn to_string(event: &HistoryEvent) -> String {
    let mut out = Vec::with_capacity(128);
    write(event, &mut out);
    // Every piece is UTF-8: literals, and what serde_json writes.
    String::from_utf8(out).expect("JSON is UTF-8")
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
    use crate::history::{AttemptTimes, CompletionStatus, Failure, ParentRef};
    use crate::instance_id::InstanceId;

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
                event.format_version = 7;
                assert_eq!(to_string(&event), serde_json::to_string(&event).unwrap());
            }
        }
    }
}
