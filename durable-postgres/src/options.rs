//! The store's options: pool size, schema, how often it polls, how it treats stalled sessions.

use std::time::Duration;

/// How [`PostgresStore::connect_with`](crate::PostgresStore::connect_with) connects. Every
/// option has a sensible default.
///
/// Lease lengths are not here: the runtime passes them with every claim (see
/// `RuntimeBuilder::orchestration_lease` and `activity_lease`), so one setting governs every
/// store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub(crate) pool_size: usize,
    pub(crate) schema: String,
    pub(crate) poll_interval: Duration,
    pub(crate) notify_interval: Duration,
    pub(crate) idle_in_transaction_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) client_only: bool,
    pub(crate) max_turn_bytes: usize,
}

/// The most bytes a turn writes: every statement travels in one protocol message, which
/// PostgreSQL takes up to 1 GiB, less room for the statement's other parameters.
pub(crate) const MAX_TURN_BYTES: usize = (1 << 30) - (16 << 20);

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            schema: "durable".into(),
            poll_interval: Duration::from_secs(1),
            notify_interval: Duration::from_millis(5),
            idle_in_transaction_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            client_only: false,
            max_turn_bytes: MAX_TURN_BYTES,
        }
    }
}

impl PostgresOptions {
    /// The most connections the store opens for its work (default 16; at least 1), claims
    /// included: a quarter of them (at least one, at most four) take claims, so a process
    /// that runs work uses at least two. One more connection listens for notifications: a
    /// process opens at most `pool_size + 1` connections to the server. See the crate docs,
    /// "Connections".
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// The schema holding the store's tables (default `durable`), created if missing. Several
    /// independent stores can share a database, one schema each. A lowercase ASCII letter or
    /// `_`, then letters, digits or `_`; at most 63 bytes.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How often the store looks for work that no notification announced (default 1 s): the
    /// longest a lost notification delays work by, and how often status watchers see changes
    /// made by other processes when notifications are lost.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The shortest time between two notifications this process sends to the others
    /// (default 5 ms). A `NOTIFY` serialises every committing transaction of the database, so
    /// the store never sends one per commit: it sends at most one per interval, outside the
    /// commits, announcing everything committed meanwhile.
    pub fn notify_interval(mut self, interval: Duration) -> Self {
        self.notify_interval = interval;
        self
    }

    /// How long the server keeps one of the store's sessions that stopped in the middle of a
    /// transaction (default 10 s; PostgreSQL's `idle_in_transaction_session_timeout`). A process
    /// paused mid-commit (SIGSTOP, a debugger) then loses its transaction and its row locks
    /// instead of stalling the instance for everyone; its commit fails when it resumes.
    pub fn idle_in_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_in_transaction_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long opening one connection may take (default 10 s), unless the URL sets
    /// `connect_timeout`; a store call that needs a new connection fails with
    /// `StoreError::Unavailable` after it.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether this process only starts, signals, queries and purges instances (default
    /// `false`): a client of a fleet, such as a web front end, that claims no turns and no
    /// activity attempts. Its runtime's loops stay idle (it registers the orchestrators it
    /// starts by type, but never runs them); the fleet's worker processes run everything.
    pub fn client_only(mut self, client_only: bool) -> Self {
        self.client_only = client_only;
        self
    }

    /// The most bytes of events, tasks and messages one turn may write (default and most:
    /// 1 GiB less 16 MiB, what one PostgreSQL protocol message holds with room to spare). A
    /// larger turn is refused with `StoreError::TooLarge` and its instance fails. Lowered by
    /// tests.
    #[doc(hidden)]
    pub fn max_turn_bytes(mut self, bytes: usize) -> Self {
        self.max_turn_bytes = bytes.min(MAX_TURN_BYTES);
        self
    }
}
