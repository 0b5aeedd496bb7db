//! The history: the typed events an orchestration is replayed from, and their format.
//!
//! What a client reads ([`Client::history`](crate::Client::history)), what a failure records
//! ([`Failure`] and its [`kinds`]), the [`stable_hash`] of inputs that replay compares, and
//! the [`ExportedHistory`] that the replay checker reads.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::instance_id::InstanceId;

/// The version of the history format this release writes. Every stored event carries the
/// version it was written with, so later releases can read older histories.
///
/// Optional fields join a version without bumping it, as long as older histories, which
/// lack them, still read and replay: [`HistoryEvent::attempt`] (an activity attempt's
/// `started_at` and `ended_at`) is one, [`HistoryEvent::span`] (the orchestration span's ids
/// and start) another. A change of replay semantics bumps it:
///
/// - **2**: which wait receives a raised event. An event stays buffered until a wait for
///   its name is polled and returns it; a dropped wait takes nothing (see [`crate::future`]).
///   Under format 1 an event went at once to the oldest open wait, and was lost if that
///   wait was then dropped.
/// - **1**: the first format.
///
/// A generation follows the rules of the format its [`Event::ExecutionStarted`] was
/// written in, to its end: an instance started under format 1 replays, and runs on, as it
/// ran; its next generation (after continue-as-new) takes the current rules.
pub const FORMAT_VERSION: u32 = 2;

/// One entry of an instance's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// The history format version this event was written with.
    #[serde(rename = "v")]
    pub format_version: u32,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// When the activity attempt this event reports ran: set on [`Event::TaskCompleted`] and
    /// [`Event::TaskFailed`] by the worker that ran it, `None` on other events and in
    /// histories written before it was recorded. Written beside the event's own fields
    /// (`"started_at"`, `"ended_at"`); replay ignores it.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<AttemptTimes>,
    /// The instance's orchestration span, which every turn, replay and process continues:
    /// set on [`Event::ExecutionStarted`] when tracing is on (`trace_id`, `span_id`,
    /// `parent_span_id`, `span_started_at`, written beside the event's own fields); on the
    /// [`Event::OrchestratorStarted`] of its first turn traced for a history started
    /// without one. Replay ignores it.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub span: Option<SpanRecord>,
}

impl HistoryEvent {
    /// Wraps `event` in the current format version.
    pub fn new(event: Event) -> Self {
        HistoryEvent {
            format_version: FORMAT_VERSION,
            event,
            attempt: None,
            span: None,
        }
    }
}

/// An orchestration span as its history records it: W3C trace context ids (the hex digits
/// of OpenTelemetry's `TraceId` and `SpanId`) and the time the span starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// The trace: the caller's at `client.start(..)`, the parent orchestration's for a
    /// sub-orchestration, a new one otherwise.
    #[serde(with = "hex_id")]
    pub trace_id: u128,
    /// The orchestration span's own id.
    #[serde(with = "hex_id")]
    pub span_id: u64,
    /// The span it is a child of: the caller's current span, or the parent orchestration's.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "hex_id::option"
    )]
    pub parent_span_id: Option<u64>,
    /// When the span starts: the start's time, or the first traced turn's.
    #[serde(rename = "span_started_at", with = "humantime_serde")]
    pub started_at: SystemTime,
}

/// The span an activity attempt's span is a child of, as its task carries it: the
/// orchestration span's trace and span ids ([`SpanRecord::trace_id`],
/// [`SpanRecord::span_id`]), so that an attempt in any process knows its parent without
/// reading the history. Written `{"trace_id": "...", "span_id": "..."}`; one that cannot be
/// read is no parent (the attempt then reads it from the history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanParent {
    /// The trace.
    #[serde(with = "hex_id")]
    pub trace_id: u128,
    /// The orchestration span.
    #[serde(with = "hex_id")]
    pub span_id: u64,
}

