//! Which wait receives a raised event: the one rule, live and on replay alike.
//!
//! Which wait receives an event is replay semantics (the history records the events and the
//! waits, not who got what), so the rule is versioned with the history format: a generation
//! follows the rule of the format its `ExecutionStarted` was written in ([`Rule::of_format`]).
//!
//! - **Format 2 on ([`Rule::AtPoll`])**: an event stays buffered until a wait for its name is
//!   polled and returns it. Raising it only wakes the open waits of its name; the first of
//!   them to be polled takes the oldest buffered event of that name. A wait that is dropped,
//!   or kept but never polled again, takes nothing; a kept wait awaited later receives the
//!   next event still buffered then. What nobody took is what `continue_as_new(..)
//!   .keep_events()` carries over.
//! - **Format 1 ([`Rule::AtRaise`])**: an event goes at once to the oldest open wait of its
//!   name (by seq), or is buffered for the next wait to open; an event given to a wait that
//!   is then dropped is lost. Kept only so that histories recorded under format 1 replay as
//!   they ran.

use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashMapExt};
use serde_json::Value;

/// Which wait receives an event; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Format 1: the oldest open wait receives an event the moment it is raised.
    AtRaise,
    /// Format 2 on: the first wait polled after an event is raised takes it.
    AtPoll,
}

impl Rule {
    /// The rule of a generation whose `ExecutionStarted` was written in `format_version`.
    pub(crate) fn of_format(format_version: u32) -> Rule {
        if format_version <= 1 {
            Rule::AtRaise
        } else {
            Rule::AtPoll
        }
    }
}

/// The event waits of one generation and the events no wait has taken yet.
pub(crate) struct Waits {
    rule: Rule,
    /// Open waits by seq, with the name each waits for: under [`Rule::AtRaise`] the oldest
    /// wait of a name is served first.
    open: BTreeMap<u64, String>,
    /// Under [`Rule::AtRaise`] only: events given to a wait that has not returned them yet.
    given: HashMap<u64, Value>,
    /// Events raised and not yet taken, oldest first per name.
    buffered: HashMap<String, VecDeque<Value>>,
}

impl Waits {
    pub(crate) fn new(rule: Rule) -> Self {
        Waits {
            rule,
            open: BTreeMap::new(),
            given: HashMap::new(),
            buffered: HashMap::new(),
        }
    }

    /// The generation's rule, set when its `ExecutionStarted` is delivered.
    pub(crate) fn set_rule(&mut self, rule: Rule) {
        self.rule = rule;
    }

    /// An event was raised: the waits to wake, which may now take it when polled.
    pub(crate) fn raise(&mut self, name: String, data: Value) -> Vec<u64> {
        match self.rule {
            Rule::AtRaise => {
                let oldest = self
                    .open
                    .iter()
                    .find(|(_, waiting_for)| **waiting_for == name)
                    .map(|(seq, _)| *seq);
                match oldest {
                    Some(seq) => {
                        self.open.remove(&seq);
                        self.given.insert(seq, data);
                        vec![seq]
                    }
                    None => {
                        self.buffered.entry(name).or_default().push_back(data);
                        Vec::new()
                    }
                }
            }
            Rule::AtPoll => {
                let woken = self
                    .open
                    .iter()
                    .filter(|(_, waiting_for)| **waiting_for == name)
                    .map(|(seq, _)| *seq)
                    .collect();
                self.buffered.entry(name).or_default().push_back(data);
                woken
            }
        }
    }

    /// Wait `seq` for the event `name` opens (it is polled at once after).
    pub(crate) fn open(&mut self, seq: u64, name: &str) {
        if self.rule == Rule::AtRaise {
            if let Some(data) = self.buffered.get_mut(name).and_then(VecDeque::pop_front) {
                self.given.insert(seq, data);
                return;
            }
        }
        self.open.insert(seq, name.to_string());
    }

    /// Wait `seq` is polled: the event it returns, if one is there for it. It then ends.
    pub(crate) fn take(&mut self, seq: u64) -> Option<Value> {
        match self.rule {
            Rule::AtRaise => self.given.remove(&seq),
            Rule::AtPoll => {
                let name = self.open.get(&seq)?;
                let data = self.buffered.get_mut(name).and_then(VecDeque::pop_front)?;
                self.open.remove(&seq);
                Some(data)
            }
        }
    }

    /// Wait `seq` ends without returning an event (it timed out or was dropped). Under
    /// [`Rule::AtRaise`] an event already given to it is lost, as format 1 recorded it.
    pub(crate) fn close(&mut self, seq: u64) {
        self.open.remove(&seq);
        self.given.remove(&seq);
    }

