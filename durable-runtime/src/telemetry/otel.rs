//! Spans through the OpenTelemetry API, following the Durable Task conventions: one
//! `orchestration:{name}` span per instance (per generation), one `activity:{name}` span per
//! attempt, one `orchestration:{name}:timer` span per durable timer.
//!
//! The orchestration span is built once, when the instance ends, from what its history
//! recorded when it started (trace id, span id, parent, start time: the span builder takes
//! them), so that it covers every turn, replay and process in between. Activity and timer
//! spans are its children by those recorded ids: a turn stamps them on the activity tasks
//! it schedules, so that an attempt, in whatever process, knows its parent without reading
//! the history.

use std::collections::HashMap;
use std::future::Future;
use std::time::SystemTime;

use opentelemetry::context::FutureExt as _;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags,
    TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::history::{Event, Failure, HistoryEvent, SpanParent, SpanRecord};
use crate::instance_id::InstanceId;
use crate::status::RuntimeStatus;
use crate::store::{ActivityTask, Store, TurnCommit};

/// The tracer spans go to.
pub(crate) type Tracer = BoxedTracer;

/// A runtime's tracing: off unless it was given a tracer.
pub(crate) struct Tracing {
    tracer: Option<BoxedTracer>,
}

impl Tracing {
    pub(crate) fn new(tracer: Option<BoxedTracer>) -> Self {
        Tracing { tracer }
    }

    /// The span record of an instance started now by a client: a child of the caller's
    /// current span (a `tracing` span through `tracing-opentelemetry`, or the current
    /// OpenTelemetry context), in a new trace otherwise.
    pub(crate) fn start_record(&self, now: SystemTime) -> Option<SpanRecord> {
        self.tracer.as_ref()?;
        let current = tracing::Span::current().context();
        let mut parent = current.span().span_context().clone();
        if !parent.is_valid() {
            parent = Context::current().span().span_context().clone();
        }
        Some(if parent.is_valid() {
            SpanRecord {
                trace_id: u128::from_be_bytes(parent.trace_id().to_bytes()),
                span_id: new_span_id(),
                parent_span_id: Some(u64::from_be_bytes(parent.span_id().to_bytes())),
                started_at: now,
            }
        } else {
            SpanRecord {
                trace_id: new_trace_id(),
                span_id: new_span_id(),
                parent_span_id: None,
                started_at: now,
            }
        })
    }

    /// Reads a live turn: stamps the records its commit must carry, and builds the spans
    /// to end once it is durable.
    pub(crate) fn turn(
        &self,
        span: &mut InstanceSpan,
        name: &str,
        commit: &mut TurnCommit,
        now: SystemTime,
    ) -> Option<Box<TurnSpans>> {
        self.tracer.as_ref()?;
        let mut out = Box::<TurnSpans>::default();
        span.observe_turn(&commit.history, now, |created, fire_at, seq| {
            out.timers.push(Timer {
                seq,
                created,
                fire_at,
            })
        });
        if span.record.is_none() {
            // A history from before spans were recorded (or from a runtime without a tracer):
            // its span starts now, recorded on this turn's opening event.
            let record = SpanRecord {
                trace_id: new_trace_id(),
                span_id: new_span_id(),
                parent_span_id: None,
                started_at: now,
            };
            if let Some(first) = commit.history.first_mut() {
                first.span = Some(record);
                span.record = Some(record);
            }
        }
        let Some(record) = span.record else {
            return Some(out);
        };
        // The attempts it schedules carry their parent, wherever they run.
        let parent = SpanParent {
            trace_id: record.trace_id,
            span_id: record.span_id,
        };
        for task in &mut commit.activities {
            task.parent_span = Some(parent);
        }
        for child in &mut commit.sub_instances {
            child.start.span = Some(SpanRecord {
                trace_id: record.trace_id,
                span_id: new_span_id(),
                parent_span_id: Some(record.span_id),
                started_at: now,
            });
        }
        out.record = Some(record);
        out.name = name.to_string();
        if commit.replace_history {
            // Continued as new: this generation's span ends; the next one's starts, a sibling
            // in the same trace.
            if let Some(start) = commit
                .messages
                .iter_mut()
                .find(|m| matches!(m.event.event, Event::ExecutionStarted { .. }))
            {
                start.event.span = Some(SpanRecord {
                    span_id: new_span_id(),
                    started_at: now,
                    ..record
                });
            }
            out.ended = Some((now, Ending::ContinuedAsNew));
        } else if commit.status.runtime_status.is_finished() {
            let ending = match commit.status.runtime_status {
                RuntimeStatus::Failed => Ending::Failed(
                    commit
                        .status
                        .failure
                        .as_ref()
                        .map(|f| f.to_string())
                        .unwrap_or_default(),
                ),
                RuntimeStatus::Terminated => Ending::Terminated,
                _ => Ending::Completed,
            };
            out.ended = Some((now, ending));
        }
        Some(out)
    }

