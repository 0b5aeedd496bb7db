//! [`PostgresStore`]: the store contract on PostgreSQL, one transaction per write.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use durable_runtime::store::{
    ActivityLease, ActivityTask, ActivityWork, Delivery, InstancePage, InstanceQuery,
    InstanceStatus, LeaseToken, NewInstance, OrchestrationWork, RuntimeStatus, Store, StoreError,
    TurnCommit, WorkSignals,
};
use durable_runtime::{Event, HistoryEvent, InstanceId};
use futures::future::{maybe_done, BoxFuture};
use futures::TryStreamExt;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row, Statement};

use crate::codec::{
    self, deadline, decode, encode, encode_text, nanos, parse_status, status_name, time, to_i64,
    to_u64, IMMEDIATE,
};
use crate::db::{self, redact, unavailable, write_failed};
use crate::error::ConnectError;
use crate::migrate::migrate;
use crate::options::PostgresOptions;
use crate::sql::{ListQuery, Sql};
use crate::wake::{self, Wake, ACTIVITIES, ORCHESTRATIONS, STATUSES};

/// How long a call waits for a free connection of the pool before failing `Unavailable`.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A store on PostgreSQL, shared by any number of runtime processes. See the
/// [crate docs](crate) for the design.
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Sql>,
    wake: Arc<Wake>,
    schema: String,
    /// The latest `now` the runtime passed: what `next_wakeup` counts as past.
    last_now: AtomicI64,
    tasks: Vec<AbortHandle>,
    /// A test's schema, dropped after the pool (fields drop in order).
    test_schema: Option<crate::testing::TestSchema>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("connections", &status.size)
            .field("idle", &status.available)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.pool.close();
    }
}

