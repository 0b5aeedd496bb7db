//! The replay checker: a recorded history, replayed against changed code, reports whether the
//! change is safe for running instances, with the runtime's own message.

use durable_runtime::testing::{ReplayChecker, ReplayError};
use durable_runtime::{
    activity, kinds, orchestrator, stable_hash, ActivityContext, OrchestrationContext, TaskError,
};
use durable_tests::{finished, matrix, Setup};

#[activity]
async fn reserve(_ctx: ActivityContext, item: String) -> Result<String, String> {
    Ok(format!("reserved {item}"))
}

#[activity]
async fn hold(_ctx: ActivityContext, item: String) -> Result<String, String> {
    Ok(format!("held {item}"))
}

#[activity]
async fn bill(_ctx: ActivityContext, cents: u64) -> Result<String, String> {
    Ok(format!("billed {cents}"))
}

#[orchestrator(name = "purchase")]
async fn purchase(ctx: OrchestrationContext, item: String) -> Result<Vec<String>, TaskError> {
    let reserved = ctx.call(reserve, item).await?;
    let billed = ctx.call(bill, 500).await?;
    Ok(vec![reserved, billed])
}

#[orchestrator(name = "purchase")]
async fn purchase_renamed_activity(
    ctx: OrchestrationContext,
    item: String,
) -> Result<Vec<String>, TaskError> {
    let reserved = ctx.call(hold, item).await?;
    let billed = ctx.call(bill, 500).await?;
    Ok(vec![reserved, billed])
}

#[orchestrator(name = "purchase")]
async fn purchase_reordered(
    ctx: OrchestrationContext,
    item: String,
) -> Result<Vec<String>, TaskError> {
    let billed = ctx.call(bill, 500).await?;
    let reserved = ctx.call(reserve, item).await?;
    Ok(vec![reserved, billed])
}

#[orchestrator(name = "purchase")]
async fn purchase_new_price(
    ctx: OrchestrationContext,
    item: String,
) -> Result<Vec<String>, TaskError> {
    let reserved = ctx.call(reserve, item).await?;
    let billed = ctx.call(bill, 600).await?;
    Ok(vec![reserved, billed])
}

#[orchestrator(name = "purchase")]
async fn purchase_logged(
    ctx: OrchestrationContext,
    item: String,
) -> Result<Vec<String>, TaskError> {
    // Logging and local computation do not change the commands: a safe change.
    tracing::info!(%item, "purchasing");
    let reserved = ctx.call(reserve, item.trim().to_string()).await?;
    let billed = ctx.call(bill, 500).await?;
    Ok(vec![reserved, billed])
}

fn hash<T: serde::Serialize>(value: T) -> String {
    format!("{:#018x}", stable_hash(&serde_json::json!(value)))
}

fn incompatible(checker: ReplayChecker, history: &str) -> String {
    match checker.check_json(history) {
        Err(ReplayError::Incompatible(failure)) => {
            assert_eq!(failure.kind, kinds::NONDETERMINISM);
            failure.message
        }
        other => panic!("expected an incompatibility, got {other:?}"),
    }
}

matrix!(
    the_checker_catches_unsafe_changes,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(purchase)
            .activity(reserve)
            .activity(bill)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(purchase, "lamp".to_string()).await.unwrap();
        finished(&client, &id).await;
        let recorded = client.export_history(&id).await.unwrap();

        ReplayChecker::new()
            .orchestrator(purchase)
            .check_json(&recorded)
            .unwrap();
        ReplayChecker::new()
            .orchestrator(purchase_logged)
            .check_json(&recorded)
            .unwrap();

        let message = incompatible(
            ReplayChecker::new().orchestrator(purchase_renamed_activity),
            &recorded,
        );
        assert!(
        message.starts_with(&format!(
            "expected activity `reserve` (input hash {h}) at seq 0, found activity `hold` (input hash {h})",
            h = hash("lamp")
        )),
        "{message}"
    );

        let message = incompatible(
            ReplayChecker::new().orchestrator(purchase_reordered),
            &recorded,
        );
        assert!(
        message.starts_with(&format!(
            "expected activity `reserve` (input hash {}) at seq 0, found activity `bill` (input hash {})",
            hash("lamp"),
            hash(500)
        )),
        "{message}"
    );

        let message = incompatible(
            ReplayChecker::new().orchestrator(purchase_new_price),
            &recorded,
        );
        assert!(
        message.starts_with(&format!(
            "expected activity `bill` (input hash {}) at seq 1, found activity `bill` (input hash {})",
            hash(500),
            hash(600)
        )),
        "{message}"
    );

        let error = ReplayChecker::new().check_json(&recorded).unwrap_err();
        assert_eq!(
        error.to_string(),
        "the history runs orchestrator `purchase` (version 1), which the checker was not given: add `.orchestrator(purchase)`"
    );
        assert!(matches!(
            ReplayChecker::new().orchestrator(purchase).check_json("{}"),
            Err(ReplayError::NotAHistory(_))
        ));
    }
);

#[orchestrator(name = "parcel")]
async fn parcel(_ctx: OrchestrationContext, item: String) -> Result<String, TaskError> {
    Ok(format!("packed {item}"))
}

#[orchestrator(name = "shipment")]
async fn shipment(ctx: OrchestrationContext, item: String) -> Result<String, TaskError> {
    ctx.call(parcel, item).await
}

matrix!(
    // Found by the simulator (durable-sim): a child under its default id "{parent}:{seq}"
    // made every history with one "incompatible", as the checker replayed under another id.
    a_history_with_a_default_child_id_replays,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(shipment)
            .orchestrator(parcel)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client
            .start(shipment, "lamp".to_string())
            .instance_id("shipment-7")
            .await
            .unwrap();
        finished(&client, &id).await;
        let recorded = client.export_history(&id).await.unwrap();
        assert!(recorded.contains("shipment-7:0"), "{recorded}");
        ReplayChecker::new()
            .orchestrator(shipment)
            .check_json(&recorded)
            .unwrap();
    }
);