impl SpanParent {
    /// Reads an optional parent leniently: a damaged one is none (see [`SpanParent`]).
    pub(crate) fn read_lenient<'de, D>(d: D) -> Result<Option<SpanParent>, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            trace_id: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            span_id: std::borrow::Cow<'a, str>,
        }
        type Lenient = serde::de::value::Error;
        Ok(Option::<Raw>::deserialize(d)?.and_then(|raw| {
            Some(SpanParent {
                trace_id: hex_id::parse::<_, Lenient>(&raw.trace_id).ok()?,
                span_id: hex_id::parse::<_, Lenient>(&raw.span_id).ok()?,
            })
        }))
    }
}

/// Ids written as lowercase hex digits, as W3C trace context writes them (32 for a trace, 16
/// for a span); zero is no id and fails to read.
mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) trait Id: Sized + Copy {
        const DIGITS: usize;
        fn to_hex(self) -> String;
        fn from_hex(text: &str) -> Option<Self>;
    }

    impl Id for u128 {
        const DIGITS: usize = 32;
        fn to_hex(self) -> String {
            format!("{self:032x}")
        }
        fn from_hex(text: &str) -> Option<Self> {
            u128::from_str_radix(text, 16).ok()
        }
    }

    impl Id for u64 {
        const DIGITS: usize = 16;
        fn to_hex(self) -> String {
            format!("{self:016x}")
        }
        fn from_hex(text: &str) -> Option<Self> {
            u64::from_str_radix(text, 16).ok()
        }
    }

    pub(super) fn parse<T: Id + PartialEq + Default, E: serde::de::Error>(
        text: &str,
    ) -> Result<T, E> {
        let valid =
            text.len() == T::DIGITS && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match T::from_hex(text).filter(|id| valid && *id != T::default()) {
            Some(id) => Ok(id),
            None => Err(E::custom(format!(
                "`{text}` is not a span or trace id ({} lowercase hex digits, not all zero)",
                T::DIGITS
            ))),
        }
    }

    pub(super) fn serialize<T: Id, S: Serializer>(id: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: Id + PartialEq + Default,
        D: Deserializer<'de>,
    {
        parse(&String::deserialize(d)?)
    }

    pub(super) mod option {
        use super::*;

        pub(crate) fn serialize<T: Id, S: Serializer>(
            id: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => super::serialize(id, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
        where
            T: Id + PartialEq + Default,
            D: Deserializer<'de>,
        {
            match Option::<String>::deserialize(d)? {
                Some(text) => parse(&text).map(Some),
                None => Ok(None),
            }
        }
    }
}

/// An instance's history as [`Client::export_history`](crate::Client::export_history) writes
/// it and [`ReplayChecker`](crate::testing::ReplayChecker) reads it: the events and whose
/// they are, `{"instance_id": "order-1", "history": [...]}`.
///
/// The id matters to replay: code that reads `ctx.instance_id()` (in an activity's input, a
/// child's id) issues commands that depend on it. A bare array of events, as written before
/// the id was carried, still reads, with no id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedHistory {
    /// The instance the history belongs to; `None` when read from a bare array.
    pub instance_id: Option<InstanceId>,
    /// Its events, oldest first.
    pub history: Vec<HistoryEvent>,
}

impl ExportedHistory {
    /// Reads an export: an object with `instance_id` and `history`, or a bare array of
    /// events.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        if json.trim_start().starts_with('[') {
            let history = serde_json::from_str(json)?;
            return Ok(ExportedHistory {
                instance_id: None,
                history,
            });
        }
        serde_json::from_str(json)
    }
}

/// When an activity attempt started and ended, by the runtime's clock: what shows how long
/// each attempt ran and how long the back-off between two attempts was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptTimes {
    /// When the worker began running the attempt.
    #[serde(with = "timestamp")]
    pub started_at: SystemTime,
    /// When it returned, failed, panicked or timed out.
    #[serde(with = "timestamp")]
    pub ended_at: SystemTime,
}

