//! `GET /instances/{id}/history`: pages that cover a history exactly once, bounded, with
//! what tells a client that the history was replaced under it.

mod support;

use std::time::{Duration, SystemTime};

use durable_http::{router, RouterOptions};
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, Runtime, TaskError,
};
use serde_json::Value;
use support::{get, waiting};

#[activity]
async fn double(_ctx: ActivityContext, n: u64) -> Result<u64, String> {
    Ok(n * 2)
}

/// Calls `double` as many times as its input says: three events per call.
#[orchestrator]
async fn steps(ctx: OrchestrationContext, count: u64) -> Result<u64, TaskError> {
    let mut sum = 0;
    for n in 0..count {
        sum += ctx.call(double, n).await?;
    }
    Ok(sum)
}

/// Waits for `next`, then continues as new with its count plus one, up to 2.
#[orchestrator]
async fn generations(ctx: OrchestrationContext, count: u64) -> Result<u64, TaskError> {
    if count == 2 {
        return Ok(count);
    }
    let () = ctx.wait_for_event("next").await?;
    ctx.continue_as_new(count + 1).await
}

fn runtime() -> Runtime {
    Runtime::builder()
        .orchestrator(steps)
        .orchestrator(generations)
        .orchestrator(support::waiter)
        .activity(double)
        .start()
        .expect("the runtime starts")
}

async fn run_steps(client: &durable_runtime::Client, id: &str, count: u64) {
    client.start(steps, count).instance_id(id).await.unwrap();
    client
        .wait_for_completion(id, Duration::from_secs(60))
        .await
        .unwrap();
}

async fn page(app: &axum::Router, id: &str, query: &str) -> Value {
    let answer = get(app, &format!("/instances/{id}/history{query}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

#[tokio::test]
async fn pages_cover_the_history_exactly_once() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    run_steps(&client, "steps-20", 20).await;
    let whole = serde_json::to_value(client.history("steps-20").await.unwrap()).unwrap();
    let whole = whole.as_array().unwrap();

    for top in [1, 7, 100] {
        let mut events = Vec::new();
        let mut from = Some(0);
        let mut execution = None;
        while let Some(at) = from {
            let page = page(&app, "steps-20", &format!("?from={at}&top={top}")).await;
            assert_eq!(page["instanceId"], "steps-20");
            assert_eq!(page["from"], at);
            assert_eq!(page["total"], whole.len());
            assert_eq!(page["generation"], 0);
            let this = page["execution"].as_str().unwrap().to_string();
            assert_eq!(*execution.get_or_insert(this.clone()), this);
            let got = page["events"].as_array().unwrap();
            assert!(got.len() <= top && !got.is_empty(), "{page}");
            events.extend(got.iter().cloned());
            from = page["next"].as_u64();
        }
        assert_eq!(&events, whole, "pages of {top}");
    }
    // Without a query: from the start, 100 at most.
    let first = page(&app, "steps-20", "").await;
    assert_eq!(
        first["events"].as_array().unwrap()[..],
        whole[..whole.len().min(100)]
    );
    // Each event reads as the history's JSON: its format version and kind, attempt times.
    let events = first["events"].as_array().unwrap();
    assert_eq!(events[0]["v"], durable_runtime::history::FORMAT_VERSION);
    assert_eq!(events[0]["kind"], "OrchestratorStarted");
    let result = events
        .iter()
        .find(|e| e["kind"] == "TaskCompleted")
        .unwrap();
    assert!(
        result["started_at"].is_string() && result["ended_at"].is_string(),
        "{result}"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_page_holds_at_most_a_thousand_events() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    run_steps(&client, "steps-400", 400).await;
    let total = client.history("steps-400").await.unwrap().len();
    assert!(total > 1000, "{total}");

    let big = page(&app, "steps-400", "?top=1000000").await;
    assert_eq!(big["events"].as_array().unwrap().len(), 1000);
    assert_eq!(big["next"], 1000);
    let rest = page(&app, "steps-400", "?from=1000&top=1000").await;
    assert_eq!(rest["events"].as_array().unwrap().len(), total - 1000);
    assert_eq!(rest["next"], Value::Null);
    runtime.shutdown().await;
}

#[tokio::test]
async fn past_the_end_is_an_empty_page_and_bad_queries_are_400() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    run_steps(&client, "steps-2", 2).await;
    let total = client.history("steps-2").await.unwrap().len();

    for from in [total, total + 1, usize::MAX] {
        let page = page(&app, "steps-2", &format!("?from={from}")).await;
        assert_eq!(page["events"], serde_json::json!([]), "{from}");
        assert_eq!(page["from"], total);
        assert_eq!(page["next"], Value::Null);
    }
    for bad in [
        "?top=0",
        "?top=-1",
        "?top=ten",
        "?from=-1",
        "?from=1.5",
        "?from=99999999999999999999999999",
        "?from=",
    ] {
        let message = get(&app, &format!("/instances/steps-2/history{bad}"))
            .await
            .error(400);
        assert!(
            message.contains("query") || message.contains("top"),
            "{bad}: {message}"
        );
    }
    get(&app, "/instances/nobody/history").await.error(404);
    get(&app, "/instances/bad%0Aid/history").await.error(400);
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_execution_tells_when_the_history_was_replaced() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());

    // Not started yet: no history, no execution.
    let later = SystemTime::now() + Duration::from_secs(3600);
    client
        .start(steps, 1)
        .instance_id("later")
        .start_at(later)
        .await
        .unwrap();
    let pending = page(&app, "later", "").await;
    assert_eq!(pending["events"], serde_json::json!([]));
    assert_eq!(pending["execution"], Value::Null);
    assert_eq!(pending["total"], 0);

    client
        .start(generations, 0)
        .instance_id("gen")
        .await
        .unwrap();
    // Until the generation's history waits for `next`.
    let wait_for = |generation: u64| {
        let client = client.clone();
        async move {
            for _ in 0..2000 {
                let history = serde_json::to_value(client.history("gen").await.unwrap()).unwrap();
                let waits = history[1]["generation"].as_u64().unwrap_or(0) == generation
                    && history
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["kind"] == "EventWaitStarted");
                if waits {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("generation {generation} never waited");
        }
    };
    wait_for(0).await;
    let first = page(&app, "gen", "").await;
    assert_eq!(first["generation"], 0);
    client.raise_event("gen", "next", ()).await.unwrap();
    wait_for(1).await;
    let second = page(&app, "gen", "").await;
    assert_eq!(second["generation"], 1);
    assert_ne!(second["execution"], first["execution"]);
    // A client that had the first page reads on from where it was and sees the change.
    let on = page(&app, "gen", &format!("?from={}", first["total"])).await;
    assert_eq!(on["execution"], second["execution"]);
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_history_endpoint_is_behind_the_token() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(
        client.clone(),
        RouterOptions::default().auth_token("s3cret"),
    );
    waiting(&client, "w").await;
    get(&app, "/instances/w/history").await.error(401);
    runtime.shutdown().await;
}
