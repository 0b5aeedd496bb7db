//! The store engine: the contract's state machine (instances, inboxes, timers, leases,
//! activity attempts, the commit checks) in memory, once, for every store.
//!
//! The in-memory store is this engine behind a mutex; the file store is this engine plus its
//! write-ahead log, which records every change the engine applies and replays the records
//! on recovery through the same code, plus its checkpoints. What differs between the stores
//! goes through two small seams:
//! - [`History`]: how a history's events are held. The in-memory store keeps their JSON, back
//!   to back in one buffer a turn ([`TextHistory`]); the file store keeps where they are in its
//!   files.
//! - [`Status::Logged`]: a status still as the JSON a log record holds, parsed on first need,
//!   so that recovery parses no status. Only the file store's recovery makes one.
//!
//! Changes come in two steps, so a store with a log can record a change between its check and
//! its application: `check_*` refuses what the contract refuses and changes nothing; the
//! matching apply (`create`, `send`, `commit`, `complete`, `purge`) cannot fail on a checked
//! change. Leases, queues and timers' due times are never logged: a restarted process owns
//! nothing, and everything unfinished is simply ready again.
//!
//! # Rules both stores share
//! - **Deliverable messages.** A message sent with a time (a timer, a scheduled start, a
//!   delayed send) waits in `delayed` until that time; the first call that sees the time come
//!   clears its `visible_at`, and from then on it is an ordinary deliverable message (a due
//!   timer that meets a leased instance is delivered once the lease is released). A message
//!   is in `delayed` exactly while its `visible_at` is set.
//! - **Status changes.** A turn changes an instance's status when the status it leaves
//!   differs from the one before (`InstanceStatus` equality; `status::update_status` is the
//!   rule). Only then are the status's watchers told, and the instance's status position
//!   ([`Lsn`]) moves: the file store's readers wait for that position to be durable.
//! - **Signals.** Every change says which workers it gave work to ([`Woken`]): orchestration
//!   workers after any change that may make an instance deliverable, activity workers when
//!   an attempt becomes ready (scheduled, or abandoned and queued again). The file store
//!   wakes activity workers after every write besides, as it always has.
//! - **Positions.** Every applied change carries the log position ([`Lsn`]) of the record
//!   that holds it; an activity attempt remembers the position of the turn that scheduled it,
//!   so the file store hands it out only once that turn is durable. The in-memory store has
//!   no log and passes 0 (durable at once).

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::time::SystemTime;

use foldhash::HashMap;
use tokio::sync::watch;

use super::paging::{self, Candidate};
use super::{
    ActivityLease, InstancePage, InstanceQuery, LeaseToken, MessageId, NewInstance, StatusCounts,
    StoreError, TurnCommit, WorkSignals,
};
use crate::history::{Event, HistoryEvent};
use crate::instance_id::InstanceId;

mod apply;
mod leases;
mod status;

pub(crate) use status::{LoggedStatus, NewStatus, Status};

/// JSON text kept as the runtime serialised it (a `String`, not a `Box<str>`: shrinking
/// every event to fit costs a `realloc` on the hot path).
pub(crate) type Raw = String;

/// Encodes a value as JSON text.
pub(crate) fn raw<T: serde::Serialize>(value: &T) -> Raw {
    serde_json::to_string(value).expect("store records always serialise")
}

/// Encodes a history event as JSON (the same text as [`raw`], written faster).
pub(crate) fn raw_event(event: &HistoryEvent) -> Raw {
    crate::history::json::to_string(event)
}

