//! Wake-ups: a commit wakes this process's loops at once; other processes hear of it through
//! a coalesced `NOTIFY` (a hint) and, whatever is lost, through polling (the truth).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_postgres::Pool;
use durable_runtime::store::WorkSignals;
use durable_runtime::InstanceId;
use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::db;
use crate::sql::Sql;

/// Instances have deliverable messages (or leases were released).
pub(crate) const ORCHESTRATIONS: u8 = 1;
/// Activity attempts are ready.
pub(crate) const ACTIVITIES: u8 = 2;
/// Statuses changed.
pub(crate) const STATUSES: u8 = 4;

/// What the store's calls and its background tasks share to wake loops and watchers.
#[derive(Debug)]
pub(crate) struct Wake {
    pub(crate) signals: Arc<WorkSignals>,
    watchers: Mutex<HashMap<InstanceId, Watched>>,
    /// What this process committed since its last notification.
    pending: AtomicU8,
    /// Wakes the notifier.
    kick: Notify,
    /// Asks the poller to re-read the watched statuses now.
    refresh: Notify,
    /// This store's name in notifications, so it ignores its own.
    origin: String,
    /// The `LISTEN` channel of the schema.
    pub(crate) channel: String,
}

#[derive(Debug)]
struct Watched {
    sender: watch::Sender<u64>,
    /// The status revision last seen, if any.
    revision: Option<i64>,
}

impl Wake {
    pub(crate) fn new(schema: &str) -> Wake {
        let origin = format!("{:016x}", RandomState::new().hash_one(std::process::id()));
        // A channel is an identifier: at most 63 bytes. A clipped name shared by two schemas
        // only costs needless wake-ups.
        let mut channel = format!("durable.{schema}");
        channel.truncate(63);
        Wake {
            signals: Arc::default(),
            watchers: Mutex::default(),
            pending: AtomicU8::new(0),
            kick: Notify::new(),
            refresh: Notify::new(),
            origin,
            channel,
        }
    }

    fn watchers(&self) -> MutexGuard<'_, HashMap<InstanceId, Watched>> {
        // Nothing below can leave the map half-updated.
        self.watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A write made `what` ready: wakes this process's loops now and tells the others soon.
    pub(crate) fn announce(&self, what: u8) {
        self.wake_local(what);
        self.pending.fetch_or(what, Ordering::AcqRel);
        self.kick.notify_one();
    }

    fn wake_local(&self, what: u8) {
        if what & ORCHESTRATIONS != 0 {
            self.signals.orchestrations.notify_waiters();
        }
        if what & ACTIVITIES != 0 {
            self.signals.activities.notify_waiters();
        }
    }

    /// The status of `id` may have changed here.
    pub(crate) fn status_changed(&self, id: &InstanceId) {
        let mut watchers = self.watchers();
        if let Some(watched) = watchers.get(id) {
            if watched.sender.receiver_count() == 0 {
                watchers.remove(id);
            } else {
                watched.sender.send_modify(|n| *n += 1);
            }
        }
    }

    /// `id` is gone: its watchers see a last change, then the end.
    pub(crate) fn purged(&self, id: &InstanceId) {
        if let Some(watched) = self.watchers().remove(id) {
            watched.sender.send_modify(|n| *n += 1);
        }
    }

    pub(crate) fn watch(&self, id: &InstanceId) -> watch::Receiver<u64> {
        self.watchers()
            .entry(id.clone())
            .or_insert_with(|| Watched {
                sender: watch::channel(0).0,
                revision: None,
            })
            .sender
            .subscribe()
    }

    /// Everything may have changed (a notification may have been lost).
    fn catch_up(&self) {
        self.wake_local(ORCHESTRATIONS | ACTIVITIES);
        self.refresh.notify_one();
    }

    /// The ids watched by someone, forgetting the others.
    fn watched_ids(&self) -> Vec<String> {
        let mut watchers = self.watchers();
        watchers.retain(|_, w| w.sender.receiver_count() > 0);
        watchers.keys().map(|id| id.to_string()).collect()
    }

    /// Applies the revisions read for `asked`: a change (or a first sighting, which may hide
    /// one) wakes the watchers; an instance gone since it was seen ends them.
    fn revisions_read(&self, asked: &[String], found: &HashMap<String, i64>) {
        let mut watchers = self.watchers();
        for id in asked {
            match found.get(id) {
                Some(&revision) => {
                    if let Some(watched) = watchers.get_mut(id.as_str()) {
                        if watched.revision != Some(revision) {
                            watched.revision = Some(revision);
                            watched.sender.send_modify(|n| *n += 1);
                        }
                    }
                }
                // Seen before, gone now: purged. (Never seen: not created yet.)
                None if watchers
                    .get(id.as_str())
                    .is_some_and(|w| w.revision.is_some()) =>
                {
                    if let Some(watched) = watchers.remove(id.as_str()) {
                        watched.sender.send_modify(|n| *n += 1);
                    }
                }
                None => {}
            }
        }
    }
}

