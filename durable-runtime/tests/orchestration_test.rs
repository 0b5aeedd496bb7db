//! `testing::OrchestrationTest` (issue 10, item 4): an orchestrator unit-tested without a
//! runtime, the test feeding results and events and asserting on the commands.

use std::time::Duration;

use durable_runtime::future::{select, Either};
use durable_runtime::history::{kinds, Event};
use durable_runtime::testing::{OrchestrationTest, ReplayChecker, VirtualClock};
use durable_runtime::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy, RuntimeStatus,
    TaskError,
};
use serde_json::json;

#[activity]
async fn charge(_ctx: ActivityContext, cents: u64) -> Result<String, String> {
    panic!("a scripted test never runs an activity ({cents})")
}

#[activity]
async fn refund(_ctx: ActivityContext, cents: u64) -> Result<String, String> {
    panic!("a scripted test never runs an activity ({cents})")
}

#[orchestrator]
async fn ship(_ctx: OrchestrationContext, owner: String) -> Result<String, TaskError> {
    Ok(format!("shipped for {owner}"))
}

/// A saga: charge with retries, ship through a child, wait a day for `delivered`, refund if
/// it never comes.
#[orchestrator]
async fn saga(ctx: OrchestrationContext, cents: u64) -> Result<String, TaskError> {
    let receipt = ctx
        .call(charge, cents)
        .retry(RetryPolicy::new(3, Duration::from_secs(10)))
        .await?;
    let shipped = ctx.call(ship, ctx.instance_id().to_string()).await?;
    ctx.set_custom_status("waiting for delivery");
    let day = Duration::from_secs(24 * 3600);
    match select(ctx.wait_for_event::<String>("delivered"), ctx.sleep(day)).await {
        Either::Left((who, _)) => Ok(format!("{receipt}; {shipped}; signed by {}", who?)),
        Either::Right(_) => ctx.call(refund, cents).await,
    }
}

fn epoch() -> std::time::SystemTime {
    VirtualClock::new().now()
}

#[test]
fn the_happy_path_issues_each_command_once() {
    let mut test = OrchestrationTest::new(saga, 500).instance_id("order-9");
    assert_eq!(test.status(), RuntimeStatus::Pending);
    assert_eq!(
        test.run_turn(),
        vec![Event::TaskScheduled {
            id: 0,
            name: "charge".into(),
            input: json!(500),
            attempt: 1,
        }]
    );
    assert_eq!(test.status(), RuntimeStatus::Running);
    assert_eq!(test.run_turn(), vec![], "nothing queued, nothing happens");

    // The first attempt fails: the retry's back-off is a timer.
    test.fail_activity(0, "the bank timed out");
    assert_eq!(
        test.run_turn(),
        vec![Event::TimerCreated {
            id: 1,
            fire_at: epoch() + Duration::from_secs(10),
        }]
    );
    test.fire_timer(1);
    assert_eq!(test.now(), epoch() + Duration::from_secs(10));
    assert!(matches!(
        &test.run_turn()[..],
        [Event::TaskScheduled {
            id: 2,
            attempt: 2,
            ..
        }]
    ));

    // The child gets its default id from the instance id.
    test.complete_activity(2, "charged 500");
    let issued = test.run_turn();
    match &issued[..] {
        [Event::SubOrchestrationCreated {
            id: 3,
            name,
            instance_id,
            input,
            ..
        }] => {
            assert_eq!(name, "ship");
            assert_eq!(instance_id.as_str(), "order-9:3");
            assert_eq!(input, &json!("order-9"));
        }
        other => panic!("expected the child, got {other:?}"),
    }

    test.complete_child(3, "shipped for order-9");
    let issued = test.run_turn();
    assert!(
        matches!(
            &issued[..],
            [Event::EventWaitStarted { id: 4, name }, Event::TimerCreated { id: 5, .. }]
                if name == "delivered"
        ),
        "{issued:?}"
    );
    assert_eq!(test.custom_status(), Some(&json!("waiting for delivery")));

    test.raise_event("delivered", "Ada");
    let issued = test.run_turn();
    assert!(
        matches!(&issued[..], [Event::ExecutionCompleted { .. }]),
        "{issued:?}"
    );
    assert_eq!(test.status(), RuntimeStatus::Completed);
    assert_eq!(
        test.output::<String>(),
        "charged 500; shipped for order-9; signed by Ada"
    );

    // The recorded history is the runtime's: it replays under the same id.
    ReplayChecker::new()
        .orchestrator(saga)
        .orchestrator(ship)
        .check_instance("order-9", test.history())
        .unwrap();
}

