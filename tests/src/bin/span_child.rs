//! The child process of the span crash test (`tests/tests/crash_spans.rs`), which kills it
//! during a back-off and starts it again.
//!
//! `span_child DIR INSTANCE start|resume` opens a `FileStore` in `DIR` and runs the POC's
//! retry workflow (the demo's own code) on the system clock: `start` starts the instance
//! `INSTANCE`, `resume` only lets the store's work run. It waits for the instance to
//! complete, then prints `completed`. Every span is printed on stdout the moment it ends, as
//! `span {json}`, and every retry the runtime announces (once its commit is durable) as
//! `retry <attempt>`: the test kills the process after `retry 1`, during the back-off.

#![forbid(unsafe_code)]

use std::io::Write;
use std::time::Duration;

use durable_runtime::store::FileStore;
use durable_runtime::Runtime;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde_json::json;

/// The POC's workflows, as the demo runs them.
#[allow(dead_code)]
#[path = "../../../demo/src/workflows.rs"]
mod workflows;

/// What the demo's workflows print replayed lines with.
#[allow(dead_code)]
mod console {
    pub fn replay_line(_: &str) {}
}

use workflows::{reliable_activity, retry_orchestrator, unreliable_activity};

/// Prints each span as one line, flushed, the moment it ends.
#[derive(Debug)]
struct LineExporter;

impl SpanExporter for LineExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let mut out = std::io::stdout().lock();
        for span in batch {
            let attributes: serde_json::Map<_, _> = span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), json!(kv.value.as_str())))
                .collect();
            let error = match &span.status {
                Status::Error { description } => Some(description.to_string()),
                _ => None,
            };
            let line = json!({
                "name": span.name,
                "trace_id": span.span_context.trace_id().to_string(),
                "span_id": span.span_context.span_id().to_string(),
                "parent_span_id": span.parent_span_id.to_string(),
                "error": error,
                "attributes": attributes,
            });
            writeln!(out, "span {line}").expect("stdout");
        }
        out.flush().expect("stdout");
        std::future::ready(Ok(()))
    }
}

/// Prints `retry <attempt>` for each retry the runtime announces.
struct Retries;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Retries {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Attempt(Option<u64>);
        impl tracing::field::Visit for Attempt {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "attempt" {
                    self.0 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if event.metadata().target() != "durable::retry" {
            return;
        }
        let mut attempt = Attempt(None);
        event.record(&mut attempt);
        if let Some(n) = attempt.0 {
            let mut out = std::io::stdout().lock();
            writeln!(out, "retry {n}").expect("stdout");
            out.flush().expect("stdout");
        }
    }
}

#[tokio::main]
async fn main() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let args: Vec<String> = std::env::args().collect();
    let [_, dir, instance, mode] = &args[..] else {
        panic!("usage: span_child DIR INSTANCE start|resume");
    };
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Retries))
        .expect("a subscriber");
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(LineExporter)
        .build();
    let store = FileStore::open(dir).await.expect("the store opens");
    let runtime = Runtime::builder()
        .store(store)
        .tracer(provider.tracer("durable"))
        .orchestrator(retry_orchestrator)
        .activity(reliable_activity)
        .activity(unreliable_activity)
        .start()
        .expect("the runtime starts");
    let client = runtime.client();
    if mode == "start" {
        client
            .start(retry_orchestrator, ())
            .instance_id(instance)
            .await
            .expect("the instance starts");
    }
    client
        .wait_for_completion(instance, Duration::from_secs(60))
        .await
        .expect("the instance completes");
    runtime.shutdown().await;
    provider.force_flush().expect("spans flushed");
    println!("completed");
}
