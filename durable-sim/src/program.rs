//! The workload's language: small programs one generic orchestrator interprets, their random
//! generator, and the reference interpreter (the oracle) that says how each must end.
//!
//! The generator only writes programs whose outcome does not depend on timing: an event the
//! client raises at a gate (the program sets the custom status `gate:N`) lands long before
//! any timer that races it (3,600 s), and a race meant to be lost is raised only at a gate
//! after it. Faults, crashes and lease expiry then change when things happen, never what
//! the program returns, so any difference from the oracle is a bug.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rng::Rng;

/// The timer a won race or an awaited gate event beats by a wide margin.
pub const LONG_TIMEOUT_SECS: u32 = 3_600;

/// One activity call: attempts fail until `fail_until`, up to `attempts` in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSpec {
    /// The call's number in its program (part of the activity's input).
    pub k: u32,
    /// Attempts `1..=fail_until` fail (an error or a panic).
    pub fail_until: u32,
    /// The retry policy's attempts.
    pub attempts: u32,
}

/// One step of a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Call the activity (retried); records `ok:k` or `fail:k`.
    Call(CallSpec),
    /// A durable sleep; records `slept` (or `EARLY` if it woke before its time).
    Sleep {
        /// How long.
        secs: u32,
    },
    /// Sets the custom status `gate:g`: the client raises event `e{g}` when it sees it.
    Gate {
        /// The gate.
        g: u32,
    },
    /// Waits for event `e{g}`; records its data, or `timeout`.
    Wait {
        /// The event's gate.
        g: u32,
        /// The wait's timeout.
        timeout_secs: Option<u32>,
    },
    /// Calls in parallel, joined; records the list of their results.
    FanOut {
        /// The calls.
        calls: Vec<CallSpec>,
    },
    /// Races event `e{g}` against a timer; records the event's data or `timer`.
    Race {
        /// The event's gate.
        g: u32,
        /// The timer.
        timer_secs: u32,
    },
    /// A sub-orchestration running `ops`; records its output.
    Child {
        /// The child's program.
        ops: Vec<Op>,
    },
    /// Continues as new with the rest of the program.
    ContinueAsNew {
        /// Whether events raised but not awaited carry over.
        keep_events: bool,
    },
    /// Sets the custom status `s:{s}`.
    Status {
        /// The status.
        s: u32,
    },
}

/// The generic orchestrator's input: the program, where it is, and what it recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The whole program.
    pub ops: Vec<Op>,
    /// The next op.
    pub pc: u32,
    /// The values recorded so far (the output).
    pub acc: Vec<Value>,
    /// The generation (continue-as-new count).
    pub generation: u32,
}

impl Input {
    /// A program at its start.
    pub fn new(ops: Vec<Op>) -> Self {
        Input {
            ops,
            pc: 0,
            acc: Vec::new(),
            generation: 0,
        }
    }
}

/// The data the client raises event `e{g}` with.
pub fn event_data(g: u32) -> u64 {
    u64::from(g) * 10 + 7
}

/// The name of gate `g`'s event.
pub fn event_name(g: u32) -> String {
    format!("e{g}")
}

/// The custom status that opens gate `g`.
pub fn gate_status(g: u32) -> Value {
    json!(format!("gate:{g}"))
}

/// How a program must end without faults.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// Its output.
    pub output: Vec<Value>,
    /// The custom status it set last, if any.
    pub custom_status: Option<Value>,
}

/// The reference interpreter: what `ops` returns when nothing goes wrong.
///
/// # Panics
///
/// If `ops` waits for good (an event wait without a timeout whose gate has not opened):
/// the generator never writes one ([`ends`] tells).
pub fn expected(ops: &[Op]) -> Expected {
    try_expected(ops).expect("the generator never waits forever")
}

/// Whether `ops` ends without faults (no event wait without a timeout for a gate that has
/// not opened, in it or in its children): a cut program may not.
pub fn ends(ops: &[Op]) -> bool {
    try_expected(ops).is_some()
}

fn try_expected(ops: &[Op]) -> Option<Expected> {
    let mut buffered = std::collections::BTreeSet::new();
    let mut output = Vec::new();
    let mut custom_status = None;
    for op in ops {
        match op {
            Op::Call(call) => output.push(expected_call(call)),
            Op::Sleep { .. } => output.push(json!("slept")),
            Op::Gate { g } => {
                buffered.insert(*g);
                custom_status = Some(gate_status(*g));
            }
            Op::Wait { g, timeout_secs } => {
                if buffered.remove(g) {
                    output.push(json!(event_data(*g)));
                } else {
                    (*timeout_secs)?;
                    output.push(json!("timeout"));
                }
            }
            Op::FanOut { calls } => output.push(calls.iter().map(expected_call).collect()),
            Op::Race { g, .. } => {
                if buffered.remove(g) {
                    output.push(json!(event_data(*g)));
                } else {
                    output.push(json!("timer"));
                }
            }
            Op::Child { ops } => output.push(Value::Array(try_expected(ops)?.output)),
            Op::ContinueAsNew { keep_events } => {
                if !keep_events {
                    buffered.clear();
                }
            }
            Op::Status { s } => custom_status = Some(json!(format!("s:{s}"))),
        }
    }
    Some(Expected {
        output,
        custom_status,
    })
}

