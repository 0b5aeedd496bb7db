//! Payload limits at their boundaries, on every store: the largest accepted payload reads
//! back whole (status, listing, history, purge); one level or one byte more is refused where
//! it enters, with a typed error (a client call) or a failure that says why (an activity
//! attempt, an instance).

use durable_runtime::history::kinds;
use durable_runtime::limits::PayloadLimitError;
use durable_runtime::store::InstanceQuery;
use durable_runtime::{
    activity, orchestrator, ActivityContext, ClientError, OrchestrationContext, RuntimeStatus,
    TaskError,
};
use durable_tests::{custom_status_is, finished, matrix, Setup};
use serde_json::{json, Value};

/// `levels` arrays inside each other around `1`.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}

/// A string whose JSON (quotes included) is `bytes` long.
fn sized(bytes: usize) -> Value {
    Value::String("x".repeat(bytes - 2))
}

/// Returns the data of its event `data` as its output.
#[orchestrator]
async fn echo_event(ctx: OrchestrationContext) -> Result<Value, TaskError> {
    ctx.set_custom_status("waiting");
    let data: Value = ctx.wait_for_event("data").await?;
    Ok(data)
}

/// Returns its input.
#[orchestrator]
async fn echo_input(_ctx: OrchestrationContext, input: Value) -> Result<Value, TaskError> {
    Ok(input)
}

/// Returns `levels` levels of nesting.
#[activity]
async fn make_nested(_ctx: ActivityContext, levels: usize) -> Result<Value, String> {
    Ok(nested(levels))
}

/// Calls `make_nested` once (no retries) and reports how the call went.
#[orchestrator]
async fn call_make_nested(ctx: OrchestrationContext, levels: usize) -> Result<Value, TaskError> {
    match ctx.call(make_nested, levels).await {
        Ok(value) => Ok(value),
        Err(error) => Ok(json!({
            "kind": error.failure().map(|f| f.kind.clone()),
            "message": error.failure().map(|f| f.message.clone()),
        })),
    }
}

/// Produces a payload of `levels` levels in the place `what` names.
#[orchestrator]
async fn produce(
    ctx: OrchestrationContext,
    (what, levels): (String, usize),
) -> Result<Value, TaskError> {
    let deep = nested(levels);
    match what.as_str() {
        "output" => Ok(deep),
        "custom status" => {
            ctx.set_custom_status(deep);
            ctx.sleep(std::time::Duration::from_secs(1)).await;
            Ok(json!("slept"))
        }
        "activity input" => {
            ctx.call(accept, deep).await?;
            Ok(json!("called"))
        }
        "sub-orchestration input" => ctx.call(echo_input, deep).await,
        "continue-as-new input" => {
            if ctx.wait_for_event::<bool>("again").await? {
                return ctx.continue_as_new((String::from("output"), levels)).await;
            }
            ctx.continue_as_new(deep).await
        }
        other => panic!("unknown place {other}"),
    }
}

#[activity]
async fn accept(_ctx: ActivityContext, _value: Value) -> Result<(), String> {
    Ok(())
}

/// The instance's status, its listing and its history read back; then it is purged.
async fn reads_back(client: &durable_runtime::Client, id: &str) -> durable_runtime::InstanceStatus {
    let status = finished(client, id).await;
    let page = client.list(&InstanceQuery::default()).await.unwrap();
    let listed = page
        .instances
        .iter()
        .find(|s| s.instance_id.as_str() == id)
        .expect("listed");
    assert_eq!(listed, &status);
    client.history(id).await.unwrap();
    client.purge(id).await.unwrap();
    status
}

fn refused_as(error: ClientError, expected: PayloadLimitError) -> String {
    match error {
        ClientError::PayloadLimit { error, what } => {
            assert_eq!(error, expected);
            format!("{what}: {error}")
        }
        other => panic!("expected a payload limit error, got {other}"),
    }
}

