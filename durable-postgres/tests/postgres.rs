//! What only a PostgreSQL store has: migrations raced by many processes, a newer schema,
//! bad URLs, connections killed under it (before and during COMMIT), damaged rows, two
//! stores (two processes) on one schema hearing each other, and a claim overtaken by another
//! worker's commit. Runs when `DURABLE_TEST_POSTGRES_URL` is set.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use durable_postgres::testing::{self, TestSchema};
use durable_postgres::{ConnectError, PostgresOptions, PostgresStore, SCHEMA_VERSION};
use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::{
    ActivityTask, Delivery, NewInstance, StatusUpdate, Store, StoreError, TurnCommit,
};
use durable_runtime::{InstanceId, InstanceStatus, RuntimeStatus};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Real time allowed for anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn new_instance(id: &str, input: serde_json::Value) -> NewInstance {
    let id = InstanceId::new(id).unwrap();
    NewInstance {
        status: InstanceStatus {
            instance_id: id.clone(),
            name: "work".into(),
            version: 1,
            runtime_status: RuntimeStatus::Pending,
            created_at: at(0),
            last_updated_at: at(0),
            input: input.clone(),
            output: None,
            custom_status: None,
            failure: None,
            parent: None,
        },
        start: HistoryEvent::new(Event::ExecutionStarted {
            name: "work".into(),
            version: 1,
            input,
            seed: 7,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        }),
        start_at: None,
        replace_finished: false,
    }
}

