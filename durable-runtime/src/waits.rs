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