#[test]
fn the_timeout_path_refunds() {
    let mut test = OrchestrationTest::new(saga, 500);
    test.run_turn();
    test.complete_activity(0, "charged 500");
    test.run_turn();
    test.complete_child(1, "shipped");
    test.run_turn();
    test.advance(Duration::from_secs(3600));
    test.fire_timer(3);
    assert_eq!(test.now(), epoch() + Duration::from_secs(24 * 3600));
    assert!(matches!(
        &test.run_turn()[..],
        [Event::TaskScheduled { id: 4, name, .. }] if name == "refund"
    ));
    test.complete_activity(4, "refunded 500");
    test.run_turn();
    assert_eq!(test.output::<String>(), "refunded 500");
}

#[test]
fn failures_and_bad_results_fail_the_instance_with_a_reason() {
    // Retries exhausted.
    let mut test = OrchestrationTest::new(saga, 1);
    test.run_turn();
    for (failed, timer) in [(0, 1), (2, 3)] {
        test.fail_activity(failed, "declined");
        test.run_turn();
        test.fire_timer(timer);
        test.run_turn();
    }
    test.fail_activity(4, "declined");
    test.run_turn();
    assert_eq!(test.status(), RuntimeStatus::Failed);
    assert!(test.failure().unwrap().message.contains("declined"));

    // A result of the wrong type fails the instance, as in the runtime.
    let mut test = OrchestrationTest::new(saga, 1);
    test.run_turn();
    test.complete_activity(0, json!({"not": "a string"}));
    test.run_turn();
    assert_eq!(test.status(), RuntimeStatus::Failed);

    // Results for commands never issued are ignored; a timer never created is a test bug.
    let mut test = OrchestrationTest::new(saga, 1);
    test.run_turn();
    test.complete_activity(99, "stray");
    assert_eq!(test.run_turn(), vec![]);
    assert_eq!(test.status(), RuntimeStatus::Running);
    let missing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        test.fire_timer(42);
    }));
    assert!(missing.is_err());
}

#[orchestrator]
async fn panics(_ctx: OrchestrationContext) -> Result<(), TaskError> {
    panic!("boom")
}

#[orchestrator]
async fn counts(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    if n < 3 {
        ctx.sleep(Duration::from_secs(1)).await;
        return ctx.continue_as_new(n + 1).await;
    }
    Ok(n)
}

#[test]
fn panics_and_continue_as_new_behave_as_in_the_runtime() {
    let mut test = OrchestrationTest::new(panics, ());
    test.run_turn();
    assert_eq!(test.status(), RuntimeStatus::Failed);
    assert_eq!(test.failure().unwrap().kind, kinds::PANIC);

    let mut test = OrchestrationTest::new(counts, 0);
    for n in 0..3u32 {
        assert!(matches!(
            &test.run_turn()[..],
            [Event::TimerCreated { id: 0, .. }]
        ));
        test.fire_timer(0);
        let issued = test.run_turn();
        assert!(
            matches!(&issued[..], [Event::ExecutionStarted { input, generation, .. }]
                if *input == json!(n + 1) && *generation == u64::from(n) + 1),
            "{issued:?}"
        );
    }
    test.run_turn();
    assert_eq!(test.output::<u32>(), 3);
}
