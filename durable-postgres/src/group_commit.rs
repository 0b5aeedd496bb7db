//! Group commit: the writes of this process's concurrent calls (turns, new instances,
//! activity results) committed together, one transaction, one WAL flush and one round trip
//! per batch, however many it holds.
//!
//! A few lanes each take every write waiting (up to [`MAX_BATCH`]) and send `BEGIN`, each
//! write's statements (a turn's fence first, then its effects) and `COMMIT`, pipelined: the
//! server runs them back to back, and no transaction stays open while the process is busy
//! elsewhere. A fence that does not hold fails its statement, so the batch rolls back; so does
//! any failed statement. Each write of a rolled-back batch is then committed alone, where a
//! failed fence is reported as such and changes nothing, so one stale or bad write fails only
//! its own call. (Fences fail only for workers that lost their lease: rare, and then a batch
//! costs one more round trip per write.)

use std::sync::Arc;

use deadpool_postgres::Pool;
use durable_runtime::store::StoreError;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::AbortHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use crate::create::{CreateStatements, NewRow};
use crate::db::{self, describe};
use crate::pipeline::{pipeline, prepare, step, Step};
use crate::sql::Sql;
use crate::turn::{EncodedTurn, TurnStatements};

/// The most writes one transaction carries.
pub(crate) const MAX_BATCH: usize = 64;

/// A write waiting for its batch.
pub(crate) enum Write {
    /// A turn: applied if its fence holds.
    Turn(Box<EncodedTurn>),
    /// A new instance: created if its id is free.
    Create(Box<NewRow>),
    /// An activity result delivered to its instance's inbox, if the attempt's lease holds.
    Complete(Box<Completion>),
}

/// An activity attempt's result, for `complete_activity`.
pub(crate) struct Completion {
    pub(crate) id: String,
    pub(crate) seq: i64,
    pub(crate) token: i64,
    pub(crate) result: Vec<u8>,
}

impl Write {
    /// The instance it writes first: batches take their locks in this order, so that two
    /// batches never wait for each other in a cycle.
    fn key(&self) -> &str {
        match self {
            Write::Turn(turn) => &turn.id,
            Write::Create(row) => row.id.as_str(),
            Write::Complete(done) => &done.id,
        }
    }
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// What became of a write.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Written {
    /// Its turn's fence held, its instance was created, or its attempt's lease held.
    pub(crate) held: bool,
    /// A turn's instance has other deliverable messages waiting (see `Sql::commit_turn`).
    pub(crate) inbox_left: bool,
}

/// The queue of this process's writes and the lanes committing them.
pub(crate) struct GroupCommit {
    sender: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// `lanes` tasks committing batches on connections of `pool`.
    pub(crate) fn start(pool: &Pool, sql: &Arc<Sql>, lanes: usize) -> (Self, Vec<AbortHandle>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let tasks = (0..lanes.max(1))
            .map(|_| {
                tokio::spawn(lane(Arc::clone(&receiver), pool.clone(), Arc::clone(sql)))
                    .abort_handle()
            })
            .collect();
        (GroupCommit { sender }, tasks)
    }

    /// Commits `write` with whatever else is waiting.
    pub(crate) async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Job { write, reply })
            .map_err(|_| StoreError::Unavailable("the store has been dropped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable(
                "the store was dropped while committing: the outcome is unknown (it may or may \
                 not be durable); read it back"
                    .into(),
            )
        })?
    }
}

async fn lane(receiver: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>, pool: Pool, sql: Arc<Sql>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        run(&pool, &sql, jobs).await;
    }
}

/// How a batch failed.
enum Failure {
    /// A statement failed and the server rolled the batch back: nothing was written, and
    /// each write may succeed alone.
    Statement(StoreError),
    /// Nothing was written, or the outcome is unknown: every write of the batch fails so.
    All(StoreError),
}