fn valid_schema(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 63
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl PostgresStore {
    /// Connects with default [options](PostgresOptions) (schema `durable`), creating or
    /// migrating the schema; `url` is a libpq-style URL or key/value string, such as
    /// `postgres://user:password@host:5432/database`.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with `options`. Needs a tokio runtime: the store keeps three tasks on it (the
    /// notifier, the listener and the poller), stopped when the store is dropped.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, ConnectError> {
        let schema = options.schema.clone();
        if !valid_schema(&schema) {
            return Err(ConnectError::BadSchemaName(schema));
        }
        let quoted = format!("\"{schema}\"");
        let mut config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| ConnectError::BadUrl {
                    url: redact(url),
                    reason: e.to_string(),
                })?;
        if config.get_application_name().is_none() {
            config.application_name("durable");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let session = format!(
            "-c idle_in_transaction_session_timeout={}",
            options.idle_in_transaction_timeout.as_millis().max(1)
        );
        let session = match config.get_options() {
            Some(given) => format!("{given} {session}"),
            None => session,
        };
        config.options(&session);

        let unreachable = |reason: String| ConnectError::Unreachable {
            url: redact(url),
            reason,
        };
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let mut client = pool.get().await.map_err(|e| {
            unreachable(match e {
                deadpool_postgres::PoolError::Backend(e) => db::describe(&e),
                other => other.to_string(),
            })
        })?;
        let encoding: String = client
            .query_one("SHOW server_encoding", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| unreachable(db::describe(&e)))?;
        if encoding != "UTF8" {
            return Err(ConnectError::NotUtf8(encoding));
        }
        migrate(&mut client, &schema, &quoted).await?;
        drop(client);

        let sql = Arc::new(Sql::new(&quoted));
        let wake = Arc::new(Wake::new(&schema));
        let tasks = vec![
            tokio::spawn(wake::notifier(
                Arc::clone(&wake),
                pool.clone(),
                options.notify_interval,
            ))
            .abort_handle(),
            tokio::spawn(wake::listener(
                Arc::clone(&wake),
                config,
                options.poll_interval,
            ))
            .abort_handle(),
            tokio::spawn(wake::poller(
                Arc::clone(&wake),
                pool.clone(),
                Arc::clone(&sql),
                options.poll_interval,
            ))
            .abort_handle(),
        ];
        Ok(PostgresStore {
            pool,
            sql,
            wake,
            schema,
            last_now: AtomicI64::new(i64::MIN),
            tasks,
            test_schema: None,
        })
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// This store, dropping `schema` when it is dropped.
    pub(crate) fn dropping(mut self, schema: crate::testing::TestSchema) -> Self {
        self.test_schema = Some(schema);
        self
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        db::connection(&self.pool).await
    }

    /// `now` in nanoseconds, remembered as seen.
    fn saw(&self, now: SystemTime) -> i64 {
        let now = nanos(now);
        self.last_now.fetch_max(now, Ordering::AcqRel);
        now
    }

    /// Why a write that needs a live instance found none.
    async fn why_not_live(
        &self,
        client: &impl GenericClient,
        id: &InstanceId,
    ) -> Result<Option<RuntimeStatus>, StoreError> {
        let statement = prepare(client, &self.sql.status_of).await?;
        let row = client
            .query_opt(&statement, &[&id.as_str()])
            .await
            .map_err(|e| unavailable("cannot read the instance's status", e))?;
        row.map(|row| parse_status(id, &col::<String>(&row, 0, id)?))
            .transpose()
    }

    /// Why a turn's fence did not hold, read after its transaction was rolled back.
    async fn turn_conflict(
        &self,
        client: &impl GenericClient,
        id: &InstanceId,
        token: i64,
        expected: i64,
    ) -> StoreError {
        let read = async {
            let statement = prepare(client, &self.sql.lease_state).await?;
            client
                .query_opt(&statement, &[&id.as_str()])
                .await
                .map_err(|e| unavailable("cannot read the instance's lease", e))
        };
        let row = match read.await {
            Ok(row) => row,
            Err(error) => return error,
        };
        let Some(row) = row else {
            return StoreError::NotFound(id.clone());
        };
        let (fence, lease_until, length) = match (
            col::<i64>(&row, 0, id),
            col::<Option<i64>>(&row, 1, id),
            col::<i64>(&row, 2, id),
        ) {
            (Ok(fence), Ok(until), Ok(length)) => (fence, until, length),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
        };
        let reason = if fence != token || lease_until.is_none() {
            "the instance lease was lost to another worker".to_string()
        } else if length != expected {
            format!("the history has {length} events, the turn expected {expected}")
        } else {
            "the instance changed while the turn committed".to_string()
        };
        StoreError::Conflict {
            id: id.clone(),
            reason,
        }
    }
}

/// Prepares `text` on `client`, once per connection.
async fn prepare(client: &impl GenericClient, text: &str) -> Result<Statement, StoreError> {
    client
        .prepare_cached(text)
        .await
        .map_err(|e| unavailable("cannot prepare a statement", e))
}

/// Column `index` of a row of instance `id`, or `Corrupt` if it is not what the schema says.
fn col<'a, T: FromSql<'a>>(row: &'a Row, index: usize, id: &str) -> Result<T, StoreError> {
    row.try_get(index).map_err(|error| {
        StoreError::Corrupt(format!(
            "a row of instance `{id}` has an unreadable column {index}: {error}"
        ))
    })
}

type Step<'a> = BoxFuture<'a, Result<Vec<Row>, tokio_postgres::Error>>;

/// `statement` with `params` on `tx`, as a step of a [`pipeline`].
fn step<'a>(
    tx: &'a deadpool_postgres::Transaction<'_>,
    statement: &'a Statement,
    params: &[&'a (dyn ToSql + Sync)],
) -> Step<'a> {
    let params = params.to_vec();
    Box::pin(async move { tx.query_raw(statement, params).await?.try_collect().await })
}