/// A direct connection for the test's own SQL.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Creates `id` and leases it, returning the turn that records its start.
async fn leased_turn(store: &PostgresStore, id: &str) -> TurnCommit {
    store
        .create_instance(new_instance(id, json!(1)))
        .await
        .unwrap();
    let work = store
        .fetch_orchestration(at(1), Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the new instance is ready");
    let mut turn = TurnCommit::for_work(&work, StatusUpdate::running());
    turn.history = std::iter::once(HistoryEvent::new(Event::OrchestratorStarted {
        timestamp: at(1),
    }))
    .chain(work.messages.iter().map(|m| m.event.clone()))
    .collect();
    turn
}

/// The one line `cargo test` shows when the PostgreSQL tests are skipped; with the variable
/// set, it checks that the server answers, naming the URL if not.
#[tokio::test]
#[allow(non_snake_case)]
async fn postgres_tests_skipped_unless_DURABLE_TEST_POSTGRES_URL_is_set() {
    let Some(url) = testing::url() else {
        println!(
            "PostgreSQL tests skipped: set {}=postgres://USER@HOST:PORT/DATABASE to run them",
            testing::URL_VAR
        );
        return;
    };
    if let Err(error) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        panic!(
            "{} is set but PostgreSQL at {url} cannot be reached: {error}",
            testing::URL_VAR
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_processes_starting_together_migrate_once() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let connects: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            let options = schema.options().pool_size(1);
            tokio::spawn(async move { PostgresStore::connect_with(&url, options).await })
        })
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.unwrap().expect("every process connects"));
    }
    let rows = admin(&url)
        .await
        .query(
            &format!(
                "SELECT version, applied_by FROM \"{}\".schema_migrations ORDER BY version",
                schema.name()
            ),
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let sessions: std::collections::HashSet<i32> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(sessions.len(), 1, "one session applied every migration");
    // And the schema works from all of them.
    stores[3]
        .create_instance(new_instance("shared", json!(null)))
        .await
        .unwrap();
    assert!(stores[7]
        .status(&InstanceId::new("shared").unwrap())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_schema_newer_than_the_code_is_refused() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    drop(schema.store().await.unwrap());
    admin(&url)
        .await
        .execute(
            &format!(
                "INSERT INTO \"{}\".schema_migrations (version, name) VALUES ($1, 'from the future')",
                schema.name()
            ),
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    match schema.store().await {
        Err(error @ ConnectError::SchemaTooNew { found, known, .. }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            let message = error.to_string();
            assert!(message.contains("upgrade durable-postgres"), "{message}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_urls_and_schema_names_are_refused_clearly() {
    // No server needed for these.
    match PostgresStore::connect("mysql://me:pw@db/x").await {
        Err(ConnectError::BadUrl { url, .. }) => assert!(!url.contains("pw"), "{url}"),
        other => panic!("expected BadUrl, got {other:?}"),
    }
    for name in [
        "Orders",
        "1st",
        "a-b",
        "x\"; DROP SCHEMA public; --",
        "",
        &"s".repeat(64),
    ] {
        let options = PostgresOptions::default().schema(name);
        match PostgresStore::connect_with("postgres://127.0.0.1:1/x", options).await {
            Err(ConnectError::BadSchemaName(got)) => assert_eq!(got, name),
            other => panic!("{name:?}: expected BadSchemaName, got {other:?}"),
        }
    }
    let options = PostgresOptions::default().connect_timeout(Duration::from_secs(5));
    match PostgresStore::connect_with("postgres://me:s3cret@127.0.0.1:1/x", options).await {
        Err(error @ ConnectError::Unreachable { .. }) => {
            let message = error.to_string();
            assert!(message.contains("127.0.0.1:1"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn killed_connections_fail_calls_then_the_store_recovers() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let app = schema.name().to_string();
    let separator = if url.contains('?') { '&' } else { '?' };
    let tagged = format!("{url}{separator}application_name={app}");
    let store = PostgresStore::connect_with(&tagged, schema.options())
        .await
        .unwrap();
    store
        .create_instance(new_instance("before", json!(1)))
        .await
        .unwrap();
    let admin = admin(&url).await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "the store's sessions were found");
    // Every pooled connection is dead: calls fail with Unavailable (never a panic) until the
    // pool has replaced them.
    let id = InstanceId::new("before").unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match store.status(&id).await {
            Ok(status) => {
                assert!(status.is_some());
                break;
            }
            Err(StoreError::Unavailable(message)) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never recovered: {message}"
                );
            }
            Err(other) => panic!("expected Unavailable, got {other:?}"),
        }
    }
    store
        .create_instance(new_instance("after", json!(2)))
        .await
        .unwrap();
    assert!(store
        .fetch_orchestration(at(1), Duration::from_secs(60))
        .await
        .unwrap()
        .is_some());
}

/// A TCP relay to the server that the test can cut, as a network failure would: the client
/// sees its connection end with no word from the server.
struct Relay {
    port: u16,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Relay {
    async fn to(server: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let server = server.to_string();
        let accepting = Arc::clone(&links);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut upstream = TcpStream::connect(&server).await.unwrap();
                let link = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
                accepting.lock().unwrap().push(link.abort_handle());
            }
        })
        .abort_handle();
        Relay {
            port,
            links,
            accept,
        }
    }

    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_commit_is_an_unknown_outcome() {
    let Some(url) = testing::url() else { return };
    let config: tokio_postgres::Config = url.parse().unwrap();
    let (host, port) = match (config.get_hosts(), config.get_ports()) {
        ([tokio_postgres::config::Host::Tcp(host)], [port]) => (host.clone(), *port),
        _ => return, // a Unix socket: nothing to relay
    };
    let relay = Relay::to(&format!("{host}:{port}")).await;
    let relayed = url.replacen(
        &format!("{host}:{port}"),
        &format!("127.0.0.1:{}", relay.port),
        1,
    );
    assert_ne!(relayed, url, "the URL names the server as host:port");
    let schema = TestSchema::new(&url).await;
    let store = PostgresStore::connect_with(&relayed, schema.options().pool_size(1))
        .await
        .unwrap();
    let turn = leased_turn(&store, "committing").await;

    // Make COMMIT itself slow: a deferred trigger sleeps when the history rows are checked.
    let admin = admin(&url).await;
    let s = schema.name();
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION \"{s}\".slow_commit() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON \"{s}\".history
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \"{s}\".slow_commit();"
        ))
        .await
        .unwrap();
    let store = Arc::new(store);
    let committing = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.commit_turn(turn).await }
    });
    // Cut the network once the server is inside COMMIT.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let in_commit: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'COMMIT' AND wait_event = 'PgSleep'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if in_commit > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "COMMIT never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    relay.cut();
    match committing.await.unwrap() {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("outcome is unknown"), "{message}")
        }
        other => panic!("expected Unavailable with an unknown outcome, got {other:?}"),
    }
    // Indeed it was not known: the server went on and committed.
    let direct = schema.store().await.unwrap();
    let id = InstanceId::new("committing").unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while direct.load_history(&id).await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the commit never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn damaged_rows_are_reported_not_panics() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let store = schema.store().await.unwrap();
    let turn = leased_turn(&store, "damaged").await;
    store.commit_turn(turn).await.unwrap();
    store
        .send(
            &InstanceId::new("damaged").unwrap(),
            HistoryEvent::new(Event::EventRaised {
                name: "e".into(),
                data: json!(1),
            }),
            None,
        )
        .await
        .unwrap();
    let s = schema.name();
    admin(&url)
        .await
        .batch_execute(&format!(
            "UPDATE \"{s}\".instances SET input = '\\xff00', custom_status = 'not json';
             UPDATE \"{s}\".history SET event = '\\x7b7b';
             UPDATE \"{s}\".messages SET event = '';"
        ))
        .await
        .unwrap();
    let id = InstanceId::new("damaged").unwrap();
    // A history is all or nothing: the runtime fails the instance on `Corrupt`.
    match store.load_history(&id).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("damaged"), "{message}"),
        other => panic!("load_history: expected Corrupt, got {other:?}"),
    }
    // A status and an inbox never block: the status leaves out what it cannot read and says
    // why; the message is delivered as the failure of its instance.
    let status = store.status(&id).await.unwrap().expect("the instance");
    assert_eq!(status.input, serde_json::Value::Null);
    assert_eq!(status.custom_status, None);
    let failure = status.failure.expect("the reason");
    assert_eq!(failure.kind, durable_runtime::history::kinds::UNREADABLE);
    assert!(failure.message.contains("cannot be read"), "{failure:?}");
    let page = store.list(&Default::default()).await.unwrap();
    assert_eq!(
        page.instances,
        vec![store.status(&id).await.unwrap().unwrap()]
    );
    let work = store
        .fetch_orchestration(at(2), Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the instance, leased");
    match &work.messages[..] {
        [Delivery {
            event:
                HistoryEvent {
                    event:
                        Event::ExecutionCompleted {
                            failure: Some(failure),
                            ..
                        },
                    ..
                },
            ..
        }] => assert!(
            failure.message.contains("of its inbox cannot be read"),
            "{failure:?}"
        ),
        other => panic!("expected the failure in place of the message, got {other:?}"),
    }
}

