//! The whole orchestration model: fan-out, races, sub-orchestrations, continue-as-new,
//! terminate, suspend, purge, scheduled starts, id reuse, listing, versions and patches —
//! durabletask-go's conformance scenarios 3, 8, 9–14 and 17–26 among them.

use std::sync::OnceLock;
use std::time::Duration;

use durable_runtime::future::{join_all, select, Either};
use durable_runtime::history::{kinds, Event};
use durable_runtime::store::InstanceQuery;
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, ClientError, IdReuse, IfRunning, OrchestrationContext,
    RetryPolicy, RuntimeStatus, TaskError,
};
use durable_tests::{custom_status_is, finished, matrix, tally, Setup, PATIENCE};
use tokio::sync::Barrier;

fn count(history: &[durable_runtime::history::HistoryEvent], name: &str) -> usize {
    history.iter().filter(|e| e.event.name() == name).count()
}

#[orchestrator]
async fn three_timers(ctx: OrchestrationContext) -> Result<(), TaskError> {
    let second = Duration::from_secs(1);
    join_all([ctx.sleep(second), ctx.sleep(second), ctx.sleep(second)]).await;
    Ok(())
}

// 3. Three concurrent 1 s timers finish together: one second of virtual time in all.
matrix!(three_concurrent_timers, |setup: Setup| async move {
    let runtime = setup.builder().orchestrator(three_timers).start().unwrap();
    let client = runtime.client();
    let start = setup.clock.now();
    let id = client.start(three_timers, ()).await.unwrap();
    assert_eq!(
        finished(&client, &id).await.runtime_status,
        RuntimeStatus::Completed
    );
    assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(1));
    let history = client.history(&id).await.unwrap();
    assert_eq!(count(&history, "TimerCreated"), 3);
    assert_eq!(count(&history, "TimerFired"), 3);
});

fn barrier() -> &'static Barrier {
    static BARRIER: OnceLock<Barrier> = OnceLock::new();
    BARRIER.get_or_init(|| Barrier::new(10))
}

#[activity]
async fn meet(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    // Every one of the ten waits for all the others: they can only finish if they overlap.
    barrier().wait().await;
    Ok(n * 10)
}

#[orchestrator]
async fn fan_out(ctx: OrchestrationContext) -> Result<Vec<u32>, TaskError> {
    let calls = (0..10).map(|n| ctx.call(meet, n));
    join_all(calls).await.into_iter().collect()
}

// 8. A fan-out of 10 activities runs them at once; results come back in call order.
#[tokio::test]
async fn fan_out_of_ten_activities_overlaps() {
    // One configuration at a time: the barrier is shared by the whole test binary.
    for setup in [
        Setup::memory(durable_tests::Cache::On),
        Setup::memory(durable_tests::Cache::Off),
    ] {
        let runtime = setup
            .builder()
            .orchestrator(fan_out)
            .activity(meet)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(fan_out, ()).await.unwrap();
        let status = finished(&client, &id).await;
        let out: Vec<u32> = status.output_as().unwrap().unwrap();
        assert_eq!(out, (0..10).map(|n| n * 10).collect::<Vec<_>>());
        let history = client.history(&id).await.unwrap();
        assert_eq!(count(&history, "TaskScheduled"), 10);
        runtime.shutdown().await;
    }
}

#[orchestrator]
async fn race(ctx: OrchestrationContext) -> Result<String, TaskError> {
    ctx.set_custom_status("racing");
    let event = ctx.wait_for_event::<String>("answer");
    let timer = ctx.sleep(Duration::from_secs(60));
    match select(event, timer).await {
        Either::Left((answer, _timer)) => answer,
        Either::Right(((), _event)) => Ok("timed out".into()),
    }
}

