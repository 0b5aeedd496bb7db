//! Activity tasks' and instance statuses' JSON, written (and tasks read) directly. The
//! derived `Serialize` and `Deserialize` of [`ActivityTask`] and [`InstanceStatus`] stay the
//! definition; these are faster paths to the same results, checked against them:
//! - Writing makes the exact text `serde_json::to_string` makes (the keys written as
//!   literals, not escaped one by one); a task with a timeout or a parent span goes through
//!   the derived code.
//! - Reading a task takes the text that writing makes (no escapes in the id and name, no
//!   timeout, no parent span) field by field; anything else goes to the derived code, which
//!   decides.
//!
//! Every turn that calls an activity writes its task, and every attempt reads it back; the
//! file store logs the whole status every turn leaves.

use serde_json::Value;

use super::{ActivityTask, InstanceStatus};
use crate::history::timestamp;
use crate::instance_id::InstanceId;

/// The JSON text of `task`: what `serde_json::to_string` makes of it.
pub(crate) fn task_to_string(task: &ActivityTask) -> String {
    if task.timeout.is_some() || task.parent_span.is_some() {
        return serde_json::to_string(task).expect("tasks always serialise");
    }
    let mut out = Vec::with_capacity(96 + task.name.len() + task.instance_id.len());
    out.extend_from_slice(b"{\"instance_id\":");
    write(&mut out, task.instance_id.as_str());
    out.extend_from_slice(b",\"id\":");
    write(&mut out, &task.id);
    out.extend_from_slice(b",\"name\":");
    write(&mut out, &task.name);
    out.extend_from_slice(b",\"input\":");
    write(&mut out, &task.input);
    out.extend_from_slice(b",\"attempt\":");
    write(&mut out, &task.attempt);
    out.push(b'}');
    // Literals and what serde_json writes: UTF-8.
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn write<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("tasks and statuses always serialise");
}

