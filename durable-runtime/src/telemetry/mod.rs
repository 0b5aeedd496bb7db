//! The runtime's telemetry hooks: what a committed turn, a replay and an activity attempt
//! report as spans (`spans`, with the `opentelemetry` feature) and metrics (`crate::metric`).
//!
//! Everything a turn would emit is gathered while it runs and emitted only once its commit
//! is durable: a turn that loses its lease, or a replay, emits nothing, so no span or count
//! is ever doubled by a replay.

#[cfg(feature = "opentelemetry")]
#[path = "otel.rs"]
mod spans;
#[cfg(not(feature = "opentelemetry"))]
#[path = "off.rs"]
mod spans;

use std::time::SystemTime;

use crate::history::{Event, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::metric;
use crate::status::RuntimeStatus;
use crate::store::TurnCommit;

pub(crate) use spans::{InstanceSpan, Tracer, Tracing};

/// What one instance's execution knows of its telemetry between turns.
#[derive(Default)]
pub(crate) struct InstanceTelemetry {
    /// The orchestrator's durable name, for labels and span names.
    name: Option<String>,
    span: InstanceSpan,
}

impl InstanceTelemetry {
    /// What a replayed `history` tells: the orchestrator, its span, its pending timers.
    pub(crate) fn replayed(&mut self, history: &[HistoryEvent]) {
        // A generation's history opens with its start (in its first turn).
        let start = history.iter().find_map(|e| match &e.event {
            Event::ExecutionStarted { name, .. } => Some(name),
            _ => None,
        });
        if let Some(name) = start {
            self.name = Some(name.clone());
        }
        self.span.replayed(history);
    }
}

/// What a turn emits once its commit is durable.
pub(crate) struct TurnReport {
    started: bool,
    ended: Option<&'static str>,
    name: Option<String>,
    /// Only with a tracer.
    spans: Option<Box<spans::TurnSpans>>,
}

/// Reads a live turn's commit before it is written: stamps the span records it must carry
/// (an upgraded history's, a child's, a new generation's) and gathers what to emit once it
/// is durable.
pub(crate) fn turn(
    tracing: &Tracing,
    instance: &mut InstanceTelemetry,
    commit: &mut TurnCommit,
    now: SystemTime,
) -> TurnReport {
    let mut started = false;
    for event in &commit.history {
        if let Event::ExecutionStarted {
            name, generation, ..
        } = &event.event
        {
            instance.name = Some(name.clone());
            started |= *generation == 0;
        }
    }
    let ended = if commit.replace_history {
        Some(metric::names::INSTANCES_CONTINUED_AS_NEW)
    } else {
        match commit.status.runtime_status {
            RuntimeStatus::Completed => Some(metric::names::INSTANCES_COMPLETED),
            RuntimeStatus::Failed => Some(metric::names::INSTANCES_FAILED),
            RuntimeStatus::Terminated => Some(metric::names::INSTANCES_TERMINATED),
            _ => None,
        }
    };
    let name = instance.name.as_deref().unwrap_or_default();
    let spans = tracing.turn(&mut instance.span, name, commit, now);
    TurnReport {
        started,
        ended,
        name: (started || ended.is_some()).then(|| name.to_string()),
        spans,
    }
}

/// Emits what a turn gathered, now that its commit is durable.
pub(crate) fn committed(tracing: &Tracing, id: &InstanceId, report: TurnReport) {
    if let Some(name) = &report.name {
        if report.started {
            metric::instance_started(name);
        }
        if let Some(ended) = report.ended {
            metric::instance_ended(name, ended);
        }
    }
    tracing.committed(id, report.spans);
}
