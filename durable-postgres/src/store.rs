//! [`PostgresStore`]: the store contract on PostgreSQL, one transaction per write.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use durable_runtime::history::HistoryEvent;
use durable_runtime::store::{
    ActivityLease, ActivityTask, ActivityWork, HistoryPage, InstancePage, InstanceQuery,
    LeaseToken, NewInstance, OrchestrationWork, StatusCounts, Store, StoreError, TurnCommit,
    WorkSignals,
};
use durable_runtime::{InstanceId, InstanceStatus, RuntimeStatus};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::claims::Claimed;
use crate::codec::{
    self, col, deadline, decode, encode, nanos, parse_status, status_from_row, time, to_i64,
    to_u64, works_from_rows, IMMEDIATE,
};
use crate::create::NewRow;
use crate::db::{self, redact, unavailable, write_failed};
use crate::error::ConnectError;
use crate::group_commit::{Completion, GroupCommit, Write};
use crate::metric;
use crate::migrate::migrate;
use crate::options::PostgresOptions;
use crate::pipeline::prepare;
use crate::sql::{param_refs, Built, ListQuery, Sql};
use crate::turn::EncodedTurn;
use crate::wake::{self, Wake, ACTIVITIES, ORCHESTRATIONS, STATUSES};

/// How long a call waits for a free connection of the pool before failing `Unavailable`.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The most connections of the pool that take claims (leases): a quarter of it, at least
/// one and at most this many.
const CLAIM_CONNECTIONS: usize = 4;

/// How a process's connections are shared, out of [`PostgresOptions::pool_size`]: the claims'
/// connections (none for a client-only process) and the rest, for everything else. A process
/// that claims work needs at least one of each, so it uses at least two.
fn connection_budget(pool_size: usize, client_only: bool) -> (usize, usize) {
    if client_only {
        return (0, pool_size.max(1));
    }
    let claims = (pool_size / 4).clamp(1, CLAIM_CONNECTIONS);
    (claims, pool_size.saturating_sub(claims).max(1))
}

/// A store on PostgreSQL, shared by any number of runtime processes. See the
/// [crate docs](crate) for the design.
pub struct PostgresStore {
    pool: Pool,
    /// Connections whose commits do not wait for the WAL flush, for claims only.
    claim_pool: Pool,
    /// This process's writes, committed in batches.
    pub(crate) group: GroupCommit,
    pub(crate) sql: Arc<Sql>,
    pub(crate) wake: Arc<Wake>,
    schema: String,
    /// The latest `now` the runtime passed: what `next_wakeup` counts as past (and when the
    /// queues' depths are read).
    last_now: Arc<AtomicI64>,
    /// How often a process busy with a batch of claims looks for expired leases
    /// (nanoseconds): the poll interval.
    look_every: i64,
    /// `host:pid`, recorded with every lease this store takes.
    owner: String,
    /// Claims nothing: see [`PostgresOptions::client_only`].
    client_only: bool,
    /// The most bytes one turn writes (`PostgresOptions::max_turn_bytes`).
    max_turn_bytes: usize,
    /// Instances and attempts leased by a claim and not yet handed out.
    claimed_turns: Claimed<OrchestrationWork>,
    claimed_attempts: Claimed<ActivityWork>,
    tasks: Vec<AbortHandle>,
    /// What goes with the store (a test's schema), dropped after the pool (fields drop in
    /// order).
    dropped_after: Option<Box<dyn Send + Sync>>,
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
        // Claims never handed out are released, so that the fleet need not wait for their
        // leases to expire; without a runtime to do it on, they expire.
        let turns = self.claimed_turns.drain();
        let attempts = self.claimed_attempts.drain();
        let handle = tokio::runtime::Handle::try_current();
        match handle {
            Ok(handle) if !turns.is_empty() || !attempts.is_empty() => {
                let pool = self.pool.clone();
                let sql = Arc::clone(&self.sql);
                handle.spawn(async move {
                    release(&pool, &sql, turns, attempts).await;
                    pool.close();
                });
            }
            _ => self.pool.close(),
        }
        self.claim_pool.close();
    }
}