/// Decodes a history event the engine holds (what [`decode`] makes of it, read faster).
pub(crate) fn decode_event(raw: &str) -> Result<HistoryEvent, StoreError> {
    crate::history::json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The log position of the record holding a change: counted from 1 in this process; 0 for a
/// change that is durable already (recovered at open, or made by a store without a log).
pub(crate) type Lsn = u64;

/// How a store holds a history's events: the one thing the stores keep differently.
pub(crate) trait History {
    /// The events one turn appends, as the store holds them.
    type Turn;

    /// An empty history, begun by the change at `at` (a create, or a continue-as-new).
    fn begin(at: Lsn) -> Self;

    /// The number of events.
    fn event_count(&self) -> u64;

    /// Appends a turn's events.
    fn append_turn(&mut self, turn: Self::Turn);
}

/// A turn's events as the in-memory store holds them: their JSON back to back in one buffer,
/// and where each ends (one allocation a turn instead of one an event).
#[derive(Debug, Default)]
pub(crate) struct Texts {
    text: String,
    ends: Vec<usize>,
}

impl Texts {
    /// The JSON of `events`, in one buffer.
    pub(crate) fn of(events: &[HistoryEvent]) -> Self {
        let room = events.iter().map(crate::history::json::room_for).sum();
        let mut out = Vec::with_capacity(room);
        let mut ends = Vec::with_capacity(events.len());
        for event in events {
            crate::history::json::append(event, &mut out);
            ends.push(out.len());
        }
        Texts {
            // Every piece is UTF-8: literals, and what serde_json writes.
            text: String::from_utf8(out).expect("JSON is UTF-8"),
            ends,
        }
    }

    /// The number of events.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The JSON of every event, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.text[start..end])
    }
}

/// A history as the in-memory store holds it: its turns' [`Texts`], each kept as written
/// (appending a turn neither copies nor regrows a buffer).
#[derive(Debug, Default)]
pub(crate) struct TextHistory {
    turns: Vec<Texts>,
    len: usize,
}

impl TextHistory {
    /// The number of events.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The JSON of every event from the `from`th on, in order.
    pub(crate) fn events_from(&self, from: usize) -> impl Iterator<Item = &str> {
        let mut skip = from;
        let mut first = self.turns.len();
        for (i, turn) in self.turns.iter().enumerate() {
            if skip < turn.len() {
                first = i;
                break;
            }
            skip -= turn.len();
        }
        self.turns[first..].iter().flat_map(Texts::iter).skip(skip)
    }
}

impl History for TextHistory {
    type Turn = Texts;

    fn begin(_: Lsn) -> Self {
        TextHistory::default()
    }

    fn event_count(&self) -> u64 {
        self.len as u64
    }

    fn append_turn(&mut self, turn: Texts) {
        if turn.len() > 0 {
            self.len += turn.len();
            self.turns.push(turn);
        }
    }
}

/// The state machine; `H` holds each instance's history.
pub(crate) struct Engine<H> {
    next_token: LeaseToken,
    instances: HashMap<InstanceId, Instance<H>>,
    /// Unleased instances that may have deliverable messages.
    ready: VecDeque<InstanceId>,
    /// Messages not deliverable yet (timers, scheduled starts, delayed sends), by due time.
    delayed: BTreeSet<(SystemTime, InstanceId, MessageId)>,
    /// Instance leases, by expiry.
    leases: BTreeSet<(SystemTime, InstanceId)>,
    /// Activity attempts that may be ready, by instance and sequence number.
    activity_queue: VecDeque<(InstanceId, u64)>,
    /// Activity leases, by expiry.
    activity_leases: BTreeSet<(SystemTime, InstanceId, u64)>,
    watchers: HashMap<InstanceId, watch::Sender<u64>>,
    /// Work that fell due inside a call that hands out work (`promote_due`): the store
    /// signals it after that call, or a worker that read `next_wakeup` just before would
    /// sleep past it (found by the simulator).
    promoted: Woken,
    /// Watchers of the statuses changed since the store last took them: the store tells them
    /// when it may (the in-memory store at once, the file store once the change is durable).
    pub(crate) changed: Vec<watch::Sender<u64>>,
}

impl<H> Default for Engine<H> {
    fn default() -> Self {
        Engine {
            next_token: 0,
            instances: HashMap::default(),
            ready: VecDeque::new(),
            delayed: BTreeSet::new(),
            leases: BTreeSet::new(),
            activity_queue: VecDeque::new(),
            activity_leases: BTreeSet::new(),
            watchers: HashMap::default(),
            promoted: Woken::default(),
            changed: Vec::new(),
        }
    }
}