// A race: the event wins, the losing timer is cancelled and never fires.
matrix!(a_lost_race_cancels_its_timer, |setup: Setup| async move {
    let runtime = setup.builder().orchestrator(race).start().unwrap();
    let client = runtime.client();
    let id = client.start(race, ()).await.unwrap();
    custom_status_is(&client, &id, "racing").await;
    client.raise_event(&id, "answer", "42").await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<String>().unwrap().unwrap(), "42");
    let history = client.history(&id).await.unwrap();
    assert_eq!(count(&history, "TimerCreated"), 1);
    assert_eq!(count(&history, "TimerFired"), 0);
});

#[activity]
async fn shout(_ctx: ActivityContext, word: String) -> Result<String, String> {
    Ok(word.to_uppercase())
}

#[orchestrator]
async fn child(ctx: OrchestrationContext, word: String) -> Result<String, String> {
    if word == "fail" {
        return Err("the child refuses".into());
    }
    ctx.call(shout, word).await.map_err(|e| e.to_string())
}

#[orchestrator]
async fn parent(ctx: OrchestrationContext, word: String) -> Result<String, TaskError> {
    let first = ctx.call(child, word.clone()).await?;
    let second = ctx
        .call(child, word)
        .instance_id(format!("{}-named", ctx.instance_id()))
        .await?;
    Ok(format!("{first} {second}"))
}

// 9. A sub-orchestration completes; its id defaults to "{parent}:{step}".
matrix!(sub_orchestration_completes, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(parent)
        .orchestrator(child)
        .activity(shout)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(parent, "hey".to_string()).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<String>().unwrap().unwrap(), "HEY HEY");
    let first = client.status(&format!("{id}:0")).await.unwrap();
    assert_eq!(first.runtime_status, RuntimeStatus::Completed);
    assert_eq!(first.parent.as_deref(), Some(id.as_str()));
    let named = client.status(&format!("{id}-named")).await.unwrap();
    assert_eq!(named.output_as::<String>().unwrap().unwrap(), "HEY");
});

// 10. A failing sub-orchestration fails its parent with the child's message.
matrix!(
    sub_orchestration_failure_fails_the_parent,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(parent)
            .orchestrator(child)
            .activity(shout)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(parent, "fail".to_string()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        assert_eq!(
            status.failure.unwrap().message,
            "sub-orchestration `child` failed after 1 attempt(s): the child refuses"
        );
    }
);

#[orchestrator]
async fn flaky_child(ctx: OrchestrationContext, caller: String) -> Result<u32, String> {
    let attempt = tally::bump(format!("{caller}/flaky_child"));
    let _ = ctx.instance_id();
    if attempt < 3 {
        Err(format!("child attempt {attempt} failed"))
    } else {
        Ok(attempt)
    }
}

#[orchestrator]
async fn retrying_parent(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let policy = RetryPolicy::new(3, Duration::from_secs(1));
    ctx.call(flaky_child, ctx.instance_id().to_string())
        .retry(policy)
        .await
}

// 11. A sub-orchestration retried: three child instances, the last one succeeds.
matrix!(sub_orchestration_is_retried, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(retrying_parent)
        .orchestrator(flaky_child)
        .start()
        .unwrap();
    let client = runtime.client();
    let start = setup.clock.now();
    let id = client.start(retrying_parent, ()).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<u32>().unwrap(), Some(3));
    assert_eq!(setup.clock.elapsed_since(start), Duration::from_secs(2));
    let children = client
        .list(&InstanceQuery {
            name: Some("flaky_child".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mine: Vec<_> = children
        .instances
        .iter()
        .filter(|s| s.parent.as_deref() == Some(id.as_str()))
        .map(|s| s.runtime_status)
        .collect();
    assert_eq!(mine.len(), 3, "one child instance per attempt");
    assert_eq!(
        mine.iter().filter(|s| **s == RuntimeStatus::Failed).count(),
        2
    );
});

#[orchestrator]
async fn counter(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    if n < 10 {
        return ctx.continue_as_new(n + 1).await;
    }
    Ok(n)
}

// 12. Continue-as-new counting from 0 to 10; the history keeps only the last generation.
matrix!(continue_as_new_counts_to_ten, |setup: Setup| async move {
    let runtime = setup.builder().orchestrator(counter).start().unwrap();
    let client = runtime.client();
    let id = client.start(counter, 0).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<u32>().unwrap(), Some(10));
    assert_eq!(status.input, serde_json::json!(10));
    let history = client.history(&id).await.unwrap();
    assert_eq!(count(&history, "ExecutionStarted"), 1, "{history:?}");
    let generation = history.iter().find_map(|e| match &e.event {
        Event::ExecutionStarted { generation, .. } => Some(*generation),
        _ => None,
    });
    assert_eq!(generation, Some(10));
});

