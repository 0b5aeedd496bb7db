//! Traces to an OTLP collector (`--otlp-endpoint`) and metrics for `/metrics`.

use anyhow::Context as _;
use durable_runtime::metric;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// A tracer provider exporting over OTLP/HTTP (protobuf) to `endpoint`, in batches. A URL
/// without a path gets the standard `/v1/traces`.
pub fn otlp(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = url_of(endpoint)?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .context("cannot build the OTLP exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name("durable-demo")
                .build(),
        )
        .with_batch_exporter(exporter)
        .build())
}

fn url_of(endpoint: &str) -> anyhow::Result<String> {
    let Some(rest) = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        anyhow::bail!("--otlp-endpoint must be an http:// or https:// URL, not `{endpoint}`");
    };
    Ok(match rest.split_once('/') {
        None | Some((_, "")) => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
        Some(_) => endpoint.to_string(),
    })
}

/// Installs the process's metrics recorder; its handle renders `/metrics`.
pub fn prometheus() -> anyhow::Result<PrometheusHandle> {
    prometheus_builder()?
        .install_recorder()
        .context("cannot install the metrics recorder")
}

/// Histograms (not summaries) with the runtime's bucket bounds.
fn prometheus_builder() -> anyhow::Result<PrometheusBuilder> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), metric::LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(metric::names::FILE_BATCH_WRITES.into()),
            metric::BATCH_BUCKETS,
        )?)
}

#[cfg(test)]
mod tests {
    use super::url_of;

    #[test]
    fn a_bare_endpoint_gets_the_traces_path() {
        assert_eq!(
            url_of("http://localhost:4318").unwrap(),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            url_of("http://localhost:4318/").unwrap(),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            url_of("https://c.example/otlp/v1/traces").unwrap(),
            "https://c.example/otlp/v1/traces"
        );
        assert!(url_of("localhost:4318").is_err());
    }
}