#[tokio::test]
async fn big_and_hostile_payloads_round_trip() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let store = schema.store().await.unwrap();
    let big = "x".repeat(8 << 20);
    let hostile = json!({
        "sql": "'); DROP TABLE instances; --",
        "nul": "a\u{0}b",
        "unicode": "é✓\u{1F600}",
        "big": big,
    });
    for id in [
        "'; DROP TABLE instances; --",
        "a\\b",
        "$1",
        "%_",
        "é✓\u{1F600}",
    ] {
        store
            .create_instance(new_instance(id, hostile.clone()))
            .await
            .unwrap();
        let status = store
            .status(&InstanceId::new(id).unwrap())
            .await
            .unwrap()
            .expect("created");
        assert_eq!(status.input, hostile, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_schema_hear_each_other() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    // Polling so slow that only a notification can be in time.
    let options = schema.options().poll_interval(Duration::from_secs(3_600));
    let one = PostgresStore::connect_with(&url, options.clone())
        .await
        .unwrap();
    let other = PostgresStore::connect_with(&url, options).await.unwrap();
    // A notification sent before a process listens is lost (only polling would find the
    // work then): wait until both listen.
    let admin = admin(&url).await;
    let listen = format!("LISTEN \"durable.{}\"", schema.name());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listening: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
                &[&listen],
            )
            .await
            .unwrap()
            .get(0);
        if listening == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stores never listened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = InstanceId::new("heard").unwrap();
    let mut watching = other.watch_status(&id);
    watching.borrow_and_update();
    let signals = other.signals();
    let mut work = std::pin::pin!(signals.orchestrations.notified());
    work.as_mut().enable();
    let turn = leased_turn(&one, "heard").await;
    let owner: Option<String> = admin
        .query_one(
            &format!("SELECT lease_owner FROM \"{}\".instances", schema.name()),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let owner = owner.expect("a lease names its owner");
    assert!(
        owner.ends_with(&format!(":{}", std::process::id())),
        "{owner}"
    );
    tokio::time::timeout(PATIENCE, work)
        .await
        .expect("the other process is woken for the new instance");
    tokio::time::timeout(PATIENCE, watching.changed())
        .await
        .expect("the other process sees the instance created")
        .unwrap();
    watching.borrow_and_update();
    one.commit_turn(turn).await.unwrap();
    tokio::time::timeout(PATIENCE, watching.changed())
        .await
        .expect("the other process sees the status change")
        .unwrap();
    let status = other.status(&id).await.unwrap().unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
}

/// A login role made by a test, dropped (with its grants) when this is, even by a test that
/// panics: best effort, after ending its sessions.
struct TestRole {
    url: String,
    name: String,
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                        &[&name],
                    )
                    .await;
                let _ = client
                    .batch_execute(&format!(
                        "DROP OWNED BY \"{name}\"; DROP ROLE IF EXISTS \"{name}\""
                    ))
                    .await;
            });
        });
        let _ = dropped.join();
    }
}

