//! Which wait receives an event (issue 10, item 1): an event stays buffered until a wait for
//! its name is polled and returns it; a dropped wait takes nothing; a kept loser awaited
//! later receives the next event; continue-as-new `keep_events` carries what nobody took.
//! Every case runs on every store, cache on (live) and off (each turn replayed).
//!
//! Histories recorded under the old rule (format 1) keep it: the replay checker on a recorded
//! fixture, an instance in flight whose first turn was written in format 1 and that this
//! runtime runs to completion, and a format-1 generation whose continue-as-new starts the
//! next one under the new rule.

use std::time::Duration;

use durable_runtime::future::{select, Either};
use durable_runtime::testing::Advance;
use durable_runtime::{
    activity, orchestrator, ActivityContext, Client, OrchestrationContext, RuntimeStatus, TaskError,
};
use durable_tests::{custom_status_is, finished, matrix, tally, Setup};
use serde::{Deserialize, Serialize};

/// What the code does with the wait that lost the race.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Loser {
    /// Dropped at once.
    Dropped,
    /// Kept in a variable; a new wait is awaited first, then the kept one.
    Kept,
    /// Moved into a collection and awaited first, before a new wait.
    Moved,
}

/// When the loser's events are raised, relative to the race.
#[derive(Debug, Clone, Copy)]
enum Raised {
    /// Before the race began: the loser is never polled.
    Before,
    /// In the same turn as the winner (held by a suspension, delivered on resume).
    During,
    /// After the race was decided, while the loser is kept, moved or gone.
    After,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    loser: Loser,
    /// Continue as new with `keep_events` after the race, awaiting `a` in the next
    /// generation.
    restart: bool,
    /// Set in the next generation: the winner's data.
    won: Option<u32>,
}

/// Races `b` against `a`; `b` wins; the two `a` events then reach whoever waits for `a`
/// next. Returns `[b, first a, second a]`.
#[orchestrator]
async fn race_b_against_a(ctx: OrchestrationContext, plan: Plan) -> Result<Vec<u32>, TaskError> {
    if let Some(b) = plan.won {
        let first: u32 = ctx.wait_for_event("a").await?;
        let second: u32 = ctx.wait_for_event("a").await?;
        return Ok(vec![b, first, second]);
    }
    ctx.set_custom_status("started");
    ctx.sleep(Duration::from_secs(1)).await;
    ctx.set_custom_status("racing");
    let wait_b = ctx.wait_for_event::<u32>("b");
    let wait_a = ctx.wait_for_event::<u32>("a");
    let (b, loser) = match select(wait_b, wait_a).await {
        Either::Left((b, loser)) => (b?, loser),
        Either::Right((a, _)) => return Ok(vec![1_000, a?]),
    };
    ctx.set_custom_status("raced");
    let (mut kept, mut parked) = (None, Vec::new());
    match plan.loser {
        Loser::Dropped => drop(loser),
        Loser::Kept => kept = Some(loser),
        Loser::Moved => parked.push(loser),
    }
    ctx.sleep(Duration::from_secs(10)).await;
    if plan.restart {
        let next = Plan {
            won: Some(b),
            ..plan
        };
        return ctx.continue_as_new(next).keep_events().await;
    }
    let (first, second) = match plan.loser {
        Loser::Dropped => (
            ctx.wait_for_event::<u32>("a").await?,
            ctx.wait_for_event::<u32>("a").await?,
        ),
        Loser::Kept => {
            let first = ctx.wait_for_event::<u32>("a").await?;
            let kept = kept.take().expect("kept above");
            (first, kept.await?)
        }
        Loser::Moved => {
            let moved = parked.pop().expect("parked above");
            (moved.await?, ctx.wait_for_event::<u32>("a").await?)
        }
    };
    Ok(vec![b, first, second])
}

