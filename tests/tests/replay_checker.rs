//! The replay checker: a recorded history, replayed against changed code, reports whether the
//! change is safe for running instances, with the runtime's own message.

use durable_runtime::history::{kinds, stable_hash};
use durable_runtime::testing::{ReplayChecker, ReplayError};
use durable_runtime::{activity, orchestrator, ActivityContext, OrchestrationContext, TaskError};
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

/// Issue 10, item 2: code that puts its own instance id into a command (an activity's input,
/// a child's default id) was reported as changed, because the checker replayed every history
/// under the id `replay-check`.
mod replays_under_the_instance_id {
    use super::*;
    use durable_runtime::history::{ExportedHistory, HistoryEvent};

    #[activity]
    async fn tag(_ctx: ActivityContext, owner: String) -> Result<String, String> {
        Ok(format!("tagged for {owner}"))
    }

    #[orchestrator(name = "line")]
    async fn line(_ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
        Ok(n * 2)
    }

    #[orchestrator(name = "order")]
    async fn order(ctx: OrchestrationContext, n: u32) -> Result<(String, u32), TaskError> {
        let tagged = ctx.call(tag, ctx.instance_id().to_string()).await?;
        // A child under its default id: `<this instance's id>:<seq>`.
        let doubled = ctx.call(line, n).await?;
        Ok((tagged, doubled))
    }

    /// A real change, in code that also reads its id.
    #[orchestrator(name = "order")]
    async fn order_tags_twice(
        ctx: OrchestrationContext,
        n: u32,
    ) -> Result<(String, u32), TaskError> {
        let tagged = ctx.call(tag, format!("{}!", ctx.instance_id())).await?;
        let doubled = ctx.call(line, n).await?;
        Ok((tagged, doubled))
    }

    fn checker() -> ReplayChecker {
        ReplayChecker::new().orchestrator(order).orchestrator(line)
    }

    matrix!(
        ids_in_commands_replay_under_the_recorded_id,
        |setup: Setup| async move {
            let runtime = setup
                .builder()
                .orchestrator(order)
                .orchestrator(line)
                .activity(tag)
                .start()
                .unwrap();
            let client = runtime.client();
            let id = client
                .start(order, 21)
                .instance_id("order-7")
                .await
                .unwrap();
            let status = finished(&client, &id).await;
            assert_eq!(
                status.output_as::<(String, u32)>().unwrap(),
                Some(("tagged for order-7".to_string(), 42))
            );
            client
                .status("order-7:1")
                .await
                .expect("the child ran under its default id");

            // The export carries the id: the unchanged code replays.
            let recorded = client.export_history(&id).await.unwrap();
            let export = ExportedHistory::from_json(&recorded).unwrap();
            assert_eq!(
                export.instance_id.as_ref().map(|i| i.as_str()),
                Some("order-7")
            );
            assert_eq!(export.history, client.history(&id).await.unwrap());
            checker().check_json(&recorded).unwrap();
            checker().check_export(&export).unwrap();
            checker()
                .check_instance("order-7", &export.history)
                .unwrap();

            // A bare array (the old export) still reads; given the id, it replays.
            let bare = serde_json::to_string(&export.history).unwrap();
            let events: Vec<HistoryEvent> = serde_json::from_str(&bare).unwrap();
            checker().check_instance("order-7", &events).unwrap();
            // Without the id, the checker says it cannot tell, not that the code changed.
            for result in [checker().check_json(&bare), checker().check(&events)] {
                match result {
                    Err(ReplayError::UnknownInstanceId(failure)) => {
                        assert_eq!(failure.kind, kinds::NONDETERMINISM)
                    }
                    other => panic!("expected UnknownInstanceId, got {other:?}"),
                }
            }
            let message = checker().check(&events).unwrap_err().to_string();
            assert!(
                message.starts_with("cannot tell whether the code changed")
                    && message.contains("check_instance(id, ..)"),
                "{message}"
            );
            // Under another id, the commands differ: that is reported as a change.
            assert!(matches!(
                checker().check_instance("order-8", &events),
                Err(ReplayError::Incompatible(_))
            ));

            // A real change is reported as one, with the runtime's message.
            let changed = ReplayChecker::new()
                .orchestrator(order_tags_twice)
                .orchestrator(line);
            let message = incompatible(changed, &recorded);
            assert!(
                message.starts_with(&format!(
                    "expected activity `tag` (input hash {}) at seq 0, found activity `tag` \
                     (input hash {})",
                    hash("order-7"),
                    hash("order-7!")
                )),
                "{message}"
            );
            assert!(matches!(
                checker().check_instance("not valid\n", &events),
                Err(ReplayError::InvalidInstanceId(_))
            ));
            runtime.shutdown().await;
        }
    );

    /// Code that never reads its id is judged without one: a bare array of a changed
    /// orchestration is incompatible, and of the same code compatible.
    #[test]
    fn bare_arrays_of_code_that_ignores_its_id_are_judged() {
        let recorded = r#"[
          {"v":1,"kind":"OrchestratorStarted","timestamp":"2026-01-01T00:00:00Z"},
          {"v":1,"kind":"ExecutionStarted","name":"purchase","version":1,"input":"lamp","seed":1},
          {"v":1,"kind":"TaskScheduled","id":0,"name":"reserve","input":"lamp","attempt":1}
        ]"#;
        ReplayChecker::new()
            .orchestrator(purchase)
            .check_json(recorded)
            .unwrap();
        let message = incompatible(
            ReplayChecker::new().orchestrator(purchase_renamed_activity),
            recorded,
        );
        assert!(message.contains("found activity `hold`"), "{message}");
    }
}
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

matrix!(
    // Found by the simulator (durable-sim, seed 180063): a terminate delivered ahead of a
    // new generation's start ends the instance before its code runs; the history it leaves
    // has no ExecutionStarted, and the checker refused it as "not a history". A scheduled
    // start terminated before it is due leaves the same history.
    a_history_ended_before_its_code_ran_has_nothing_to_replay,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(parcel).start().unwrap();
        let client = runtime.client();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3_600);
        let id = client
            .start(parcel, "lamp".to_string())
            .start_at(later)
            .await
            .unwrap();
        client.terminate(&id, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(
            status.runtime_status,
            durable_runtime::RuntimeStatus::Terminated
        );
        let recorded = client.export_history(&id).await.unwrap();
        assert!(!recorded.contains("ExecutionStarted"), "{recorded}");
        ReplayChecker::new()
            .orchestrator(parcel)
            .check_json(&recorded)
            .unwrap();
    }
);
