//! Versioned migrations, embedded in the binary and applied at connect under an advisory
//! lock, so that any number of processes starting together migrate once.

use tokio_postgres::Client;

use crate::error::ConnectError;

/// One step of the schema's history. Released steps are never edited: a change is a new one.
struct Migration {
    version: i64,
    name: &'static str,
    /// The SQL, with `{schema}` standing for the quoted schema name.
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("../migrations/0001_initial.sql"),
}];

/// The newest schema version this release knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The first key of the store's advisory locks ("dura"), so they never meet an
/// application's single-key locks.
const LOCK_SPACE: i32 = 0x6475_7261;

/// Brings `schema` (quoted as `quoted`) to [`SCHEMA_VERSION`] in one transaction, holding a
/// transaction-level advisory lock: a process that waits for it finds the work done.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    quoted: &str,
) -> Result<(), ConnectError> {
    let failed = |error: tokio_postgres::Error| ConnectError::Migration {
        schema: schema.to_string(),
        reason: crate::db::describe(&error),
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_SPACE, &schema],
    )
    .await
    .map_err(failed)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted};
         CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
             version     bigint PRIMARY KEY,
             name        text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now(),
             applied_by  integer NOT NULL DEFAULT pg_backend_pid()
         );"
    ))
    .await
    .map_err(failed)?;
    let current: i64 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {quoted}.schema_migrations"),
            &[],
        )
        .await
        .map_err(failed)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(ConnectError::SchemaTooNew {
            schema: schema.to_string(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tracing::info!(target: "durable::postgres", schema, version = migration.version, name = migration.name, "applying migration");
        tx.batch_execute(&migration.sql.replace("{schema}", quoted))
            .await
            .map_err(failed)?;
        tx.execute(
            &format!("INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i as i64 + 1, "{}", migration.name);
        }
    }
}