/// Sends what this process committed to the others, at most once per `interval`, from a
/// connection of its own and never inside a commit: a `NOTIFY` serialises every committing
/// transaction of the database.
pub(crate) async fn notifier(wake: Arc<Wake>, pool: Pool, interval: Duration) {
    loop {
        wake.kick.notified().await;
        let what = wake.pending.swap(0, Ordering::AcqRel);
        if what == 0 {
            continue;
        }
        let payload = format!("{}:{what}", wake.origin);
        let sent = match db::connection(&pool).await {
            Ok(client) => client
                .execute("SELECT pg_notify($1, $2)", &[&wake.channel, &payload])
                .await
                .map_err(|e| db::describe(&e)),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = sent {
            // A hint only: the others find the work at their next poll.
            tracing::debug!(target: "durable::postgres", %error, "cannot notify the other processes");
        }
        tokio::time::sleep(interval).await;
    }
}

/// Listens on the schema's channel from a connection of its own, waking this process's loops
/// and watchers for what other processes announce; reconnects after `retry`, catching up on
/// anything announced meanwhile.
pub(crate) async fn listener(wake: Arc<Wake>, config: tokio_postgres::Config, retry: Duration) {
    let mut failures = 0u32;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let drive = async {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(note)) => heard(&wake, note.payload()),
                            Ok(_) => {}
                            Err(error) => return Some(db::describe(&error)),
                        }
                    }
                    None
                };
                let listen = async {
                    let quoted = format!("\"{}\"", wake.channel.replace('"', "\"\""));
                    match client.batch_execute(&format!("LISTEN {quoted}")).await {
                        Ok(()) => {
                            failures = 0;
                            wake.catch_up();
                            std::future::pending::<String>().await
                        }
                        Err(error) => db::describe(&error),
                    }
                };
                let ended = tokio::select! {
                    ended = drive => ended.unwrap_or_else(|| "the server closed the connection".into()),
                    error = listen => error,
                };
                log_lost(&mut failures, &ended);
            }
            Err(error) => log_lost(&mut failures, &db::describe(&error)),
        }
        tokio::time::sleep(retry).await;
    }
}

fn log_lost(failures: &mut u32, error: &str) {
    *failures += 1;
    // Once per outage, not once per retry.
    if *failures == 1 {
        tracing::warn!(target: "durable::postgres", %error, "lost the notification connection; polling until it is back");
    }
}

fn heard(wake: &Wake, payload: &str) {
    let Some((origin, what)) = payload.split_once(':') else {
        return;
    };
    if origin == wake.origin {
        return;
    }
    let what: u8 = what
        .parse()
        .unwrap_or(ORCHESTRATIONS | ACTIVITIES | STATUSES);
    wake.wake_local(what);
    if what & STATUSES != 0 {
        wake.refresh.notify_one();
    }
}

/// How often a process reads the queues' depths for the metrics, at most.
const DEPTHS_EVERY: Duration = Duration::from_secs(1);

/// Polling, the truth: every `interval` the loops look for work, and watched statuses are
/// re-read (at once when a notification says some changed). With `depths_at` (a worker with
/// the `metrics` feature), the queues' depths at the latest `now` the runtime passed are read
/// at most once per [`DEPTHS_EVERY`].
pub(crate) async fn poller(
    wake: Arc<Wake>,
    pool: Pool,
    sql: Arc<Sql>,
    interval: Duration,
    depths_at: Option<Arc<AtomicI64>>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut depths_read: Option<tokio::time::Instant> = None;
    // Whether the last read of the watched statuses failed: warned once per outage.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => wake.wake_local(ORCHESTRATIONS | ACTIVITIES),
            _ = wake.refresh.notified() => {}
        }
        if let Some(at) = &depths_at {
            let now = at.load(Ordering::Acquire);
            if now != i64::MIN && depths_read.is_none_or(|last| last.elapsed() >= DEPTHS_EVERY) {
                depths_read = Some(tokio::time::Instant::now());
                read_depths(&pool, &sql, now).await;
            }
        }
        let ids = wake.watched_ids();
        if ids.is_empty() {
            continue;
        }
        let read = match db::connection(&pool).await {
            Ok(client) => client
                .query(&sql.status_revisions, &[&ids])
                .await
                .and_then(|rows| {
                    rows.iter()
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                        .collect::<Result<HashMap<String, i64>, _>>()
                })
                .map_err(|e| db::describe(&e)),
            Err(error) => Err(error.to_string()),
        };
        match read {
            Ok(found) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(target: "durable::postgres", "reading the watched statuses again");
                }
                wake.revisions_read(&ids, &found);
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(target: "durable::postgres", %error, "cannot read the watched statuses: waits for instances that other processes run see their changes once it can (tried again every poll interval)");
            }
            Err(error) => {
                tracing::debug!(target: "durable::postgres", %error, "cannot read the watched statuses");
            }
        }
    }
}

/// Reads the queues' depths at `now` into the metrics (best effort: a failure leaves the last
/// values).
async fn read_depths(pool: &Pool, sql: &Sql, now: i64) {
    let read = match db::connection(pool).await {
        Ok(client) => client
            .query_one(&sql.queue_depths, &[&now])
            .await
            .map_err(|e| db::describe(&e)),
        Err(error) => Err(error.to_string()),
    };
    match read {
        Ok(row) => {
            let depth = |i| row.try_get::<_, i64>(i).unwrap_or(0);
            crate::metric::queues(depth(0), depth(1), depth(2));
        }
        Err(error) => {
            tracing::debug!(target: "durable::postgres", %error, "cannot read the queues' depths")
        }
    }
}
