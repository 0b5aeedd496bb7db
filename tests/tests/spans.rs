//! Traces: the POC's retry workflow yields one orchestration span and one span per activity
//! attempt (failed attempts with error status), its back-offs timer spans, all children of
//! the orchestration span; a child orchestration's span is its parent's child; the caller's
//! span at `client.start(..)` is the orchestration span's parent; activity code's own spans
//! are children of its attempt's span. Every store, cache on and off (every turn replays):
//! nothing is emitted twice. (`crash_spans.rs` kills the process during a back-off.)

use std::time::Duration;

use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::{finished, matrix};
use opentelemetry::trace::{SpanId, Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

/// The POC's workflows, as the demo runs them.
#[allow(dead_code)]
#[path = "../../demo/src/workflows.rs"]
mod workflows;

/// What the demo's workflows print replayed lines with.
#[allow(dead_code)]
mod console {
    pub fn replay_line(_: &str) {}
}

use workflows::{reliable_activity, retry_orchestrator, unreliable_activity};

/// A tracer provider that keeps every span in memory as it ends.
fn exporter() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (provider, exporter)
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    match attribute(span, key) {
        Some(value) => value.as_str().into_owned(),
        None => panic!("span {} has no attribute {key}", span.name),
    }
}

fn of_type<'a>(spans: &'a [SpanData], kind: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| attribute(s, "durabletask.type").map(|v| v.as_str()) == Some(kind.into()))
        .collect()
}

matrix!(
    retry_workflow_one_orchestration_span_seven_attempts,
    |setup: durable_tests::Setup| async move {
        let (provider, exporter) = exporter();
        let runtime = setup
            .builder()
            .tracer(provider.tracer("durable"))
            .orchestrator(retry_orchestrator)
            .activity(reliable_activity)
            .activity(unreliable_activity)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client
            .start(retry_orchestrator, ())
            .instance_id("retry-1")
            .await
            .unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        runtime.shutdown().await;

        let spans = exporter.get_finished_spans().unwrap();
        let orchestrations = of_type(&spans, "orchestration");
        assert_eq!(orchestrations.len(), 1, "{spans:#?}");
        let root = orchestrations[0];
        assert_eq!(root.name, "orchestration:retry_orchestrator");
        assert_eq!(
            root.parent_span_id,
            SpanId::INVALID,
            "no caller span: a root"
        );
        assert_eq!(text(root, "durabletask.task.instance_id"), "retry-1");
        assert_eq!(text(root, "durabletask.task.name"), "retry_orchestrator");
        assert_eq!(text(root, "durabletask.runtime_status"), "Completed");
        assert_eq!(root.status, Status::Unset);
        // The span record is the one the history holds.
        let history = client.history(&id).await.unwrap();
        let record = history[1].span.expect("the start records the span");
        assert_eq!(
            u64::from_be_bytes(root.span_context.span_id().to_bytes()),
            record.span_id
        );
        assert_eq!(root.start_time, record.started_at);

        let activities = of_type(&spans, "activity");
        assert_eq!(activities.len(), 7, "one span per attempt: {activities:#?}");
        let names: Vec<_> = activities.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(
            names
                .iter()
                .filter(|n| *n == "activity:reliable_activity")
                .count(),
            3
        );
        assert_eq!(
            names
                .iter()
                .filter(|n| *n == "activity:unreliable_activity")
                .count(),
            4
        );
        let mut failed: Vec<_> = activities
            .iter()
            .filter_map(|s| match &s.status {
                Status::Error { description } => Some(description.to_string()),
                _ => None,
            })
            .collect();
        failed.sort();
        assert_eq!(
            failed,
            [
                "Database timeout (simulated)",
                "Network connection error (simulated)",
                "Service temporarily unavailable (simulated)",
            ]
        );
        let mut attempts = Vec::new();
        for span in &activities {
            assert_eq!(
                span.parent_span_id,
                root.span_context.span_id(),
                "{span:#?}"
            );
            assert_eq!(span.span_context.trace_id(), root.span_context.trace_id());
            assert_eq!(text(span, "durabletask.task.instance_id"), "retry-1");
            assert!(span.start_time >= root.start_time && span.end_time <= root.end_time);
            let seq = attribute(span, "durabletask.task.task_id")
                .unwrap()
                .as_str();
            let attempt = attribute(span, "durabletask.task.attempt")
                .unwrap()
                .as_str();
            attempts.push(format!("{} {seq} {attempt}", span.name));
        }
        attempts.sort();
        attempts.dedup();
        assert_eq!(attempts.len(), 7, "no attempt twice: {attempts:?}");

        // The back-offs: 1 s, 2 s, 4 s of (virtual) time.
        let timers = of_type(&spans, "timer");
        assert_eq!(timers.len(), 3, "{timers:#?}");
        let mut waits: Vec<_> = timers
            .iter()
            .map(|t| {
                assert_eq!(t.name, "orchestration:retry_orchestrator:timer");
                assert_eq!(t.parent_span_id, root.span_context.span_id());
                t.end_time.duration_since(t.start_time).unwrap()
            })
            .collect();
        waits.sort();
        assert_eq!(waits, [1, 2, 4].map(Duration::from_secs));
        assert_eq!(spans.len(), 1 + 7 + 3);
    }
);