/// Terminates every session whose `application_name` is `app`: how many.
async fn cut(admin: &tokio_postgres::Client, app: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
}

/// A client whose every connection the server cut (the listener's and the pool's) still
/// sees another process complete an instance it watches: polling is the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_whose_connections_are_cut_still_sees_changes() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let app = format!("{}_w", schema.name());
    let separator = if url.contains('?') { '&' } else { '?' };
    let tagged = format!("{url}{separator}application_name={app}");
    let worker = PostgresStore::connect_with(&url, schema.options())
        .await
        .unwrap();
    let watcher = PostgresStore::connect_with(
        &tagged,
        schema
            .options()
            .client_only(true)
            .poll_interval(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let admin = admin(&url).await;
    let id = InstanceId::new("watched").unwrap();
    for round in 0..3 {
        let name = format!("watched-{round}");
        let id = InstanceId::new(&name).unwrap();
        let turn = leased_turn(&worker, &name).await;
        let mut watching = watcher.watch_status(&id);
        // The watcher has read the instance once (its first sighting) ...
        tokio::time::timeout(PATIENCE, watching.changed())
            .await
            .expect("the watcher sees the instance")
            .unwrap();
        watching.borrow_and_update();
        // ... then loses every connection, and the instance moves on meanwhile.
        assert!(
            cut(&admin, &app).await >= 1,
            "the watcher's sessions were found"
        );
        worker.commit_turn(turn).await.unwrap();
        tokio::time::timeout(PATIENCE, watching.changed())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the watcher never saw the change"))
            .unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match watcher.status(&id).await {
                Ok(status) => {
                    assert_eq!(status.unwrap().runtime_status, RuntimeStatus::Running);
                    break;
                }
                Err(StoreError::Unavailable(message)) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "never recovered: {message}"
                ),
                Err(other) => panic!("expected Unavailable, got {other:?}"),
            }
        }
    }
    let _ = id;
}

/// An attempt of `id`'s activity `seq`.
fn task(id: &str, seq: u64) -> ActivityTask {
    ActivityTask {
        instance_id: InstanceId::new(id).unwrap(),
        id: seq,
        name: "step".into(),
        input: json!(seq),
        attempt: 1,
        timeout: None,
        parent_span: None,
    }
}