/// Commits `jobs` as one batch and answers each; on a failed statement, each alone.
fn run<'a>(pool: &'a Pool, sql: &'a Sql, mut jobs: Vec<Job>) -> BoxFuture<'a, ()> {
    async move {
        jobs.sort_by(|a, b| a.write.key().cmp(b.write.key()));
        let writes: Vec<&Write> = jobs.iter().map(|j| &j.write).collect();
        match commit(pool, sql, &writes).await {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(Failure::Statement(_)) if jobs.len() > 1 => {
                for job in jobs {
                    run(pool, sql, vec![job]).await;
                }
            }
            Err(Failure::Statement(error) | Failure::All(error)) => {
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
    .boxed()
}

/// Whether `error` is a fence that did not hold (see `Sql::commit_fence`).
fn fence_failed(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::DIVISION_BY_ZERO)
}

/// One transaction for `writes`, in one round trip: `BEGIN`, every write's statements (a
/// turn's fence first, then its effects), `COMMIT`, all pipelined. Each write's outcome, in
/// order.
async fn commit(pool: &Pool, sql: &Sql, writes: &[&Write]) -> Result<Vec<Written>, Failure> {
    let object = db::connection(pool).await.map_err(Failure::All)?;
    // Statements are prepared through the pool's object, which caches them per connection.
    let cache = &object;
    let client: &tokio_postgres::Client = &object;
    let prepared = async {
        let begin = prepare(cache, &sql.begin).await?;
        let commit = prepare(cache, &sql.commit).await?;
        let turn = TurnStatements::prepare(cache, sql).await?;
        let creates = writes.iter().any(|w| match w {
            Write::Create(_) => true,
            Write::Turn(turn) => turn.creates_children(),
            Write::Complete(_) => false,
        });
        let create = if creates {
            Some(CreateStatements::prepare(cache, sql).await?)
        } else {
            None
        };
        let complete = prepare(cache, &sql.complete_activity).await?;
        Ok::<_, StoreError>((begin, commit, turn, create, complete))
    };
    let (begin, commit, turn, create, complete) = prepared.await.map_err(Failure::All)?;

    let mut steps: Vec<Step<'_>> = vec![step(client, &begin, &[])];
    // Per write: the step that tells its outcome, and its fence's if a turn.
    let mut ends = Vec::with_capacity(writes.len());
    let mut fences = Vec::new();
    for write in writes {
        match write {
            Write::Turn(t) => {
                fences.push(steps.len());
                steps.push(t.fence_step(client, &turn));
                ends.push(steps.len() - 1);
                steps.extend(t.effect_steps(client, &turn, create.as_ref()));
            }
            Write::Create(row) => {
                steps.extend(row.steps(client, create.as_ref().expect("prepared for creations")));
                ends.push(steps.len() - 1);
            }
            Write::Complete(done) => {
                steps.push(step(
                    client,
                    &complete,
                    &[&done.id, &done.seq, &done.token, &done.result],
                ));
                ends.push(steps.len() - 1);
            }
        }
    }
    steps.push(step(client, &commit, &[]));
    let mut results = pipeline(steps).await;
    let committed = results.pop().expect("the COMMIT step");
    for (i, result) in results.iter().enumerate() {
        let Err(error) = result else { continue };
        if error.as_db_error().is_none() {
            // The connection failed with the COMMIT already sent: the outcome is unknown.
            return Err(Failure::All(db::write_failed_ref("committing", error)));
        }
        // The server refused a statement: the COMMIT that followed rolled everything back.
        if writes.len() == 1 && fences.contains(&i) && fence_failed(error) {
            return Ok(vec![Written::default()]);
        }
        return Err(Failure::Statement(StoreError::Unavailable(format!(
            "cannot commit: {}",
            describe(error)
        ))));
    }
    if let Err(error) = committed {
        return Err(Failure::All(db::write_failed("committing", error)));
    }
    let rows = |i: usize| -> &Vec<Row> { results[i].as_ref().expect("checked above") };
    Ok(writes
        .iter()
        .zip(&ends)
        .map(|(write, &end)| {
            let first = rows(end).first();
            match write {
                Write::Turn(_) => Written {
                    held: first.is_some(),
                    inbox_left: first.is_some_and(|row| row.try_get(1).unwrap_or(true)),
                },
                Write::Create(_) => Written {
                    held: first.is_some(),
                    inbox_left: false,
                },
                Write::Complete(_) => Written {
                    held: first.and_then(|row| row.try_get::<_, i64>(0).ok()) == Some(1),
                    inbox_left: false,
                },
            }
        })
        .collect())
}
