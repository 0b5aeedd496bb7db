//! Issue 9, item 3: deep JSON poisons an instance. serde_json writes any depth but reads at
//! most 128 levels, and the stores wrap payloads in a level or two more. Whatever a client
//! or a store sends, status, listing, terminate and purge keep working, for that instance
//! and for the others.
//!
//! Written against the public API of `main` before the payload limits: there, the first two
//! were accepted and then broke purge (every store) and terminate, and the store-level ones
//! broke leasing, so terminate never took effect.

use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::InstanceQuery;
use durable_runtime::store::NewInstance;
use durable_runtime::{
    orchestrator, ClientError, InstanceStatus, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::{custom_status_is, matrix, Setup, PATIENCE};
use serde_json::{json, Value};

/// `levels` arrays inside each other around `1`.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}

/// The demo's `step2` workflow: the event's data becomes (part of) the output.
#[orchestrator]
async fn echo_step2(ctx: OrchestrationContext) -> Result<Value, TaskError> {
    ctx.set_custom_status("waiting");
    let data: Value = ctx.wait_for_event("step2").await?;
    Ok(json!({ "step2": data }))
}

/// Waits for an event nobody sends.
#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.set_custom_status("waiting");
    ctx.wait_for_event::<()>("go").await?;
    Ok(())
}

/// Terminate takes effect (or the instance has finished already), and its status, every
/// listing page, and its purge work; afterwards it is gone.
async fn still_manageable(client: &durable_runtime::Client, id: &str) -> InstanceStatus {
    match client.terminate(id, "enough").await {
        Ok(()) | Err(ClientError::Finished { .. }) => {}
        Err(error) => panic!("terminate failed: {error}"),
    }
    let status = client
        .wait_for_completion(id, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("the instance never finished: {e}"));
    let mut query = InstanceQuery {
        page_size: 1,
        ..InstanceQuery::default()
    };
    let mut listed = false;
    loop {
        let page = client
            .list(&query)
            .await
            .unwrap_or_else(|e| panic!("a listing page failed: {e}"));
        listed |= page.instances.iter().any(|s| s.instance_id.as_str() == id);
        match page.continuation {
            Some(next) => query.continuation = Some(next),
            None => break,
        }
    }
    assert!(listed, "the instance is missing from the listing");
    client
        .purge(id)
        .await
        .unwrap_or_else(|e| panic!("purge failed: {e}"));
    assert!(matches!(
        client.status(id).await,
        Err(ClientError::NotFound(_))
    ));
    status
}

/// Starts another instance and checks that it still runs to the end.
async fn others_unaffected(client: &durable_runtime::Client) {
    let other = client.start(echo_step2, ()).await.unwrap();
    custom_status_is(client, &other, "waiting").await;
    client.raise_event(&other, "step2", "fine").await.unwrap();
    let status = client.wait_for_completion(&other, PATIENCE).await.unwrap();
    assert_eq!(status.output, Some(json!({ "step2": "fine" })));
}

matrix!(
    an_event_126_deep_that_becomes_the_output,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(echo_step2).start().unwrap();
        let client = runtime.client();
        let id = client.start(echo_step2, ()).await.unwrap();
        custom_status_is(&client, &id, "waiting").await;
        let sent = client.raise_event(&id, "step2", nested(126)).await;
        if let Err(error) = &sent {
            assert!(error.to_string().contains("nested more than"), "{error}");
        }
        still_manageable(&client, &id).await;
        others_unaffected(&client).await;
    }
);

matrix!(an_unawaited_event_127_deep, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(waits_for_go)
        .orchestrator(echo_step2)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(waits_for_go, ()).await.unwrap();
    custom_status_is(&client, &id, "waiting").await;
    let sent = client.raise_event(&id, "other", nested(127)).await;
    if let Err(error) = &sent {
        assert!(error.to_string().contains("nested more than"), "{error}");
    }
    still_manageable(&client, &id).await;
    others_unaffected(&client).await;
});

matrix!(
    a_stored_event_126_deep_that_becomes_the_output,
    |setup: Setup| async move {
        // As if raised before the limits existed: straight into the store.
        let runtime = setup.builder().orchestrator(echo_step2).start().unwrap();
        let client = runtime.client();
        let id = client.start(echo_step2, ()).await.unwrap();
        custom_status_is(&client, &id, "waiting").await;
        let event = HistoryEvent::new(Event::EventRaised {
            name: "step2".into(),
            data: nested(126),
        });
        setup.store.send(&id, event, None).await.unwrap();
        let status = client.wait_for_completion(&id, PATIENCE).await.unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let failure = status.failure.expect("a failure");
        assert!(
            failure.message.contains("the output of the orchestration"),
            "{failure:?}"
        );
        still_manageable(&client, &id).await;
        others_unaffected(&client).await;
    }
);

matrix!(
    a_stored_unawaited_event_127_deep,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(waits_for_go)
            .orchestrator(echo_step2)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(waits_for_go, ()).await.unwrap();
        custom_status_is(&client, &id, "waiting").await;
        let event = HistoryEvent::new(Event::EventRaised {
            name: "other".into(),
            data: nested(127),
        });
        setup.store.send(&id, event, None).await.unwrap();
        let status = still_manageable(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let failure = status.failure.expect("a failure");
        assert!(failure.message.contains("cannot be read"), "{failure:?}");
        others_unaffected(&client).await;
    }
);

