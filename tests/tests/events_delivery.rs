//! Which wait receives an event (issue 10, item 1): an event stays buffered until a wait for
//! its name is polled and returns it; a dropped wait takes nothing; a kept loser awaited
//! later receives the next event; continue-as-new `keep_events` carries what nobody took.
//! Every case runs on every store, cache on (live) and off (each turn replayed).

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