fn expected_call(call: &CallSpec) -> Value {
    if call.fail_until < call.attempts {
        json!(format!("ok:{}", call.k))
    } else {
        json!(format!("fail:{}", call.k))
    }
}

/// Writes random programs whose outcome the oracle knows.
pub struct Generator<'a> {
    rng: &'a mut Rng,
    next_k: u32,
    next_g: u32,
}

impl<'a> Generator<'a> {
    /// A generator drawing from `rng`.
    pub fn new(rng: &'a mut Rng) -> Self {
        Generator {
            rng,
            next_k: 0,
            next_g: 0,
        }
    }

    fn call(&mut self) -> CallSpec {
        self.next_k += 1;
        let attempts = self.rng.range(1, 4) as u32;
        // Mostly calls that succeed in the end, some that run out of attempts.
        let fail_until = if self.rng.chance(0.15) {
            attempts
        } else {
            self.rng.below(u64::from(attempts)) as u32
        };
        CallSpec {
            k: self.next_k,
            fail_until,
            attempts,
        }
    }

    fn gate(&mut self) -> u32 {
        self.next_g += 1;
        self.next_g
    }

    /// Work that takes time or turns but touches no status and no event.
    fn filler(&mut self, depth: u32, out: &mut Vec<Op>) {
        match self.rng.below(if depth > 0 { 3 } else { 4 }) {
            0 => out.push(Op::Call(self.call())),
            1 => out.push(Op::Sleep {
                secs: self.rng.range(1, 20) as u32,
            }),
            2 => {
                let n = self.rng.range(2, 4);
                let calls = (0..n).map(|_| self.call()).collect();
                out.push(Op::FanOut { calls });
            }
            _ => {
                let mut ops = Vec::new();
                for _ in 0..self.rng.range(1, 3) {
                    self.filler(depth + 1, &mut ops);
                }
                out.push(Op::Child { ops });
            }
        }
    }

    /// A root program of about `len` patterns.
    pub fn program(&mut self, len: u32) -> Vec<Op> {
        let mut ops = Vec::new();
        for _ in 0..len {
            match self.rng.below(10) {
                0..=2 => self.filler(0, &mut ops),
                3 => {
                    // A wait that no one answers times out.
                    let g = self.gate();
                    ops.push(Op::Wait {
                        g,
                        timeout_secs: Some(self.rng.range(5, 30) as u32),
                    });
                }
                4 => {
                    // Gate, some work (the event is buffered meanwhile), then the wait.
                    let g = self.gate();
                    ops.push(Op::Gate { g });
                    for _ in 0..self.rng.below(3) {
                        self.filler(0, &mut ops);
                    }
                    let timeout_secs = self.rng.chance(0.5).then_some(LONG_TIMEOUT_SECS);
                    ops.push(Op::Wait { g, timeout_secs });
                }
                5 => {
                    // A race the event wins.
                    let g = self.gate();
                    ops.push(Op::Gate { g });
                    if self.rng.chance(0.5) {
                        self.filler(0, &mut ops);
                    }
                    ops.push(Op::Race {
                        g,
                        timer_secs: LONG_TIMEOUT_SECS,
                    });
                }
                6 => {
                    // A race the timer wins, then another wait on the same event, which
                    // must still receive it.
                    let g = self.gate();
                    ops.push(Op::Race {
                        g,
                        timer_secs: self.rng.range(5, 20) as u32,
                    });
                    ops.push(Op::Gate { g });
                    let timeout_secs = self.rng.chance(0.5).then_some(LONG_TIMEOUT_SECS);
                    ops.push(Op::Wait { g, timeout_secs });
                }
                7 => {
                    // Continue-as-new while an event waits in the buffer: kept or dropped.
                    let g = self.gate();
                    let keep_events = self.rng.chance(0.5);
                    ops.push(Op::Gate { g });
                    ops.push(Op::Sleep { secs: 60 });
                    ops.push(Op::ContinueAsNew { keep_events });
                    let timeout_secs = if keep_events {
                        self.rng.chance(0.5).then_some(LONG_TIMEOUT_SECS)
                    } else {
                        Some(self.rng.range(5, 30) as u32)
                    };
                    ops.push(Op::Wait { g, timeout_secs });
                }
                8 => ops.push(Op::ContinueAsNew {
                    keep_events: self.rng.chance(0.5),
                }),
                _ => ops.push(Op::Status {
                    s: self.rng.below(100) as u32,
                }),
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_race_leaves_its_event_to_the_next_wait() {
        let ops = vec![
            Op::Race {
                g: 1,
                timer_secs: 5,
            },
            Op::Gate { g: 1 },
            Op::Wait {
                g: 1,
                timeout_secs: None,
            },
        ];
        assert_eq!(expected(&ops).output, vec![json!("timer"), json!(17)]);
    }

    #[test]
    fn continue_as_new_drops_buffered_events_unless_kept() {
        let program = |keep_events| {
            vec![
                Op::Gate { g: 2 },
                Op::ContinueAsNew { keep_events },
                Op::Wait {
                    g: 2,
                    timeout_secs: Some(5),
                },
            ]
        };
        assert_eq!(expected(&program(true)).output, vec![json!(27)]);
        assert_eq!(expected(&program(false)).output, vec![json!("timeout")]);
    }
}