#[orchestrator]
async fn event_per_generation(ctx: OrchestrationContext, seen: u32) -> Result<u32, TaskError> {
    let _: u32 = ctx.wait_for_event("tick").await?;
    if seen + 1 < 11 {
        return ctx.continue_as_new(seen + 1).keep_events().await;
    }
    Ok(seen + 1)
}

// 13. Continue-as-new carries 11 early events over, one consumed per generation.
matrix!(
    continue_as_new_carries_early_events,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(event_per_generation)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(event_per_generation, 0).await.unwrap();
        for i in 0..11u32 {
            client.raise_event(&id, "tick", i).await.unwrap();
        }
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<u32>().unwrap(), Some(11));
    }
);

#[orchestrator]
async fn timeout_then_restart(
    ctx: OrchestrationContext,
    generation: u32,
) -> Result<u32, TaskError> {
    if generation == 0 {
        let missed = ctx
            .wait_for_event::<u32>("never")
            .timeout(Duration::from_secs(1))
            .await;
        assert!(matches!(missed, Err(TaskError::EventTimedOut { .. })));
        return ctx.continue_as_new(1).keep_events().await;
    }
    let a: u32 = ctx.wait_for_event("kept").await?;
    let b: u32 = ctx.wait_for_event("kept").await?;
    Ok(a + b)
}

// 14. An event wait times out, then events raised meanwhile survive continue-as-new.
matrix!(
    events_survive_a_timeout_and_continue_as_new,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(timeout_then_restart)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(timeout_then_restart, 0).await.unwrap();
        client.raise_event(&id, "kept", 1).await.unwrap();
        client.raise_event(&id, "kept", 2).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<u32>().unwrap(), Some(3), "{status:?}");
    }
);

#[orchestrator]
async fn restarts_forever(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.continue_as_new(()).await
}

// The guard against a tight loop of restarts.
matrix!(a_restart_loop_is_stopped, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(restarts_forever)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(restarts_forever, ()).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    assert_eq!(status.failure.unwrap().kind, kinds::RESTART_LOOP);
});

#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext) -> Result<String, TaskError> {
    ctx.set_custom_status("waiting");
    ctx.wait_for_event("go").await
}

// 17. A suspended instance holds events; resumed, it completes.
matrix!(
    suspend_holds_events_until_resume,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(waits_for_go).start().unwrap();
        let client = runtime.client();
        let id = client.start(waits_for_go, ()).await.unwrap();
        custom_status_is(&client, &id, "waiting").await;
        client.suspend(&id, Some("maintenance")).await.unwrap();
        client
            .wait_until(&id, PATIENCE, |s| {
                s.runtime_status == RuntimeStatus::Suspended
            })
            .await
            .unwrap();
        client.raise_event(&id, "go", "now").await.unwrap();
        // The event is recorded but held: wait until it is in the history, still suspended.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while count(&client.history(&id).await.unwrap(), "EventRaised") == 0 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            client.status(&id).await.unwrap().runtime_status,
            RuntimeStatus::Suspended
        );
        client.resume(&id, None).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.output_as::<String>().unwrap().unwrap(), "now");
    }
);