matrix!(the_default_depth_boundary, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(echo_event)
        .orchestrator(echo_input)
        .start()
        .unwrap();
    let client = runtime.client();
    let too_deep = PayloadLimitError::TooDeep { limit: 100 };

    // An event's data.
    let id = client.start(echo_event, ()).await.unwrap();
    custom_status_is(&client, &id, "waiting").await;
    let error = client
        .raise_event(&id, "data", nested(101))
        .await
        .unwrap_err();
    let message = refused_as(error, too_deep.clone());
    assert!(message.contains("the data of event `data`"), "{message}");
    client.raise_event(&id, "data", nested(100)).await.unwrap();
    let status = reads_back(&client, &id).await;
    assert_eq!(status.output, Some(nested(100)));

    // A start's input, by type and by name.
    let error = client.start(echo_input, nested(101)).await.unwrap_err();
    let message = refused_as(error, too_deep.clone());
    assert!(
        message.contains("the input of orchestrator `echo_input`"),
        "{message}"
    );
    let error = client
        .start_by_name("echo_input", nested(101), None)
        .await
        .unwrap_err();
    refused_as(error, too_deep.clone());
    let id = client.start(echo_input, nested(100)).await.unwrap();
    let status = reads_back(&client, &id).await;
    assert_eq!(status.input, nested(100));
    assert_eq!(status.output, Some(nested(100)));

    // A terminate's output.
    let id = client.start(echo_event, ()).await.unwrap();
    let error = client.terminate(&id, nested(101)).await.unwrap_err();
    refused_as(error, too_deep);
    client.terminate(&id, nested(100)).await.unwrap();
    let status = reads_back(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(status.output, Some(nested(100)));
});

matrix!(
    the_depth_ceiling_reads_back_on_every_store,
    |setup: Setup| async move {
        // Asking for more than the ceiling gets the ceiling: 120 levels, readable everywhere.
        let runtime = setup
            .builder()
            .max_payload_depth(10_000)
            .orchestrator(echo_event)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(echo_event, ()).await.unwrap();
        custom_status_is(&client, &id, "waiting").await;
        let error = client
            .raise_event(&id, "data", nested(121))
            .await
            .unwrap_err();
        refused_as(error, PayloadLimitError::TooDeep { limit: 120 });
        client.raise_event(&id, "data", nested(120)).await.unwrap();
        let status = reads_back(&client, &id).await;
        assert_eq!(status.output, Some(nested(120)));
    }
);

matrix!(the_size_boundary, |setup: Setup| async move {
    let limit = 256 * 1024;
    let runtime = setup
        .builder()
        .max_payload_bytes(limit)
        .orchestrator(echo_event)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(echo_event, ()).await.unwrap();
    custom_status_is(&client, &id, "waiting").await;
    let error = client
        .raise_event(&id, "data", sized(limit + 1))
        .await
        .unwrap_err();
    refused_as(error, PayloadLimitError::TooLarge { limit });
    client.raise_event(&id, "data", sized(limit)).await.unwrap();
    let status = reads_back(&client, &id).await;
    assert_eq!(status.output, Some(sized(limit)));
});

matrix!(
    a_huge_payload_is_refused_by_default,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(echo_event).start().unwrap();
        let client = runtime.client();
        let id = client.start(echo_event, ()).await.unwrap();
        custom_status_is(&client, &id, "waiting").await;
        let limit = 16 * 1024 * 1024;
        let error = client
            .raise_event(&id, "data", sized(limit + 1))
            .await
            .unwrap_err();
        let message = refused_as(error, PayloadLimitError::TooLarge { limit });
        assert!(message.contains("larger than 16777216 bytes"), "{message}");
        // Far deeper than serde_json reads: refused, not stored.
        let error = client
            .raise_event(&id, "data", nested(1_000))
            .await
            .unwrap_err();
        refused_as(error, PayloadLimitError::TooDeep { limit: 100 });
        client.raise_event(&id, "data", "small").await.unwrap();
        assert_eq!(reads_back(&client, &id).await.output, Some(json!("small")));
    }
);