/// The JSON text of `status`: what `serde_json::to_string` makes of it.
pub(crate) fn status_to_string(status: &InstanceStatus) -> String {
    let mut out = Vec::with_capacity(256 + status.name.len() + status.instance_id.len());
    out.extend_from_slice(b"{\"instance_id\":");
    write(&mut out, status.instance_id.as_str());
    out.extend_from_slice(b",\"name\":");
    write(&mut out, &status.name);
    out.extend_from_slice(b",\"version\":");
    write(&mut out, &status.version);
    out.extend_from_slice(b",\"runtime_status\":");
    write(&mut out, &status.runtime_status);
    out.extend_from_slice(b",\"created_at\":");
    time(&mut out, status.created_at);
    out.extend_from_slice(b",\"last_updated_at\":");
    time(&mut out, status.last_updated_at);
    out.extend_from_slice(b",\"input\":");
    write(&mut out, &status.input);
    out.extend_from_slice(b",\"output\":");
    write(&mut out, &status.output);
    out.extend_from_slice(b",\"custom_status\":");
    write(&mut out, &status.custom_status);
    out.extend_from_slice(b",\"failure\":");
    write(&mut out, &status.failure);
    if let Some(parent) = &status.parent {
        out.extend_from_slice(b",\"parent\":");
        write(&mut out, parent.as_str());
    }
    out.push(b'}');
    // Literals and what serde_json writes: UTF-8.
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// A time as `history::timestamp` writes it.
fn time(out: &mut Vec<u8>, at: std::time::SystemTime) {
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

/// The task `text` holds: what `serde_json::from_str::<ActivityTask>` returns.
pub(crate) fn task_from_str(text: &str) -> serde_json::Result<ActivityTask> {
    match read(text) {
        Some(task) => Ok(task),
        None => serde_json::from_str(text),
    }
}

/// The task, if `text` is exactly as [`task_to_string`] writes one without a timeout or a parent
/// span, with no escape in its id and name; `None` leaves the decision to the derived code.
fn read(text: &str) -> Option<ActivityTask> {
    let rest = text.strip_prefix("{\"instance_id\":\"")?;
    let (instance_id, rest) = plain_string(rest)?;
    let instance_id = InstanceId::from_str_checked(instance_id).ok()?;
    let rest = rest.strip_prefix(",\"id\":")?;
    let (id, rest) = unsigned(rest)?;
    let rest = rest.strip_prefix(",\"name\":\"")?;
    let (name, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(",\"input\":")?;
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    let input = values.next()?.ok()?;
    let rest = &rest[values.byte_offset()..];
    let rest = rest.strip_prefix(",\"attempt\":")?;
    let (attempt, rest) = unsigned(rest)?;
    if rest != "}" {
        return None;
    }
    Some(ActivityTask {
        instance_id,
        id,
        name: name.to_owned(),
        input,
        attempt: u32::try_from(attempt).ok()?,
        timeout: None,
        parent_span: None,
    })
}

/// A string's contents up to its closing quote, if it holds no escape and no control
/// character (which JSON refuses unescaped); and what follows the quote.
fn plain_string(text: &str) -> Option<(&str, &str)> {
    let end = text
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
    if text.as_bytes()[end] != b'"' {
        return None;
    }
    Some((&text[..end], &text[end + 1..]))
}

/// A JSON unsigned integer as serde_json reads one into a `u64` (no leading zero, no
/// fraction or exponent, no overflow), and what follows it.
fn unsigned(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = text.split_at(digits);
    if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
        return None;
    }
    if rest.starts_with(['.', 'e', 'E']) {
        return None;
    }
    Some((number.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;
    use crate::history::{Failure, SpanParent};
    use crate::store::RuntimeStatus;

    fn task(id: &str, name: &str, input: Value) -> ActivityTask {
        ActivityTask {
            instance_id: InstanceId::new(id).unwrap(),
            id: 3,
            name: name.into(),
            input,
            attempt: 2,
            timeout: None,
            parent_span: None,
        }
    }

    #[test]
    fn writes_what_serde_writes_and_reads_it_back() {
        let mut tasks = vec![
            task("order-1", "charge", json!({"cents": 1999})),
            task("a", "noop", json!(0)),
            task(
                "é \"quoted\" \\ ✓",
                "na\"me\u{2028}",
                json!([1, 2.5, "x\n", null]),
            ),
            task("x", "y", json!(u64::MAX)),
            task("x", "y", json!(-1.5e300)),
        ];
        let mut timed = task("t", "slow", json!(null));
        timed.timeout = Some(Duration::from_millis(1500));
        tasks.push(timed);
        let mut traced = task("t", "traced", json!("in"));
        traced.parent_span = Some(SpanParent {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
        });
        tasks.push(traced);
        for task in tasks {
            let text = task_to_string(&task);
            assert_eq!(text, serde_json::to_string(&task).unwrap());
            assert_eq!(task_from_str(&text).unwrap(), task, "{text}");
        }
    }

    #[test]
    fn reads_what_serde_reads_and_refuses_what_it_refuses() {
        let texts = [
            r#"{"instance_id":"a","id":1,"name":"n","input":0,"attempt":1}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input":{"k":[1,{"z":null}]},"attempt":1}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input": 7 ,"attempt":1}"#,
            r#"{"instance_id":"a\u0041","id":1,"name":"n","input":0,"attempt":1}"#,
            r#"{"id":1,"instance_id":"a","name":"n","input":0,"attempt":1}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input":0,"attempt":1,"timeout":{"secs":1,"nanos":0}}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input":0,"attempt":1,"extra":true}"#,
            r#"{"instance_id":"a","id":01,"name":"n","input":0,"attempt":1}"#,
            r#"{"instance_id":"a","id":1.0,"name":"n","input":0,"attempt":1}"#,
            r#"{"instance_id":"a","id":1e2,"name":"n","input":0,"attempt":1}"#,
            r#"{"instance_id":"a","id":-1,"name":"n","input":0,"attempt":1}"#,
            r#"{"instance_id":"a","id":18446744073709551616,"name":"n","input":0,"attempt":1}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input":0,"attempt":4294967296}"#,
            r#"{"instance_id":"","id":1,"name":"n","input":0,"attempt":1}"#,
            "{\"instance_id\":\"a\tb\",\"id\":1,\"name\":\"n\",\"input\":0,\"attempt\":1}",
            r#"{"instance_id":"a","id":1,"name":"n","input":[1,"attempt":1}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input":0,"attempt":1} "#,
            r#"{"instance_id":"a","id":1,"name":"n","input":0,"attempt":1}}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input":0}"#,
            r#"{"instance_id":"a","id":1,"name":"n","input":0,"attempt":1,"#,
        ];
        for text in texts {
            let derived = serde_json::from_str::<ActivityTask>(text);
            match (task_from_str(text), derived) {
                (Ok(fast), Ok(derived)) => assert_eq!(fast, derived, "{text}"),
                (Err(fast), Err(derived)) => {
                    assert_eq!(fast.to_string(), derived.to_string(), "{text}")
                }
                (fast, derived) => panic!("{text}: {fast:?} but serde: {derived:?}"),
            }
        }
    }

    #[test]
    fn writes_statuses_as_serde_writes_them() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let base = InstanceStatus {
            instance_id: InstanceId::new("order-1").unwrap(),
            name: "chain3".into(),
            version: 2,
            runtime_status: RuntimeStatus::Running,
            created_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            last_updated_at: at,
            input: json!({"b": [1, 2.5], "a": "x"}),
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        };
        let mut statuses = vec![base.clone()];
        let mut done = base.clone();
        done.runtime_status = RuntimeStatus::Completed;
        done.output = Some(json!(null));
        done.custom_status = Some(json!("waiting \"here\"\n"));
        done.parent = Some(InstanceId::new("parent é/1").unwrap());
        statuses.push(done);
        let mut failed = base.clone();
        failed.runtime_status = RuntimeStatus::Failed;
        failed.failure = Some(Failure::new("k\"ind", "line\nbreak é"));
        failed.instance_id = InstanceId::new("quo\"te\\ \u{2028}").unwrap();
        failed.name = "na\"me".into();
        failed.created_at = UNIX_EPOCH;
        statuses.push(failed);
        for status in [RuntimeStatus::Pending, RuntimeStatus::Terminated] {
            statuses.push(InstanceStatus {
                runtime_status: status,
                ..base.clone()
            });
        }
        for status in statuses {
            assert_eq!(
                status_to_string(&status),
                serde_json::to_string(&status).unwrap()
            );
        }
    }
}