/// A worker that dies holding leases has them taken over as soon as they expire, ahead of
/// any backlog of ready work: an instance whose deliverable message is a due timer (which
/// sorts after every message sent "now") and an activity attempt (expired leases sort after
/// ready attempts) are the first claims made after their expiry.
#[tokio::test]
async fn expired_leases_are_taken_over_before_a_backlog() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let dead = schema.store().await.unwrap();
    let live = schema.store().await.unwrap();
    let lease = Duration::from_secs(10);

    // The dead worker's instance: started by a message due at a time (a scheduled start).
    let mut stuck = new_instance("stuck", json!(0));
    stuck.start_at = Some(at(0));
    dead.create_instance(stuck).await.unwrap();
    let work = dead
        .fetch_orchestration(at(1), lease)
        .await
        .unwrap()
        .expect("the scheduled start is due");
    assert_eq!(work.instance_id.as_str(), "stuck");
    // ... and its activity attempt.
    let mut turn = leased_turn(&live, "slow").await;
    turn.activities = vec![task("slow", 1)];
    live.commit_turn(turn).await.unwrap();
    let attempt = dead
        .fetch_activity(at(1), lease)
        .await
        .unwrap()
        .expect("the attempt is ready");
    assert_eq!(attempt.lease.instance_id.as_str(), "slow");

    // The backlog: ready instances and ready attempts.
    let mut turn = leased_turn(&live, "busy").await;
    turn.activities = (1..=40).map(|seq| task("busy", seq)).collect();
    live.commit_turn(turn).await.unwrap();
    for n in 0..40 {
        live.create_instance(new_instance(&format!("ready-{n}"), json!(n)))
            .await
            .unwrap();
    }

    // Past the dead worker's leases (at 11): its work is claimed first, by a new worker
    // (whose first claims take one each).
    let taker = schema.store().await.unwrap();
    let later = at(12);
    let first = taker
        .fetch_orchestration(later, lease)
        .await
        .unwrap()
        .expect("work is ready");
    assert_eq!(
        first.instance_id.as_str(),
        "stuck",
        "the expired lease first"
    );
    let first = taker
        .fetch_activity(later, lease)
        .await
        .unwrap()
        .expect("attempts are ready");
    assert_eq!(
        first.lease.instance_id.as_str(),
        "slow",
        "the expired attempt first"
    );
    // The dead worker's commit is refused.
    let turn = TurnCommit::for_work(&work, StatusUpdate::running());
    assert!(matches!(
        dead.commit_turn(turn).await,
        Err(StoreError::Conflict { .. })
    ));
}

/// A server with no connection slot left refuses the store with an error that says so and
/// what to change (a role's CONNECTION LIMIT stands in for `max_connections` here: the same
/// refusal, SQLSTATE 53300, without taking every slot of a shared server).
#[tokio::test]
async fn a_refused_connection_names_max_connections() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let admin = admin(&url).await;
    let role = format!("{}_refused", schema.name());
    admin
        .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN CONNECTION LIMIT 0"))
        .await
        .unwrap();
    let _role = TestRole {
        url: url.clone(),
        name: role.clone(),
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let refused =
        PostgresStore::connect_with(&format!("{url}{separator}user={role}"), schema.options())
            .await;
    match refused {
        Err(ConnectError::Unreachable { reason, .. }) => {
            assert!(reason.contains("53300"), "{reason}");
            assert!(reason.contains("max_connections"), "{reason}");
            assert!(reason.contains("pool_size + 1"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// A watcher cut off and then refused new connections for a while (the server full: its
/// slots taken by others) sees the change made meanwhile once it connects again. The role's
/// CONNECTION LIMIT stands in for the server's `max_connections`, as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_refused_connections_for_a_while_sees_changes_once_back() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let admin = admin(&url).await;
    // Three slots: a client-only store with a pool of two, and its listener.
    let role = format!("{}_few", schema.name());
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN CONNECTION LIMIT 3 IN ROLE postgres;
             DO $$ BEGIN
                 EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), '{role}');
             END $$"
        ))
        .await
        .unwrap();
    let _role = TestRole {
        url: url.clone(),
        name: role.clone(),
    };
    let app = format!("{}_w", schema.name());
    let separator = if url.contains('?') { '&' } else { '?' };
    let as_role = format!("{url}{separator}user={role}");
    let worker = schema.store().await.unwrap();
    let watcher = PostgresStore::connect_with(
        &format!("{as_role}&application_name={app}"),
        schema
            .options()
            .pool_size(2)
            .client_only(true)
            .poll_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let id = InstanceId::new("watched").unwrap();
    let turn = leased_turn(&worker, "watched").await;
    let mut watching = watcher.watch_status(&id);
    tokio::time::timeout(PATIENCE, watching.changed())
        .await
        .expect("the watcher sees the instance")
        .unwrap();
    watching.borrow_and_update();

    // Cut the watcher off and take its slots, until others hold all three.
    let mut fillers = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fillers.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never took the role's slots"
        );
        cut(&admin, &app).await;
        while fillers.len() < 3 {
            match tokio_postgres::connect(&as_role, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    fillers.push((client, tokio::spawn(connection)));
                }
                Err(_) => break,
            }
        }
    }
    worker.commit_turn(turn).await.unwrap();
    // Refused meanwhile, it can read nothing: no change seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !watching.has_changed().unwrap(),
        "seen without a connection"
    );
    assert!(matches!(
        watcher.status(&id).await,
        Err(StoreError::Unavailable(message)) if message.contains("max_connections")
    ));
    // Slots free again: the change is seen.
    for (client, connection) in fillers {
        drop(client);
        let _ = connection.await;
    }
    tokio::time::timeout(PATIENCE, watching.changed())
        .await
        .expect("the watcher sees the change once it connects again")
        .unwrap();
    let status = watcher.status(&id).await.unwrap().unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
}