/// What happened to an orchestration instance.
///
/// A history is a series of turns. Each turn opens with [`Event::OrchestratorStarted`], lists
/// the events delivered in that turn (a start, activity results, fired timers, raised events),
/// then the commands the code issued in it (activities and timers scheduled, event waits, the
/// completion). Replay feeds the same turns in the same batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum Event {
    /// A turn began; its timestamp is what `ctx.now()` returns during the turn.
    OrchestratorStarted {
        /// When the turn ran.
        #[serde(with = "timestamp")]
        timestamp: SystemTime,
    },
    /// The instance was started.
    ExecutionStarted {
        /// The orchestrator's durable name.
        name: String,
        /// The orchestrator's version.
        version: u32,
        /// The input, as JSON.
        input: Value,
        /// Seed of `ctx.random()` and `ctx.new_uuid()`.
        seed: u64,
        /// The orchestration that called this one, for a sub-orchestration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentRef>,
        /// How many times the instance continued as new before this generation.
        #[serde(default, skip_serializing_if = "is_zero")]
        generation: u64,
        /// How many generations in a row continued as new in their first turn, awaiting
        /// nothing: the guard against a tight loop of restarts.
        #[serde(default, skip_serializing_if = "is_zero")]
        eager_restarts: u64,
    },
    /// An activity was scheduled (a command).
    TaskScheduled {
        /// Sequence number of the command.
        id: u64,
        /// The activity's durable name.
        name: String,
        /// Its input, as JSON.
        input: Value,
        /// Which attempt this is, from 1.
        attempt: u32,
    },
    /// A sub-orchestration was started (a command).
    SubOrchestrationCreated {
        /// Sequence number of the command.
        id: u64,
        /// The child orchestrator's durable name.
        name: String,
        /// Its version.
        version: u32,
        /// The child instance's id.
        instance_id: InstanceId,
        /// Its input, as JSON.
        input: Value,
    },
    /// A sub-orchestration completed.
    SubOrchestrationCompleted {
        /// Sequence number of the `SubOrchestrationCreated` it answers.
        id: u64,
        /// The parent's generation that called it (results for an earlier generation, from
        /// before a continue-as-new, are ignored).
        #[serde(default, skip_serializing_if = "is_zero")]
        generation: u64,
        /// Its output, as JSON.
        output: Value,
    },
    /// A sub-orchestration failed (or was terminated).
    SubOrchestrationFailed {
        /// Sequence number of the `SubOrchestrationCreated` it answers.
        id: u64,
        /// The parent's generation that called it.
        #[serde(default, skip_serializing_if = "is_zero")]
        generation: u64,
        /// Why.
        failure: Failure,
    },
    /// A client terminated the instance.
    ExecutionTerminated {
        /// The output recorded for the instance.
        output: Value,
        /// Whether running sub-orchestrations are terminated too.
        recursive: bool,
    },
    /// A client suspended the instance: new events are held until it resumes.
    ExecutionSuspended {
        /// Why, if the client said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A client resumed the instance.
    ExecutionResumed {
        /// Why, if the client said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The code took the new branch of `ctx.patched(name)` (a command).
    PatchApplied {
        /// The patch's name.
        name: String,
    },
    /// An activity returned `Ok`.
    TaskCompleted {
        /// Sequence number of the `TaskScheduled` it answers.
        id: u64,
        /// The output, as JSON.
        output: Value,
    },
    /// An activity attempt failed.
    TaskFailed {
        /// Sequence number of the `TaskScheduled` it answers.
        id: u64,
        /// Why.
        failure: Failure,
    },
    /// A durable timer was created (a command).
    TimerCreated {
        /// Sequence number of the command.
        id: u64,
        /// When it fires.
        #[serde(with = "timestamp")]
        fire_at: SystemTime,
    },
    /// A durable timer fired.
    TimerFired {
        /// Sequence number of the `TimerCreated` it answers.
        id: u64,
        /// When it was due.
        #[serde(with = "timestamp")]
        fire_at: SystemTime,
    },
    /// The code began waiting for an external event (a command).
    EventWaitStarted {
        /// Sequence number of the command.
        id: u64,
        /// The event's name.
        name: String,
    },
    /// An external event arrived.
    EventRaised {
        /// The event's name.
        name: String,
        /// Its data, as JSON.
        data: Value,
    },
    /// The orchestration finished (a command).
    ExecutionCompleted {
        /// `Completed` or `Failed`.
        status: CompletionStatus,
        /// The output, as JSON, when completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// Why it failed, when failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
    },
}

impl Event {
    /// The event's kind, as written in the history (`"TaskScheduled"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Event::OrchestratorStarted { .. } => "OrchestratorStarted",
            Event::ExecutionStarted { .. } => "ExecutionStarted",
            Event::TaskScheduled { .. } => "TaskScheduled",
            Event::TaskCompleted { .. } => "TaskCompleted",
            Event::TaskFailed { .. } => "TaskFailed",
            Event::TimerCreated { .. } => "TimerCreated",
            Event::TimerFired { .. } => "TimerFired",
            Event::EventWaitStarted { .. } => "EventWaitStarted",
            Event::EventRaised { .. } => "EventRaised",
            Event::ExecutionCompleted { .. } => "ExecutionCompleted",
            Event::SubOrchestrationCreated { .. } => "SubOrchestrationCreated",
            Event::SubOrchestrationCompleted { .. } => "SubOrchestrationCompleted",
            Event::SubOrchestrationFailed { .. } => "SubOrchestrationFailed",
            Event::ExecutionTerminated { .. } => "ExecutionTerminated",
            Event::ExecutionSuspended { .. } => "ExecutionSuspended",
            Event::ExecutionResumed { .. } => "ExecutionResumed",
            Event::PatchApplied { .. } => "PatchApplied",
        }
    }

    /// Whether this event is a command the code issued (matched on replay), rather than an
    /// event delivered to it.
    pub fn is_command(&self) -> bool {
        matches!(
            self,
            Event::TaskScheduled { .. }
                | Event::TimerCreated { .. }
                | Event::EventWaitStarted { .. }
                | Event::SubOrchestrationCreated { .. }
                | Event::PatchApplied { .. }
                | Event::ExecutionCompleted { .. }
        )
    }
}