/// Releases the leases of claims never handed out, in one statement per kind (best effort:
/// they expire anyway).
async fn release(
    pool: &Pool,
    sql: &Sql,
    turns: Vec<OrchestrationWork>,
    attempts: Vec<ActivityWork>,
) {
    let Ok(client) = db::connection(pool).await else {
        return;
    };
    if !turns.is_empty() {
        let ids: Vec<&str> = turns.iter().map(|w| w.instance_id.as_str()).collect();
        let tokens: Vec<i64> = turns.iter().map(|w| w.lease as i64).collect();
        let _ = client
            .execute(&sql.release_orchestrations, &[&ids, &tokens])
            .await;
    }
    if !attempts.is_empty() {
        let ids: Vec<&str> = attempts
            .iter()
            .map(|w| w.lease.instance_id.as_str())
            .collect();
        let seqs: Vec<i64> = attempts.iter().map(|w| w.lease.id as i64).collect();
        let tokens: Vec<i64> = attempts.iter().map(|w| w.lease.token as i64).collect();
        let _ = client
            .execute(&sql.release_activities, &[&ids, &seqs, &tokens])
            .await;
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

/// A lease's length in nanoseconds, saturated.
fn to_nanos(lease: Duration) -> i64 {
    i64::try_from(lease.as_nanos()).unwrap_or(i64::MAX)
}

/// An attempt a claim leased, from its row.
fn activity_from_row(row: &tokio_postgres::Row) -> Result<ActivityWork, StoreError> {
    let raw_id: String = col(row, 0, "?")?;
    let seq: i64 = col(row, 1, &raw_id)?;
    let what = || format!("activity attempt {seq} of instance `{raw_id}`");
    let token = to_u64(col(row, 2, &raw_id)?, what)?;
    let lease = ActivityLease {
        instance_id: codec::instance_id(&raw_id)?,
        id: to_u64(seq, what)?,
        token,
    };
    match serde_json::from_slice::<ActivityTask>(&col::<Vec<u8>>(row, 3, &raw_id)?) {
        Ok(task) => Ok(ActivityWork { task, lease }),
        Err(error) => Err(StoreError::UnreadableTask {
            lease,
            error: error.to_string(),
        }),
    }
}

/// Whether a claim's `row` took over an expired lease, as its column `column` says.
fn took_over(row: &tokio_postgres::Row, column: usize) -> bool {
    row.try_get::<_, bool>(column).unwrap_or(false)
}

/// How many instances an orchestration claim's rows (one per message, by instance; the sixth
/// column says) took over from expired leases.
fn instances_taken_over(rows: &[tokio_postgres::Row]) -> u64 {
    let mut taken = 0;
    let mut last = None;
    for row in rows {
        let id = row.try_get::<_, &str>(0).ok();
        if id != last && took_over(row, 5) {
            taken += 1;
        }
        last = id;
    }
    taken
}

/// Whether a claim's `row` may show its inbox as it was before a commit that consumed some
/// of it (the seventh column says; see `Sql::new`).
fn moved(row: &tokio_postgres::Row) -> bool {
    row.try_get::<_, bool>(6).unwrap_or(true)
}

/// How many attempts an activity claim's rows (the fifth column says) took over from
/// expired leases.
fn attempts_taken_over(rows: &[tokio_postgres::Row]) -> u64 {
    rows.iter().filter(|row| took_over(row, 4)).count() as u64
}

/// This process as a lease owner: `host:pid`.
fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
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
        // Generic plans: see the crate docs, "Plans".
        let session = format!(
            "-c idle_in_transaction_session_timeout={} -c plan_cache_mode=force_generic_plan",
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
        let (claim_size, pool_size) = connection_budget(options.pool_size, options.client_only);
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        // Claims commit without waiting for the WAL flush: see the crate docs, "Claims".
        let mut claim_config = config.clone();
        claim_config.options(format!("{session} -c synchronous_commit=off"));
        let claim_pool = Pool::builder(Manager::from_config(
            claim_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        ))
        // A client-only process never claims: its claim pool opens no connection.
        .max_size(claim_size.max(1))
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
        let (group, lanes) = GroupCommit::start(&pool, &sql, (pool_size / 2).clamp(1, 4));
        let last_now = Arc::new(AtomicI64::new(i64::MIN));
        let depths_at =
            (crate::metric::DEPTHS && !options.client_only).then(|| Arc::clone(&last_now));
        // A notification is a hint: a worker sends it from a claim connection, without
        // waiting for the WAL flush its transaction would otherwise wait for. (A client-only
        // process keeps its claim pool closed.)
        let notify_pool = if options.client_only {
            pool.clone()
        } else {
            claim_pool.clone()
        };
        let mut tasks = vec![
            tokio::spawn(wake::notifier(
                Arc::clone(&wake),
                notify_pool,
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
                depths_at,
            ))
            .abort_handle(),
        ];
        tasks.extend(lanes);
        Ok(PostgresStore {
            pool,
            claim_pool,
            group,
            sql,
            wake,
            schema,
            last_now,
            look_every: to_nanos(options.poll_interval),
            owner: owner_name(),
            client_only: options.client_only,
            max_turn_bytes: options.max_turn_bytes,
            claimed_turns: Claimed::default(),
            claimed_attempts: Claimed::default(),
            tasks,
            dropped_after: None,
        })
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// This store, dropping `guard` (a test's schema) after its connections.
    pub(crate) fn dropping(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.dropped_after = Some(Box::new(guard));
        self
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        db::connection(&self.pool).await
    }

    /// Runs a query built with its parameters (a list or a count), prepared on a pooled
    /// connection; `what` names it in the error.
    async fn query_built(
        &self,
        text: &str,
        params: &[Box<dyn ToSql + Sync + Send>],
        what: &str,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let statement = prepare(&client, text).await?;
        client
            .query(&statement, &param_refs(params))
            .await
            .map_err(|e| unavailable(what, e))
    }

    /// Releases stale claims in the background, on the claims' connections.
    fn release_later(&self, turns: Vec<OrchestrationWork>, attempts: Vec<ActivityWork>) {
        if turns.is_empty() && attempts.is_empty() {
            return;
        }
        let (pool, sql, wake) = (
            self.claim_pool.clone(),
            Arc::clone(&self.sql),
            Arc::clone(&self.wake),
        );
        tokio::spawn(async move {
            release(&pool, &sql, turns, attempts).await;
            wake.announce(ORCHESTRATIONS | ACTIVITIES);
        });
    }

    /// A connection for claims: its commits do not wait for the WAL flush.
    async fn claim_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        db::connection(&self.claim_pool).await
    }

    /// Runs an orchestration claim (`statement`: `fetch_orchestration` or
    /// `fetch_expired_orchestrations`) of at most `size` instances, counting the expired
    /// leases it took over.
    async fn claim_turns(
        &self,
        statement: &str,
        at: i64,
        until: i64,
        size: usize,
    ) -> Result<Vec<OrchestrationWork>, StoreError> {
        let client = self.claim_client().await?;
        let statement = prepare(&client, statement).await?;
        let rows = client
            .query(&statement, &[&at, &until, &self.owner, &(size as i64)])
            .await
            .map_err(|e| write_failed("leasing instances", e))?;
        metric::lease_takeovers("orchestration", instances_taken_over(&rows));
        self.claimed_works(&client, at, rows).await
    }

    /// The instances of a claim's `rows` with their deliverable messages. The inboxes the
    /// claim may have read before a commit consumed some of them (`moved`) are read again,
    /// in a statement whose snapshot shows that commit; an instance whose lease was lost
    /// since is left out.
    async fn claimed_works(
        &self,
        client: &deadpool_postgres::Object,
        at: i64,
        rows: Vec<tokio_postgres::Row>,
    ) -> Result<Vec<OrchestrationWork>, StoreError> {
        if !rows.iter().any(moved) {
            return works_from_rows(rows);
        }
        let (stale, read): (Vec<_>, Vec<_>) = rows.into_iter().partition(moved);
        let mut ids: Vec<String> = Vec::new();
        let mut fences = Vec::new();
        for row in &stale {
            let id: String = col(row, 0, "?")?;
            if ids.last() != Some(&id) {
                fences.push(col::<i64>(row, 1, &id)?);
                ids.push(id);
            }
        }
        let statement = prepare(client, &self.sql.claimed_inbox).await?;
        let reread = client
            .query(&statement, &[&at, &ids, &fences])
            .await
            .map_err(|e| unavailable("reading the inboxes of leased instances again", e))?;
        let mut works = works_from_rows(read)?;
        works.extend(works_from_rows(reread)?);
        Ok(works)
    }

    /// Runs an activity claim (`fetch_activity` or `fetch_expired_activities`) of at most
    /// `size` attempts, counting the expired leases it took over: the attempts, and the first
    /// one whose task cannot be read, if any.
    async fn claim_attempts(
        &self,
        statement: &str,
        at: i64,
        until: i64,
        size: usize,
    ) -> Result<(Vec<ActivityWork>, Option<StoreError>), StoreError> {
        let client = self.claim_client().await?;
        let statement = prepare(&client, statement).await?;
        let rows = client
            .query(&statement, &[&at, &until, &self.owner, &(size as i64)])
            .await
            .map_err(|e| write_failed("leasing activity attempts", e))?;
        metric::lease_takeovers("activity", attempts_taken_over(&rows));
        let mut works = Vec::with_capacity(rows.len());
        let mut unreadable = None;
        for row in &rows {
            match activity_from_row(row) {
                Ok(work) => works.push(work),
                Err(error @ StoreError::UnreadableTask { .. }) if unreadable.is_none() => {
                    unreadable = Some(error)
                }
                Err(error) => return Err(error),
            }
        }
        Ok((works, unreadable))
    }

    /// `now` in nanoseconds, remembered as seen.
    /// The latest `now` the runtime passed (the smallest time if none yet).
    pub(crate) fn last_now(&self) -> i64 {
        self.last_now.load(Ordering::Acquire)
    }

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
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_instance(&self, new: NewInstance) -> Result<(), StoreError> {
        let row = NewRow::new(&new);
        let id = row.id.clone();
        if !self.group.write(Write::Create(Box::new(row))).await?.held {
            return Err(StoreError::AlreadyExists(id));
        }
        self.wake.status_changed(&id);
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
        if self.client_only {
            return Ok(None);
        }
        let at = self.saw(now);
        let lease = to_nanos(lease_for);
        let (ready, stale) = self.claimed_turns.take(at, lease);
        self.release_later(stale, Vec::new());
        let until = deadline(now, lease_for);
        let size = self.claimed_turns.size();
        if let Some((ready, _)) = ready {
            // Busy with a batch: expired leases are looked for on their own, now and then.
            // (A failed look costs nothing but the look: `ready` is handed out all the same.)
            if self.claimed_turns.look_for_expired(at, self.look_every) {
                match self
                    .claim_turns(&self.sql.fetch_expired_orchestrations, at, until, size)
                    .await
                {
                    Ok(taken) => self.claimed_turns.push_front(taken, until),
                    Err(error) => {
                        tracing::debug!(target: "durable::postgres", %error, "cannot look for expired leases")
                    }
                }
            }
            return Ok(Some(ready));
        }
        let mut works = self
            .claim_turns(&self.sql.fetch_orchestration, at, until, size)
            .await?
            .into_iter();
        let first = works.next();
        let rest: Vec<_> = works.collect();
        let found = rest.len() + usize::from(first.is_some());
        self.claimed_turns.refill(at, size, found, rest, until);
        Ok(first)
    }

    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        if self.client_only {
            return Ok(None);
        }
        let at = self.saw(now);
        let until = deadline(now, lease_for);
        let client = self.claim_client().await?;
        let statement = prepare(&client, &self.sql.lease_orchestration).await?;
        let rows = client
            .query(&statement, &[&at, &until, &self.owner, &id.as_str()])
            .await
            .map_err(|e| write_failed("leasing the instance", e))?;
        if rows.is_empty() && self.why_not_live(&client, id).await?.is_none() {
            return Err(StoreError::NotFound(id.clone()));
        }
        metric::lease_takeovers("orchestration", instances_taken_over(&rows));
        Ok(self.claimed_works(&client, at, rows).await?.pop())
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

    async fn load_history_page(
        &self,
        id: &InstanceId,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        // Past the largest position, nothing: clamped, never an overflow.
        let start = i64::try_from(from).unwrap_or(i64::MAX);
        let end = start.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX));
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.load_history_page).await?;
        let rows = client
            .query(&statement, &[&id.as_str(), &start, &end])
            .await
            .map_err(|e| unavailable("cannot load the history", e))?;
        let Some(first) = rows.first() else {
            return Err(StoreError::NotFound(id.clone()));
        };
        let len = to_u64(col(first, 0, id)?, || {
            format!("the history length of `{id}`")
        })?;
        let mut events = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            if let Some(bytes) = col::<Option<Vec<u8>>>(row, 1, id)? {
                events.push(decode(&bytes, || {
                    format!(
                        "event {} of the history of instance `{id}`",
                        from.saturating_add(i as u64)
                    )
                })?);
            }
        }
        Ok(HistoryPage { events, len })
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        self.apply_turn(commit).await
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
        if self.client_only {
            return Ok(None);
        }
        let at = self.saw(now);
        let (ready, stale) = self.claimed_attempts.take(at, to_nanos(lease_for));
        self.release_later(Vec::new(), stale);
        let until = deadline(now, lease_for);
        let size = self.claimed_attempts.size();
        if let Some((ready, ready_until)) = ready {
            // Busy with a batch: expired leases are looked for on their own, now and then.
            // (A failed look costs nothing but the look: `ready` is handed out all the same.)
            if self.claimed_attempts.look_for_expired(at, self.look_every) {
                match self
                    .claim_attempts(&self.sql.fetch_expired_activities, at, until, size)
                    .await
                {
                    Ok((taken, unreadable)) => {
                        self.claimed_attempts.push_front(taken, until);
                        if let Some(error) = unreadable {
                            // Handed back now, leased, for the runtime to fail; `ready`
                            // waits, first in line.
                            self.claimed_attempts.push_front(vec![ready], ready_until);
                            return Err(error);
                        }
                    }
                    Err(error) => {
                        tracing::debug!(target: "durable::postgres", %error, "cannot look for expired leases")
                    }
                }
            }
            return Ok(Some(ready));
        }
        let (works, unreadable) = self
            .claim_attempts(&self.sql.fetch_activity, at, until, size)
            .await?;
        let found = works.len() + usize::from(unreadable.is_some());
        if let Some(error) = unreadable {
            // One that cannot be read is handed back, leased, for the runtime to fail; the
            // others claimed with it wait in the claim.
            self.claimed_attempts.refill(at, size, found, works, until);
            return Err(error);
        }
        let mut works = works.into_iter();
        let first = works.next();
        let rest: Vec<_> = works.collect();
        self.claimed_attempts.refill(at, size, found, rest, until);
        Ok(first)
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
        let done = Completion {
            id: id.to_string(),
            seq,
            token,
            result,
        };
        if self
            .group
            .write(Write::Complete(Box::new(done)))
            .await?
            .held
        {
            self.wake.announce(ORCHESTRATIONS);
            return Ok(());
        }
        let client = self.client().await?;
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

    async fn renew_activity(
        &self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        let seq = to_i64(lease.id, "an activity's sequence number")?;
        let token = to_i64(lease.token, "an activity's lease token")?;
        self.saw(now);
        let until = deadline(now, lease_for);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.renew_activity).await?;
        let renewed = client
            .execute(
                &statement,
                &[&lease.instance_id.as_str(), &seq, &token, &until],
            )
            .await
            .map_err(|e| write_failed("renewing the activity lease", e))?;
        if renewed == 1 {
            return Ok(());
        }
        Err(StoreError::Conflict {
            id: lease.instance_id.clone(),
            reason: format!(
                "the lease on activity attempt {} was lost: another worker took it, or the \
                 attempt is no longer wanted",
                lease.id
            ),
        })
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
        let rows = self
            .query_built(&text, &params, "cannot list the instances")
            .await?;
        let more = rows.len() > page_size;
        let instances = rows
            .iter()
            .take(page_size)
            .map(status_from_row)
            .collect::<Result<Vec<_>, _>>()?;
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

    async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError> {
        let Built { text, params } = self.sql.count(query);
        let rows = self
            .query_built(&text, &params, "cannot count the instances")
            .await?;
        let mut counts = StatusCounts::default();
        for row in &rows {
            let name: String = col(row, 0, "?")?;
            let status = parse_status("?", &name)?;
            let n: i64 = col(row, 1, "?")?;
            counts.add(status, u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
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
        if self.client_only {
            return Ok(None);
        }
        let after = self.last_now.load(Ordering::Acquire);
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.next_wakeup).await?;
        let row = client
            .query_one(&statement, &[&after])
            .await
            .map_err(|e| unavailable("cannot read the next wake-up", e))?;
        Ok(col::<Option<i64>>(&row, 0, "?")?.map(time))
    }

    async fn next_timer(&self, now: SystemTime) -> Result<Option<SystemTime>, StoreError> {
        let client = self.client().await?;
        let statement = prepare(&client, &self.sql.next_timer).await?;
        let row = client
            .query_one(&statement, &[&nanos(now)])
            .await
            .map_err(|e| unavailable("cannot read the next timer", e))?;
        Ok(col::<Option<i64>>(&row, 0, "?")?.map(time))
    }

    fn signals(&self) -> Arc<WorkSignals> {
        Arc::clone(&self.wake.signals)
    }

    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        if !self.claimed_turns.is_empty() || !self.claimed_attempts.is_empty() {
            return Ok(true);
        }
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

/// A turn's commit, through the group commit.
impl PostgresStore {
    /// Applies `commit` with the other writes of this process committing now (group
    /// commit): one transaction for the batch, the fence first.
    pub(crate) async fn apply_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        let mut turn = EncodedTurn::new(&commit)?;
        let bytes = turn.bytes();
        if bytes > self.max_turn_bytes {
            return Err(StoreError::TooLarge(format!(
                "the turn of `{}` writes {bytes} bytes, and PostgreSQL takes at most {} bytes \
                 in one turn",
                commit.instance_id, self.max_turn_bytes
            )));
        }
        turn.seen_now = self.last_now();
        let (token, expected) = (turn.token, turn.expected);
        let completes = !turn.done_seqs.is_empty();
        let children: Vec<InstanceId> = turn.children.iter().map(|c| c.id.clone()).collect();
        let mut what = STATUSES;
        if !turn.tasks.is_empty() {
            what |= ACTIVITIES;
        }
        // Turns are due elsewhere (or sooner) only if this one sent messages, created
        // children, set timers or started a new generation; its own inbox is asked below.
        if !turn.receivers.is_empty()
            || !children.is_empty()
            || !turn.timer_ids.is_empty()
            || turn.replace_history
        {
            what |= ORCHESTRATIONS;
        }
        let finished = turn.finished;
        let written = self.group.write(Write::Turn(Box::new(turn))).await?;
        if !written.held {
            let client = self.client().await?;
            return Err(self
                .turn_conflict(&client, &commit.instance_id, token, expected, completes)
                .await);
        }
        if written.inbox_left && !finished {
            what |= ORCHESTRATIONS;
        }
        self.wake.status_changed(&commit.instance_id);
        for child in &children {
            self.wake.status_changed(child);
        }
        self.wake.announce(what);
        Ok(())
    }

    /// Why a turn's fence did not hold, read after its transaction was rolled back.
    async fn turn_conflict(
        &self,
        client: &impl GenericClient,
        id: &InstanceId,
        token: i64,
        expected: i64,
        completes: bool,
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
        } else if completes {
            "the lease on an activity attempt the turn completes was lost".to_string()
        } else {
            "the instance changed while the turn committed".to_string()
        };
        StoreError::Conflict {
            id: id.clone(),
            reason,
        }
    }
}
