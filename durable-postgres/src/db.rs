//! Talking to the server: the pool, and what a failed call means for the caller (nothing
//! happened, or the outcome is unknown).

use deadpool_postgres::{Object, Pool, PoolError};
use durable_runtime::store::StoreError;
use tokio_postgres::error::SqlState;

/// What a refused connection adds to the server's message.
const TOO_MANY_CONNECTIONS: &str = ": PostgreSQL has no connection slot left for this \
    process (its max_connections is reached, or a CONNECTION LIMIT of the role or the \
    database); each process of the store opens at most pool_size + 1 connections \
    (PostgresOptions::pool_size, and one that listens for notifications): lower pool_size, \
    run fewer processes, or raise max_connections on the server";

/// What went wrong, with the server's code and detail when the server answered.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            if db.code() == &SqlState::TOO_MANY_CONNECTIONS {
                text.push_str(TOO_MANY_CONNECTIONS);
            }
            text
        }
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// A read failed, or a transaction failed before its COMMIT was sent: nothing was written.
pub(crate) fn unavailable(what: &str, error: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("{what}: {}", describe(&error)))
}

/// A COMMIT (or a write in a statement of its own) failed. If the server said why, it rolled
/// the transaction back; if the connection was lost instead, the write may or may not have
/// become durable.
pub(crate) fn write_failed(what: &str, error: tokio_postgres::Error) -> StoreError {
    write_failed_ref(what, &error)
}

/// [`write_failed`], for an error the caller keeps.
pub(crate) fn write_failed_ref(what: &str, error: &tokio_postgres::Error) -> StoreError {
    if error.as_db_error().is_some() {
        StoreError::Unavailable(format!("{what} was rolled back: {}", describe(error)))
    } else {
        StoreError::Unavailable(format!(
            "{what}: the connection was lost before PostgreSQL confirmed the commit, so the \
             outcome is unknown (it may or may not be durable); read it back once the store \
             is reachable again ({})",
            describe(error)
        ))
    }
}

/// A connection from the pool, or `Unavailable` saying why there is none.
pub(crate) async fn connection(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(|error| {
        StoreError::Unavailable(match error {
            PoolError::Backend(error) => {
                format!("cannot connect to PostgreSQL: {}", describe(&error))
            }
            PoolError::Timeout(kind) => format!(
                "no PostgreSQL connection became available in time ({kind:?}): the server is \
                 slow or unreachable, or the pool is too small for the load"
            ),
            other => format!("cannot get a PostgreSQL connection: {other}"),
        })
    })
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((credentials, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = credentials.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return url.to_string();
    }
    // key=value form
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://me:s3cret@db:5432/app"),
            "postgres://me:***@db:5432/app"
        );
        assert_eq!(redact("postgres://me@db/app"), "postgres://me@db/app");
        assert_eq!(
            redact("host=db user=me password=s3cret"),
            "host=db user=me password=***"
        );
    }
}
