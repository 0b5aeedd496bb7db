//! Times out of range (issue 9, item 4): a timer, timeout or scheduled start that no store
//! can hold is refused at the call with a typed error, never written (before, it panicked
//! the worker at every lease while the store encoded it); and a panic of the runtime itself
//! while it works on an instance fails that instance instead of being retried forever.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use durable_runtime::history::{kinds, HistoryEvent};
use durable_runtime::store::{
    ActivityLease, ActivityWork, HistoryPage, InstancePage, InstanceQuery, LeaseToken, NewInstance,
    OrchestrationWork, StatusCounts, Store, StoreError, TurnCommit, WorkSignals,
};
use durable_runtime::{
    activity, orchestrator, ActivityContext, ClientError, InstanceId, InstanceStatus,
    OrchestrationContext, Runtime, RuntimeStatus, TaskError, LATEST_TIME_NANOS,
};
use durable_tests::{finished, matrix, Setup, PATIENCE};
use tokio::sync::watch;

/// The latest time every store holds: 2262-04-11T23:47:16.854775807Z.
fn latest() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(LATEST_TIME_NANOS)
}

#[orchestrator]
async fn sleep_until(ctx: OrchestrationContext, secs_after_latest: i64) -> Result<(), TaskError> {
    let at = if secs_after_latest >= 0 {
        latest() + Duration::from_nanos(secs_after_latest as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs_after_latest.unsigned_abs())
    };
    ctx.sleep_until(at).await;
    Ok(())
}

#[orchestrator]
async fn sleep_for(ctx: OrchestrationContext, secs: u64) -> Result<(), TaskError> {
    ctx.sleep(Duration::from_secs(secs)).await;
    Ok(())
}

async fn fails_out_of_range(setup: &Setup, status: InstanceStatus, what: &str) {
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    let failure = status.failure.expect("a failure");
    assert_eq!(failure.kind, kinds::TIME_OUT_OF_RANGE, "{failure:?}");
    assert!(failure.message.starts_with(what), "{failure}");
    assert!(
        failure
            .message
            .contains("1970-01-01T00:00:00Z to 2262-04-11T23:47:16.854775807Z"),
        "{failure}"
    );
    let _ = setup;
}

// `ctx.sleep` past year 9999 (and past 2262): the instance fails at the call, on every store.
matrix!(
    a_sleep_past_the_range_fails_at_the_call,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(sleep_for).start().unwrap();
        let client = runtime.client();
        let ten_thousand_years = 10_000 * 366 * 86_400;
        for secs in [ten_thousand_years, 300 * 366 * 86_400, u64::MAX] {
            let id = client.start(sleep_for, secs).await.unwrap();
            let status = finished(&client, &id).await;
            fails_out_of_range(&setup, status, "the end of ctx.sleep would be at").await;
            let history = client.history(&id).await.unwrap();
            assert!(
                !history.iter().any(|e| e.event.name() == "TimerCreated"),
                "nothing scheduled: {history:?}"
            );
        }
    }
);

// `sleep_until` before 1970, or one nanosecond past the end of the range: refused; the end
// of the range itself is accepted, written and read back.
matrix!(
    sleep_until_is_checked_at_both_ends,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(sleep_until).start().unwrap();
        let client = runtime.client();
        for (offset, at) in [
            (-1, "1s before 1970-01-01T00:00:00Z"),
            (1, "2262-04-11T23:47:16.854775808Z"),
        ] {
            let id = client.start(sleep_until, offset).await.unwrap();
            let status = finished(&client, &id).await;
            let what = format!("ctx.sleep_until would be at {at}");
            fails_out_of_range(&setup, status, &what).await;
        }
        let id = client.start(sleep_until, 0).await.unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let history = client.history(&id).await.unwrap();
            let timer = history.iter().find_map(|e| match e.event {
                durable_runtime::history::Event::TimerCreated { fire_at, .. } => Some(fire_at),
                _ => None,
            });
            if let Some(fire_at) = timer {
                assert_eq!(fire_at, latest());
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{history:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let status = client.status(&id).await.unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Running, "{status:?}");
        client.terminate(&id, "done").await.unwrap();
        finished(&client, &id).await;
    }
);

#[activity]
async fn quick(_ctx: ActivityContext) -> Result<u32, String> {
    Ok(7)
}

/// A timeout no store can hold is an error the code can handle.
#[orchestrator]
async fn huge_timeouts(ctx: OrchestrationContext) -> Result<Vec<String>, TaskError> {
    let mut refused = Vec::new();
    match ctx.wait_for_event::<u32>("x").timeout(Duration::MAX).await {
        Err(TaskError::TimeOutOfRange(error)) => refused.push(error.what),
        other => panic!("the wait's timeout was accepted: {other:?}"),
    }
    match ctx.call(quick, ()).timeout(Duration::MAX).await {
        Err(TaskError::TimeOutOfRange(error)) => refused.push(error.what),
        other => panic!("the activity's timeout was accepted: {other:?}"),
    }
    // Within the range, both work.
    let n = ctx.call(quick, ()).timeout(Duration::from_secs(60)).await?;
    refused.push(n.to_string());
    Ok(refused)
}