/// How an orchestration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompletionStatus {
    /// It returned `Ok`.
    Completed,
    /// It returned `Err`, panicked, or broke determinism.
    Failed,
    /// A client terminated it.
    Terminated,
}

/// The caller of a sub-orchestration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// The calling instance.
    pub instance_id: InstanceId,
    /// The sequence number of its `SubOrchestrationCreated` event.
    pub id: u64,
    /// The parent's generation (see continue-as-new) that made the call.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub(crate) mod json;

/// Times as RFC 3339 text (UTC, nanoseconds only when not zero): exactly what
/// `humantime_serde` writes and reads, written without its formatting machinery and
/// intermediate `String` (a history event's timestamps were a twelfth of a turn's work).
pub(crate) mod timestamp {
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::{Deserializer, Serializer};

    /// The first second of year 10000: RFC 3339 has four digits for the year.
    const END: u64 = 253_402_300_800;

    /// Writes `time` as `humantime::format_rfc3339` does into `buf`; `None` out of its range
    /// (before 1970, after 9999), where humantime's own formatting decides.
    pub(crate) fn format(time: SystemTime, buf: &mut [u8; 30]) -> Option<usize> {
        let since = time.duration_since(UNIX_EPOCH).ok()?;
        let secs = since.as_secs();
        if secs >= END {
            return None;
        }
        let nanos = since.subsec_nanos();
        let (year, month, day) = civil(secs / 86_400);
        let second = secs % 86_400;
        *buf = *b"0000-00-00T00:00:00.000000000Z";
        // Two digits at a time, from a table: a time is written for every event and status.
        let pair = |buf: &mut [u8; 30], at: usize, v: u64| {
            let v = (v % 100) as usize * 2;
            buf[at] = PAIRS[v];
            buf[at + 1] = PAIRS[v + 1];
        };
        pair(buf, 0, year / 100);
        pair(buf, 2, year);
        pair(buf, 5, month);
        pair(buf, 8, day);
        pair(buf, 11, second / 3_600);
        pair(buf, 14, second / 60 % 60);
        pair(buf, 17, second % 60);
        if nanos == 0 {
            buf[19] = b'Z';
            return Some(20);
        }
        let nanos = u64::from(nanos);
        buf[20] = b'0' + (nanos / 100_000_000) as u8;
        pair(buf, 21, nanos / 1_000_000);
        pair(buf, 23, nanos / 10_000);
        pair(buf, 25, nanos / 100);
        pair(buf, 27, nanos);
        Some(30)
    }

