//! Spans without the `opentelemetry` feature: nothing, at no cost.

use std::future::Future;
use std::time::SystemTime;

use serde_json::Value;

use crate::history::{Failure, HistoryEvent, SpanRecord};
use crate::instance_id::InstanceId;
use crate::store::{ActivityTask, Store, TurnCommit};

/// No tracer without the feature.
pub(crate) enum Tracer {}

pub(crate) struct Tracing;

impl Tracing {
    pub(crate) fn new(_: Option<Tracer>) -> Self {
        Tracing
    }

    pub(crate) fn start_record(&self, _: SystemTime) -> Option<SpanRecord> {
        None
    }

    pub(crate) fn turn(
        &self,
        _: &mut InstanceSpan,
        _: &str,
        _: &mut TurnCommit,
        _: SystemTime,
    ) -> Option<Box<TurnSpans>> {
        None
    }

    pub(crate) fn committed(&self, _: &InstanceId, _: Option<Box<TurnSpans>>) {}

    pub(crate) async fn attempt(
        &self,
        _: &dyn Store,
        _: &ActivityTask,
        _: SystemTime,
    ) -> AttemptSpan {
        AttemptSpan
    }
}

#[derive(Default)]
pub(crate) struct InstanceSpan;

impl InstanceSpan {
    pub(crate) fn replayed(&mut self, _: &[HistoryEvent]) {}
}

pub(crate) enum TurnSpans {}

pub(crate) struct AttemptSpan;

/// What `enter` returns: nothing to leave.
pub(crate) struct Entered;

impl AttemptSpan {
    pub(crate) fn instrument<F: Future>(&self, attempt: F) -> F {
        attempt
    }

    pub(crate) fn enter(&self) -> Entered {
        Entered
    }

    pub(crate) fn end(self, _: &Result<Value, Failure>, _: SystemTime) {}
}
