//! Delivery and leases: messages handed out under a lease, committed turns, statuses.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::support::*;
use crate::history::{CompletionStatus, Event, Failure, HistoryEvent};
use crate::status::{InstanceStatus, RuntimeStatus};
use crate::store::{StatusUpdate, Store};

/// `fetch_orchestration` delivers the start message with a lease and a history length of 0.
pub async fn start_message_is_delivered_with_a_lease<S: Store>(store: Arc<S>) {
    let id = iid("start");
    let new = new_instance(&id, NAME, t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let work = fetch(&*store, t(1), "after create").await;
    assert_eq!(work.instance_id, id, "the fetched instance");
    assert_eq!(work.history_len, 0, "a new instance's history length");
    assert_eq!(
        events(&work),
        vec![new.start],
        "the first delivery should be exactly the start message"
    );
    commit(&*store, turn(&work, t(1)), "first turn").await;
}

/// A leased instance is handed out neither by `fetch_orchestration` (even with new messages)
/// nor by `lease_orchestration`, and is not counted as work.
pub async fn leased_instance_is_not_handed_out_twice<S: Store>(store: Arc<S>) {
    let id = create(&*store, "leased", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    fetch_none(&*store, t(1), "while leased").await;
    ok(
        store.send(&id, raised("e", json!(1)), None).await,
        "send while leased",
    );
    fetch_none(&*store, t(2), "while leased, with a new message").await;
    let again = ok(
        store.lease_orchestration(&id, t(3), LEASE).await,
        "lease_orchestration while leased",
    );
    assert!(
        again.is_none(),
        "lease_orchestration should refuse a leased instance, got {again:?}"
    );
    assert_eq!(
        store.has_work(t(3)).await,
        Ok(false),
        "has_work while the only instance is leased"
    );
    commit(&*store, turn(&work, t(4)), "the holder's turn").await;
}

/// Messages sent while an instance is leased are delivered by the next fetch after the commit.
pub async fn messages_sent_while_leased_are_delivered_after_commit<S: Store>(store: Arc<S>) {
    let id = create(&*store, "busy", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let sent = vec![raised("one", json!(1)), raised("two", json!(2))];
    for event in &sent {
        ok(
            store.send(&id, event.clone(), None).await,
            "send while leased",
        );
    }
    let first = turn(&work, t(1));
    let appended = first.history.len() as u64;
    commit(&*store, first, "first turn").await;
    let next = fetch(&*store, t(2), "after the commit").await;
    assert_eq!(next.instance_id, id);
    assert_eq!(
        events(&next),
        sent,
        "messages sent while leased should be delivered after the commit, in order"
    );
    assert_eq!(
        next.history_len, appended,
        "history length after the first turn"
    );
    commit(&*store, turn(&next, t(2)), "second turn").await;
}

/// The inbox is delivered oldest first, and what a turn leaves unconsumed keeps its place.
pub async fn message_order_is_preserved<S: Store>(store: Arc<S>) {
    let id = create(&*store, "ordered", t(0)).await;
    let sent: Vec<_> = (0..10).map(|i| raised("n", json!(i))).collect();
    for event in &sent {
        ok(store.send(&id, event.clone(), None).await, "send");
    }
    let work = fetch(&*store, t(1), "first fetch").await;
    let delivered = events(&work);
    assert_eq!(
        delivered.len(),
        11,
        "the start and ten events should be delivered"
    );
    assert_eq!(
        &delivered[1..],
        &sent[..],
        "events should be delivered in send order"
    );
    let ids: HashSet<_> = work.messages.iter().map(|m| m.id).collect();
    assert_eq!(
        ids.len(),
        11,
        "message ids within an inbox should be unique"
    );
    let mut first = turn(&work, t(1));
    first.history.truncate(4); // OrchestratorStarted, start, n=0, n=1
    first.consumed.truncate(3);
    commit(&*store, first, "turn consuming three messages").await;
    let late = raised("n", json!(10));
    ok(
        store.send(&id, late.clone(), None).await,
        "send after the turn",
    );
    let work = fetch(&*store, t(2), "second fetch").await;
    let mut expected = sent[2..].to_vec();
    expected.push(late);
    assert_eq!(
        events(&work),
        expected,
        "unconsumed messages should come first, in order, then the new one"
    );
}

/// `load_history` returns exactly what the turns appended, in order, and each fetch's
/// `history_len` is the history's length.
pub async fn commit_appends_history_across_turns<S: Store>(store: Arc<S>) {
    let id = create(&*store, "turns", t(0)).await;
    let mut expected = Vec::new();
    for round in 0..3u64 {
        let work = fetch(&*store, t(10 * round), &format!("turn {round}")).await;
        assert_eq!(
            work.history_len,
            expected.len() as u64,
            "turn {round}: history_len should be the history length"
        );
        let mut commit_ = turn(&work, t(10 * round));
        if round < 2 {
            commit_
                .history
                .push(HistoryEvent::new(Event::EventWaitStarted {
                    id: round,
                    name: format!("go-{round}"),
                }));
        } else {
            commit_ = completing(commit_);
        }
        expected.extend(commit_.history.clone());
        commit(&*store, commit_, &format!("turn {round}")).await;
        assert_eq!(
            history(&*store, &id, &format!("after turn {round}")).await,
            expected,
            "after turn {round}: load_history should return every appended event in order"
        );
        if round < 2 {
            ok(
                store
                    .send(&id, raised(&format!("go-{round}"), json!(round)), None)
                    .await,
                "send",
            );
        }
    }
}

/// Every kind of event survives the store byte for byte, nanosecond timestamps and unicode
/// included.
pub async fn history_round_trips_every_event_kind<S: Store>(store: Arc<S>) {
    let id = create(&*store, "every-kind", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let odd_time = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_123, 456_789_123);
    let big = "ß∂ƒ©˙∆˚¬…æ".repeat(100);
    let extra = vec![
        HistoryEvent::new(Event::OrchestratorStarted {
            timestamp: odd_time,
        }),
        HistoryEvent::new(Event::ExecutionStarted {
            name: "nom-é".into(),
            version: u32::MAX,
            input: json!({ "big": big, "n": u64::MAX, "i": i64::MIN, "f": 0.1 }),
            seed: u64::MAX,
            parent: Some(crate::history::ParentRef {
                instance_id: iid("the/parent"),
                id: 9,
                generation: 2,
            }),
            generation: 3,
            eager_restarts: 1,
        }),
        HistoryEvent::new(Event::TaskScheduled {
            id: 1,
            name: "charge".into(),
            input: json!([null, {}, []]),
            attempt: 7,
        }),
        HistoryEvent::new(Event::TaskCompleted {
            id: 1,
            output: json!("\u{0}\u{1f}\"\\"),
        }),
        HistoryEvent::new(Event::TaskFailed {
            id: 2,
            failure: Failure::new("kind::Error<T>", "line 1\nline 2 ✓"),
        }),
        HistoryEvent::new(Event::TimerCreated {
            id: 3,
            fire_at: odd_time,
        }),
        HistoryEvent::new(Event::TimerFired {
            id: 3,
            fire_at: odd_time,
        }),
        HistoryEvent::new(Event::EventWaitStarted {
            id: 4,
            name: "approval".into(),
        }),
        raised("approval", json!({ "by": "🦀" })),
        HistoryEvent::new(Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            output: None,
            failure: Some(Failure::new("panic", "oh no")),
        }),
        HistoryEvent::new(Event::ExecutionCompleted {
            status: CompletionStatus::Completed,
            output: Some(json!(0)),
            failure: None,
        }),
    ];
    let mut commit_ = turn(&work, t(0));
    commit_.history.extend(extra);
    let expected = commit_.history.clone();
    commit(&*store, commit_, "turn with every kind").await;
    assert_eq!(
        history(&*store, &id, "after the turn").await,
        expected,
        "load_history should return every event exactly as committed"
    );
}

/// Floating-point payloads come back bit for bit: a replay from the stored history must see
/// the very numbers the live execution saw.
pub async fn history_round_trips_floats_exactly<S: Store>(store: Arc<S>) {
    let id = create(&*store, "floats", t(0)).await;
    let work = fetch(&*store, t(0), "first fetch").await;
    let floats: [f64; 7] = [
        0.1,
        1.0 / 3.0,
        -1.5e-300,
        2.2250738585072014e-308,
        5e-324,
        1.7976931348623157e308,
        123_456.789_012_345_67,
    ];
    let mut commit_ = turn(&work, t(0));
    for (id, value) in floats.iter().enumerate() {
        commit_
            .history
            .push(HistoryEvent::new(Event::TaskCompleted {
                id: id as u64,
                output: json!(value),
            }));
    }
    commit(&*store, commit_, "turn with float outputs").await;
    let history = history(&*store, &id, "after the turn").await;
    for (id, value) in floats.iter().enumerate() {
        let stored = history.iter().find_map(|e| match &e.event {
            Event::TaskCompleted { id: seq, output } if *seq == id as u64 => output.as_f64(),
            _ => None,
        });
        assert!(
            stored.is_some_and(|s| s.to_bits() == value.to_bits()),
            "the float {value:e} should come back bit for bit, got {stored:?}"
        );
    }
}

/// A commit consumes exactly the listed messages; the others are delivered again.
pub async fn commit_consumes_only_listed_messages<S: Store>(store: Arc<S>) {
    let id = create(&*store, "partial", t(0)).await;
    let a = raised("a", json!("a"));
    let b = raised("b", json!("b"));
    ok(store.send(&id, a.clone(), None).await, "send a");
    ok(store.send(&id, b.clone(), None).await, "send b");
    let work = fetch(&*store, t(0), "first fetch").await;
    assert_eq!(work.messages.len(), 3, "start, a and b should be delivered");
    let mut commit_ = turn(&work, t(0));
    // Consume the start and `b`, leave `a`.
    commit_.consumed = vec![work.messages[0].id, work.messages[2].id];
    commit_.history = vec![started(t(0)), work.messages[0].event.clone(), b];
    commit(&*store, commit_, "turn consuming start and b").await;
    let next = fetch(&*store, t(1), "after the partial turn").await;
    assert_eq!(
        events(&next),
        vec![a],
        "only the unconsumed message should be delivered again"
    );
    commit(&*store, turn(&next, t(1)), "second turn").await;
    fetch_none(&*store, t(2), "after consuming everything").await;
}

/// A commit sets the status fields, `last_updated_at` to the turn's `OrchestratorStarted`
/// timestamp, and keeps name, version, input and creation time.
pub async fn commit_updates_status<S: Store>(store: Arc<S>) {
    let id = iid("status");
    let new = new_instance(&id, "status-name", t(0));
    ok(store.create_instance(new.clone()).await, "create_instance");
    let work = fetch(&*store, t(10), "first fetch").await;
    let mut commit_ = turn(&work, t(10));
    commit_.status.custom_status = Some(json!({ "step": 1 }));
    commit(&*store, commit_, "first turn").await;
    let expected = InstanceStatus {
        runtime_status: RuntimeStatus::Running,
        custom_status: Some(json!({ "step": 1 })),
        last_updated_at: t(10),
        ..new.status.clone()
    };
    assert_eq!(
        status(&*store, &id, "after the first turn").await,
        expected,
        "status after a Running turn"
    );

    ok(store.send(&id, raised("go", json!(1)), None).await, "send");
    let work = fetch(&*store, t(20), "second fetch").await;
    let mut commit_ = turn(&work, t(20));
    commit_
        .history
        .push(HistoryEvent::new(Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            output: None,
            failure: Some(Failure::new("boom", "it broke")),
        }));
    commit_.status = StatusUpdate {
        runtime_status: RuntimeStatus::Failed,
        output: None,
        custom_status: Some(json!("last words")),
        failure: Some(Failure::new("boom", "it broke")),
        input: None,
    };
    commit(&*store, commit_, "failing turn").await;
    let expected = InstanceStatus {
        runtime_status: RuntimeStatus::Failed,
        custom_status: Some(json!("last words")),
        failure: Some(Failure::new("boom", "it broke")),
        last_updated_at: t(20),
        ..new.status
    };
    assert_eq!(
        status(&*store, &id, "after the failing turn").await,
        expected,
        "status after a Failed turn"
    );

    let other = create(&*store, "completes", t(1)).await;
    let work = fetch(&*store, t(30), "completing fetch").await;
    assert_eq!(work.instance_id, other);
    commit(&*store, completing(turn(&work, t(30))), "completing turn").await;
    let done = status(&*store, &other, "after completing").await;
    assert_eq!(done.runtime_status, RuntimeStatus::Completed);
    assert_eq!(
        done.output,
        Some(json!("done")),
        "output of a Completed instance"
    );
    assert_eq!(done.failure, None);
    assert_eq!(done.last_updated_at, t(30));
    assert_eq!(done.created_at, t(1), "created_at never changes");
}