    /// "00", "01", … "99".
    const PAIRS: [u8; 200] = {
        let mut pairs = [0; 200];
        let mut i = 0;
        while i < 100 {
            pairs[2 * i] = b'0' + (i / 10) as u8;
            pairs[2 * i + 1] = b'0' + (i % 10) as u8;
            i += 1;
        }
        pairs
    };

    /// The civil date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
    fn civil(days: u64) -> (u64, u64, u64) {
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        (year, month, day)
    }

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; 30];
        match format(*time, &mut buf) {
            // ASCII digits and punctuation.
            Some(n) => s.serialize_str(std::str::from_utf8(&buf[..n]).expect("ASCII")),
            None => humantime_serde::serialize(time, s),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        humantime_serde::deserialize(d)
    }
}

/// Why an activity attempt or an orchestration failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The kind of error: the Rust type of the error, or a runtime category such as
    /// `panic` or `nondeterminism`.
    pub kind: String,
    /// The error's message.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            kind: kind.into(),
            message: message.into(),
        }
    }

    pub(crate) fn from_error<E: fmt::Display>(error: &E) -> Self {
        Failure::new(short_type_name::<E>(), error.to_string())
    }

    pub(crate) fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".to_string());
        Failure::new(kinds::PANIC, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The `kind`s the runtime itself gives failures.
pub mod kinds {
    /// User code panicked.
    pub const PANIC: &str = "panic";
    /// Replayed code issued other commands than the history recorded.
    pub const NONDETERMINISM: &str = "nondeterminism";
    /// A payload did not deserialise into the type the code expects.
    pub const BAD_PAYLOAD: &str = "bad_payload";
    /// No activity or orchestrator is registered under the name.
    pub const NOT_REGISTERED: &str = "not_registered";
    /// An activity ran longer than its start-to-close timeout.
    pub const TIMEOUT: &str = "timeout";
    /// The orchestration awaited something that is not a durable operation.
    pub const NOT_DURABLE: &str = "not_durable";
    /// A client terminated the orchestration (as a sub-orchestration's failure).
    pub const TERMINATED: &str = "terminated";
    /// The orchestration continued as new too many times in a row without awaiting anything.
    pub const RESTART_LOOP: &str = "restart_loop";
    /// A payload the code produced is over the runtime's payload limits (see
    /// [`limits`](crate::limits)).
    pub const PAYLOAD_LIMIT: &str = "payload_limit";
    /// A stored record of the instance cannot be read (written before the payload limits
    /// existed, or damaged).
    pub const UNREADABLE: &str = "unreadable";
    /// The orchestration asked for a timer at a time no store can hold (see
    /// [`TimeOutOfRange`](crate::TimeOutOfRange)).
    pub const TIME_OUT_OF_RANGE: &str = "time_out_of_range";
    /// The runtime itself panicked while running a turn of the instance (a bug in durable
    /// or in a store): the instance fails rather than being retried forever.
    pub const RUNTIME_PANIC: &str = "runtime_panic";
    /// A turn wrote more than the store holds in one write (the file store: 4 GiB, e.g. very
    /// many large activity inputs scheduled at once); nothing of it was written.
    pub const TOO_LARGE: &str = "too_large";
}

fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    // `alloc::string::String` → `String`; keep generic arguments readable too.
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    format!("{short}{}", &full[base.len()..])
}

/// FNV-1a (64 bit) over the canonical JSON of `value`: object keys sorted by their bytes, no
/// whitespace. Stable across processes, platforms and releases, unlike `std`'s `DefaultHasher`,
/// and whatever order a map keeps its keys in: the hasher sorts them itself, so a build with
/// serde_json's `preserve_order` feature hashes as the default build does.
pub fn stable_hash(value: &Value) -> u64 {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    write_canonical(&mut hasher, value);
    hasher.0
}