#[activity]
async fn traced_step(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    // Activity code's own span, through tracing-opentelemetry.
    let span = tracing::info_span!("inside the step");
    let _entered = span.enter();
    Ok(n + 1)
}

#[activity(blocking)]
fn traced_blocking(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    // On tokio's blocking pool: the attempt's span still holds.
    let _entered = tracing::info_span!("inside the blocking step").entered();
    Ok(n * 10)
}

#[orchestrator]
async fn child_flow(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    ctx.call(traced_step, n).await
}

#[orchestrator]
async fn parent_flow(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    let first = ctx.call(child_flow, n).await?;
    let second = ctx.call(traced_step, first).await?;
    ctx.call(traced_blocking, second).await
}

matrix!(
    child_orchestration_caller_and_activity_code_spans,
    |setup: durable_tests::Setup| async move {
        use tracing_subscriber::layer::SubscriberExt as _;

        let (provider, exporter) = exporter();
        use tracing_subscriber::Layer as _;

        // The runtime's own `tracing` spans are log context, kept out of traces (the guide's
        // set-up): the attempt's span is the parent of what activity code opens.
        let not_durable =
            tracing_subscriber::filter::filter_fn(|m| !m.target().starts_with("durable"));
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("app"))
                .with_filter(not_durable),
        );
        // This thread's subscriber: the test runtime runs every task on it.
        let _default = tracing::subscriber::set_default(subscriber);
        let runtime = setup
            .builder()
            .tracer(provider.tracer("durable"))
            .orchestrator(parent_flow)
            .orchestrator(child_flow)
            .activity(traced_step)
            .activity(traced_blocking)
            .start()
            .unwrap();
        let client = runtime.client();
        let request = tracing::info_span!("POST /orders");
        let id = {
            let start = client.start(parent_flow, 1).instance_id("parent-1");
            tracing::Instrument::instrument(
                std::future::IntoFuture::into_future(start),
                request.clone(),
            )
            .await
            .unwrap()
        };
        drop(request);
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<u32>().unwrap(), Some(30), "{status:?}");
        runtime.shutdown().await;

        let spans = exporter.get_finished_spans().unwrap();
        let by_name =
            |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
        let request = by_name("POST /orders");
        let parent = by_name("orchestration:parent_flow");
        let child = by_name("orchestration:child_flow");
        assert_eq!(
            (request.len(), parent.len(), child.len()),
            (1, 1, 1),
            "{spans:#?}"
        );
        let (request, parent, child) = (request[0], parent[0], child[0]);
        assert_eq!(
            parent.parent_span_id,
            request.span_context.span_id(),
            "the caller's span is the parent"
        );
        assert_eq!(
            child.parent_span_id,
            parent.span_context.span_id(),
            "a child orchestration is its parent's child"
        );
        let trace = request.span_context.trace_id();
        let names: Vec<_> = spans
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    s.span_context.trace_id(),
                    s.parent_span_id,
                )
            })
            .collect();
        assert!(
            spans.iter().all(|s| s.span_context.trace_id() == trace),
            "one trace: {names:#?}"
        );

        let steps = by_name("activity:traced_step");
        assert_eq!(steps.len(), 2);
        let in_child = steps
            .iter()
            .filter(|s| s.parent_span_id == child.span_context.span_id())
            .count();
        let in_parent = steps
            .iter()
            .filter(|s| s.parent_span_id == parent.span_context.span_id())
            .count();
        assert_eq!((in_child, in_parent), (1, 1));
        let inside = by_name("inside the step");
        assert_eq!(
            inside.len(),
            2,
            "activity code's spans are exported once each"
        );
        for span in inside {
            assert!(
                steps
                    .iter()
                    .any(|s| s.span_context.span_id() == span.parent_span_id),
                "activity code runs inside its attempt's span: {span:#?}"
            );
        }
    }
);

