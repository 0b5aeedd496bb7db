//! A fixed series of store calls, each one commit batch, that touches every kind of record
//! (create, scheduled start, send, turn with activities and timers, activity result, purge,
//! a large value), and a snapshot of everything a store holds, to compare two stores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::{
    ActivityTask, Delivery, FileStore, FileStoreOptions, InstanceQuery, NewInstance, NewTimer,
    StatusUpdate, Store, TurnCommit,
};
use durable_runtime::{InstanceId, InstanceStatus, RuntimeStatus};
use serde_json::{json, Value};

use super::mem_fs::MemFs;

/// Where the stores of these tests live (in a [`MemFs`]).
pub const DIR: &str = "/data";

/// How many steps [`step`] has.
pub const STEPS: usize = 14;

pub fn options(fs: &MemFs) -> FileStoreOptions {
    FileStoreOptions::default().file_system(Arc::new(fs.clone()))
}

pub fn t(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

pub fn id(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

pub fn new_instance(name: &str, input: Value, start_at: Option<SystemTime>) -> NewInstance {
    let instance_id = id(name);
    NewInstance {
        status: InstanceStatus {
            instance_id,
            name: "wf".into(),
            version: 1,
            runtime_status: RuntimeStatus::Pending,
            created_at: t(0),
            last_updated_at: t(0),
            input: input.clone(),
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: "wf".into(),
            version: 1,
            input,
            seed: 7,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        }),
        start_at,
        replace_finished: false,
    }
}

fn ev(event: Event) -> HistoryEvent {
    HistoryEvent::new(event)
}

/// Runs one turn of `name` at `at`: the delivered messages, then `commands`, into history.
async fn turn(
    store: &FileStore,
    name: &str,
    at: u64,
    commands: Vec<Event>,
    status: StatusUpdate,
    shape: impl FnOnce(&mut TurnCommit),
) {
    let work = store
        .lease_orchestration(&id(name), t(at), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} can be leased"));
    let mut commit = TurnCommit::for_work(&work, status);
    commit
        .history
        .push(ev(Event::OrchestratorStarted { timestamp: t(at) }));
    commit
        .history
        .extend(work.messages.iter().map(|m| m.event.clone()));
    commit.history.extend(commands.into_iter().map(ev));
    shape(&mut commit);
    store.commit_turn(commit).await.unwrap();
}

fn completed(output: Value) -> StatusUpdate {
    StatusUpdate {
        runtime_status: RuntimeStatus::Completed,
        output: Some(output),
        ..StatusUpdate::running()
    }
}

/// Step `i` of the workload: one store call, so one commit batch once awaited.
pub async fn step(store: &FileStore, i: usize) {
    match i {
        0 => store
            .create_instance(new_instance("alpha", json!({ "n": 1 }), None))
            .await
            .unwrap(),
        1 => store
            .create_instance(new_instance("beta", json!("ünïcødé ✓"), None))
            .await
            .unwrap(),
        2 => {
            let task = ActivityTask {
                instance_id: id("alpha"),
                id: 0,
                name: "charge".into(),
                input: json!({ "cents": 1999 }),
                attempt: 1,
                timeout: Some(Duration::from_secs(30)),
                parent_span: None,
            };
            let commands = vec![
                Event::TaskScheduled {
                    id: 0,
                    name: "charge".into(),
                    input: task.input.clone(),
                    attempt: 1,
                },
                Event::TimerCreated {
                    id: 1,
                    fire_at: t(500),
                },
            ];
            let status = StatusUpdate {
                custom_status: Some(json!("charging")),
                ..StatusUpdate::running()
            };
            turn(store, "alpha", 10, commands, status, |c| {
                c.activities.push(task);
                c.timers.push(NewTimer {
                    id: 1,
                    fire_at: t(500),
                });
            })
            .await
        }
        3 => {
            let event = ev(Event::EventRaised {
                name: "approve".into(),
                data: json!({ "by": "ops", "ok": true }),
            });
            store.send(&id("beta"), event, None).await.unwrap()
        }
        4 => store
            .create_instance(new_instance("gamma", json!(null), Some(t(100))))
            .await
            .unwrap(),
        5 => {
            let work = store
                .fetch_activity(t(20), Duration::from_secs(60))
                .await
                .unwrap()
                .expect("alpha's attempt");
            let result = ev(Event::TaskCompleted {
                id: 0,
                output: json!({ "receipt": "r-1" }),
            });
            store.complete_activity(&work.lease, result).await.unwrap()
        }
        6 => {
            let commands = vec![Event::ExecutionCompleted {
                status: durable_runtime::history::CompletionStatus::Completed,
                output: Some(json!(-1.5e-300)),
                failure: None,
            }];
            turn(
                store,
                "beta",
                30,
                commands,
                completed(json!(-1.5e-300)),
                |_| {},
            )
            .await
        }
        7 => store
            .create_instance(new_instance("delta", json!([1, 2, 3]), None))
            .await
            .unwrap(),
        8 => store
            .create_instance(new_instance("epsilon", json!(0), None))
            .await
            .unwrap(),
        9 => {
            turn(
                store,
                "epsilon",
                40,
                vec![],
                completed(json!("done")),
                |_| {},
            )
            .await
        }
        10 => store.purge(&id("epsilon")).await.unwrap(),
        11 => {
            let commands = vec![Event::EventWaitStarted {
                id: 2,
                name: "ship".into(),
            }];
            let status = StatusUpdate {
                custom_status: Some(json!({ "stage": "waiting" })),
                ..StatusUpdate::running()
            };
            turn(store, "alpha", 50, commands, status, |_| {}).await
        }
        12 => {
            // A batch larger than a disk sector.
            let big = json!({ "blob": "x".repeat(1500) });
            store
                .create_instance(new_instance("zeta", big, None))
                .await
                .unwrap()
        }
        13 => {
            let event = ev(Event::EventRaised {
                name: "ship".into(),
                data: json!(42),
            });
            store.send(&id("alpha"), event, None).await.unwrap()
        }
        _ => panic!("the workload has {STEPS} steps"),
    }
}

/// Runs every step, with a checkpoint after step `checkpoint_after` if given.
pub async fn run(store: &FileStore, checkpoint_after: Option<usize>) {
    for i in 0..STEPS {
        step(store, i).await;
        if checkpoint_after == Some(i) {
            store.checkpoint().await.unwrap();
        }
    }
}

/// Everything a store holds, as its API shows it.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    /// Status, history and the messages deliverable far in the future, by instance.
    pub instances: BTreeMap<String, (InstanceStatus, Vec<HistoryEvent>, Vec<Delivery>)>,
    /// The activity attempts waiting to run.
    pub activities: Vec<ActivityTask>,
}

/// Reads everything `store` holds. Leases what it can to see inboxes and attempts (leases
/// are not durable: the store holds the same after a reopen).
pub async fn snapshot(store: &FileStore) -> Snapshot {
    let mut instances = BTreeMap::new();
    let mut query = InstanceQuery::default();
    loop {
        let page = store.list(&query).await.unwrap();
        for status in page.instances {
            let id = status.instance_id.clone();
            let history = store.load_history(&id).await.unwrap();
            let messages = store
                .lease_orchestration(&id, t(1_000_000), Duration::from_secs(60))
                .await
                .unwrap()
                .map(|work| work.messages)
                .unwrap_or_default();
            instances.insert(id.as_str().to_string(), (status, history, messages));
        }
        match page.continuation {
            Some(next) => query.continuation = Some(next),
            None => break,
        }
    }
    let mut activities = Vec::new();
    while let Some(work) = store
        .fetch_activity(t(1_000_000), Duration::from_secs(60))
        .await
        .unwrap()
    {
        activities.push(work.task);
    }
    activities.sort_by(|a, b| (a.instance_id.as_str(), a.id).cmp(&(b.instance_id.as_str(), b.id)));
    Snapshot {
        instances,
        activities,
    }
}