/// The seed of an instance `id` started at `now`: [`stable_hash`] of
/// `json!([id, now])`, hashed from the same bytes without building the value (every start
/// makes one).
pub(crate) fn start_seed(id: &str, now: SystemTime) -> u64 {
    let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
        // What `json!` does with a time before the epoch (it refuses it), as it always did.
        return stable_hash(&serde_json::json!([id, now]));
    };
    // `SystemTime` serialises as `{"secs_since_epoch":…,"nanos_since_epoch":…}`; the
    // canonical form sorts the keys.
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    hasher.bytes(b"[");
    write_leaf(&mut hasher, id);
    hasher.bytes(b",{\"nanos_since_epoch\":");
    write_leaf(&mut hasher, &since.subsec_nanos());
    hasher.bytes(b",\"secs_since_epoch\":");
    write_leaf(&mut hasher, &since.as_secs());
    hasher.bytes(b"}]");
    hasher.0
}

/// Writes `value` as serde_json's compact writer does for sorted maps (its default), which is
/// what every recorded hash was computed over.
fn write_canonical(out: &mut Fnv1a, value: &Value) {
    match value {
        Value::Array(items) => {
            out.bytes(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.bytes(b",");
                }
                write_canonical(out, item);
            }
            out.bytes(b"]");
        }
        // Sorted already in the default build; sorted here under `preserve_order`.
        Value::Object(map) if map.keys().is_sorted() => write_object(out, map.iter()),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write_object(out, entries.into_iter());
        }
        leaf => write_leaf(out, leaf),
    }
}

fn write_object<'a>(out: &mut Fnv1a, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    out.bytes(b"{");
    for (i, (key, item)) in entries.enumerate() {
        if i > 0 {
            out.bytes(b",");
        }
        write_leaf(out, key);
        out.bytes(b":");
        write_canonical(out, item);
    }
    out.bytes(b"}");
}

/// A string, number, boolean or null, escaped and formatted by serde_json itself.
fn write_leaf(out: &mut Fnv1a, leaf: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, leaf).expect("a JSON scalar always serialises into a hasher");
}

/// The FNV-1a state, fed as a writer.
struct Fnv1a(u64);

impl Fnv1a {
    fn bytes(&mut self, bytes: &[u8]) {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(PRIME);
        }
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn timestamps_are_written_as_humantime_writes_them() {
        use std::time::{Duration, UNIX_EPOCH};

        use humantime_serde::re::humantime::format_rfc3339;

        let end = 253_402_300_800u64;
        let mut times: Vec<(u64, u32)> = vec![
            (0, 0),
            (0, 1),
            (951_782_400, 0),       // 2000-02-29
            (4_107_542_400, 5),     // 2100-02-28
            (4_107_628_800, 0),     // 2100-03-01
            (end - 1, 999_999_999), // 9999-12-31T23:59:59.999999999
            (1_700_000_000, 123_000_000),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let nanos = if x.is_multiple_of(3) {
                0
            } else {
                (x >> 7) as u32 % 1_000_000_000
            };
            times.push((x % end, nanos));
        }
        for (secs, nanos) in times {
            let time = UNIX_EPOCH + Duration::new(secs, nanos);
            let mut buf = [0; 30];
            let n = super::timestamp::format(time, &mut buf).unwrap();
            assert_eq!(
                std::str::from_utf8(&buf[..n]).unwrap(),
                format_rfc3339(time).to_string(),
                "{secs}.{nanos:09}"
            );
        }
        let out_of_range = UNIX_EPOCH + Duration::from_secs(end);
        assert_eq!(super::timestamp::format(out_of_range, &mut [0; 30]), None);
    }
    use super::*;

    #[test]
    fn start_seed_is_the_stable_hash_of_the_id_and_time() {
        use std::time::{Duration, UNIX_EPOCH};
        for id in [
            "a",
            "order-\"1\"\\é\u{2028}",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            for at in [
                UNIX_EPOCH,
                UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
                UNIX_EPOCH + Duration::new(u64::from(u32::MAX) * 4, 999_999_999),
            ] {
                assert_eq!(
                    start_seed(id, at),
                    stable_hash(&serde_json::json!([id, at])),
                    "{id} {at:?}"
                );
            }
        }
    }

