//! A PostgreSQL store for durable: any number of runtime processes, on any number of
//! machines, share the workflows of one database.
//!
//! ```no_run
//! use durable_postgres::{PostgresOptions, PostgresStore};
//! use durable_runtime::Runtime;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect_with(
//!     "postgres://durable:secret@db.internal:5432/app",
//!     PostgresOptions::default().schema("orders").pool_size(32),
//! )
//! .await?;
//! let runtime = Runtime::builder()
//!     .store(store)
//!     // .orchestrator(..).activity(..)
//!     .start()?;
//! # Ok(()) }
//! ```
//!
//! Every process connected to the same database and schema takes part: each runs the turns
//! and activities it claims, and any of them can start, query, signal or purge any instance.
//!
//! # Guarantees
//! The same contract, and the same conformance kit, as the in-memory and file stores:
//! - **Nothing is acknowledged before it is committed** (with the server's
//!   `synchronous_commit`, durable on its disk or its replicas as you configured it).
//! - **A turn is one transaction**, fenced by the instance's lease token and history length:
//!   the history events, the consumed messages, the new timers, activity attempts, child
//!   instances and messages to others, and the new status, all or nothing. A worker whose
//!   lease was taken over (it crashed, stalled, or was paused past its lease) has its commit
//!   refused with `Conflict` and changes nothing. An activity result is committed with the
//!   turn it triggers when the instance is free: one transaction for both.
//! - **A lost connection is an unknown outcome, never a guess.** A store call whose
//!   connection is lost while PostgreSQL commits fails with `StoreError::Unavailable` saying
//!   that the outcome is unknown: the write may or may not be durable (read it back). A
//!   failure before the commit was sent, or one the server reports, changed nothing. The
//!   runtime's workers retry; no instance fails because the database went away for a while.
//! - **Time comes only from the runtime.** Every claim, expiry and timer compares with the
//!   `now` the runtime passes (so the tests' virtual clock works); the database's clock is
//!   never read. Clocks of the processes of a fleet should agree to well within a lease.
//! - **A turn too large to send fails its instance, not the store.** A statement travels in
//!   one protocol message, which PostgreSQL takes up to 1 GiB: a turn writing more than
//!   1 GiB less 16 MiB of events, tasks and messages (thousands of large activity inputs
//!   scheduled at once) is refused with `StoreError::TooLarge` before anything is sent, and
//!   the runtime fails that instance with the reason; others go on.
//! - **Bad rows fail calls, not processes.** Every column is read with checks; a row that is
//!   not what this crate wrote is `StoreError::Corrupt` naming the instance and the row.
//!
//! # Tables
//! All in one schema (default `durable`; [`PostgresOptions::schema`]). Times are nanoseconds
//! since the Unix epoch (`bigint`); events, tasks and statuses are the JSON bytes the
//! runtime serialised.
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `instances` | instance | `id` (text, `COLLATE "C"`), `name`, `version`, `status` (text), `created_at`, `updated_at`, `input`, `output`, `custom_status` (JSON text), `failure`, `parent`, `generation`, `history_len`, `fence`, `lease_until`, `lease_owner`, `status_rev` |
//! | `history` | event | `instance_id`, `generation`, `seq`, `event` |
//! | `messages` | inbox message (event, timer, activity or child result) | `id` (identity: the delivery order), `instance_id` (references `instances`), `visible_at`, `timer_id`, `event` |
//! | `activities` | activity attempt not yet completed | `instance_id`, `seq`, `task`, `token`, `due_at`, `lease_owner` |
//! | `schema_migrations` | applied migration | `version`, `name`, `applied_at`, `applied_by` |
//!
//! And one sequence, `lease_tokens`, from which every lease token is drawn: a token only
//! grows and is never handed out twice, not even to a new instance reusing a purged id.
//!
//! - **Leases and fencing.** An instance is leased by setting `fence` to a new token,
//!   `lease_until` to `now + lease` and `lease_owner` to the process (`host:pid`, for
//!   operators: who holds what); a commit or an abandon clears `lease_until`, and a
//!   commit applies only if `fence`, `lease_until` and `history_len` are what the worker
//!   leased. An expired lease can be taken by anyone, which moves `fence`: the old holder's
//!   commit then finds another token and is refused.
//! - **Claims** use `FOR NO KEY UPDATE SKIP LOCKED`, in one statement each. An orchestration
//!   claim first takes instances whose leases expired (their worker died or stalled) and
//!   that have deliverable messages, oldest expiry first (`instances (lease_until)`), then
//!   walks `messages` in `(visible_at, id)` order to the first deliverable messages whose
//!   instances are live and not leased, and leases those instances, reading their
//!   deliverable messages in the same statement. A statement's snapshot is taken when it
//!   starts: a commit that released one of those leases after that, and before the claim
//!   locked the row, has consumed messages the snapshot still shows, while the lock's
//!   re-check sees the commit's new history length (handing them out again would replay
//!   them). Such a commit always writes the instance's row, so the claim compares the row
//!   version it locked with its snapshot's (`ctid`), and the store reads those inboxes
//!   again in a second statement, whose snapshot shows the commit: one statement per claim
//!   but in that race. An activity claim first takes attempts whose leases expired
//!   (`due_at` between the ready mark and now), then ready ones (`due_at` is the smallest
//!   bigint), and gives each a new token. Each part is read only as far as the claim needs.
//!   So a dead worker's work is taken over as soon as its leases expire, however long the
//!   queue of ready work: within one lease of the crash, plus a poll interval. Neither ever
//!   blocks on a row another worker holds. (The lock is `NO KEY UPDATE` so that sends to
//!   the instance, which hold a `KEY SHARE` lock through the reference, do not hide it from
//!   claims.) A claim leases one instance (or attempt) when little is waiting and up to 16
//!   when a backlog is: the store hands them out one call at a time, each with at least half
//!   its lease left, and releases those it never handed out when dropped. A process busy
//!   handing out such a batch claims expired leases alone at most once per [poll
//!   interval](PostgresOptions::poll_interval), and hands them out first.
//! - **Claims do not wait for the WAL flush.** They run on connections of their own with
//!   `synchronous_commit = off`: a lease acknowledges nothing to anyone, and everything that
//!   does (a new instance, a turn, an activity result, an event) still waits for its flush.
//!   A claim is visible to every other session the moment it commits, so fencing is the same;
//!   only a server crash can lose a claim, which then reads as a lease never taken: the work
//!   is claimed again, and the holder of the lost lease is refused by the fence when it
//!   commits (even in the unlikely case that the sequence hands its token out again after the
//!   crash, the history length admits only one of the two turns). This saves a WAL flush per
//!   claim, three of the eight a three-step chain waits for.
//! - **Group commit.** The writes of a process's concurrent calls (turns, new instances,
//!   activity results) are committed together: one transaction, one WAL flush and one round
//!   trip per batch of up to 64. `BEGIN`, every write's statements (a turn's fence first, then
//!   its effects) and `COMMIT` go out pipelined, so no transaction waits on the process
//!   between statements. A fence that does not hold fails its statement and rolls the batch
//!   back; so does any failed statement; each write of the batch is then committed alone, so
//!   one stale or bad write fails only its own call. Batches take their row locks in
//!   instance-id order.
//! - **History** rows are keyed by instance, generation and position. Continue-as-new moves
//!   the instance to a new generation and deletes the old one's rows in the same turn.
//! - **Indexes** serve every read the runtime and its clients make: the claim
//!   (`messages (visible_at, id)`, `activities (due_at)`), inbox reads and deletes
//!   (`messages (instance_id, id)`), `next_wakeup` (those two and
//!   `instances (lease_until) WHERE lease_until IS NOT NULL`), `next_timer` (the tests' next
//!   due time: `messages (visible_at, id)`), `status` and `purge` (the
//!   primary keys), `list` by creation time, status or name (`instances (created_at, id)`,
//!   `(status, created_at, id)`, `(name, created_at, id)`). A list of several statuses merges
//!   one ordered index scan per status. No call scans histories. The id's `C` collation makes
//!   its primary key usable for id-prefix ranges, and the status index gives counts per
//!   status without touching rows, for the queries the management API will grow.
//! - **Plans.** Every statement is prepared once per connection, and the store's sessions
//!   set `plan_cache_mode = force_generic_plan`: each is planned once, not on every
//!   execution. (Left to choose, the server kept planning the statements that take arrays
//!   again at each call, as their generic estimates assume ten elements: planning was about a
//!   fifth of its CPU.) Generic plans are blind to the values, so the statements that take
//!   arrays of ids look each up by key in a lateral subquery, which the planner cannot turn
//!   into a hash of a whole table; a test checks that no hot statement's generic plan scans
//!   a table of a thousand instances.
//!
//! # Wake-ups
//! A commit wakes the loops of its own process at once. Other processes hear of it through
//! `LISTEN`/`NOTIFY` on the channel `durable.<schema>`, as a hint: a `NOTIFY` takes a
//! database-wide lock when its transaction commits, so the store never sends one inside a
//! commit. A background task sends at most one per [notify
//! interval](PostgresOptions::notify_interval) (5 ms), from its own connection, announcing
//! everything committed meanwhile. Polling is the truth: every [poll
//! interval](PostgresOptions::poll_interval) (1 s) each process looks for work and re-reads
//! the status revisions its clients watch (`wait_for_completion` for an instance another
//! process runs), so a lost notification (the listening connection dropped; notifications
//! are not queued for a disconnected listener) delays work by at most one interval. Timers
//! and lease expiries are found by `next_wakeup`, from the indexes above.
//!
//! A process whose connections are all cut (a server restart, `pg_terminate_backend`)
//! reconnects the listener and the pool by itself, and its waits see what changed meanwhile
//! at the next poll. While the server refuses it new connections (no slot left: see
//! "Connections"), it can read nothing, so a wait for an instance another process runs
//! returns only once a connection opens again; the poller warns once per such outage,
//! naming the server's reason.
//!
//! # Connections
//! A process opens at most [`pool_size`](PostgresOptions::pool_size) + 1 connections to the
//! server, and only as it needs them: the pool (default 16), and one that listens for
//! notifications. Of the pool, a quarter (at least one, at most four) takes claims, with
//! `synchronous_commit = off`; the rest commits, reads and notifies. A process that claims
//! work therefore uses at least two pooled connections, whatever the option says; a
//! [client-only](PostgresOptions::client_only) process claims nothing and uses the whole pool
//! for its calls.
//!
//! Budget for the server's `max_connections` (100 by default, of which
//! `superuser_reserved_connections`, 3, are kept for superusers): the fleet's processes
//! times `pool_size + 1`, plus whatever else connects. Four workers with the default pool
//! take 68. When the server refuses a connection for want of a slot (SQLSTATE 53300), the
//! call that needed it fails with `StoreError::Unavailable` (and `connect` with
//! [`ConnectError::Unreachable`]) saying so and naming `max_connections` and `pool_size`; the
//! runtime retries, and the store works again as soon as slots free up.
//!
//! # Stalled processes
//! A lease bounds how long a crashed or paused worker keeps an instance. A worker paused in
//! the middle of a transaction would also hold its row locks, so every session of the store
//! sets `idle_in_transaction_session_timeout` ([`PostgresOptions::idle_in_transaction_timeout`],
//! 10 s): the server then ends the session and releases the locks, and the paused worker's
//! commit fails when it resumes. Choose leases longer than this timeout.
//!
//! # Restarting the server
//! Checked by hand: `pg_ctl restart -m fast` of the server (a private PostgreSQL 15 on port
//! 5499) 2.5 s into `cargo run --release -p durable-postgres --example chains -- URL 2000`.
//! The server ended every session ("terminating connection due to administrator command")
//! and was back 0.8 s later. Calls in flight failed with `StoreError::Unavailable` (a commit
//! in flight: "the outcome is unknown"); the runtime's loops retried them after 100 ms; the
//! pool dropped each closed connection when it was next taken and opened a new one; the
//! listener reconnected and caught up. All 2,000 chains completed, none failed, and the
//! process was never restarted. A turn whose commit outcome was unknown is fenced as usual:
//! its lease is given back or expires, and the instance replays from what was committed.
//! (The fleet test, `tests/tests/fleet_postgres.rs`, cuts connections with
//! `pg_terminate_backend` instead, which is what a restart does to each session.)
//!
//! # Metrics
//! With the `metrics` feature, the store records through the `metrics` facade, under the
//! names of [`durable_runtime::metric::names`] that the other stores use:
//! - `durable_lease_takeovers_total{kind}`: a claim took over an expired lease (`kind`
//!   `orchestration` or `activity`), counted by the process that took it. The claim's own
//!   statement says which leases had expired: no extra round trip.
//! - `durable_queue_ready_turns`, `durable_queue_ready_activities`, `durable_queue_timers`:
//!   instances with deliverable messages and no live lease, attempts ready or expired, and
//!   messages not yet due (timers, scheduled starts), for the whole schema. Each worker
//!   process reads them in one indexed query at most once a second (by the latest `now` its
//!   runtime passed), each counted up to 100,000; a client-only process does not read them.
//!
//! Without the feature none of this is compiled, and no query is made.
//!
//! # Migrations
//! The schema's versions are embedded in the crate and applied by
//! [`PostgresStore::connect`] in one transaction holding an advisory lock on the schema's
//! name, so processes starting together migrate once and the others wait for it. A schema
//! migrated by a newer release is refused with [`ConnectError::SchemaTooNew`]: a downgrade
//! never misreads data. [`SCHEMA_VERSION`] is the version this release writes.
//!
//! # The client: tokio-postgres and deadpool-postgres
//! The store talks to PostgreSQL through `tokio-postgres`, pooled by `deadpool-postgres`,
//! rather than `sqlx`:
//! - **Pipelining.** `tokio-postgres` sends a query as soon as its future is first polled,
//!   without waiting for the previous answer. A batch of turns (fences, history, inbox,
//!   timers, attempts, children, messages) goes out in one round trip whatever it contains.
//!   `sqlx` runs one statement at a time per connection.
//! - **Connection loss is visible.** Its errors tell a server's answer (the transaction was
//!   rolled back) from a lost connection (a COMMIT's outcome is unknown), which the store
//!   reports as such; `deadpool-postgres` drops a closed connection when it is next taken
//!   from the pool and opens a new one, so a restarted server costs one failed call per
//!   pooled connection, not a restarted process. Notifications arrive on the listening
//!   connection's own stream, which the store reconnects itself.
//! - **Build time.** No macros, no compile-time query checks (the crate builds with no
//!   database reachable), and fewer dependencies than `sqlx`'s core: about 40 s of CPU for
//!   the crate and its new dependencies in a debug build on the project's 2-core machine.
//!
//! Connections are plain TCP or Unix sockets (`host=/var/run/postgresql`): this release has
//! no TLS. Reach a remote server through a trusted network or a TLS tunnel.
//!
//! # Testing
//! `tests/` runs the store conformance kit, one check per schema, and tests of its own
//! (migrations raced by ten processes, a newer schema refused, connections killed with
//! `pg_terminate_backend` under a store and under a watcher, a refused connection, expired
//! leases taken over before a backlog, hostile ids and payloads, listing), and, with the
//! `metrics` feature, its metrics (`tests/metrics.rs`). The end-to-end tests of the
//! workspace (`matrix!`) run on PostgreSQL too. They need `DURABLE_TEST_POSTGRES_URL`; see
//! [`testing`].

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod claims;
mod codec;
mod create;
mod db;
mod error;
mod group_commit;
mod metric;
mod migrate;
mod options;
mod pipeline;
#[cfg(test)]
mod plans;
mod sql;
mod store;
pub mod testing;
mod turn;
mod wake;

pub use error::ConnectError;
pub use migrate::SCHEMA_VERSION;
pub use options::PostgresOptions;
pub use store::PostgresStore;