/// One instance: its status, history, inbox, lease and activity attempts.
pub(crate) struct Instance<H> {
    status: Status,
    /// The position of the change that last changed `status`.
    status_lsn: Lsn,
    history: H,
    inbox: Vec<Message>,
    next_message: MessageId,
    lease: Option<(LeaseToken, SystemTime)>,
    /// In `ready` already.
    queued: bool,
    attempts: HashMap<u64, Attempt>,
}

/// An event in an instance's inbox.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) id: MessageId,
    /// When it becomes deliverable; `None` once it is (see the module docs).
    pub(crate) visible_at: Option<SystemTime>,
    /// The timer it fires, for a `TimerFired`.
    pub(crate) timer: Option<u64>,
    pub(crate) event: Raw,
}

/// A scheduled activity attempt.
struct Attempt {
    task: Raw,
    /// The token of the last lease taken (0: none since it was scheduled or abandoned). Its
    /// holder may still complete the attempt after the lease expired, until another takes it.
    token: LeaseToken,
    /// When the current lease expires; `None` while nobody holds it.
    expires: Option<SystemTime>,
    /// The turn that scheduled it: handed out only once that is durable.
    lsn: Lsn,
}

impl<H> Instance<H> {
    /// What a client sees of it.
    pub(crate) fn status(&self) -> &Status {
        &self.status
    }

    /// The position of the change that last changed its status.
    pub(crate) fn status_lsn(&self) -> Lsn {
        self.status_lsn
    }

    pub(crate) fn history(&self) -> &H {
        &self.history
    }

    pub(crate) fn inbox(&self) -> &[Message] {
        &self.inbox
    }

    /// The id its next message gets.
    pub(crate) fn next_message(&self) -> MessageId {
        self.next_message
    }

    /// Its scheduled attempts not yet completed: sequence number and task.
    pub(crate) fn attempts(&self) -> impl ExactSizeIterator<Item = (u64, &str)> {
        self.attempts.iter().map(|(seq, a)| (*seq, &*a.task))
    }

    /// Appends a message to the inbox; returns its id.
    fn push(
        &mut self,
        event: Raw,
        visible_at: Option<SystemTime>,
        timer: Option<u64>,
    ) -> MessageId {
        let id = self.next_message;
        self.next_message += 1;
        self.inbox.push(Message {
            id,
            visible_at,
            timer,
            event,
        });
        id
    }

    fn deliverable(&self) -> bool {
        self.inbox.iter().any(|m| m.visible_at.is_none())
    }
}

/// An instance to create, checked by [`Engine::check_create`].
#[derive(Debug)]
pub(crate) struct Create {
    pub(crate) status: Status,
    /// The `ExecutionStarted` event.
    pub(crate) start: Raw,
    pub(crate) start_at: Option<SystemTime>,
    pub(crate) replace_finished: bool,
}

/// A turn, checked by [`Engine::check_commit`]; `T` holds its history events.
#[derive(Debug)]
pub(crate) struct Commit<T> {
    pub(crate) id: InstanceId,
    pub(crate) history: T,
    pub(crate) replace_history: bool,
    pub(crate) consumed: Vec<MessageId>,
    /// The attempts whose results this turn delivers.
    pub(crate) completed: Vec<u64>,
    /// Attempts to schedule: sequence number and task.
    pub(crate) activities: Vec<(u64, Raw)>,
    /// Timers to start: id and due time.
    pub(crate) timers: Vec<(u64, SystemTime)>,
    pub(crate) cancelled: Vec<u64>,
    pub(crate) subs: Vec<Create>,
    /// Events for other instances: receiver and event.
    pub(crate) messages: Vec<(InstanceId, Raw)>,
    pub(crate) status: NewStatus,
}

/// What a turn's commit is fenced by, checked by [`Engine::check_commit`].
#[derive(Debug)]
pub(crate) struct Fence {
    pub(crate) lease: LeaseToken,
    pub(crate) expected_history_len: u64,
    /// The leases of the attempts whose results the turn delivers.
    pub(crate) completed: Vec<ActivityLease>,
}

impl Create {
    /// `new` with its start event serialized.
    pub(crate) fn new(new: NewInstance) -> Self {
        Create {
            start: raw_event(&new.start),
            status: Status::Decoded(new.status),
            start_at: new.start_at,
            replace_finished: new.replace_finished,
        }
    }
}

