//! Runaway orchestrator code (issue 9, item 5): a poll that never returns holds one thread
//! and no more. Its instance is not run again in this process while that poll runs (its
//! lease expiring changes nothing), other instances and the HTTP API keep working, the
//! stuck turn is reported (a warning naming it, `Stats::stuck_turns`), and terminate records
//! Terminated while the thread stays blocked.

use std::sync::OnceLock;
use std::time::Duration;

use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::{finished, tally, Cache, CapturedLog, Setup, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every warning of this test binary (its tests run on many threads).
fn log() -> &'static CapturedLog {
    static LOG: OnceLock<CapturedLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        log
    })
}

/// Blocks the calling thread until the test releases `id`: what a loop without `.await`
/// does to the thread polling it.
fn block_until_released(id: &str) {
    tally::bump(format!("{id}/entered"));
    while tally::get(&format!("{id}/release")) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[orchestrator]
async fn runaway(ctx: OrchestrationContext) -> Result<(), TaskError> {
    block_until_released(ctx.instance_id().as_str());
    Ok(())
}

#[activity]
async fn add_one(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    Ok(n + 1)
}

#[orchestrator]
async fn chain(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    let n = ctx.call(add_one, n).await?;
    ctx.call(add_one, n).await
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

async fn runaway_holds_one_thread(setup: Setup) {
    let log = log();
    let lease = Duration::from_millis(200);
    let runtime = setup
        .builder_with(Advance::Manual)
        .orchestration_lease(lease)
        .stuck_after(Duration::from_millis(100))
        .orchestrator(runaway)
        .orchestrator(chain)
        .activity(add_one)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(runaway, ()).await.unwrap().to_string();
    let entered = format!("{id}/entered");
    let _release_on_failure = Release(id.clone());
    until("the runaway runs", || tally::get(&entered) == 1).await;
    until("the turn is reported stuck", || {
        runtime.stats().stuck_turns == 1
    })
    .await;
    until("a warning names it", || {
        log.text()
            .contains(&format!("orchestration `{id}` is stuck"))
    })
    .await;

    // Its lease expires again and again: it is taken, and not run a second time.
    for _ in 0..5 {
        setup.clock.advance(lease * 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tally::get(&entered), 1, "run twice at once");
    assert_eq!(runtime.stats().stuck_turns, 1, "reported once");

    // Other instances complete, on the threads left.
    let mut others = Vec::new();
    for n in 0..5 {
        others.push(client.start(chain, n * 10).await.unwrap());
    }
    for (n, other) in others.iter().enumerate() {
        let status = finished(&client, other).await;
        assert_eq!(status.output_as::<u32>().unwrap(), Some(n as u32 * 10 + 2));
    }

    // The HTTP API answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = durable_http::router(client.clone(), durable_http::RouterOptions::default());
    let server = tokio::spawn(async move {
        durable_http::serve(listener, app, durable_http::ServeOptions::default()).await
    });
    let response = tokio::time::timeout(PATIENCE, http_get(addr, &format!("/instances/{id}")))
        .await
        .expect("the HTTP API answers");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Its first turn never ended: it is still `Pending`.
    assert!(
        response.contains(r#""runtimeStatus":"Pending""#),
        "{response}"
    );

    // Terminate takes effect while the thread is still blocked.
    client.terminate(&id, "runaway").await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let status = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "terminate never took effect"
        );
        setup.clock.advance(lease * 2);
        let status = client.status(&id).await.unwrap();
        if status.runtime_status.is_finished() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Terminated,
        "{status:?}"
    );
    assert_eq!(
        status.output_as::<String>().unwrap().as_deref(),
        Some("runaway")
    );
    let history = client.history(&id).await.unwrap();
    let kinds: Vec<_> = history.iter().map(|e| e.event.name()).collect();
    assert_eq!(kinds.last(), Some(&"ExecutionCompleted"), "{kinds:?}");
    assert!(kinds.contains(&"ExecutionTerminated"), "{kinds:?}");
    assert_eq!(tally::get(&entered), 1);

    // Released at last, the stuck poll's commit is refused: the instance stays terminated.
    tally::bump(format!("{id}/release"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = client.status(&id).await.unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Terminated,
        "{status:?}"
    );
    server.abort();
    tokio::time::timeout(PATIENCE, runtime.shutdown())
        .await
        .expect("the runtime shuts down");
}

/// Releases the runaway when dropped, so that a failing test ends (a blocked worker thread
/// would keep the test's tokio runtime from shutting down).
struct Release(String);

impl Drop for Release {
    fn drop(&mut self) {
        tally::bump(format!("{}/release", self.0));
    }
}

macro_rules! on_every_store {
    ($($name:ident: $setup:expr;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(setup) = $setup {
                    runaway_holds_one_thread(setup).await;
                }
            }
        )*
    };
}

on_every_store! {
    memory_store_cache_on: Some(Setup::memory(Cache::On));
    memory_store_cache_off: Some(Setup::memory(Cache::Off));
    file_store_cache_on: Some(Setup::file(Cache::On).await);
    file_store_cache_off: Some(Setup::file(Cache::Off).await);
    postgres_store_cache_on: Setup::postgres(Cache::On).await;
    postgres_store_cache_off: Setup::postgres(Cache::Off).await;
}