/// An instance of `echo_step2` whose input (130 levels) no store reads back.
fn deep_start(id: &durable_runtime::InstanceId) -> NewInstance {
    let now = std::time::SystemTime::now();
    let input = nested(130);
    NewInstance {
        status: InstanceStatus {
            instance_id: id.clone(),
            name: "echo_step2".into(),
            version: 1,
            runtime_status: RuntimeStatus::Pending,
            created_at: now,
            last_updated_at: now,
            input: input.clone(),
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: "echo_step2".into(),
            version: 1,
            input,
            seed: 1,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        }),
        start_at: None,
        replace_finished: false,
    }
}

matrix!(a_stored_start_130_deep, |setup: Setup| async move {
    // An instance created before the limits existed with an input no store reads back.
    let runtime = setup.builder().orchestrator(echo_step2).start().unwrap();
    let client = runtime.client();
    let id = durable_runtime::InstanceId::new("deep-start").unwrap();
    setup.store.create_instance(deep_start(&id)).await.unwrap();
    let status = still_manageable(&client, id.as_str()).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let failure = status.failure.expect("a failure");
    assert!(failure.message.contains("cannot be read"), "{failure:?}");
    others_unaffected(&client).await;
});

/// The file store reads a recovered status only when asked: one it cannot read is still
/// listed and shown, with the reason, and the instance fails, terminates and purges.
#[tokio::test]
async fn a_recovered_status_that_cannot_be_read() {
    use durable_runtime::store::{FileStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let id = durable_runtime::InstanceId::new("deep-start").unwrap();
    let store = FileStore::open(dir.path()).await.unwrap();
    store.create_instance(deep_start(&id)).await.unwrap();
    store.close().await;

    let store = FileStore::open(dir.path()).await.unwrap();
    let status = store.status(&id).await.unwrap().expect("the instance");
    assert_eq!(status.runtime_status, RuntimeStatus::Pending);
    assert_eq!(status.version, 1);
    let failure = status.failure.expect("the reason");
    assert!(
        failure.message.contains("its stored status cannot be read"),
        "{failure:?}"
    );
    let page = store.list(&InstanceQuery::default()).await.unwrap();
    assert_eq!(page.instances.len(), 1);

    let runtime = durable_runtime::Runtime::builder()
        .store(store)
        .orchestrator(echo_step2)
        .start()
        .unwrap();
    let client = runtime.client();
    let status = still_manageable(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    others_unaffected(&client).await;
}

/// The first turn of a new instance `id` (of `echo_step2`, with a readable input), as a store
/// hands it out, written by hand: its history opens with the start; a test adds what an
/// older runtime would have recorded, then commits it.
async fn first_turn_by_hand(
    setup: &Setup,
    id: &durable_runtime::InstanceId,
) -> durable_runtime::store::TurnCommit {
    use durable_runtime::store::{StatusUpdate, TurnCommit};
    let mut start = deep_start(id);
    start.status.input = Value::Null;
    if let Event::ExecutionStarted { input, .. } = &mut start.start.event {
        *input = Value::Null;
    }
    setup.store.create_instance(start.clone()).await.unwrap();
    let now = setup.clock.now();
    let work = setup
        .store
        .fetch_orchestration(now, std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the start");
    let mut turn = TurnCommit::for_work(&work, StatusUpdate::running());
    turn.history = vec![
        HistoryEvent::new(Event::OrchestratorStarted { timestamp: now }),
        start.start,
    ];
    turn
}

matrix!(
    a_stored_history_that_cannot_be_read,
    |setup: Setup| async move {
        // A turn committed before the limits existed, with an event no store reads back.
        let id = durable_runtime::InstanceId::new("deep-history").unwrap();
        let mut turn = first_turn_by_hand(&setup, &id).await;
        turn.history.push(HistoryEvent::new(Event::EventRaised {
            name: "early".into(),
            data: nested(130),
        }));
        setup.store.commit_turn(turn).await.unwrap();
        assert!(setup.store.load_history(&id).await.is_err());

        let runtime = setup.builder().orchestrator(echo_step2).start().unwrap();
        let client = runtime.client();
        client.raise_event(&id, "step2", 1).await.unwrap();
        let status = client.wait_for_completion(&id, PATIENCE).await.unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let failure = status.failure.expect("a failure");
        assert!(
            failure.message.contains("the history cannot be read"),
            "{failure:?}"
        );
        still_manageable(&client, &id).await;
        others_unaffected(&client).await;
    }
);

matrix!(
    a_stored_activity_task_that_cannot_be_read,
    |setup: Setup| async move {
        // An activity call scheduled before the limits existed, with an input no store reads
        // back: the attempt fails instead of being handed out for ever, and the instance fails.
        use durable_runtime::store::ActivityTask;
        let id = durable_runtime::InstanceId::new("deep-task").unwrap();
        let mut turn = first_turn_by_hand(&setup, &id).await;
        turn.history.push(HistoryEvent::new(Event::TaskScheduled {
            id: 0,
            name: "accept".into(),
            input: nested(130),
            attempt: 1,
        }));
        turn.activities = vec![ActivityTask {
            instance_id: id.clone(),
            id: 0,
            name: "accept".into(),
            input: nested(130),
            attempt: 1,
            timeout: None,
            parent_span: None,
        }];
        setup.store.commit_turn(turn).await.unwrap();

        let runtime = setup.builder().orchestrator(echo_step2).start().unwrap();
        let client = runtime.client();
        let status = client.wait_for_completion(&id, PATIENCE).await.unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        still_manageable(&client, &id).await;
        others_unaffected(&client).await;
    }
);