matrix!(
    huge_timeouts_are_errors_at_the_call,
    |setup: Setup| async move {
        let runtime = setup
            .builder()
            .orchestrator(huge_timeouts)
            .activity(quick)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(huge_timeouts, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(
            status.output_as::<Vec<String>>().unwrap().unwrap(),
            [
                "the timeout of the wait for `x`",
                "the timeout of activity `quick`",
                "7"
            ]
        );
    }
);

// A scheduled start outside the range is refused by the client; nothing is created.
matrix!(
    a_start_at_out_of_range_is_refused,
    |setup: Setup| async move {
        let runtime = setup.builder().orchestrator(sleep_for).start().unwrap();
        let client = runtime.client();
        let far = latest() + Duration::from_secs(1);
        let early = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        for (at, id) in [(far, "far"), (early, "early")] {
            let error = client
                .start(sleep_for, 1)
                .instance_id(id)
                .start_at(at)
                .await
                .unwrap_err();
            assert!(matches!(error, ClientError::TimeOutOfRange(_)), "{error:?}");
            assert!(
                error.to_string().starts_with("start_at of instance"),
                "{error}"
            );
            assert!(matches!(
                client.status(id).await,
                Err(ClientError::NotFound(_))
            ));
        }
        let id = client.start(sleep_for, 1).start_at(latest()).await.unwrap();
        let status = client.status(&id).await.unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Pending);
    }
);

// Leases as long as a `Duration` holds (builder options) saturate instead of panicking in
// the store at every fetch.
matrix!(huge_leases_do_not_panic, |setup: Setup| async move {
    let runtime = setup
        .builder()
        .orchestration_lease(Duration::MAX)
        .activity_lease(Duration::MAX)
        .orchestrator(huge_timeouts)
        .activity(quick)
        .start()
        .unwrap();
    let client = runtime.client();
    let id = client.start(huge_timeouts, ()).await.unwrap();
    let status = finished(&client, &id).await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "{status:?}"
    );
});

/// A store that panics on any commit that starts a timer: a bug in the runtime or a store
/// while it works on an instance.
#[derive(Debug)]
struct PanicsOnTimers(Arc<dyn Store>);

#[async_trait]
impl Store for PanicsOnTimers {
    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError> {
        self.0.create_instance(instance).await
    }
    async fn send(
        &self,
        id: &InstanceId,
        event: HistoryEvent,
        visible_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.0.send(id, event, visible_at).await
    }
    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.0.fetch_orchestration(now, lease_for).await
    }
    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.0.lease_orchestration(id, now, lease_for).await
    }
    async fn load_history(&self, id: &InstanceId) -> Result<Vec<HistoryEvent>, StoreError> {
        self.0.load_history(id).await
    }
    async fn load_history_page(
        &self,
        id: &InstanceId,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.0.load_history_page(id, from, limit).await
    }
    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        assert!(commit.timers.is_empty(), "a store bug: timers panic");
        self.0.commit_turn(commit).await
    }
    async fn abandon_orchestration(
        &self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        self.0.abandon_orchestration(id, lease).await
    }
    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError> {
        self.0.fetch_activity(now, lease_for).await
    }
    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError> {
        self.0.complete_activity(lease, result).await
    }
    async fn renew_activity(
        &self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        self.0.renew_activity(lease, now, lease_for).await
    }
    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError> {
        self.0.abandon_activity(lease).await
    }
    async fn status(&self, id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError> {
        self.0.status(id).await
    }
    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        self.0.list(query).await
    }
    async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError> {
        self.0.count(query).await
    }
    async fn purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        self.0.purge(id).await
    }
    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError> {
        self.0.next_wakeup().await
    }
    async fn next_timer(&self, now: SystemTime) -> Result<Option<SystemTime>, StoreError> {
        self.0.next_timer(now).await
    }
    fn signals(&self) -> Arc<WorkSignals> {
        self.0.signals()
    }
    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        self.0.has_work(now).await
    }
    fn watch_status(&self, id: &InstanceId) -> watch::Receiver<u64> {
        self.0.watch_status(id)
    }
}

#[orchestrator]
async fn child_sleeps(ctx: OrchestrationContext) -> Result<(), TaskError> {
    ctx.sleep(Duration::from_secs(1)).await;
    Ok(())
}

#[orchestrator]
async fn parent_of_sleeper(ctx: OrchestrationContext) -> Result<String, TaskError> {
    match ctx.call(child_sleeps, ()).await {
        Ok(()) => Ok("the child completed".into()),
        Err(error) => Ok(error.failure().map(|f| f.kind.clone()).unwrap_or_default()),
    }
}

// The turn panics inside the store at every try: the instance fails with `runtime_panic`
// (its parent is told) instead of being leased again forever.
matrix!(
    a_runtime_panic_fails_the_instance,
    |setup: Setup| async move {
        let store = Arc::new(PanicsOnTimers(Arc::clone(&setup.store)));
        let runtime = Runtime::builder()
            .shared_store(store)
            .virtual_clock(setup.clock.clone(), durable_runtime::testing::Advance::Auto)
            .cache_capacity(if setup.cached() { 1_000 } else { 0 })
            .orchestrator(child_sleeps)
            .orchestrator(parent_of_sleeper)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(child_sleeps, ()).await.unwrap();
        let status = finished(&client, &id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
        let failure = status.failure.unwrap();
        assert_eq!(failure.kind, kinds::RUNTIME_PANIC);
        assert!(
            failure.message.contains("a store bug: timers panic"),
            "{failure}"
        );

        let parent = client.start(parent_of_sleeper, ()).await.unwrap();
        let status = finished(&client, &parent).await;
        assert_eq!(
            status.output_as::<String>().unwrap().as_deref(),
            Some(kinds::RUNTIME_PANIC),
            "{status:?}"
        );
    }
);