    #[test]
    fn stable_hash_is_serde_jsons_compact_output_over_sorted_keys() {
        // The pins are in `tests/stable_hash.rs`. Keys are written sorted here, so that
        // serde_json writes them in that order whether or not it preserves insertion order.
        for text in [
            r#"{"a":[true,"x",null,-1,2.5,{"b":[],"c":{}}],"b":"\u0000\"é"}"#,
            r#"[]"#,
            r#""""#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let mut expected = Fnv1a(0xcbf2_9ce4_8422_2325);
            expected.bytes(&serde_json::to_vec(&value).unwrap());
            assert_eq!(stable_hash(&value), expected.0, "{text}");
        }
    }

    #[test]
    fn events_round_trip_with_their_format_version() {
        let event = HistoryEvent::new(Event::TaskScheduled {
            id: 3,
            name: "charge".into(),
            input: serde_json::json!({"amount": 5}),
            attempt: 2,
        });
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.starts_with(r#"{"v":2,"kind":"TaskScheduled""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<HistoryEvent>(&json).unwrap(), event);
    }

    #[test]
    fn attempt_times_are_optional_and_written_beside_the_event() {
        let old =
            r#"{"v":1,"kind":"TaskFailed","id":4,"failure":{"kind":"String","message":"no"}}"#;
        let read: HistoryEvent = serde_json::from_str(old).unwrap();
        assert_eq!(read.attempt, None);
        assert_eq!(serde_json::to_string(&read).unwrap(), old);

        let at = |ms| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        let mut event = HistoryEvent::new(Event::TaskCompleted {
            id: 4,
            output: serde_json::json!("ok"),
        });
        event.attempt = Some(AttemptTimes {
            started_at: at(1_700_000_000_250),
            ended_at: at(1_700_000_001_500),
        });
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"v":2,"kind":"TaskCompleted","id":4,"output":"ok","started_at":"2023-11-14T22:13:20.250000000Z","ended_at":"2023-11-14T22:13:21.500000000Z"}"#
        );
        assert_eq!(serde_json::from_str::<HistoryEvent>(&json).unwrap(), event);

        // Half of the pair is not a pair: the event still reads, without times.
        let half = r#"{"v":1,"kind":"TaskCompleted","id":4,"output":1,"started_at":"2023-11-14T22:13:20Z"}"#;
        assert_eq!(
            serde_json::from_str::<HistoryEvent>(half).unwrap().attempt,
            None
        );
    }

    #[test]
    fn span_records_are_optional_and_written_beside_the_start() {
        let old =
            r#"{"v":1,"kind":"ExecutionStarted","name":"order","version":1,"input":null,"seed":7}"#;
        let read: HistoryEvent = serde_json::from_str(old).unwrap();
        assert_eq!(read.span, None);
        assert_eq!(serde_json::to_string(&read).unwrap(), old);

        let mut event = read.clone();
        event.span = Some(SpanRecord {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
            parent_span_id: Some(1),
            started_at: SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(1_700_000_000_250),
        });
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"kind":"ExecutionStarted","name":"order","version":1,"input":null,"seed":7,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","parent_span_id":"0000000000000001","span_started_at":"2023-11-14T22:13:20.250000000Z"}"#
        );
        assert_eq!(serde_json::from_str::<HistoryEvent>(&json).unwrap(), event);

        // A damaged record is no record: the start still reads, and the instance is traced
        // from its next turn on.
        for bad in [
            json.replace(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "4BF92F3577B34DA6A3CE929D0E0E4736",
            ),
            json.replace(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00000000000000000000000000000000",
            ),
            json.replace("00f067aa0ba902b7", "f067aa0ba902b7"),
            json.replace("00f067aa0ba902b7", "+0f067aa0ba902b7"),
            json.replace("0000000000000001", &"9".repeat(10_000)),
            json.replace(
                r#""span_started_at":"2023-11-14T22:13:20.250000000Z""#,
                r#""span_started_at":7"#,
            ),
        ] {
            let read: HistoryEvent = serde_json::from_str(&bad).unwrap();
            assert_eq!(read.span, None, "{bad}");
            assert_eq!(read.event, event.event);
        }
    }

    #[test]
    fn type_names_are_short() {
        assert_eq!(short_type_name::<String>(), "String");
        assert_eq!(short_type_name::<std::io::Error>(), "Error");
    }
}
