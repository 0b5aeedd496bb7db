//! The store conformance kit on PostgreSQL: one test per check, each on a schema of its own,
//! dropped afterwards. Runs when `DURABLE_TEST_POSTGRES_URL` is set (see
//! `durable_postgres::testing`).

durable_runtime::store_conformance_tests!({
    let Some(url) = durable_postgres::testing::url() else {
        return;
    };
    durable_postgres::testing::TestSchema::new(&url)
        .await
        .into_store()
        .await
        .unwrap_or_else(|e| panic!("cannot open a store on the test database: {e}"))
});