    /// Events raised but never taken, in a deterministic order (by name, then oldest
    /// first): what continue-as-new carries over.
    pub(crate) fn take_buffered(&mut self) -> Vec<(String, Value)> {
        let mut carried = Vec::new();
        for (name, values) in self.buffered.drain() {
            carried.extend(values.into_iter().map(|v| (name.clone(), v)));
        }
        // HashMap order is arbitrary: sort by name so the carried order is deterministic.
        carried.sort_by(|a, b| a.0.cmp(&b.0));
        carried
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_format_decides_the_rule() {
        assert_eq!(Rule::of_format(1), Rule::AtRaise);
        assert_eq!(Rule::of_format(2), Rule::AtPoll);
        assert_eq!(
            Rule::of_format(crate::history::FORMAT_VERSION),
            Rule::AtPoll
        );
    }

    #[test]
    fn at_poll_the_first_wait_polled_takes_the_event() {
        let mut waits = Waits::new(Rule::AtPoll);
        waits.open(1, "go");
        waits.open(3, "go");
        waits.open(2, "stop");
        assert_eq!(
            waits.raise("go".into(), json!(1)),
            [1, 3],
            "both may take it"
        );
        assert_eq!(waits.take(3), Some(json!(1)), "polled first");
        assert_eq!(waits.take(1), None, "taken already");
        assert_eq!(waits.raise("go".into(), json!(2)), [1]);
        assert_eq!(waits.take(1), Some(json!(2)));
        assert_eq!(waits.take(2), None);
    }

    #[test]
    fn at_poll_a_dropped_or_idle_wait_takes_nothing() {
        let mut waits = Waits::new(Rule::AtPoll);
        waits.open(0, "go");
        assert_eq!(waits.raise("go".into(), json!(1)), [0]);
        waits.close(0);
        waits.open(1, "go");
        assert_eq!(
            waits.take(1),
            Some(json!(1)),
            "the dropped wait gave nothing up"
        );
        // A kept wait, never polled, leaves the event to a later one.
        waits.open(2, "go");
        waits.raise("go".into(), json!(2));
        waits.open(3, "go");
        assert_eq!(waits.take(3), Some(json!(2)));
        waits.raise("go".into(), json!(3));
        assert_eq!(
            waits.take(2),
            Some(json!(3)),
            "the kept wait gets the next event"
        );
    }

    #[test]
    fn at_poll_what_nobody_took_carries_over() {
        let mut waits = Waits::new(Rule::AtPoll);
        waits.open(0, "go");
        waits.raise("go".into(), json!(1));
        assert_eq!(waits.take_buffered(), vec![("go".to_string(), json!(1))]);
    }

    #[test]
    fn at_raise_the_oldest_open_wait_receives_the_event() {
        let mut waits = Waits::new(Rule::AtRaise);
        waits.open(3, "go");
        waits.open(1, "go");
        waits.open(2, "stop");
        assert_eq!(waits.raise("go".into(), json!(1)), [1]);
        assert_eq!(waits.raise("go".into(), json!(2)), [3]);
        assert_eq!(waits.raise("go".into(), json!(3)), [0u64; 0], "buffered");
        assert_eq!(waits.take(3), Some(json!(2)));
        assert_eq!(waits.take(1), Some(json!(1)));
    }

    #[test]
    fn at_raise_buffered_events_go_to_waits_as_they_open() {
        let mut waits = Waits::new(Rule::AtRaise);
        waits.raise("go".into(), json!(1));
        waits.raise("go".into(), json!(2));
        waits.open(0, "go");
        waits.open(1, "go");
        waits.open(2, "go");
        assert_eq!(waits.take(1), Some(json!(2)));
        assert_eq!(waits.take(0), Some(json!(1)));
        assert_eq!(waits.take(2), None);
    }

    #[test]
    fn at_raise_an_event_given_to_a_dropped_wait_is_lost() {
        let mut waits = Waits::new(Rule::AtRaise);
        waits.open(0, "go");
        waits.raise("go".into(), json!(1));
        waits.close(0);
        waits.open(1, "go");
        assert_eq!(waits.take(1), None);
        assert!(waits.take_buffered().is_empty());
    }

    #[test]
    fn carried_events_are_ordered_by_name_then_age() {
        let mut waits = Waits::new(Rule::AtPoll);
        for (name, n) in [("b", 1), ("a", 2), ("b", 3), ("a", 4)] {
            waits.raise(name.into(), json!(n));
        }
        let carried = waits.take_buffered();
        let order: Vec<_> = carried
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        assert_eq!(
            order,
            [
                ("a", json!(2)),
                ("a", json!(4)),
                ("b", json!(1)),
                ("b", json!(3))
            ]
        );
        assert!(waits.take_buffered().is_empty());
    }
}
