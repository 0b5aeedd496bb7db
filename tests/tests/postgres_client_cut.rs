//! A client whose connections the server cuts (`pg_terminate_backend` of its listening
//! connection and its pool's) while it waits for instances that another process runs: every
//! wait still returns when its instance completes, since polling is the truth and a
//! notification only a hint. Both stores have a pool of two, the least a worker runs with:
//! the workflows run end to end on it, and neither process opens more than three
//! connections. Runs when `DURABLE_TEST_POSTGRES_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use durable_postgres::testing::{self, TestSchema};
use durable_postgres::PostgresStore;
use durable_runtime::store::StoreError;
use durable_runtime::{ClientError, Runtime, RuntimeStatus};
use durable_tests::fleet::{expected_output, fleet_retry, fleet_step};

const INSTANCES: usize = 300;
/// Real time allowed for everything (a hang, not a speed, is what fails the test).
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connections_are_cut_still_sees_completions() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url).await;
    let app = format!("{}_client", schema.name());
    let worker_app = format!("{}_worker", schema.name());
    let separator = if url.contains('?') { '&' } else { '?' };
    let tagged = format!("{url}{separator}application_name={app}");
    let worker = Runtime::builder()
        .store(
            PostgresStore::connect_with(
                &format!("{url}{separator}application_name={worker_app}"),
                schema.options().pool_size(2),
            )
            .await
            .unwrap(),
        )
        .orchestrator(fleet_retry)
        .activity(fleet_step)
        .start()
        .unwrap();
    let client_runtime = Runtime::builder()
        .store(
            PostgresStore::connect_with(
                &tagged,
                schema
                    .options()
                    .pool_size(2)
                    .client_only(true)
                    .poll_interval(Duration::from_millis(100)),
            )
            .await
            .unwrap(),
        )
        .orchestrator(fleet_retry)
        .activity(fleet_step)
        .start()
        .unwrap();
    let client = client_runtime.client();
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);

    let mut waits = Vec::new();
    for n in 0..INSTANCES {
        let client = client.clone();
        waits.push(tokio::spawn(async move {
            let id = format!("cut-{n}");
            loop {
                match client.start(fleet_retry, ()).instance_id(&id).await {
                    Ok(_) | Err(ClientError::AlreadyExists(_)) => break,
                    Err(ClientError::Store(StoreError::Unavailable(_))) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(error) => panic!("{id}: {error}"),
                }
            }
            loop {
                match client.wait_for_completion(&id, PATIENCE).await {
                    Ok(status) => {
                        assert_eq!(status.runtime_status, RuntimeStatus::Completed, "{id}");
                        assert_eq!(
                            status.output_as::<Vec<String>>().unwrap(),
                            Some(expected_output(&id))
                        );
                        return;
                    }
                    Err(ClientError::Store(StoreError::Unavailable(_))) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(error) => panic!("{id}: waiting failed: {error}"),
                }
            }
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Cut while instances are created, run and waited for, until every wait returned.
    let (admin, app) = (Arc::new(admin), Arc::new(app));
    let cutter = tokio::spawn({
        let (admin, app) = (Arc::clone(&admin), Arc::clone(&app));
        async move {
            let mut cuts = 0;
            loop {
                let cut: i64 = admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                    &[&*app],
                )
                .await
                .unwrap()
                .get(0);
                cuts += 1;
                println!("cut {cut} connections of the client");
                tokio::time::sleep(Duration::from_millis(20 + 37 * (cuts % 5))).await;
            }
        }
    });
    for wait in waits {
        wait.await.unwrap();
    }
    cutter.abort();
    // A pool of two and a listener: three connections at most per process.
    for name in [&*app, &worker_app] {
        let open: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        assert!(open <= 3, "{name} has {open} connections open");
    }
    client_runtime.shutdown().await;
    worker.shutdown().await;
}