/// A process busy handing out a batch it claimed still takes over leases that expire
/// meanwhile (it looks for them once per poll interval) and hands them out first.
#[tokio::test]
async fn a_busy_process_takes_expired_leases_before_the_rest_of_its_batch() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let dead = schema.store().await.unwrap();
    let busy = schema.store().await.unwrap();
    let mut stuck = new_instance("stuck", json!(0));
    stuck.start_at = Some(at(0));
    dead.create_instance(stuck).await.unwrap();
    let held = dead
        .fetch_orchestration(at(1), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(held.unwrap().instance_id.as_str(), "stuck");
    for n in 0..20 {
        busy.create_instance(new_instance(&format!("ready-{n:02}"), json!(n)))
            .await
            .unwrap();
    }
    // Claims of 1, 2 and 4 (each full claim doubles the next): three wait in its batch.
    let lease = Duration::from_secs(20);
    let mut handed = Vec::new();
    for _ in 0..4 {
        let work = busy.fetch_orchestration(at(2), lease).await.unwrap();
        handed.push(work.unwrap().instance_id.to_string());
    }
    // At 12 the dead worker's lease (until 11) has expired; the batch (until 22) is fresh.
    let next = busy.fetch_orchestration(at(12), lease).await.unwrap();
    let next = next.unwrap().instance_id.to_string();
    assert!(next.starts_with("ready-"), "the batch first: {next}");
    let taken = busy.fetch_orchestration(at(12), lease).await.unwrap();
    assert_eq!(
        taken.unwrap().instance_id.as_str(),
        "stuck",
        "then the expired lease, before the rest of the batch (handed out: {handed:?})"
    );
}

/// Holds back, inside a statement (after its snapshot was taken, before it locks any row),
/// the sessions of one application that compare a bigint with `now`, until opened: an
/// operator `<=` on bigints in the test's schema, which those sessions search before
/// pg_catalog, waits for an advisory lock the gate holds when its right side is `now`. It
/// goes with the test's schema; the lock goes with the gate's session.
///
/// A claim compares `lease_until` or `visible_at` with `now` for every row before it locks
/// it, and an operator of no index's operator class is a filter under the row lock, never an
/// index condition. Other sessions do not search the schema: they never see the operator.
struct Gate {
    admin: tokio_postgres::Client,
    schema: String,
    /// The URL of a session behind the gate.
    url: String,
    app: String,
}

/// The second key of the gate's advisory lock ("gate"); the first is the schema's hash.
const GATE_LOCK: i32 = 0x6761_7465;