impl Commit<Vec<Raw>> {
    /// A turn's fence, and its events, work and messages serialized (callers do it outside
    /// their lock: it is most of a commit's work), its status left as the runtime's update.
    pub(crate) fn from_turn(turn: TurnCommit) -> (Fence, Self) {
        Commit::from_turn_with(turn, |events| events.iter().map(raw_event).collect())
    }
}

impl<T> Commit<T> {
    /// [`Commit::from_turn`], the turn's events written by `write_events`.
    pub(crate) fn from_turn_with(
        turn: TurnCommit,
        write_events: impl FnOnce(&[HistoryEvent]) -> T,
    ) -> (Fence, Self) {
        let turn_started = turn.history.iter().find_map(|e| match e.event {
            Event::OrchestratorStarted { timestamp } => Some(timestamp),
            _ => None,
        });
        let commit = Commit {
            history: write_events(&turn.history),
            replace_history: turn.replace_history,
            consumed: turn.consumed,
            completed: turn.completed_activities.iter().map(|l| l.id).collect(),
            activities: turn
                .activities
                .iter()
                .map(|t| (t.id, super::json::task_to_string(t)))
                .collect(),
            timers: turn.timers.iter().map(|t| (t.id, t.fire_at)).collect(),
            cancelled: turn.cancelled_timers,
            subs: turn.sub_instances.into_iter().map(Create::new).collect(),
            messages: turn
                .messages
                .into_iter()
                .map(|m| (m.instance_id, raw_event(&m.event)))
                .collect(),
            status: NewStatus::Update {
                update: turn.status,
                turn_started,
            },
            id: turn.instance_id,
        };
        let fence = Fence {
            lease: turn.lease,
            expected_history_len: turn.expected_history_len,
            completed: turn.completed_activities,
        };
        (fence, commit)
    }
}

impl<T> Commit<T> {
    /// The same turn with its history events held as `f` makes them.
    pub(crate) fn map_history<U>(self, f: impl FnOnce(T) -> U) -> Commit<U> {
        let Ok(commit) = self.try_map_history(|h| Ok::<_, std::convert::Infallible>(f(h)));
        commit
    }

    /// The same turn with its history events held as `f` makes them, unless it fails.
    pub(crate) fn try_map_history<U, E>(
        self,
        f: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<Commit<U>, E> {
        Ok(Commit {
            history: f(self.history)?,
            id: self.id,
            replace_history: self.replace_history,
            consumed: self.consumed,
            completed: self.completed,
            activities: self.activities,
            timers: self.timers,
            cancelled: self.cancelled,
            subs: self.subs,
            messages: self.messages,
            status: self.status,
        })
    }
}

/// An instance as a checkpoint restores it.
#[derive(Debug)]
pub(crate) struct Image<T> {
    pub(crate) status: Status,
    pub(crate) history: T,
    pub(crate) inbox: Vec<Message>,
    pub(crate) next_message: MessageId,
    /// Its scheduled attempts: sequence number and task.
    pub(crate) attempts: Vec<(u64, Raw)>,
}

impl<T> Image<T> {
    /// The same image with its history held as `f` makes it, unless it fails.
    pub(crate) fn try_map_history<U, E>(
        self,
        f: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<Image<U>, E> {
        Ok(Image {
            history: f(self.history)?,
            status: self.status,
            inbox: self.inbox,
            next_message: self.next_message,
            attempts: self.attempts,
        })
    }
}

/// Which workers a change gave work to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[must_use = "a store signals the workers a change woke"]
pub(crate) struct Woken {
    /// An instance may have become deliverable.
    pub(crate) orchestrations: bool,
    /// An activity attempt became ready.
    pub(crate) activities: bool,
}

impl Woken {
    pub(crate) const ORCHESTRATIONS: Woken = Woken {
        orchestrations: true,
        activities: false,
    };