matrix!(
    a_history_started_untraced_gets_a_span_from_its_first_traced_turn,
    |setup: durable_tests::Setup| async move {
        use workflows::external_event_orchestrator;

        // Started by a runtime without a tracer (or a release before spans): no record.
        let untraced = setup
            .builder()
            .orchestrator(external_event_orchestrator)
            .activity(reliable_activity)
            .start()
            .unwrap();
        let client = untraced.client();
        let id = client
            .start(external_event_orchestrator, ())
            .instance_id("upgraded")
            .await
            .unwrap();
        durable_tests::custom_status_is(&client, &id, "waiting for event step2").await;
        untraced.shutdown().await;
        let before = client.history(&id).await.unwrap();
        assert!(before.iter().all(|e| e.span.is_none()));

        let (provider, exporter) = exporter();
        let traced = setup
            .builder()
            .tracer(provider.tracer("durable"))
            .orchestrator(external_event_orchestrator)
            .activity(reliable_activity)
            .start()
            .unwrap();
        let client = traced.client();
        client.raise_event(&id, "step2", 2).await.unwrap();
        durable_tests::custom_status_is(&client, &id, "waiting for event step4").await;
        client.raise_event(&id, "step4", 4).await.unwrap();
        assert_eq!(
            finished(&client, &id).await.runtime_status,
            RuntimeStatus::Completed
        );
        traced.shutdown().await;

        let history = client.history(&id).await.unwrap();
        let records: Vec<_> = history
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.span.map(|r| (i, r)))
            .collect();
        assert_eq!(
            records.len(),
            1,
            "one record, on the first traced turn's opening event"
        );
        let (at, record) = records[0];
        assert_eq!(at, before.len(), "the turn after the untraced ones");
        assert_eq!(history[at].event.name(), "OrchestratorStarted");

        let spans = exporter.get_finished_spans().unwrap();
        let roots = of_type(&spans, "orchestration");
        assert_eq!(roots.len(), 1, "{spans:#?}");
        assert_eq!(roots[0].start_time, record.started_at);
        assert_eq!(
            u64::from_be_bytes(roots[0].span_context.span_id().to_bytes()),
            record.span_id
        );
        // The two steps that ran traced (3 and 5) are its children; step 1 ran before.
        let steps = of_type(&spans, "activity");
        assert_eq!(steps.len(), 2);
        assert!(steps
            .iter()
            .all(|s| s.parent_span_id == roots[0].span_context.span_id()));
    }
);

/// The POC's child-orchestration workflow with its turns in one process and its attempts in
/// another (as a fleet splits them), `strip` handing the tasks out without their parent span
/// as tasks stored before it was carried: the spans the run ends, and how many histories the
/// attempts' process loaded.
async fn split_between_processes(
    setup: durable_tests::Setup,
    strip: bool,
) -> (Vec<SpanData>, usize) {
    use durable_runtime::testing::Advance;
    use durable_tests::roles::RoleStore;

    let (provider, exporter) = exporter();
    let turns = setup
        .builder_with(Advance::Manual)
        .store(RoleStore::new(std::sync::Arc::clone(&setup.store)).turns_only())
        .tracer(provider.tracer("durable"))
        .orchestrator(parent_flow)
        .orchestrator(child_flow)
        .activity(traced_step)
        .activity(traced_blocking)
        .start()
        .unwrap();
    let mut store = RoleStore::new(setup.another_process().await).activities_only();
    if strip {
        store = store.strips_task_spans();
    }
    let loads = store.loads();
    let attempts = setup
        .builder_with(Advance::Manual)
        .store(store)
        .tracer(provider.tracer("durable"))
        .orchestrator(parent_flow)
        .orchestrator(child_flow)
        .activity(traced_step)
        .activity(traced_blocking)
        .start()
        .unwrap();
    let client = turns.client();
    let id = client
        .start(parent_flow, 1)
        .instance_id("split")
        .await
        .unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<u32>().unwrap(), Some(30), "{status:?}");
    let stats = attempts.stats();
    assert_eq!(stats.activities, 3, "every attempt ran there");
    assert_eq!(stats.turns, 0, "and no turn");
    attempts.shutdown().await;
    turns.shutdown().await;

    let spans = exporter.get_finished_spans().unwrap();
    let one = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "{name}: {spans:#?}");
        found[0].span_context.span_id()
    };
    let (parent, child) = (
        one("orchestration:parent_flow"),
        one("orchestration:child_flow"),
    );
    let mut parents: Vec<_> = of_type(&spans, "activity")
        .iter()
        .map(|s| {
            let of = match s.parent_span_id {
                p if p == parent => "parent",
                p if p == child => "child",
                _ => "neither",
            };
            format!("{} in {of}", s.name)
        })
        .collect();
    parents.sort();
    assert_eq!(
        parents,
        [
            "activity:traced_blocking in parent",
            "activity:traced_step in child",
            "activity:traced_step in parent",
        ],
        "each attempt a child of its instance's span: {spans:#?}"
    );
    let loads = loads.load(std::sync::atomic::Ordering::SeqCst);
    (spans, loads)
}

matrix!(
    an_attempt_in_another_process_reads_its_parent_span_from_its_task,
    |setup: durable_tests::Setup| async move {
        let (_, loads) = split_between_processes(setup, false).await;
        assert_eq!(loads, 0, "no attempt read a history for its parent span");
    }
);

matrix!(
    an_attempt_stored_without_its_parent_span_reads_it_from_the_history,
    |setup: durable_tests::Setup| async move {
        let (_, loads) = split_between_processes(setup, true).await;
        assert_eq!(loads, 3, "each attempt read its instance's history once");
    }
);