    /// Ends the spans of a turn whose commit is durable.
    pub(crate) fn committed(&self, id: &InstanceId, spans: Option<Box<TurnSpans>>) {
        let (Some(tracer), Some(spans)) = (&self.tracer, spans) else {
            return;
        };
        let TurnSpans {
            record,
            name,
            timers,
            ended,
        } = *spans;
        let Some(record) = record else {
            return;
        };
        let parent = parent_context(record.trace_id, record.span_id);
        for timer in timers {
            let builder = SpanBuilder::from_name(format!("orchestration:{name}:timer"))
                .with_kind(SpanKind::Internal)
                .with_start_time(timer.created)
                .with_attributes([
                    KeyValue::new("durabletask.type", "timer"),
                    KeyValue::new("durabletask.task.name", name.clone()),
                    KeyValue::new("durabletask.task.instance_id", id.to_string()),
                    KeyValue::new("durabletask.task.task_id", timer.seq as i64),
                    KeyValue::new(
                        "durabletask.fire_at",
                        humantime_serde::re::humantime::format_rfc3339_nanos(timer.fire_at)
                            .to_string(),
                    ),
                ]);
            let mut span = tracer.build_with_context(builder, &parent);
            span.end_with_timestamp(timer.fire_at.max(timer.created));
        }
        if let Some((at, ending)) = ended {
            self.orchestration(tracer, id, &name, record, at, ending);
        }
    }

    fn orchestration(
        &self,
        tracer: &BoxedTracer,
        id: &InstanceId,
        name: &str,
        record: SpanRecord,
        end: SystemTime,
        ending: Ending,
    ) {
        let mut builder = SpanBuilder::from_name(format!("orchestration:{name}"))
            .with_kind(SpanKind::Server)
            .with_start_time(record.started_at)
            .with_attributes([
                KeyValue::new("durabletask.type", "orchestration"),
                KeyValue::new("durabletask.task.name", name.to_string()),
                KeyValue::new("durabletask.task.instance_id", id.to_string()),
                KeyValue::new("durabletask.runtime_status", ending.status()),
            ]);
        builder.trace_id = Some(TraceId::from_bytes(record.trace_id.to_be_bytes()));
        builder.span_id = Some(SpanId::from_bytes(record.span_id.to_be_bytes()));
        let parent = match record.parent_span_id {
            Some(parent) => parent_context(record.trace_id, parent),
            None => Context::new(),
        };
        let mut span = tracer.build_with_context(builder, &parent);
        if let Ending::Failed(message) = ending {
            span.set_status(Status::error(message));
        }
        span.end_with_timestamp(end.max(record.started_at));
    }

    /// The span of an activity attempt starting now, a child of its instance's span, which
    /// its task carries; a task stored before it did (or scheduled by a runtime without a
    /// tracer) has it read from the instance's history.
    pub(crate) async fn attempt(
        &self,
        store: &dyn Store,
        task: &ActivityTask,
        started_at: SystemTime,
    ) -> AttemptSpan {
        let Some(tracer) = &self.tracer else {
            return AttemptSpan(None);
        };
        let parent = match task.parent_span {
            Some(parent) => Some(parent),
            // Boxed: the common case keeps the attempt's future small.
            None => Box::pin(store.load_history(&task.instance_id))
                .await
                .ok()
                .and_then(|history| InstanceSpan::of(&history).record)
                .map(|record| SpanParent {
                    trace_id: record.trace_id,
                    span_id: record.span_id,
                }),
        };
        let parent = match parent {
            Some(parent) => parent_context(parent.trace_id, parent.span_id),
            None => Context::new(),
        };
        let builder = SpanBuilder::from_name(format!("activity:{}", task.name))
            .with_kind(SpanKind::Server)
            .with_start_time(started_at)
            .with_attributes([
                KeyValue::new("durabletask.type", "activity"),
                KeyValue::new("durabletask.task.name", task.name.clone()),
                KeyValue::new("durabletask.task.instance_id", task.instance_id.to_string()),
                KeyValue::new("durabletask.task.task_id", task.id as i64),
                KeyValue::new("durabletask.task.attempt", i64::from(task.attempt)),
            ]);
        let span = tracer.build_with_context(builder, &parent);
        AttemptSpan(Some(Context::new().with_span(span)))
    }
}