async fn run_race(setup: Setup, loser: Loser, raised: Raised, restart: bool) {
    let runtime = setup
        .builder_with(Advance::Manual)
        .orchestrator(race_b_against_a)
        .start()
        .unwrap();
    let client = runtime.client();
    let plan = Plan {
        loser,
        restart,
        won: None,
    };
    let id = client.start(race_b_against_a, plan).await.unwrap();
    custom_status_is(&client, &id, "started").await;
    let raise = |name: &'static str, n: u32| {
        let (client, id) = (client.clone(), id.clone());
        async move { client.raise_event(&id, name, n).await.unwrap() }
    };
    match raised {
        Raised::Before => {
            raise("b", 1).await;
            raise("a", 2).await;
            raise("a", 3).await;
            setup.clock.advance(Duration::from_secs(1));
        }
        Raised::During => {
            setup.clock.advance(Duration::from_secs(1));
            custom_status_is(&client, &id, "racing").await;
            client.suspend(&id, None).await.unwrap();
            raise("b", 1).await;
            raise("a", 2).await;
            client.resume(&id, None).await.unwrap();
            custom_status_is(&client, &id, "raced").await;
            raise("a", 3).await;
        }
        Raised::After => {
            setup.clock.advance(Duration::from_secs(1));
            custom_status_is(&client, &id, "racing").await;
            raise("b", 1).await;
            custom_status_is(&client, &id, "raced").await;
            raise("a", 2).await;
            raise("a", 3).await;
        }
    }
    custom_status_is(&client, &id, "raced").await;
    wait_for_raised(&client, &id, 3).await;
    setup.clock.advance(Duration::from_secs(10));
    let status = finished(&client, &id).await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "{loser:?}, raised {raised:?}, restart {restart}: {status:?}"
    );
    assert_eq!(
        status.output_as::<Vec<u32>>().unwrap().unwrap(),
        [1, 2, 3],
        "{loser:?}, raised {raised:?}, restart {restart}"
    );
    if setup.cached() {
        // The instance replays to the same end: the rule is the same on replay.
        let history = client.export_history(&id).await.unwrap();
        durable_runtime::testing::ReplayChecker::new()
            .orchestrator(race_b_against_a)
            .check_json(&history)
            .unwrap();
    }
}

