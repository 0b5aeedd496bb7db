//! The POC's two workflows written with durable, served over HTTP, durable across a crash.

#![forbid(unsafe_code)]

mod console;
mod http;
mod telemetry;
mod workflows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use durable_http::{RouterOptions, ServeOptions};
use durable_postgres::{PostgresOptions, PostgresStore};
use durable_runtime::store::InstanceQuery;
use durable_runtime::store::{FileStore, MemoryStore, Store};
use durable_runtime::{Activity, Client, Runtime, RuntimeStatus};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::workflows::{
    external_event_orchestrator, reliable_activity, retry_orchestrator, unreliable_activity,
};

/// The POC's two workflows (retries with back-off, and a workflow paused by external
/// events) over an HTTP API. Kill it mid-retry and start it again: it carries on.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on. Port 0 picks a free port; the address bound is printed on
    /// stdout as `demo listening on http://ADDR`. Anything but loopback needs --auth-token.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    bind: String,

    /// Directory of the file store, created if missing. Instances in it carry on after a
    /// restart.
    #[arg(long, default_value = "durable-data", value_name = "DIR")]
    data_dir: PathBuf,

    /// Keep everything in memory instead (lost on exit); --data-dir and --postgres are then
    /// ignored.
    #[arg(long)]
    memory: bool,

    /// Keep everything in PostgreSQL instead, e.g. postgres://user:password@host:5432/db;
    /// --data-dir is then ignored. Every demo process on the same database and schema shares
    /// the workflows, and any of them answers for any instance.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    postgres: Option<String>,

    /// The PostgreSQL schema of the store, created if missing (with --postgres).
    #[arg(
        long,
        default_value = "durable",
        value_name = "NAME",
        requires = "postgres"
    )]
    schema: String,

    /// Require `Authorization: Bearer TOKEN` on every request (401 otherwise). Needed to bind
    /// a non-loopback address: terminate and purge destroy data.
    #[arg(
        long,
        env = "DEMO_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    auth_token: Option<String>,

    /// Without --auth-token, requests must be addressed (their `Host`) to localhost or to the
    /// address bound; this allows another name, e.g. one a reverse proxy forwards. Repeat
    /// for several. Other names get 403: a web page can make its own name resolve to this
    /// server (DNS rebinding).
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,

    /// Largest request body accepted, in bytes; larger ones get 413 before being read.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    max_body: usize,

    /// How long a client has to send a request's headers (on a new connection, or after
    /// an answer on a kept-alive one) before the connection is closed.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    header_timeout: Duration,

    /// How long a request may take once its headers are in, reading its body included;
    /// then it is answered 408.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    request_timeout: Duration,

    /// The most connections open at once; further clients wait until one closes.
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,

    /// Teaching aid: replay every turn from the history (no instance cache), as DurableTask
    /// does, and print the orchestrator lines each replay re-runs, marked `↺ replay:`.
    #[arg(long)]
    show_replays: bool,

    /// Send traces (a span per workflow, activity attempt and back-off) to this OpenTelemetry
    /// collector over OTLP/HTTP, e.g. http://localhost:4318 (`/v1/traces` is added to a URL
    /// without a path). Off by default.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let traces = match args
        .otlp_endpoint
        .as_deref()
        .map(telemetry::otlp)
        .transpose()
    {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let tracer = traces.as_ref().map(|p| p.tracer("demo"));
    console::init(<unreliable_activity as Activity>::NAME, tracer);
    let tokio = match tokio::runtime::Runtime::new() {
        Ok(tokio) => tokio,
        Err(error) => {
            eprintln!("error: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = tokio.block_on(run(args, traces.as_ref()));
    if let Some(traces) = traces {
        // The batch still queued goes out before the process ends.
        let _ = traces.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, traces: Option<&SdkTracerProvider>) -> anyhow::Result<()> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&args.bind)
        .await
        .with_context(|| format!("cannot resolve --bind {}", args.bind))?
        .collect();
    if args.auth_token.is_none() && !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!(
            "refusing to listen on {} without --auth-token: anyone who can reach it could \
             terminate and purge instances. Bind 127.0.0.1, or set a token.",
            args.bind
        );
    }
    if args.auth_token.as_deref() == Some("") {
        bail!("--auth-token cannot be empty");
    }

    // The metrics recorder first: what the store and the runtime record before it is lost.
    let metrics = telemetry::prometheus()?;
    let store = open_store(&args).await?;
    workflows::show_replays(args.show_replays);
    let mut builder = Runtime::builder()
        .shared_store(store)
        .orchestrator(retry_orchestrator)
        .orchestrator(external_event_orchestrator)
        .activity(reliable_activity)
        .activity(unreliable_activity);
    if args.show_replays {
        builder = builder.cache_capacity(0);
    }
    if let Some(traces) = traces {
        builder = builder.tracer(traces.tracer("durable"));
    }
    let runtime = builder.start()?;
    announce_unfinished(&runtime.client()).await;

    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    console::line(&format!("🌐 demo listening on http://{addr}"));
    console::line(&format!(
        "   try: curl -X POST http://{addr}/start-retry   (Ctrl-C stops)\n"
    ));

    let mut options = RouterOptions::default()
        .max_body(args.max_body)
        .request_timeout(args.request_timeout)
        .metrics(move || metrics.render());
    if let Some(token) = &args.auth_token {
        options = options.auth_token(token);
    }
    for name in &args.allowed_hosts {
        options = options.allowed_host(name);
    }
    let app = http::app(runtime.client(), options);
    let serve_options = ServeOptions::default()
        .header_timeout(args.header_timeout)
        .max_connections(args.max_connections as usize);
    durable_http::serve(listener, app, serve_options)
        .with_graceful_shutdown(stop_signal())
        .await
        .context("the HTTP server failed")?;

    console::line("🛑 Shutting down: letting running activities finish...");
    runtime.shutdown().await;
    console::line("👋 Stopped. Instances in progress carry on at the next start.");
    Ok(())
}

/// The store: in memory with `--memory`, else PostgreSQL with `--postgres` (or
/// `DATABASE_URL`), else the directory `--data-dir`.
async fn open_store(args: &Args) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = args.postgres.as_ref().filter(|_| !args.memory) {
        let options = PostgresOptions::default().schema(&args.schema);
        let store = PostgresStore::connect_with(url, options)
            .await
            .context("cannot open the PostgreSQL store")?;
        console::line(&format!(
            "💾 Store: PostgreSQL, schema `{}` (shared with every demo process on it)",
            args.schema
        ));
        return Ok(Arc::new(store));
    }
    if args.memory {
        console::line("💾 Store: in memory (lost on exit)");
        return Ok(Arc::new(MemoryStore::new()));
    }
    let store = FileStore::open(&args.data_dir)
        .await
        .with_context(|| format!("cannot open the store in {}", args.data_dir.display()))?;
    console::line(&format!("💾 Store: files in {}", args.data_dir.display()));
    Ok(Arc::new(store))
}

/// Names the instances a previous run left unfinished: the runtime carries them on.
async fn announce_unfinished(client: &Client) {
    let query = InstanceQuery {
        statuses: vec![
            RuntimeStatus::Pending,
            RuntimeStatus::Running,
            RuntimeStatus::Suspended,
        ],
        page_size: 20,
        ..InstanceQuery::default()
    };
    match client.list(&query).await {
        Ok(page) if !page.instances.is_empty() => {
            let ids: Vec<&str> = page
                .instances
                .iter()
                .map(|s| s.instance_id.as_str())
                .collect();
            let more = if page.continuation.is_some() {
                ", …"
            } else {
                ""
            };
            console::line(&format!(
                "♻️  Carrying on with unfinished instances from the store: {}{more}\n",
                ids.join(", ")
            ));
        }
        Ok(_) => {}
        Err(error) => tracing::warn!("cannot list the unfinished instances: {error}"),
    }
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