/// Turns spans into a parent context: a span known by its recorded ids.
fn parent_context(trace_id: u128, span_id: u64) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes(trace_id.to_be_bytes()),
        SpanId::from_bytes(span_id.to_be_bytes()),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

fn new_trace_id() -> u128 {
    uuid::Uuid::new_v4().as_u128().max(1)
}

fn new_span_id() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64).max(1)
}

/// An instance's span as its history tells it, and its timers still waiting.
#[derive(Default)]
pub(crate) struct InstanceSpan {
    record: Option<SpanRecord>,
    /// Timers created and not yet fired, by seq: when each was created.
    timers: HashMap<u64, SystemTime>,
}

impl InstanceSpan {
    fn of(history: &[HistoryEvent]) -> InstanceSpan {
        let mut span = InstanceSpan::default();
        span.replayed(history);
        span
    }

    pub(crate) fn replayed(&mut self, history: &[HistoryEvent]) {
        let mut turn_time = SystemTime::UNIX_EPOCH;
        for event in history {
            if let Event::OrchestratorStarted { timestamp } = event.event {
                turn_time = timestamp;
            }
            self.observe(event, turn_time, &mut |_, _, _| {});
        }
    }

    fn observe_turn(
        &mut self,
        events: &[HistoryEvent],
        now: SystemTime,
        mut fired: impl FnMut(SystemTime, SystemTime, u64),
    ) {
        for event in events {
            self.observe(event, now, &mut fired);
        }
    }

    fn observe(
        &mut self,
        event: &HistoryEvent,
        turn_time: SystemTime,
        fired: &mut dyn FnMut(SystemTime, SystemTime, u64),
    ) {
        if let Some(record) = event.span {
            if matches!(event.event, Event::ExecutionStarted { .. }) || self.record.is_none() {
                self.record = Some(record);
            }
        }
        match &event.event {
            Event::ExecutionStarted { .. } => self.timers.clear(),
            Event::TimerCreated { id, .. } => {
                self.timers.insert(*id, turn_time);
            }
            Event::TimerFired { id, fire_at } => {
                if let Some(created) = self.timers.remove(id) {
                    fired(created, *fire_at, *id);
                }
            }
            _ => {}
        }
    }
}

struct Timer {
    seq: u64,
    created: SystemTime,
    fire_at: SystemTime,
}

enum Ending {
    Completed,
    Failed(String),
    Terminated,
    ContinuedAsNew,
}

impl Ending {
    fn status(&self) -> &'static str {
        match self {
            Ending::Completed => "Completed",
            Ending::Failed(_) => "Failed",
            Ending::Terminated => "Terminated",
            Ending::ContinuedAsNew => "ContinuedAsNew",
        }
    }
}

/// The spans a turn ends once its commit is durable.
#[derive(Default)]
pub(crate) struct TurnSpans {
    record: Option<SpanRecord>,
    name: String,
    timers: Vec<Timer>,
    ended: Option<(SystemTime, Ending)>,
}

/// An activity attempt's span, current while the attempt's code runs.
pub(crate) struct AttemptSpan(Option<Context>);

impl AttemptSpan {
    /// Runs `attempt` inside the span: the OpenTelemetry context is current while it is
    /// polled, so spans the activity code opens (through `tracing-opentelemetry` too) are
    /// the attempt's children.
    pub(crate) fn instrument<F: Future>(&self, attempt: F) -> impl Future<Output = F::Output> {
        attempt.with_context(self.0.clone().unwrap_or_default())
    }

    /// Makes the span current on this thread until the guard drops.
    pub(crate) fn enter(&self) -> Option<opentelemetry::ContextGuard> {
        self.0.clone().map(Context::attach)
    }

    /// Ends the span at `ended_at`, with error status and the message if the attempt failed.
    pub(crate) fn end(self, result: &Result<Value, Failure>, ended_at: SystemTime) {
        let Some(cx) = self.0 else {
            return;
        };
        let span = cx.span();
        if let Err(failure) = result {
            span.set_attribute(KeyValue::new(
                "durabletask.failure.kind",
                failure.kind.clone(),
            ));
            span.set_status(Status::error(failure.message.clone()));
        }
        span.end_with_timestamp(ended_at);
    }
}
