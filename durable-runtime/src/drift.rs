//! Drift: whether replayed code still issues the commands its history recorded.
//!
//! The only place that matches commands against the history (`ctx.patched` included), and
//! the one that says what differs: "expected X at seq N, found Y".

use std::fmt;

use serde_json::Value;

use crate::command::{Command, Outcome};
use crate::history::{stable_hash, CompletionStatus, Event};
use crate::instance_id::InstanceId;

/// A replayed turn's code issued other commands than the turn recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Drift {
    /// The command at a position differs.
    Differs {
        expected: String,
        found: String,
        at: String,
    },
    /// The code no longer issues a recorded command.
    Missing { expected: String, at: String },
    /// The code issues a command the history did not record.
    Extra { found: String, at: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Differs {
                expected,
                found,
                at,
            } => write!(f, "expected {expected} at {at}, found {found}"),
            Drift::Missing { expected, at } => {
                write!(
                    f,
                    "expected {expected} at {at}, found nothing: the code no longer issues it"
                )
            }
            Drift::Extra { found, at } => write!(
                f,
                "expected nothing more at {at}, found {found}: the history recorded no such command"
            ),
        }
    }
}

/// Compares the commands a replayed turn issued, and its ending, with the `recorded`
/// commands of that turn (the history's command events, in order).
pub(crate) fn check<'h>(
    recorded: impl IntoIterator<Item = &'h Event>,
    issued: &[Command],
    ending: Option<&Outcome>,
) -> Result<(), Drift> {
    let ending = ending.and_then(Outcome::completion_status).map(Shape::End);
    let mut issued = issued.iter().map(Shape::of_command).chain(ending);
    let mut recorded = recorded.into_iter().map(Shape::of_event);
    loop {
        match (recorded.next(), issued.next()) {
            (None, None) => return Ok(()),
            (Some(r), Some(n)) if r.matches(&n) => {}
            (Some(r), Some(n)) => {
                return Err(Drift::Differs {
                    expected: r.to_string(),
                    found: n.to_string(),
                    at: r.position(),
                })
            }
            (Some(r), None) => {
                return Err(Drift::Missing {
                    expected: r.to_string(),
                    at: r.position(),
                })
            }
            (None, Some(n)) => {
                return Err(Drift::Extra {
                    found: n.to_string(),
                    at: n.position(),
                })
            }
        }
    }
}

/// The patches a replayed turn recorded, by their position among its commands: what
/// `ctx.patched` answers from while the turn replays.
#[derive(Debug, Default)]
pub(crate) struct RecordedPatches(Vec<(usize, String)>);