/// Runs `steps` pipelined: each is sent on its first poll, in order, before any answer is
/// awaited, so a whole turn costs one round trip.
async fn pipeline(steps: Vec<Step<'_>>) -> Vec<Result<Vec<Row>, tokio_postgres::Error>> {
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

/// An instance's row and start message, encoded for `insert_instance`.
struct NewRow {
    id: InstanceId,
    id_text: String,
    name: String,
    version: i64,
    status: &'static str,
    created_at: i64,
    updated_at: i64,
    input: Vec<u8>,
    output: Option<Vec<u8>>,
    custom_status: Option<String>,
    failure: Option<Vec<u8>>,
    parent: Option<String>,
    start_at: i64,
    start: Vec<u8>,
    replace_finished: bool,
}

impl NewRow {
    fn new(new: &NewInstance) -> NewRow {
        let status = &new.status;
        NewRow {
            id: status.instance_id.clone(),
            id_text: status.instance_id.to_string(),
            name: status.name.clone(),
            version: i64::from(status.version),
            status: status_name(status.runtime_status),
            created_at: nanos(status.created_at),
            updated_at: nanos(status.last_updated_at),
            input: encode(&status.input),
            output: status.output.as_ref().map(encode),
            custom_status: status.custom_status.as_ref().map(encode_text),
            failure: status.failure.as_ref().map(encode),
            parent: status.parent.as_ref().map(|p| p.to_string()),
            start_at: new.start_at.map_or(IMMEDIATE, nanos),
            start: encode(&new.start),
            replace_finished: new.replace_finished,
        }
    }

    /// The steps creating it; the last returns a row if it was created.
    fn steps<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
        statements: &'a CreateStatements,
    ) -> Vec<Step<'a>> {
        let mut steps: Vec<Step<'a>> = Vec::new();
        if self.replace_finished {
            steps.push(step(tx, &statements.delete_finished, &[&self.id_text]));
        }
        steps.push(step(
            tx,
            &statements.delete_orphan_history,
            &[&self.id_text],
        ));
        steps.push(step(
            tx,
            &statements.delete_orphan_activities,
            &[&self.id_text],
        ));
        steps.push(step(
            tx,
            &statements.insert_instance,
            &[
                &self.id_text,
                &self.name,
                &self.version,
                &self.status,
                &self.created_at,
                &self.updated_at,
                &self.input,
                &self.output,
                &self.custom_status,
                &self.failure,
                &self.parent,
                &self.start_at,
                &self.start,
            ],
        ));
        steps
    }
}

struct CreateStatements {
    delete_finished: Statement,
    delete_orphan_history: Statement,
    delete_orphan_activities: Statement,
    insert_instance: Statement,
}

impl CreateStatements {
    async fn prepare(client: &impl GenericClient, sql: &Sql) -> Result<Self, StoreError> {
        let (a, b, c, d) = futures::try_join!(
            prepare(client, &sql.delete_finished),
            prepare(client, &sql.delete_orphan_history),
            prepare(client, &sql.delete_orphan_activities),
            prepare(client, &sql.insert_instance),
        )?;
        Ok(CreateStatements {
            delete_finished: a,
            delete_orphan_history: b,
            delete_orphan_activities: c,
            insert_instance: d,
        })
    }
}

/// The statements of a turn, prepared together.
struct TurnStatements {
    fence: Statement,
    complete_with_turn: Statement,
    drop_old_generations: Statement,
    drop_timers: Statement,
    drop_activities: Statement,
    append_history: Statement,
    consume: Statement,
    cancel_timers: Statement,
    drop_inbox: Statement,
    add_timers: Statement,
    add_activities: Statement,
    send_many: Statement,
}

impl TurnStatements {
    async fn prepare(client: &impl GenericClient, sql: &Sql) -> Result<Self, StoreError> {
        let texts = [
            &sql.commit_fence,
            &sql.complete_with_turn,
            &sql.drop_old_generations,
            &sql.drop_timers,
            &sql.drop_activities,
            &sql.append_history,
            &sql.consume,
            &sql.cancel_timers,
            &sql.drop_inbox,
            &sql.add_timers,
            &sql.add_activities,
            &sql.send_many,
        ];
        let mut prepared =
            futures::future::try_join_all(texts.iter().map(|text| prepare(client, text)))
                .await?
                .into_iter();
        let mut next = || prepared.next().expect("one statement per text");
        Ok(TurnStatements {
            fence: next(),
            complete_with_turn: next(),
            drop_old_generations: next(),
            drop_timers: next(),
            drop_activities: next(),
            append_history: next(),
            consume: next(),
            cancel_timers: next(),
            drop_inbox: next(),
            add_timers: next(),
            add_activities: next(),
            send_many: next(),
        })
    }
}