matrix!(
    an_activity_output_over_the_limit_fails_its_attempt,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(call_make_nested)
            .activity(make_nested)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(call_make_nested, 100).await.unwrap();
        let status = reads_back(&client, &id).await;
        assert_eq!(status.output, Some(nested(100)));

        let id = client.start(call_make_nested, 101).await.unwrap();
        let status = reads_back(&client, &id).await;
        let output = status.output.expect("an output");
        assert_eq!(output["kind"], kinds::PAYLOAD_LIMIT, "{output}");
        let message = output["message"].as_str().unwrap();
        assert!(
        message.contains("the output of activity `make_nested` is refused: it is nested more than 100 levels"),
        "{message}"
    );
    }
);

matrix!(
    what_an_orchestration_produces_over_the_limit_fails_it,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(produce)
            .orchestrator(echo_input)
            .activity(accept)
            .start()
            .unwrap();
        let client = runtime.client();
        for (what, named) in [
            ("output", "the output of the orchestration"),
            ("custom status", "the custom status"),
            ("activity input", "the input of activity `accept`"),
            (
                "sub-orchestration input",
                "the input of sub-orchestration `echo_input`",
            ),
            ("continue-as-new input", "the input of continue-as-new"),
        ] {
            // Within the limit, it works.
            let id = client
                .start(produce, (what.to_string(), 100))
                .await
                .unwrap();
            if what == "continue-as-new input" {
                client.raise_event(&id, "again", true).await.unwrap();
            }
            let status = reads_back(&client, &id).await;
            assert_eq!(
                status.runtime_status,
                RuntimeStatus::Completed,
                "{what}: {status:?}"
            );

            let id = client
                .start(produce, (what.to_string(), 101))
                .await
                .unwrap();
            if what == "continue-as-new input" {
                client.raise_event(&id, "again", false).await.unwrap();
            }
            let status = reads_back(&client, &id).await;
            assert_eq!(
                status.runtime_status,
                RuntimeStatus::Failed,
                "{what}: {status:?}"
            );
            let failure = status.failure.expect("a failure");
            assert_eq!(failure.kind, kinds::PAYLOAD_LIMIT, "{what}");
            assert!(
                failure
                    .message
                    .starts_with(&format!("{named} is refused: it is nested more than 100")),
                "{what}: {failure:?}"
            );
            assert_eq!(status.custom_status, None, "{what}");
        }
    }
);

/// Fails with a message of `bytes` bytes.
#[activity]
async fn fail_long(_ctx: ActivityContext, bytes: usize) -> Result<(), String> {
    Err("e".repeat(bytes))
}

/// Calls `fail_long`, then fails itself with the message it got back, doubled.
#[orchestrator]
async fn fail_longer(ctx: OrchestrationContext, bytes: usize) -> Result<(), String> {
    let error = ctx.call(fail_long, bytes).await.unwrap_err();
    let message = error.failure().expect("a failure").message.clone();
    assert!(message.len() < 1_100, "the attempt's failure was not cut");
    Err(format!("{message}{message}"))
}

matrix!(
    failure_messages_are_cut_to_the_size_limit,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .max_payload_bytes(1024)
            .orchestrator(fail_longer)
            .activity(fail_long)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(fail_longer, 10 * 1024 * 1024).await.unwrap();
        let status = reads_back(&client, &id).await;
        let failure = status.failure.expect("a failure");
        assert!(
            failure.message.starts_with(&"e".repeat(1024)),
            "{}",
            &failure.message[..100]
        );
        assert!(
            failure
                .message
                .ends_with("more bytes cut: the payload size limit)"),
            "{}",
            failure.message
        );
        assert!(failure.message.len() < 1_100);
    }
);