    /// Wakes the workers that have new work.
    pub(crate) fn signal(self, signals: &WorkSignals) {
        if self.orchestrations {
            signals.orchestrations.notify_waiters();
        }
        if self.activities {
            signals.activities.notify_waiters();
        }
    }
}

impl<H: History> Engine<H> {
    /// The instance `id`, or `NotFound`.
    pub(crate) fn instance(&self, id: &InstanceId) -> Result<&Instance<H>, StoreError> {
        self.instances
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    /// The instance `id`, if it exists.
    pub(crate) fn get(&self, id: &InstanceId) -> Option<&Instance<H>> {
        self.instances.get(id)
    }

    /// Every instance, in no order.
    pub(crate) fn instances(&self) -> impl ExactSizeIterator<Item = (&InstanceId, &Instance<H>)> {
        self.instances.iter()
    }

    /// The history of `id`, for the store to change where its events are.
    pub(crate) fn history_mut(&mut self, id: &InstanceId) -> Option<&mut H> {
        self.instances.get_mut(id).map(|i| &mut i.history)
    }

    /// Every instance as `list` and `count` see it.
    fn candidates(&self) -> impl Iterator<Item = Candidate<'_, &Status>> {
        self.instances.iter().map(|(id, i)| Candidate {
            created_at: i.status.created_at(),
            id,
            status: i.status.runtime_status(),
            name: i.status.name(),
            record: &i.status,
        })
    }

    /// How many instances match `query`, per status.
    pub(crate) fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError> {
        paging::count(query, self.candidates(), |s| s.custom_status_json())
    }

    /// A page of instances matching `query`.
    pub(crate) fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let (statuses, continuation) =
            paging::page(query, self.candidates(), |s| s.custom_status_json())?;
        let instances = statuses
            .into_iter()
            .map(|s| s.get().map(Cow::into_owned))
            .collect::<Result<_, _>>()?;
        Ok(InstancePage {
            instances,
            continuation,
        })
    }

    /// A receiver that changes whenever the status of `id` does.
    pub(crate) fn watch(&mut self, id: &InstanceId) -> watch::Receiver<u64> {
        self.watchers
            .entry(id.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn notify_status(&mut self, id: &InstanceId) {
        if let Some(sender) = self.watchers.get(id) {
            if sender.receiver_count() == 0 {
                self.watchers.remove(id);
            } else {
                self.changed.push(sender.clone());
            }
        }
    }

    /// Tells the watchers of every status changed since the last call.
    pub(crate) fn tell_watchers(&mut self) {
        for sender in self.changed.drain(..) {
            sender.send_modify(|revision| *revision += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;
    use crate::history::AttemptTimes;

    fn turn(n: u64) -> Vec<HistoryEvent> {
        let at = UNIX_EPOCH + Duration::from_secs(n);
        let mut completed = HistoryEvent::new(Event::TaskCompleted {
            id: n,
            output: json!({"n": n, "s": "é\"x"}),
        });
        completed.attempt = Some(AttemptTimes {
            started_at: at,
            ended_at: at,
        });
        vec![
            HistoryEvent::new(Event::OrchestratorStarted { timestamp: at }),
            completed,
            HistoryEvent::new(Event::TaskScheduled {
                id: n + 1,
                name: "noop".into(),
                input: json!(n),
                attempt: 1,
            }),
        ]
    }

    /// Turns appended to a history read back event by event, each the text `raw_event`
    /// makes, whatever the turn it came in and wherever the reading starts.
    #[test]
    fn a_history_of_turns_reads_back_event_by_event() {
        let mut history = TextHistory::begin(0);
        let mut events = Vec::new();
        for n in 0..3 {
            let turn = turn(n);
            history.append_turn(Texts::of(&turn));
            history.append_turn(Texts::of(&[]));
            events.extend(turn);
            assert_eq!(history.event_count(), events.len() as u64);
        }
        let expected: Vec<String> = events.iter().map(raw_event).collect();
        for from in 0..=events.len() + 1 {
            let texts: Vec<&str> = history.events_from(from).collect();
            assert_eq!(texts, expected[from.min(events.len())..], "from {from}");
        }
        for (text, event) in history.events_from(0).zip(&events) {
            assert_eq!(decode_event(text).unwrap(), *event);
        }
    }
}
