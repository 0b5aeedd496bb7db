//! Statements sent together: a transaction's steps go out before any answer is awaited, so
//! a whole turn costs one round trip whatever it holds.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::GenericClient;
use durable_runtime::store::StoreError;
use futures::future::{maybe_done, BoxFuture};
use futures::TryStreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::db::unavailable;

/// Prepares `text` on `client`, once per connection.
pub(crate) async fn prepare(
    client: &impl GenericClient,
    text: &str,
) -> Result<Statement, StoreError> {
    client
        .prepare_cached(text)
        .await
        .map_err(|e| unavailable("cannot prepare a statement", e))
}

pub(crate) type Step<'a> = BoxFuture<'a, Result<Vec<Row>, tokio_postgres::Error>>;

/// `statement` with `params` on `client`, as a step of a [`pipeline`] (inside the
/// transaction the pipeline's `BEGIN` step opened, if any).
pub(crate) fn step<'a>(
    client: &'a tokio_postgres::Client,
    statement: &'a Statement,
    params: &[&'a (dyn ToSql + Sync)],
) -> Step<'a> {
    let params = params.to_vec();
    Box::pin(async move {
        client
            .query_raw(statement, params)
            .await?
            .try_collect()
            .await
    })
}

/// Runs `steps` pipelined: each is sent on its first poll, in order, before any answer is
/// awaited, so a whole turn costs one round trip.
pub(crate) async fn pipeline(steps: Vec<Step<'_>>) -> Vec<Result<Vec<Row>, tokio_postgres::Error>> {
    let mut steps: Vec<_> = steps.into_iter().map(|s| Box::pin(maybe_done(s))).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for step in &mut steps {
            done &= step.as_mut().poll(cx).is_ready();
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    steps
        .iter_mut()
        .map(|step| {
            Pin::as_mut(step)
                .take_output()
                .expect("a finished step has its output")
        })
        .collect()
}