// 17b. Found by the simulator (durable-sim): a suspend sent to a suspended instance (a
// client trying again after an unknown outcome) was held and applied again after the
// resume, so one resume left the instance suspended for good.
matrix!(
    a_second_suspend_is_undone_by_one_resume,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(waits_for_go).start().unwrap();
        let client = runtime.client();
        let id = client.start(waits_for_go, ()).await.unwrap();
        custom_status_is(&client, &id, "waiting").await;
        client.suspend(&id, Some("first")).await.unwrap();
        client
            .wait_until(&id, PATIENCE, |s| {
                s.runtime_status == RuntimeStatus::Suspended
            })
            .await
            .unwrap();
        client.suspend(&id, Some("again")).await.unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while count(&client.history(&id).await.unwrap(), "ExecutionSuspended") < 2 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        client.resume(&id, None).await.unwrap();
        client.raise_event(&id, "go", "now").await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(status.output_as::<String>().unwrap().unwrap(), "now");
    }
);

// 18. Terminate with an output.
matrix!(terminate_with_output, |setup: Setup| async move {
    let runtime = setup.builder().orchestrator(waits_for_go).start().unwrap();
    let client = runtime.client();
    let id = client.start(waits_for_go, ()).await.unwrap();
    custom_status_is(&client, &id, "waiting").await;
    client
        .terminate(&id, "stopped by an operator")
        .await
        .unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(
        status.output_as::<String>().unwrap().unwrap(),
        "stopped by an operator"
    );
});

#[activity]
async fn leaf_work(ctx: ActivityContext) -> Result<(), String> {
    tally::bump(format!("{}/leaf_work", ctx.instance_id()));
    Ok(())
}

#[orchestrator]
async fn grandchild(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.set_custom_status("waiting");
    ctx.wait_for_event::<()>("go").await?;
    ctx.call(leaf_work, ()).await
}

#[orchestrator]
async fn middle(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.call(grandchild, ()).await
}

#[orchestrator]
async fn top(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.call(middle, ()).await
}

// 19. A recursive terminate stops every descendant; none of them runs on.
matrix!(
    recursive_terminate_reaches_grandchildren,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(top)
            .orchestrator(middle)
            .orchestrator(grandchild)
            .activity(leaf_work)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(top, ()).await.unwrap();
        let leaf = format!("{id}:0:0");
        custom_status_is(&client, &leaf, "waiting").await;
        client.terminate(&id, "all of you").await.unwrap();
        for instance in [id.to_string(), format!("{id}:0"), leaf.clone()] {
            let status = finished(&client, &instance).await;
            assert_eq!(
                status.runtime_status,
                RuntimeStatus::Terminated,
                "{instance}"
            );
        }
        let error = client.raise_event(&leaf, "go", ()).await.unwrap_err();
        assert!(matches!(error, ClientError::Finished { .. }));
        assert_eq!(tally::get(&format!("{leaf}/leaf_work")), 0);
    }
);

#[orchestrator]
async fn two_children(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.call(child, "done".to_string()).await?;
    ctx.call(grandchild, ()).await
}

// 20. A recursive terminate leaves finished children as they are.
matrix!(
    recursive_terminate_skips_finished_children,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(two_children)
            .orchestrator(child)
            .orchestrator(grandchild)
            .activity(shout)
            .activity(leaf_work)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(two_children, ()).await.unwrap();
        custom_status_is(&client, &format!("{id}:1"), "waiting").await;
        client.terminate(&id, "stop").await.unwrap();
        finished(&client, &id).await;
        let done = client.status(&format!("{id}:0")).await.unwrap();
        assert_eq!(done.runtime_status, RuntimeStatus::Completed);
        assert_eq!(done.output_as::<String>().unwrap().unwrap(), "DONE");
        let stopped = finished(&client, &format!("{id}:1")).await;
        assert_eq!(stopped.runtime_status, RuntimeStatus::Terminated);
    }
);

// 21. Purge: refused while running, works after, a second purge is not found.
matrix!(purge_only_after_the_end, |setup: Setup| async move {
    let runtime = setup.builder().orchestrator(waits_for_go).start().unwrap();
    let client = runtime.client();
    let id = client.start(waits_for_go, ()).await.unwrap();
    custom_status_is(&client, &id, "waiting").await;
    assert!(matches!(
        client.purge(&id).await,
        Err(ClientError::NotFinished(_))
    ));
    client.raise_event(&id, "go", "x").await.unwrap();
    finished(&client, &id).await;
    client.purge(&id).await.unwrap();
    assert!(matches!(
        client.status(&id).await,
        Err(ClientError::NotFound(_))
    ));
    assert!(matches!(
        client.purge(&id).await,
        Err(ClientError::NotFound(_))
    ));
});