impl Gate {
    /// Closes a gate on `schema` for the statements comparing with `now`.
    async fn close(url: &str, schema: &str, now: SystemTime) -> Gate {
        let admin = admin(url).await;
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // The store's schema name needs no quoting (the store checks it).
        admin
            .batch_execute(&format!(
                "CREATE FUNCTION {schema}.gated_le(a bigint, b bigint) RETURNS boolean
                 LANGUAGE plpgsql STRICT AS $$
                 BEGIN
                     IF b OPERATOR(pg_catalog.=) {now} THEN
                         PERFORM pg_catalog.pg_advisory_xact_lock_shared(
                             pg_catalog.hashtext('{schema}'), {GATE_LOCK});
                     END IF;
                     RETURN a OPERATOR(pg_catalog.<=) b;
                 END $$;
                 CREATE OPERATOR {schema}.<= (
                     LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = {schema}.gated_le);
                 SELECT pg_advisory_lock(hashtext('{schema}'), {GATE_LOCK});"
            ))
            .await
            .unwrap();
        let app = format!("{schema}_gated");
        // pg_catalog comes first unless the path names it: named after the schema, it comes
        // after the gate's `<=`.
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{url}{separator}application_name={app}&options=-c%20search_path%3D{schema}%2Cpg_catalog"
        );
        Gate {
            admin,
            schema: schema.to_string(),
            url,
            app,
        }
    }

    /// Waits until a session behind the gate waits at it in a statement containing `text`
    /// (in its first kilobyte: pg_stat_activity shows no more).
    async fn holds(&self, text: &str) {
        let waiting = async {
            loop {
                let found: i64 = self
                    .admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE application_name = $1 AND wait_event_type = 'Lock'
                           AND wait_event = 'advisory' AND strpos(query, $2) > 0",
                        &[&self.app, &text],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if found > 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(PATIENCE, waiting)
            .await
            .unwrap_or_else(|_| panic!("no statement containing {text:?} reached the gate"));
    }

    async fn open(&self) {
        self.admin
            .execute(
                "SELECT pg_advisory_unlock(hashtext($1), $2)",
                &[&self.schema, &GATE_LOCK],
            )
            .await
            .unwrap();
    }
}

/// How worker B claims the instance.
#[derive(Clone, Copy, Debug)]
enum Claim {
    Fetch,
    Lease,
}

/// Worker A's lease has run out and A commits its first turn late, consuming the start
/// message, while worker B's claim runs: B's snapshot predates A's commit, but B locks the
/// row after it, so the row it leases is the one A left (its history now holds the start).
/// B must not be handed the start again, which would start the orchestration over in the
/// same history (the fleet test saw this before claims checked whether the row they locked
/// had moved since their snapshot). Claims skip locked rows and never wait for one: the gate
/// holds B's claim between its snapshot and its row lock.
async fn a_claim_overtaken_by_a_late_commit(claim: Claim) {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let worker_a = schema.store().await.unwrap();
    // Leased at 1 until 61.
    let turn = leased_turn(&worker_a, "x").await;
    assert_eq!(turn.consumed.len(), 1, "the start message");
    let claim_at = at(120);
    let gate = Gate::close(&url, schema.name(), claim_at).await;
    let worker_b = PostgresStore::connect_with(&gate.url, schema.options())
        .await
        .unwrap();
    let id = InstanceId::new("x").unwrap();
    let claiming = {
        let id = id.clone();
        tokio::spawn(async move {
            let lease = Duration::from_secs(60);
            let work = match claim {
                Claim::Fetch => worker_b.fetch_orchestration(claim_at, lease).await,
                Claim::Lease => worker_b.lease_orchestration(&id, claim_at, lease).await,
            };
            (worker_b, work)
        })
    };
    gate.holds("FOR NO KEY UPDATE").await;
    worker_a
        .commit_turn(turn)
        .await
        .expect("A's lease ran out but nobody took it yet: its fence holds");
    gate.open().await;
    let (_worker_b, work) = tokio::time::timeout(PATIENCE, claiming)
        .await
        .expect("B's claim ends once the gate opens")
        .unwrap();
    let history = worker_a.load_history(&id).await.unwrap();
    // B leases x (free and live) with nothing to deliver; leaving it alone would do too.
    let Some(work) = work.unwrap() else { return };
    let delivered: Vec<&Event> = work.messages.iter().map(|m| &m.event.event).collect();
    assert!(
        delivered.is_empty(),
        "{claim:?}: expected no message (A's turn consumed the start), found {delivered:?} \
         delivered with history length {}",
        work.history_len
    );
    assert_eq!(
        work.history_len,
        history.len() as u64,
        "{claim:?}: the history length B was handed, against the history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_overtaken_by_a_late_commit_does_not_deliver_its_messages_again() {
    a_claim_overtaken_by_a_late_commit(Claim::Fetch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_overtaken_by_a_late_commit_does_not_deliver_its_messages_again() {
    a_claim_overtaken_by_a_late_commit(Claim::Lease).await;
}