impl RecordedPatches {
    /// The patches among a turn's recorded commands.
    pub(crate) fn of<'h>(recorded: impl IntoIterator<Item = &'h Event>) -> Self {
        RecordedPatches(
            recorded
                .into_iter()
                .enumerate()
                .filter_map(|(position, event)| match event {
                    Event::PatchApplied { name } => Some((position, name.clone())),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Whether the recorded run took patch `name` as its command at `position`.
    pub(crate) fn took(&self, position: usize, name: &str) -> bool {
        self.0
            .iter()
            .any(|(at, recorded)| *at == position && recorded == name)
    }
}

/// One command, recorded or issued, as far as matching goes.
enum Shape<'a> {
    Task {
        seq: u64,
        name: &'a str,
        input: &'a Value,
    },
    SubOrchestration {
        seq: u64,
        name: &'a str,
        instance_id: &'a InstanceId,
        input: &'a Value,
    },
    Timer {
        seq: u64,
    },
    Wait {
        seq: u64,
        name: &'a str,
    },
    Patch {
        name: &'a str,
    },
    End(CompletionStatus),
    /// A recorded event that no code issues.
    Other(&'a Event),
}

impl<'a> Shape<'a> {
    fn of_command(command: &'a Command) -> Self {
        match command {
            Command::Task {
                seq, name, input, ..
            } => Shape::Task {
                seq: *seq,
                name,
                input,
            },
            Command::SubOrchestration {
                seq,
                name,
                instance_id,
                input,
                ..
            } => Shape::SubOrchestration {
                seq: *seq,
                name,
                instance_id,
                input,
            },
            Command::Timer { seq, .. } => Shape::Timer { seq: *seq },
            Command::Wait { seq, name } => Shape::Wait { seq: *seq, name },
            Command::Patch { name } => Shape::Patch { name },
        }
    }

    fn of_event(event: &'a Event) -> Self {
        match event {
            Event::TaskScheduled {
                id, name, input, ..
            } => Shape::Task {
                seq: *id,
                name,
                input,
            },
            Event::SubOrchestrationCreated {
                id,
                name,
                instance_id,
                input,
                ..
            } => Shape::SubOrchestration {
                seq: *id,
                name,
                instance_id,
                input,
            },
            Event::TimerCreated { id, .. } => Shape::Timer { seq: *id },
            Event::EventWaitStarted { id, name } => Shape::Wait { seq: *id, name },
            Event::PatchApplied { name } => Shape::Patch { name },
            Event::ExecutionCompleted { status, .. } => Shape::End(*status),
            other => Shape::Other(other),
        }
    }

    /// Kind, name, seq and input hash: what must not change under a running instance.
    fn matches(&self, other: &Shape<'_>) -> bool {
        match (self, other) {
            (
                Shape::Task {
                    seq: a,
                    name: na,
                    input: ia,
                },
                Shape::Task {
                    seq: b,
                    name: nb,
                    input: ib,
                },
            ) => a == b && na == nb && same_input(ia, ib),
            (
                Shape::SubOrchestration {
                    seq: a,
                    name: na,
                    instance_id: xa,
                    input: ia,
                },
                Shape::SubOrchestration {
                    seq: b,
                    name: nb,
                    instance_id: xb,
                    input: ib,
                },
            ) => a == b && na == nb && xa == xb && same_input(ia, ib),
            (Shape::Timer { seq: a }, Shape::Timer { seq: b }) => a == b,
            (Shape::Wait { seq: a, name: na }, Shape::Wait { seq: b, name: nb }) => {
                a == b && na == nb
            }
            (Shape::Patch { name: a }, Shape::Patch { name: b }) => a == b,
            (Shape::End(a), Shape::End(b)) => a == b,
            _ => false,
        }
    }

    /// Where in the turn: its seq, or the end of the turn for what takes none.
    fn position(&self) -> String {
        match self {
            Shape::Task { seq, .. }
            | Shape::SubOrchestration { seq, .. }
            | Shape::Timer { seq }
            | Shape::Wait { seq, .. } => format!("seq {seq}"),
            Shape::Patch { .. } | Shape::End(_) | Shape::Other(_) => "the end of the turn".into(),
        }
    }
}

/// Inputs match when their stable hashes do (what a history from an older release records
/// is compared by hash); equal values need no hashing.
fn same_input(a: &Value, b: &Value) -> bool {
    a == b || stable_hash(a) == stable_hash(b)
}

impl fmt::Display for Shape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Task { name, input, .. } => {
                write!(
                    f,
                    "activity `{name}` (input hash {:#018x})",
                    stable_hash(input)
                )
            }
            Shape::SubOrchestration {
                name,
                instance_id,
                input,
                ..
            } => write!(
                f,
                "sub-orchestration `{name}` as `{instance_id}` (input hash {:#018x})",
                stable_hash(input)
            ),
            Shape::Timer { .. } => f.write_str("a timer"),
            Shape::Wait { name, .. } => write!(f, "a wait for event `{name}`"),
            Shape::Patch { name } => write!(f, "patch `{name}`"),
            Shape::End(status) => write!(f, "the orchestration's end ({status:?})"),
            Shape::Other(event) => write!(f, "{event:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(seq: u64, name: &str, input: Value) -> Command {
        Command::Task {
            seq,
            name: name.into(),
            input,
            attempt: 1,
            timeout: None,
        }
    }

    fn scheduled(seq: u64, name: &str, input: Value) -> Event {
        task(seq, name, input).into_event()
    }

    #[test]
    fn the_same_commands_match() {
        let recorded = [scheduled(0, "a", json!(1)), scheduled(1, "b", json!(2))];
        let issued = [task(0, "a", json!(1)), task(1, "b", json!(2))];
        assert_eq!(check(&recorded, &issued, None), Ok(()));
    }

    #[test]
    fn a_changed_activity_is_named_with_its_seq() {
        let recorded = [scheduled(0, "a", json!(1)), scheduled(1, "b", json!(2))];
        let issued = [task(0, "a", json!(1)), task(1, "c", json!(2))];
        let drift = check(&recorded, &issued, None).unwrap_err();
        let hash = stable_hash(&json!(2));
        assert_eq!(
            drift.to_string(),
            format!(
                "expected activity `b` (input hash {hash:#018x}) at seq 1, found activity `c` \
                 (input hash {hash:#018x})"
            )
        );
    }

    #[test]
    fn a_changed_input_is_drift() {
        let recorded = [scheduled(0, "a", json!({"n": 1}))];
        let issued = [task(0, "a", json!({"n": 2}))];
        assert!(matches!(
            check(&recorded, &issued, None),
            Err(Drift::Differs { .. })
        ));
    }

    #[test]
    fn missing_and_extra_commands_are_told_apart() {
        let recorded = [scheduled(0, "a", json!(1))];
        let missing = check(&recorded, &[], None).unwrap_err();
        assert!(
            missing
                .to_string()
                .ends_with("at seq 0, found nothing: the code no longer issues it"),
            "{missing}"
        );
        let extra = check(&[], &[task(0, "a", json!(1))], None).unwrap_err();
        assert!(
            extra
                .to_string()
                .starts_with("expected nothing more at seq 0, found activity `a`"),
            "{extra}"
        );
    }

    #[test]
    fn the_ending_is_matched_after_the_commands() {
        let completed = Event::ExecutionCompleted {
            status: CompletionStatus::Completed,
            output: Some(json!(1)),
            failure: None,
        };
        let ended = Outcome::Completed(json!(1));
        assert_eq!(check([&completed], &[], Some(&ended)), Ok(()));
        let failed = Outcome::Failed(crate::history::Failure::new("e", "m"));
        assert_eq!(
            check([&completed], &[], Some(&failed))
                .unwrap_err()
                .to_string(),
            "expected the orchestration's end (Completed) at the end of the turn, found the \
             orchestration's end (Failed)"
        );
        // A continue-as-new is not recorded: it matches a turn that recorded no ending.
        let restarted = Outcome::ContinuedAsNew {
            input: json!(0),
            carried: Vec::new(),
        };
        assert_eq!(check(&[], &[], Some(&restarted)), Ok(()));
    }

    #[test]
    fn patches_are_answered_by_position() {
        let recorded = [
            scheduled(0, "a", json!(1)),
            Event::PatchApplied { name: "p".into() },
        ];
        let patches = RecordedPatches::of(&recorded);
        assert!(patches.took(1, "p"));
        assert!(!patches.took(0, "p"));
        assert!(!patches.took(1, "q"));
    }
}