/// An orchestration lease and its messages from the rows of a claim.
fn work_from_rows(rows: Vec<Row>) -> Result<Option<OrchestrationWork>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let raw_id: String = col(first, 0, "?")?;
    let id = codec::instance_id(&raw_id)?;
    let lease = to_u64(col(first, 1, &raw_id)?, || {
        format!("the lease of `{raw_id}`")
    })?;
    let history_len = to_u64(col(first, 2, &raw_id)?, || {
        format!("the history length of `{raw_id}`")
    })?;
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let (Some(message), Some(bytes)) = (
            col::<Option<i64>>(row, 3, &raw_id)?,
            col::<Option<Vec<u8>>>(row, 4, &raw_id)?,
        ) else {
            continue;
        };
        let what = || format!("message {message} of instance `{raw_id}`");
        messages.push(Delivery {
            id: to_u64(message, what)?,
            event: decode(&bytes, what)?,
        });
    }
    Ok(Some(OrchestrationWork {
        instance_id: id,
        lease,
        history_len,
        messages,
    }))
}

/// An instance's status from a row of `STATUS_COLUMNS`.
fn status_from_row(row: &Row) -> Result<InstanceStatus, StoreError> {
    let raw_id: String = col(row, 0, "?")?;
    let id = &raw_id;
    let json = |index: usize, what: &str| -> Result<Option<serde_json::Value>, StoreError> {
        col::<Option<Vec<u8>>>(row, index, id)?
            .map(|bytes| decode(&bytes, || format!("the {what} of instance `{id}`")))
            .transpose()
    };
    let version: i64 = col(row, 2, id)?;
    Ok(InstanceStatus {
        instance_id: codec::instance_id(id)?,
        name: col(row, 1, id)?,
        version: u32::try_from(version).map_err(|_| {
            StoreError::Corrupt(format!("instance `{id}` has the version {version}"))
        })?,
        runtime_status: parse_status(id, &col::<String>(row, 3, id)?)?,
        created_at: time(col(row, 4, id)?),
        last_updated_at: time(col(row, 5, id)?),
        input: json(6, "input")?.unwrap_or(serde_json::Value::Null),
        output: json(7, "output")?,
        custom_status: col::<Option<String>>(row, 8, id)?
            .map(|text| {
                decode(text.as_bytes(), || {
                    format!("the custom status of instance `{id}`")
                })
            })
            .transpose()?,
        failure: col::<Option<Vec<u8>>>(row, 9, id)?
            .map(|bytes| decode(&bytes, || format!("the failure of instance `{id}`")))
            .transpose()?,
        parent: col::<Option<String>>(row, 10, id)?
            .map(|p| codec::instance_id(&p))
            .transpose()?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_instance(&self, new: NewInstance) -> Result<(), StoreError> {
        let row = NewRow::new(&new);
        let mut client = self.client().await?;
        let statements = CreateStatements::prepare(&client, &self.sql).await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| unavailable("cannot begin creating the instance", e))?;
        let mut created = false;
        for result in pipeline(row.steps(&tx, &statements)).await {
            // The last step inserts: a row back means created.
            created = !result
                .map_err(|e| unavailable("cannot create the instance", e))?
                .is_empty();
        }
        if !created {
            return Err(StoreError::AlreadyExists(row.id));
        }
        tx.commit()
            .await
            .map_err(|e| write_failed("creating the instance", e))?;
        self.wake.status_changed(&row.id);
        self.wake.announce(ORCHESTRATIONS | STATUSES);
        Ok(())
    }

    async fn send(
        &self,
        id: &InstanceId,
        event: HistoryEvent,
        visible_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let event = encode(&event);
        let visible_at = visible_at.map_or(IMMEDIATE, nanos);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.send).await?;
        let sent = client
            .execute(&statement, &[&id.as_str(), &visible_at, &event])
            .await
            .map_err(|e| write_failed("sending the event", e))?;
        if sent == 0 {
            return Err(match self.why_not_live(&client, id).await? {
                Some(status) if status.is_finished() => StoreError::Finished {
                    id: id.clone(),
                    status,
                },
                // Created since: at the time of the send there was none.
                _ => StoreError::NotFound(id.clone()),
            });
        }
        self.wake.announce(ORCHESTRATIONS);
        Ok(())
    }

    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        let at = self.saw(now);
        let until = deadline(now, lease_for);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.fetch_orchestration).await?;
        let rows = client
            .query(&statement, &[&at, &until])
            .await
            .map_err(|e| write_failed("leasing an instance", e))?;
        work_from_rows(rows)
    }

    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        let at = self.saw(now);
        let until = deadline(now, lease_for);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.lease_orchestration).await?;
        let rows = client
            .query(&statement, &[&at, &until, &id.as_str()])
            .await
            .map_err(|e| write_failed("leasing the instance", e))?;
        if rows.is_empty() && self.why_not_live(&client, id).await?.is_none() {
            return Err(StoreError::NotFound(id.clone()));
        }
        work_from_rows(rows)
    }

    async fn load_history(&self, id: &InstanceId) -> Result<Vec<HistoryEvent>, StoreError> {
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.load_history).await?;
        let rows = client
            .query(&statement, &[&id.as_str()])
            .await
            .map_err(|e| unavailable("cannot load the history", e))?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(id.clone()));
        }
        let mut history = Vec::with_capacity(rows.len());
        for (seq, row) in rows.iter().enumerate() {
            if let Some(bytes) = col::<Option<Vec<u8>>>(row, 0, id)? {
                history.push(decode(&bytes, || {
                    format!("event {seq} of the history of instance `{id}`")
                })?);
            }
        }
        Ok(history)
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        let id = commit.instance_id.as_str();
        let finished = commit.status.runtime_status.is_finished();
        let token = to_i64(commit.lease, "the lease token")?;
        let expected = to_i64(commit.expected_history_len, "the history length")?;
        // Encoded before a connection is taken: it is most of a turn's CPU.
        let history: Vec<Vec<u8>> = commit.history.iter().map(encode).collect();
        let appended = history.len() as i64;
        let turn_started = commit.history.iter().find_map(|e| match e.event {
            Event::OrchestratorStarted { timestamp } => Some(nanos(timestamp)),
            _ => None,
        });
        let update = &commit.status;
        let status = status_name(update.runtime_status);
        let output = update.output.as_ref().map(encode);
        let custom_status = update.custom_status.as_ref().map(encode_text);
        let failure = update.failure.as_ref().map(encode);
        let input = update.input.as_ref().map(encode);
        let mut done_seqs = Vec::new();
        let mut done_tokens = Vec::new();
        for lease in &commit.completed_activities {
            done_seqs.push(to_i64(lease.id, "an activity's sequence number")?);
            done_tokens.push(to_i64(lease.token, "an activity's lease token")?);
        }
        let consumed = commit
            .consumed
            .iter()
            .map(|&m| to_i64(m, "a message id"))
            .collect::<Result<Vec<_>, _>>()?;
        let cancelled = commit
            .cancelled_timers
            .iter()
            .map(|&t| to_i64(t, "a timer id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut timer_at = Vec::new();
        let mut timer_ids = Vec::new();
        let mut timer_events = Vec::new();
        let mut task_seqs = Vec::new();
        let mut tasks = Vec::new();
        if !finished {
            for timer in &commit.timers {
                timer_at.push(nanos(timer.fire_at));
                timer_ids.push(to_i64(timer.id, "a timer id")?);
                timer_events.push(encode(&HistoryEvent::new(Event::TimerFired {
                    id: timer.id,
                    fire_at: timer.fire_at,
                })));
            }
            for task in &commit.activities {
                task_seqs.push(to_i64(task.id, "an activity's sequence number")?);
                tasks.push(encode(task));
            }
        }
        let receivers: Vec<String> = commit
            .messages
            .iter()
            .map(|m| m.instance_id.to_string())
            .collect();
        let letters: Vec<Vec<u8>> = commit.messages.iter().map(|m| encode(&m.event)).collect();
        let children: Vec<NewRow> = commit.sub_instances.iter().map(NewRow::new).collect();

        let mut client = self.client().await?;
        let st = TurnStatements::prepare(&client, &self.sql).await?;
        let create = if children.is_empty() {
            None
        } else {
            Some(CreateStatements::prepare(&client, &self.sql).await?)
        };
        let tx = client
            .transaction()
            .await
            .map_err(|e| unavailable("cannot begin the turn's transaction", e))?;
        let mut steps: Vec<Step<'_>> = vec![step(
            &tx,
            &st.fence,
            &[
                &id,
                &token,
                &expected,
                &status,
                &output,
                &custom_status,
                &failure,
                &input,
                &turn_started,
                &commit.replace_history,
                &appended,
            ],
        )];
        if !done_seqs.is_empty() {
            steps.push(step(
                &tx,
                &st.complete_with_turn,
                &[&id, &done_seqs, &done_tokens],
            ));
        }
        if commit.replace_history {
            steps.push(step(&tx, &st.drop_old_generations, &[&id]));
            steps.push(step(&tx, &st.drop_timers, &[&id]));
            steps.push(step(&tx, &st.drop_activities, &[&id]));
        }
        if !history.is_empty() {
            steps.push(step(&tx, &st.append_history, &[&id, &history]));
        }
        if !consumed.is_empty() {
            steps.push(step(&tx, &st.consume, &[&id, &consumed]));
        }
        if !cancelled.is_empty() {
            steps.push(step(&tx, &st.cancel_timers, &[&id, &cancelled]));
        }
        if finished {
            steps.push(step(&tx, &st.drop_inbox, &[&id]));
            steps.push(step(&tx, &st.drop_activities, &[&id]));
        }
        if !timer_ids.is_empty() {
            steps.push(step(
                &tx,
                &st.add_timers,
                &[&id, &timer_at, &timer_ids, &timer_events],
            ));
        }
        if !task_seqs.is_empty() {
            steps.push(step(&tx, &st.add_activities, &[&id, &task_seqs, &tasks]));
        }
        if let Some(create) = &create {
            for child in &children {
                steps.extend(child.steps(&tx, create));
            }
        }
        if !receivers.is_empty() {
            steps.push(step(&tx, &st.send_many, &[&receivers, &letters]));
        }
        let mut results = pipeline(steps).await.into_iter();
        let fenced = match results.next().expect("the fence is the first step") {
            Ok(rows) => !rows.is_empty(),
            Err(error) => return Err(unavailable("cannot commit the turn", error)),
        };
        let completed = if done_seqs.is_empty() {
            None
        } else {
            Some(results.next().expect("the completions follow the fence"))
        };
        if !fenced {
            drop(results);
            let _ = tx.rollback().await;
            return Err(self
                .turn_conflict(&client, &commit.instance_id, token, expected)
                .await);
        }
        if let Some(completed) = completed {
            let rows = completed.map_err(|e| unavailable("cannot commit the turn", e))?;
            if rows.len() != done_seqs.len() {
                let held: Vec<i64> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
                let lost = done_seqs
                    .iter()
                    .find(|seq| !held.contains(seq))
                    .copied()
                    .unwrap_or_default();
                return Err(StoreError::Conflict {
                    id: commit.instance_id.clone(),
                    reason: format!("the lease on activity attempt {lost} was lost"),
                });
            }
        }
        for result in results {
            result.map_err(|e| unavailable("cannot commit the turn", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| write_failed("committing the turn", e))?;

        self.wake.status_changed(&commit.instance_id);
        for child in &children {
            self.wake.status_changed(&child.id);
        }
        let mut what = ORCHESTRATIONS | STATUSES;
        if !tasks.is_empty() {
            what |= ACTIVITIES;
        }
        self.wake.announce(what);
        Ok(())
    }

    async fn abandon_orchestration(
        &self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        let token = to_i64(lease, "the lease token")?;
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.abandon_orchestration).await?;
        let released = client
            .execute(&statement, &[&id.as_str(), &token])
            .await
            .map_err(|e| write_failed("releasing the lease", e))?;
        if released == 0 {
            // A stale lease changes nothing.
            return Err(match self.why_not_live(&client, id).await? {
                None => StoreError::NotFound(id.clone()),
                Some(_) => StoreError::Conflict {
                    id: id.clone(),
                    reason: "the instance lease was lost to another worker".into(),
                },
            });
        }
        self.wake.announce(ORCHESTRATIONS);
        Ok(())
    }

    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError> {
        let at = self.saw(now);
        let until = deadline(now, lease_for);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.fetch_activity).await?;
        let row = client
            .query_opt(&statement, &[&at, &until])
            .await
            .map_err(|e| write_failed("leasing an activity attempt", e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let raw_id: String = col(&row, 0, "?")?;
        let seq: i64 = col(&row, 1, &raw_id)?;
        let what = || format!("activity attempt {seq} of instance `{raw_id}`");
        let token = to_u64(col(&row, 2, &raw_id)?, what)?;
        let task: ActivityTask = decode(&col::<Vec<u8>>(&row, 3, &raw_id)?, what)?;
        Ok(Some(ActivityWork {
            task,
            lease: ActivityLease {
                instance_id: codec::instance_id(&raw_id)?,
                id: to_u64(seq, what)?,
                token,
            },
        }))
    }

    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError> {
        let id = &lease.instance_id;
        let seq = to_i64(lease.id, "an activity's sequence number")?;
        let token = to_i64(lease.token, "an activity's lease token")?;
        let result = encode(&result);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.complete_activity).await?;
        let row = client
            .query_one(&statement, &[&id.as_str(), &seq, &token, &result])
            .await
            .map_err(|e| write_failed("completing the activity attempt", e))?;
        if col::<i64>(&row, 0, id)? == 1 {
            self.wake.announce(ORCHESTRATIONS);
            return Ok(());
        }
        match self.why_not_live(&client, id).await? {
            // Purged or finished: nobody waits for the result.
            None => Ok(()),
            Some(status) if status.is_finished() => Ok(()),
            Some(_) => Err(StoreError::Conflict {
                id: id.clone(),
                reason: format!("the lease on activity attempt {} was lost", lease.id),
            }),
        }
    }

    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError> {
        let seq = to_i64(lease.id, "an activity's sequence number")?;
        let token = to_i64(lease.token, "an activity's lease token")?;
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.abandon_activity).await?;
        client
            .execute(&statement, &[&lease.instance_id.as_str(), &seq, &token])
            .await
            .map_err(|e| write_failed("releasing the activity attempt", e))?;
        self.wake.announce(ACTIVITIES);
        Ok(())
    }

    async fn status(&self, id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError> {
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.status).await?;
        let row = client
            .query_opt(&statement, &[&id.as_str()])
            .await
            .map_err(|e| unavailable("cannot read the status", e))?;
        row.as_ref().map(status_from_row).transpose()
    }

    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let ListQuery {
            text,
            params,
            page_size,
        } = self.sql.list(query)?;
        let client = self.client().await?;
        let statement = prepare(&client, &text).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client
            .query(&statement, &refs)
            .await
            .map_err(|e| unavailable("cannot list the instances", e))?;
        let more = rows.len() > page_size;
        let mut instances = rows
            .iter()
            .take(page_size)
            .map(status_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        instances.truncate(page_size);
        let continuation = more
            .then(|| {
                instances
                    .last()
                    .map(|s| format!("{}:{}", nanos(s.created_at), s.instance_id))
            })
            .flatten();
        Ok(InstancePage {
            instances,
            continuation,
        })
    }

    async fn purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.purge).await?;
        let row = client
            .query_one(&statement, &[&id.as_str()])
            .await
            .map_err(|e| write_failed("purging the instance", e))?;
        if col::<i64>(&row, 0, id)? == 0 {
            return Err(match self.why_not_live(&client, id).await? {
                None => StoreError::NotFound(id.clone()),
                Some(_) => StoreError::NotFinished(id.clone()),
            });
        }
        self.wake.purged(id);
        self.wake.announce(STATUSES);
        Ok(())
    }

    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError> {
        let after = self.last_now.load(Ordering::Acquire);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.next_wakeup).await?;
        let row = client
            .query_one(&statement, &[&after])
            .await
            .map_err(|e| unavailable("cannot read the next wake-up", e))?;
        Ok(col::<Option<i64>>(&row, 0, "?")?.map(time))
    }

    fn signals(&self) -> Arc<WorkSignals> {
        Arc::clone(&self.wake.signals)
    }

    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        let at = self.saw(now);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.has_work).await?;
        let row = client
            .query_one(&statement, &[&at])
            .await
            .map_err(|e| unavailable("cannot look for work", e))?;
        col(&row, 0, "?")
    }

    fn watch_status(&self, id: &InstanceId) -> watch::Receiver<u64> {
        self.wake.watch(id)
    }
}
