//! The console narrative: `tracing` events from the workflows and the runtime's retry
//! events, printed as the POC's plain lines on stdout; everything else in the usual format.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of the workflows' narrative lines.
const NARRATIVE: &str = "demo";
/// The target of the event the runtime emits each time it schedules a retry.
const RETRY: &str = "durable::retry";

fn is_narrative(metadata: &Metadata<'_>) -> bool {
    metadata.target() == NARRATIVE || metadata.target() == RETRY
}

/// Installs the narrative on stdout, and the default format for every other event, filtered
/// by `RUST_LOG` (default `info`). A retry of the activity named `noted` is followed by the
/// POC's note that the activities before it do not run again.
pub fn init(noted: &'static str, tracer: Option<opentelemetry_sdk::trace::SdkTracer>) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let others = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_filter(env.and(filter_fn(|metadata| !is_narrative(metadata))));
    // Spans of application code (activities' own, say) join the workflows' traces; the
    // runtime's own spans are log context, not trace spans.
    let traces = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(filter_fn(|metadata| {
                !metadata.target().starts_with("durable")
            }))
    });
    tracing_subscriber::registry()
        .with(Narrative { noted })
        .with(others)
        .with(traces)
        .init();
}

/// Writes one line (or several, if it holds newlines) to stdout at once.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not take the server down with it.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A line an orchestrator re-ran while replaying (`--show-replays`).
pub fn replay_line(text: &str) {
    line(&format!("↺ replay: {text}"));
}

/// `1000` → `1s`, `1500` → `1.5s`.
fn seconds(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{:.1}s", millis as f64 / 1000.0)
    }
}

/// Prints narrative events as bare lines.
struct Narrative {
    /// The activity whose retries get the POC's note.
    noted: &'static str,
}

impl<S: Subscriber> Layer<S> for Narrative {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        if !is_narrative(metadata) || *metadata.level() > Level::INFO {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if metadata.target() == NARRATIVE {
            line(&fields.message);
            return;
        }
        // The retry event of the runtime: `activity`, `attempt` and `delay_ms`.
        let Some(delay_ms) = fields.delay_ms else {
            return;
        };
        line(&format!(
            "⏳ Framework will retry in {}...",
            seconds(delay_ms)
        ));
        if fields.activity == self.noted {
            line("💡 NOTE: Activities 1 & 2 will NOT re-execute on retry!\n");
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    activity: String,
    delay_ms: Option<u64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "activity" => self.activity = value.to_string(),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "delay_ms" {
            self.delay_ms = Some(value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            // A message is `fmt::Arguments`, whose `Debug` is its text.
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "activity" => self.activity = format!("{value:?}").trim_matches('"').to_string(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn delays_read_as_the_poc_prints_them() {
        assert_eq!(seconds(1000), "1s");
        assert_eq!(seconds(4000), "4s");
        assert_eq!(seconds(1500), "1.5s");
    }
}
