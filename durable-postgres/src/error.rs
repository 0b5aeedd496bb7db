//! Why a store could not be opened.

/// Why [`PostgresStore::connect`](crate::PostgresStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a PostgreSQL connection string.
    #[error("`{url}` is not a PostgreSQL URL ({reason}); expected e.g. postgres://user@host:5432/database")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The schema name is not one the store accepts.
    #[error("`{0}` is not a schema name the store accepts: use a lowercase ASCII letter or `_`, then lowercase letters, digits or `_`, at most 63 bytes")]
    BadSchemaName(String),
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL at {url}: {reason}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What the client or the server said.
        reason: String,
    },
    /// The database was migrated by a newer release of this crate.
    #[error("schema `{schema}` is at version {found}, but this release of durable-postgres knows versions up to {known}: upgrade durable-postgres (a downgrade would misread the data)")]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// Its version.
        found: i64,
        /// The newest version this release knows.
        known: i64,
    },
    /// The database cannot hold every instance id (its encoding is not UTF-8).
    #[error("the database's encoding is {0}, but the store needs UTF8 (instance ids and statuses are UTF-8 text): create the database with ENCODING 'UTF8'")]
    NotUtf8(String),
    /// Applying the migrations failed.
    #[error("cannot migrate schema `{schema}`: {reason}")]
    Migration {
        /// The schema.
        schema: String,
        /// What the server said.
        reason: String,
    },
}