/// Waits until `count` events are in the history (delivered to the instance, if only held).
async fn wait_for_raised(client: &Client, id: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + durable_tests::PATIENCE;
    loop {
        let history = client.history(id).await.unwrap();
        let raised = history
            .iter()
            .filter(|e| e.event.name() == "EventRaised")
            .count();
        if raised >= count {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{history:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

macro_rules! race_cases {
    ($($name:ident: $loser:ident, $raised:ident, $restart:expr;)*) => {
        $(
            matrix!($name, |setup: Setup| async move {
                run_race(setup, Loser::$loser, Raised::$raised, $restart).await;
            });
        )*
    };
}

race_cases! {
    dropped_loser_raised_before: Dropped, Before, false;
    dropped_loser_raised_during: Dropped, During, false;
    dropped_loser_raised_after: Dropped, After, false;
    kept_loser_raised_before: Kept, Before, false;
    kept_loser_raised_during: Kept, During, false;
    kept_loser_raised_after: Kept, After, false;
    moved_loser_raised_before: Moved, Before, false;
    moved_loser_raised_during: Moved, During, false;
    moved_loser_raised_after: Moved, After, false;
    dropped_loser_raised_before_keep_events: Dropped, Before, true;
    dropped_loser_raised_during_keep_events: Dropped, During, true;
    dropped_loser_raised_after_keep_events: Dropped, After, true;
    kept_loser_raised_before_keep_events: Kept, Before, true;
    kept_loser_raised_during_keep_events: Kept, During, true;
    kept_loser_raised_after_keep_events: Kept, After, true;
    moved_loser_raised_before_keep_events: Moved, Before, true;
    moved_loser_raised_during_keep_events: Moved, During, true;
    moved_loser_raised_after_keep_events: Moved, After, true;
}

/// Runs until the test releases it, so that an event can be raised while it runs.
#[activity]
async fn slow(ctx: ActivityContext) -> Result<(), String> {
    let release = format!("{}/release", ctx.instance_id());
    while tally::get(&release) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// The example: the timer wins, the losing wait is a temporary of the `match` (alive
/// through the arm), and `stop` is raised while `slow` runs. It used to reach the loser and
/// be lost with it; now the second wait receives it.
#[orchestrator]
async fn stop_after_race(ctx: OrchestrationContext) -> Result<String, TaskError> {
    match select(
        ctx.wait_for_event::<String>("stop"),
        ctx.sleep(Duration::from_secs(1)),
    )
    .await
    {
        Either::Left((stop, _)) => Ok(format!("stopped early: {}", stop?)),
        Either::Right(_) => {
            ctx.call(slow, ()).await?;
            let late = ctx
                .wait_for_event::<String>("stop")
                .timeout(Duration::from_secs(60))
                .await;
            match late {
                Ok(stop) => Ok(format!("stopped late: {stop}")),
                Err(TaskError::EventTimedOut { .. }) => Ok("lost".to_string()),
                Err(e) => Err(e),
            }
        }
    }
}

matrix!(
    an_event_raised_while_the_loser_lives_reaches_the_next_wait,
    |setup: Setup| async move {
        let runtime = setup
            .builder_with(Advance::Manual)
            .orchestrator(stop_after_race)
            .activity(slow)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = client.start(stop_after_race, ()).await.unwrap();
        wait_for_kind(&client, &id, "TimerCreated").await;
        setup.clock.advance(Duration::from_secs(1));
        wait_for_kind(&client, &id, "TaskScheduled").await;
        client.raise_event(&id, "stop", "now").await.unwrap();
        wait_for_kind(&client, &id, "EventRaised").await;
        tally::bump(format!("{id}/release"));
        let status = finished(&client, &id).await;
        assert_eq!(
            status.output_as::<String>().unwrap().as_deref(),
            Some("stopped late: now"),
            "{status:?}"
        );
    }
);

async fn wait_for_kind(client: &Client, id: &str, kind: &str) {
    let deadline = tokio::time::Instant::now() + durable_tests::PATIENCE;
    while !client
        .history(id)
        .await
        .unwrap()
        .iter()
        .any(|e| e.event.name() == kind)
    {
        assert!(tokio::time::Instant::now() < deadline, "no {kind} in {id}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The same code replays a history recorded by the release before the rule changed (format
/// 1, `events_fixtures/format1_lost_stop.json`): there `stop` reached the losing wait and
/// was lost, and the second wait timed out. Under format 1 it still replays that way; read
/// as format 2 the same events would give `stop` to the second wait, which the recorded
/// commands contradict.
#[test]
fn a_format_1_history_replays_under_the_format_1_rule() {
    let recorded = include_str!("events_fixtures/format1_lost_stop.json");
    let checker = durable_runtime::testing::ReplayChecker::new().orchestrator(stop_after_race);
    checker.check_json(recorded).unwrap();

    let mut history: Vec<durable_runtime::history::HistoryEvent> =
        serde_json::from_str(recorded).unwrap();
    assert!(history.iter().all(|e| e.format_version == 1));
    for event in &mut history {
        event.format_version = durable_runtime::history::FORMAT_VERSION;
    }
    let error = checker.check(&history).unwrap_err().to_string();
    assert!(error.contains("turn 4 of the history"), "{error}");
}

/// The race of [`stop_after_race`] as a helper, with `slow` released per generation: the
/// generation's outcome ("stopped early: ..", "stopped late: ..", or "lost").
async fn race_for_stop(ctx: &OrchestrationContext, generation: u32) -> Result<String, TaskError> {
    match select(
        ctx.wait_for_event::<String>("stop"),
        ctx.sleep(Duration::from_secs(1)),
    )
    .await
    {
        Either::Left((stop, _)) => Ok(format!("stopped early: {}", stop?)),
        Either::Right(_) => {
            ctx.call(slow_generation, generation).await?;
            let late = ctx
                .wait_for_event::<String>("stop")
                .timeout(Duration::from_secs(60))
                .await;
            match late {
                Ok(stop) => Ok(format!("stopped late: {stop}")),
                Err(TaskError::EventTimedOut { .. }) => Ok("lost".to_string()),
                Err(e) => Err(e),
            }
        }
    }
}

/// [`slow`], released per generation (`<id>/release/<generation>`).
#[activity]
async fn slow_generation(ctx: ActivityContext, generation: u32) -> Result<(), String> {
    let release = format!("{}/release/{generation}", ctx.instance_id());
    while tally::get(&release) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Runs the race twice, continuing as new between the two: returns each generation's outcome.
#[orchestrator]
async fn stop_race_then_renew(
    ctx: OrchestrationContext,
    mut outcomes: Vec<String>,
) -> Result<Vec<String>, TaskError> {
    let generation = outcomes.len() as u32;
    outcomes.push(race_for_stop(&ctx, generation).await?);
    if outcomes.len() < 2 {
        return ctx.continue_as_new(outcomes).await;
    }
    Ok(outcomes)
}

/// An id no other test of this process uses (the `tally` keys are per process).
fn fresh_id(prefix: &str) -> durable_runtime::InstanceId {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    durable_runtime::InstanceId::new(format!("{prefix}-{n}")).unwrap()
}

/// What the release before the rule changed wrote as the first turn of `name` (whose first
/// commands are the race's: a wait for `stop` at seq 0, a one-second timer at seq 1), every
/// event in format 1, committed straight through the store: an instance in flight when the
/// runtime was upgraded.
async fn format_1_first_turn(
    setup: &Setup,
    id: &durable_runtime::InstanceId,
    name: &str,
    input: serde_json::Value,
) {
    use durable_runtime::history::{Event, HistoryEvent};
    use durable_runtime::store::{NewInstance, NewTimer, StatusUpdate, TurnCommit};
    use durable_runtime::InstanceStatus;
    let format_1 = |event: Event| HistoryEvent {
        format_version: 1,
        ..HistoryEvent::new(event)
    };
    let now = setup.clock.now();
    let start = format_1(Event::ExecutionStarted {
        name: name.into(),
        version: 1,
        input: input.clone(),
        seed: 7,
        parent: None,
        generation: 0,
        eager_restarts: 0,
    });
    let new = NewInstance {
        status: InstanceStatus {
            instance_id: id.clone(),
            name: name.into(),
            version: 1,
            runtime_status: RuntimeStatus::Pending,
            created_at: now,
            last_updated_at: now,
            input,
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        },
        start: start.clone(),
        start_at: None,
        replace_finished: false,
    };
    setup.store.create_instance(new).await.unwrap();
    let work = setup
        .store
        .fetch_orchestration(now, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the start");
    assert_eq!(&work.instance_id, id);
    let fire_at = now + Duration::from_secs(1);
    let mut turn = TurnCommit::for_work(&work, StatusUpdate::running());
    turn.history = vec![
        format_1(Event::OrchestratorStarted { timestamp: now }),
        start,
        format_1(Event::EventWaitStarted {
            id: 0,
            name: "stop".into(),
        }),
        format_1(Event::TimerCreated { id: 1, fire_at }),
    ];
    turn.timers = vec![NewTimer { id: 1, fire_at }];
    setup.store.commit_turn(turn).await.unwrap();
}

/// Waits until the history of `id`'s current generation satisfies `done`.
async fn wait_for_history(
    client: &Client,
    id: &str,
    what: &str,
    done: impl Fn(&[durable_runtime::history::HistoryEvent]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + durable_tests::PATIENCE;
    while !done(&client.history(id).await.unwrap()) {
        assert!(tokio::time::Instant::now() < deadline, "{id}: no {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn count(history: &[durable_runtime::history::HistoryEvent], kind: &str) -> usize {
    history.iter().filter(|e| e.event.name() == kind).count()
}

/// The generation's `ExecutionStarted`: its format version and generation number.
fn start_of(history: &[durable_runtime::history::HistoryEvent]) -> Option<(u32, u64)> {
    history.iter().find_map(|e| match &e.event {
        durable_runtime::history::Event::ExecutionStarted { generation, .. } => {
            Some((e.format_version, *generation))
        }
        _ => None,
    })
}

/// Drives one race of a generation whose first turn has run: the timer wins, `stop` is raised
/// while `slow_generation` (or `slow`) runs, then it is released with `release`. Under format
/// 1 the loser took `stop`, so the second wait's 60-second timeout is run out too.
async fn drive_race(setup: &Setup, client: &Client, id: &str, release: &str, format_1: bool) {
    setup.clock.advance(Duration::from_secs(1));
    wait_for_history(client, id, "TaskScheduled", |h| {
        count(h, "TaskScheduled") == 1
    })
    .await;
    client.raise_event(id, "stop", "now").await.unwrap();
    wait_for_history(client, id, "EventRaised", |h| count(h, "EventRaised") == 1).await;
    tally::bump(release);
    if format_1 {
        wait_for_history(client, id, "the second wait's timer", |h| {
            count(h, "TimerCreated") == 2
        })
        .await;
        setup.clock.advance(Duration::from_secs(60));
    }
}

matrix!(
    an_instance_in_flight_under_format_1_keeps_its_rule_to_completion,
    |setup: Setup| async move {
        // Recorded by the release before the rule changed, up to the race's first turn; the
        // rest is run by this one. The loser is alive when `stop` is raised, so under format
        // 1 it takes `stop`, which is lost with it, and the second wait times out: the same
        // run as `events_fixtures/format1_lost_stop.json`. Under format 2 the second wait
        // would receive it.
        let id = fresh_id("format-1-in-flight");
        format_1_first_turn(&setup, &id, "stop_after_race", serde_json::Value::Null).await;
        let runtime = setup
            .builder_with(Advance::Manual)
            .orchestrator(stop_after_race)
            .activity(slow)
            .start()
            .unwrap();
        let client = runtime.client();
        drive_race(&setup, &client, id.as_str(), &format!("{id}/release"), true).await;
        let status = finished(&client, id.as_str()).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(
            status.output_as::<String>().unwrap().as_deref(),
            Some("lost"),
            "{status:?}"
        );
        let history = client.history(id.as_str()).await.unwrap();
        assert_eq!(
            start_of(&history),
            Some((1, 0)),
            "the generation began in format 1"
        );
        // The events this runtime appended are today's format; the rule stays the
        // generation's.
        assert!(history
            .iter()
            .any(|e| e.format_version == durable_runtime::history::FORMAT_VERSION));
    }
);

matrix!(
    a_format_1_generation_continues_as_new_into_the_new_rule,
    |setup: Setup| async move {
        // Generation 0 was started by the release before the rule changed: it keeps format
        // 1's rule and loses `stop`. Its continue-as-new starts generation 1 in today's
        // format, where the same race gives `stop` to the second wait.
        let id = fresh_id("format-1-renewed");
        format_1_first_turn(&setup, &id, "stop_race_then_renew", serde_json::json!([])).await;
        let runtime = setup
            .builder_with(Advance::Manual)
            .orchestrator(stop_race_then_renew)
            .activity(slow_generation)
            .start()
            .unwrap();
        let client = runtime.client();
        let id = id.as_str();
        drive_race(&setup, &client, id, &format!("{id}/release/0"), true).await;

        wait_for_history(&client, id, "generation 1's timer", |h| {
            start_of(h).is_some_and(|(_, generation)| generation == 1)
                && count(h, "TimerCreated") == 1
        })
        .await;
        let history = client.history(id).await.unwrap();
        assert_eq!(
            start_of(&history),
            Some((durable_runtime::history::FORMAT_VERSION, 1)),
            "generation 1 begins in today's format"
        );
        drive_race(&setup, &client, id, &format!("{id}/release/1"), false).await;

        let status = finished(&client, id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(
            status.output_as::<Vec<String>>().unwrap(),
            Some(vec!["lost".to_string(), "stopped late: now".to_string()]),
            "{status:?}"
        );
    }
);