// 22. A recursive purge removes the sub-orchestrations too.
matrix!(recursive_purge, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(parent)
        .orchestrator(child)
        .activity(shout)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(parent, "x".to_string()).await.unwrap();
    finished(&client, &id).await;
    client.purge(&id).await.unwrap();
    for gone in [id.to_string(), format!("{id}:0"), format!("{id}-named")] {
        assert!(
            matches!(client.status(&gone).await, Err(ClientError::NotFound(_))),
            "{gone}"
        );
    }
});

// 23. A finished instance id can be started again: the old run is replaced.
matrix!(recreate_a_finished_instance, |setup: Setup| async move {
    let runtime = setup.builder().orchestrator(counter).start().unwrap();
    let client = runtime.client();
    let id = client
        .start(counter, 10)
        .instance_id("again")
        .await
        .unwrap();
    assert_eq!(
        finished(&client, &id).await.output_as::<u32>().unwrap(),
        Some(10)
    );
    client.start(counter, 9).instance_id("again").await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<u32>().unwrap(), Some(10));
    let history = client.history(&id).await.unwrap();
    assert_eq!(count(&history, "ExecutionCompleted"), 1);
});

// 24–26. Starting an id that is still running: ignore, terminate-and-restart, or fail.
matrix!(id_reuse_policies, |setup: Setup| async move {
    let runtime = setup.builder().orchestrator(waits_for_go).start().unwrap();
    let client = runtime.client();
    let id = client
        .start(waits_for_go, ())
        .instance_id("busy")
        .await
        .unwrap();
    custom_status_is(&client, &id, "waiting").await;

    let error = client
        .start(waits_for_go, ())
        .instance_id("busy")
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::AlreadyExists(_)), "{error}");

    let same = client
        .start(waits_for_go, ())
        .instance_id("busy")
        .if_running(IfRunning::Ignore)
        .await
        .unwrap();
    assert_eq!(same, id);

    client
        .start(waits_for_go, ())
        .instance_id("busy")
        .if_running(IfRunning::TerminateAndRestart)
        .await
        .unwrap();
    let restarted = custom_status_is(&client, &id, "waiting").await;
    assert_eq!(restarted.runtime_status, RuntimeStatus::Running);
    assert_eq!(
        count(&client.history(&id).await.unwrap(), "ExecutionTerminated"),
        0
    );
    client.raise_event(&id, "go", "second run").await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(status.output_as::<String>().unwrap().unwrap(), "second run");
});

