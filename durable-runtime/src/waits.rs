//! Which wait receives a raised event: the one rule, live and on replay alike.

use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashMapExt};
use serde_json::Value;

/// The event waits of one generation and the events no wait has received yet.
pub(crate) struct Waits {
    /// Waits not yet served, by seq: the oldest wait of a name is served first.
    waiting: BTreeMap<u64, String>,
    /// Events raised while no wait of their name was open, oldest first per name.
    buffered: HashMap<String, VecDeque<Value>>,
}

impl Waits {
    pub(crate) fn new() -> Self {
        Waits {
            waiting: BTreeMap::new(),
            buffered: HashMap::new(),
        }
    }

    /// An event arrived: the wait that receives it (the oldest open wait of its name), or
    /// `None` if it is buffered for a later wait.
    pub(crate) fn raise(&mut self, name: String, data: Value) -> Option<(u64, Value)> {
        let oldest = self
            .waiting
            .iter()
            .find(|(_, waiting_for)| **waiting_for == name)
            .map(|(seq, _)| *seq);
        match oldest {
            Some(seq) => {
                self.waiting.remove(&seq);
                Some((seq, data))
            }
            None => {
                self.buffered.entry(name).or_default().push_back(data);
                None
            }
        }
    }

    /// Wait `seq` for the event `name` opens: it receives the oldest buffered event of that
    /// name at once, or stays open until one is raised.
    pub(crate) fn open(&mut self, seq: u64, name: &str) -> Option<Value> {
        let buffered = self.buffered.get_mut(name).and_then(VecDeque::pop_front);
        if buffered.is_none() {
            self.waiting.insert(seq, name.to_string());
        }
        buffered
    }

    /// Wait `seq` ends without an event (it timed out or was dropped).
    pub(crate) fn close(&mut self, seq: u64) {
        self.waiting.remove(&seq);
    }

    /// Events raised but never received, in a deterministic order (by name, then oldest
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
    fn the_oldest_open_wait_of_a_name_receives_the_event() {
        let mut waits = Waits::new();
        assert_eq!(waits.open(3, "go"), None);
        assert_eq!(waits.open(1, "go"), None);
        assert_eq!(waits.open(2, "stop"), None);
        assert_eq!(waits.raise("go".into(), json!(1)), Some((1, json!(1))));
        assert_eq!(waits.raise("go".into(), json!(2)), Some((3, json!(2))));
        assert_eq!(waits.raise("go".into(), json!(3)), None, "buffered");
    }

    #[test]
    fn buffered_events_are_received_oldest_first() {
        let mut waits = Waits::new();
        assert_eq!(waits.raise("go".into(), json!(1)), None);
        assert_eq!(waits.raise("go".into(), json!(2)), None);
        assert_eq!(waits.open(0, "go"), Some(json!(1)));
        assert_eq!(waits.open(1, "go"), Some(json!(2)));
        assert_eq!(waits.open(2, "go"), None);
    }

    #[test]
    fn a_closed_wait_receives_nothing() {
        let mut waits = Waits::new();
        assert_eq!(waits.open(0, "go"), None);
        waits.close(0);
        assert_eq!(waits.raise("go".into(), json!(1)), None);
        assert_eq!(waits.take_buffered(), vec![("go".to_string(), json!(1))]);
    }

    #[test]
    fn carried_events_are_ordered_by_name_then_age() {
        let mut waits = Waits::new();
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