// Issue 10, item 5: `IdReuse::Refuse` refuses an id in any state, finished included, and
// leaves that instance as it was; the default still replaces a finished one.
matrix!(refuse_an_existing_id, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(waits_for_go)
        .orchestrator(counter)
        .start()
        .unwrap();
    let client = runtime.client();
    let refused = |status: RuntimeStatus| {
        move |result: Result<durable_runtime::InstanceId, ClientError>| match result {
            Err(ClientError::IdTaken { id, status: s }) if s == status => id,
            other => panic!("expected IdTaken({status:?}), got {other:?}"),
        }
    };

    // Never used: the start goes ahead.
    let id = client
        .start(waits_for_go, ())
        .instance_id("once")
        .id_reuse(IdReuse::Refuse)
        .await
        .unwrap();
    custom_status_is(&client, &id, "waiting").await;
    // Running: refused, even when told to ignore or replace a running one.
    for if_running in [
        IfRunning::Fail,
        IfRunning::Ignore,
        IfRunning::TerminateAndRestart,
    ] {
        let result = client
            .start(waits_for_go, ())
            .instance_id("once")
            .id_reuse(IdReuse::Refuse)
            .if_running(if_running)
            .await;
        assert_eq!(refused(RuntimeStatus::Running)(result).as_str(), "once");
    }
    client.raise_event(&id, "go", "first run").await.unwrap();
    let first = finished(&client, &id).await;
    let recorded = client.history(&id).await.unwrap();

    // Finished: refused, and nothing of the first run changes.
    let error = client
        .start(waits_for_go, ())
        .instance_id("once")
        .id_reuse(IdReuse::Refuse)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "instance `once` exists already (Completed) and this start refuses an existing id \
         (`IdReuse::Refuse`): read that instance's status instead of starting it again, or \
         start under another id"
    );
    refused(RuntimeStatus::Completed)(Err(error));
    assert_eq!(client.status(&id).await.unwrap(), first);
    assert_eq!(client.history(&id).await.unwrap(), recorded);

    // Failed and terminated ones too.
    // An input the orchestrator cannot decode fails the instance.
    let failing = client
        .start_by_name("counter", serde_json::json!("ten"), Some("failed-once"))
        .await
        .unwrap();
    assert_eq!(
        finished(&client, &failing).await.runtime_status,
        RuntimeStatus::Failed
    );
    let result = client
        .start(counter, 1)
        .instance_id("failed-once")
        .id_reuse(IdReuse::Refuse)
        .await;
    refused(RuntimeStatus::Failed)(result);
    let stopped = client
        .start(waits_for_go, ())
        .instance_id("stopped-once")
        .await
        .unwrap();
    client.terminate(&stopped, "enough").await.unwrap();
    finished(&client, &stopped).await;
    let result = client
        .start(waits_for_go, ())
        .instance_id("stopped-once")
        .id_reuse(IdReuse::Refuse)
        .await;
    refused(RuntimeStatus::Terminated)(result);

    // Purged: the id is free again.
    client.purge(&id).await.unwrap();
    client
        .start(counter, 9)
        .instance_id("once")
        .id_reuse(IdReuse::Refuse)
        .await
        .unwrap();
    assert_eq!(
        finished(&client, "once").await.output_as::<u32>().unwrap(),
        Some(10)
    );
    // The default still replaces a finished instance (durabletask's rule).
    client
        .start(counter, 9)
        .instance_id("once")
        .id_reuse(IdReuse::ReplaceFinished)
        .await
        .unwrap();
    runtime.shutdown().await;
});

// A scheduled start is honoured: nothing runs before its time.
matrix!(scheduled_start, |setup: Setup| async move {
    let runtime = setup
        .builder_with(Advance::Manual)
        .orchestrator(counter)
        .start()
        .unwrap();
    let client = runtime.client();
    let at = setup.clock.now() + Duration::from_secs(3600);
    let id = client.start(counter, 10).start_at(at).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        client.status(&id).await.unwrap().runtime_status,
        RuntimeStatus::Pending
    );
    setup.clock.advance(Duration::from_secs(3600));
    let status = finished(&client, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    let history = client.history(&id).await.unwrap();
    let first_turn = history.iter().find_map(|e| match e.event {
        Event::OrchestratorStarted { timestamp } => Some(timestamp),
        _ => None,
    });
    assert_eq!(first_turn, Some(at));
});

// Listing instances by status, name and creation time, page by page.
matrix!(list_and_page_instances, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(waits_for_go)
        .orchestrator(counter)
        .start()
        .unwrap();
    let client = runtime.client();
    let mut waiting = Vec::new();
    for i in 0..5 {
        let id = client
            .start(waits_for_go, ())
            .instance_id(format!("w{i}"))
            .await
            .unwrap();
        custom_status_is(&client, &id, "waiting").await;
        waiting.push(id);
    }
    for i in 0..3 {
        let id = client
            .start(counter, 10)
            .instance_id(format!("c{i}"))
            .await
            .unwrap();
        finished(&client, &id).await;
    }
    let running = client
        .list(&InstanceQuery {
            statuses: vec![RuntimeStatus::Running],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.instances.len(), 5);
    let mut seen = Vec::new();
    let mut query = InstanceQuery {
        page_size: 3,
        ..Default::default()
    };
    loop {
        let page = client.list(&query).await.unwrap();
        assert!(page.instances.len() <= 3);
        seen.extend(
            page.instances
                .into_iter()
                .map(|s| s.instance_id.to_string()),
        );
        match page.continuation {
            Some(next) => query.continuation = Some(next),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["c0", "c1", "c2", "w0", "w1", "w2", "w3", "w4"]);
    let counters = client
        .list(&InstanceQuery {
            name: Some("counter".into()),
            created_from: Some(setup.clock.now()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(counters.instances.len(), 3);
});

#[orchestrator(name = "order", version = 1)]
async fn order_v1(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let item: String = ctx.wait_for_event("item").await?;
    Ok(format!("v1 shipped {item}"))
}

#[orchestrator(name = "order", version = 2)]
async fn order_v2(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let item: String = ctx.wait_for_event("item").await?;
    let wrapped = ctx.call(shout, item).await?;
    Ok(format!("v2 shipped {wrapped}"))
}

// Two versions under one name run side by side; each instance stays on its own.
matrix!(two_versions_run_at_once, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestrator(order_v1)
        .orchestrator(order_v2)
        .activity(shout)
        .start()
        .unwrap();
    let client = runtime.client();
    let old = client.start(order_v1, ()).await.unwrap();
    let new = client
        .start_by_name("order", serde_json::Value::Null, None)
        .await
        .unwrap();
    assert_eq!(
        client.status(&new).await.unwrap().version,
        2,
        "new starts take the newest"
    );
    client.raise_event(&new, "item", "book").await.unwrap();
    client.raise_event(&old, "item", "pen").await.unwrap();
    assert_eq!(
        finished(&client, &old)
            .await
            .output_as::<String>()
            .unwrap()
            .unwrap(),
        "v1 shipped pen"
    );
    assert_eq!(
        finished(&client, &new)
            .await
            .output_as::<String>()
            .unwrap()
            .unwrap(),
        "v2 shipped BOOK"
    );
});

#[orchestrator(name = "checkout")]
async fn checkout_before(ctx: OrchestrationContext) -> Result<String, TaskError> {
    ctx.set_custom_status("waiting");
    let item: String = ctx.wait_for_event("item").await?;
    Ok(item)
}

#[orchestrator(name = "checkout")]
async fn checkout_patched(ctx: OrchestrationContext) -> Result<String, TaskError> {
    let receipt = if ctx.patched("shout-first") {
        ctx.call(shout, "receipt".to_string()).await?
    } else {
        "no receipt".to_string()
    };
    ctx.set_custom_status("waiting");
    let item: String = ctx.wait_for_event("item").await?;
    Ok(format!("{item}, {receipt}"))
}

// `ctx.patched`: instances started before the change replay the old branch, new ones take
// the new branch.
matrix!(
    patched_code_keeps_old_instances_on_the_old_branch,
    |setup: Setup| async move {
        let before = setup
            .builder()
            .orchestrator(checkout_before)
            .start()
            .unwrap();
        let client = before.client();
        let old = client.start(checkout_before, ()).await.unwrap();
        custom_status_is(&client, &old, "waiting").await;
        before.shutdown().await;

        let after = setup
            .builder()
            .orchestrator(checkout_patched)
            .activity(shout)
            .start()
            .unwrap();
        let client = after.client();
        let new = client.start(checkout_patched, ()).await.unwrap();
        custom_status_is(&client, &new, "waiting").await;
        client.raise_event(&old, "item", "pen").await.unwrap();
        client.raise_event(&new, "item", "book").await.unwrap();
        let old_status = finished(&client, &old).await;
        assert_eq!(
            old_status.runtime_status,
            RuntimeStatus::Completed,
            "{old_status:?}"
        );
        assert_eq!(
            old_status.output_as::<String>().unwrap().unwrap(),
            "pen, no receipt"
        );
        assert_eq!(
            finished(&client, &new)
                .await
                .output_as::<String>()
                .unwrap()
                .unwrap(),
            "book, RECEIPT"
        );
    }
);
