//! The crash-safe file store: [`FileStore`] (its docs say what it guarantees, its format,
//! recovery, backups and upgrades), its options, and the file layer under it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};

use super::{
    ActivityLease, ActivityWork, HistoryPage, InstancePage, InstanceQuery, LeaseToken, NewInstance,
    OrchestrationWork, StatusCounts, Store, StoreError, TurnCommit, WorkSignals,
};
use crate::history::HistoryEvent;
use crate::instance_id::InstanceId;
use crate::status::InstanceStatus;

mod group_commit;
mod io;
mod log;
mod record;
mod recovery;
mod state;

pub use io::{FileSystem, OsFileSystem, WritableFile};
pub use log::DISK_FORMAT_VERSION;

use super::engine::{raw_event, Commit, Create, Engine, Woken};
use group_commit::{Durable, Queue, Writer};
use record::{Events, Record};
use state::{Lsn, Placed, State};

/// How hard the store works to make a write survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every acknowledged write has been `fdatasync`ed: it survives a crash and a power cut.
    #[default]
    Fsync,
    /// Writes reach the operating system but are never synced: they survive the process
    /// crashing, not the machine. For tests and throwaway data.
    None,
}

/// Options of [`FileStore::open_with`]; every one has a sensible default.
#[derive(Debug, Clone)]
pub struct FileStoreOptions {
    durability: Durability,
    salvage: bool,
    segment_size: u64,
    checkpoint_bytes: u64,
    retry_interval: Duration,
    file_system: Arc<dyn FileSystem>,
    writer_task: bool,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            durability: Durability::Fsync,
            salvage: false,
            segment_size: 64 << 20,
            checkpoint_bytes: 256 << 20,
            retry_interval: Duration::from_millis(100),
            file_system: Arc::new(OsFileSystem),
            writer_task: false,
        }
    }
}

impl FileStoreOptions {
    /// Whether writes are synced (default [`Durability::Fsync`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens a damaged directory anyway, keeping everything before the first damage,
    /// renaming the damaged segments to `*.damaged` and keeping a copy of a damaged
    /// checkpoint as `*.damaged` (default off: a damaged directory refuses to open).
    /// Whatever was written after the damage is lost; use it only when no backup is better.
    pub fn salvage(mut self, salvage: bool) -> Self {
        self.salvage = salvage;
        self
    }

    /// The size after which the writer starts a new segment (default 64 MiB).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(1);
        self
    }

    /// How much log is written before a checkpoint compacts it (default 256 MiB; the
    /// threshold is at least twice the last checkpoint's size, so compaction costs stay
    /// proportional to the writes).
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// How often writes are tried again while the disk fails (default 100 ms).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// The file layer (default the operating system's); tests pass one that injects faults.
    pub fn file_system(mut self, file_system: Arc<dyn FileSystem>) -> Self {
        self.file_system = file_system;
        self
    }

    /// Not public API: for the deterministic simulator (`durable-sim`), whose
    /// [`FileSystem`] is in memory and never blocks. The store opens on the calling task
    /// (no `spawn_blocking`) and its writer runs as a task of the current tokio runtime
    /// instead of a thread of its own, so that the simulator's single thread schedules it
    /// like every other task, and dropping that runtime stops the writer wherever it was (a
    /// power cut). It waits for retries on the tokio clock. `open_with` must then be
    /// called inside a tokio runtime.
    #[doc(hidden)]
    pub fn writer_on_task(mut self) -> Self {
        self.writer_task = true;
        self
    }
}

/// Why a directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another store holds the directory.
    #[error("{} is in use by another durable store (in this or another process): stop that one first", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Stored data is damaged (not merely a torn tail), or from a newer release.
    #[error("{} is damaged at byte {offset}: {reason}. Restore a backup, or open with FileStoreOptions::salvage(true) to keep everything before this point (damaged files are kept as *.damaged, never deleted)", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// What the store's handle and its writer thread share.
pub(crate) struct Shared {
    state: Mutex<State>,
    queue: Mutex<Queue>,
    /// Wakes the writer thread.
    wake: Condvar,
    /// Wakes the writer task (`FileStoreOptions::writer_on_task`); keeps a wake-up that
    /// comes while the task is busy.
    wake_task: tokio::sync::Notify,
    durable: watch::Sender<Durable>,
    /// Writes currently fail: calls are refused up front.
    failed: AtomicBool,
    /// The last durable record, set before its writers are told (the `durable` watch
    /// follows just after, for readers that wait).
    durable_lsn: AtomicU64,
    signals: Arc<WorkSignals>,
    options: FileStoreOptions,
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every write checks before its first change, so a panic cannot leave half of one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the writer, thread or task.
    fn wake(&self) {
        if self.options.writer_task {
            self.wake_task.notify_one();
        } else {
            self.wake.notify_one();
        }
    }
}

/// The crash-safe file store: the embedded default. What the hot path needs lives in memory
/// (histories do not: see [Memory](#memory)), and every change is first a checksummed record
/// in a write-ahead log in one directory.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use durable_runtime::store::{Durability, FileStore, FileStoreOptions};
///
/// let store = FileStore::open("./data").await?;
/// // Or, for tests that do not need to survive a power cut:
/// let fast = FileStore::open_with(
///     "./test-data",
///     FileStoreOptions::default().durability(Durability::None),
/// )
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Guarantees
/// - **Nothing is acknowledged before it is durable.** A start, an event, a turn and an
///   activity result resolve only after their records are written and `fdatasync`ed. An
///   activity attempt is handed out only once the turn that scheduled it is durable, and
///   [`status`](crate::store::Store::status) waits until the status it returns is durable
///   (and [`watch_status`](crate::store::Store::watch_status) fires only then), so
///   `wait_for_completion` never reports an outcome a crash could take back.
/// - **Group commit.** One writer thread takes everything queued since its last fsync as one
///   batch. A lone commit pays one fsync at once (no linger timer); under load hundreds of
///   turns share one. The fsync runs on that thread, never on async worker threads.
/// - **Leases are not durable.** A restarted process owns nothing, so after a restart every
///   unfinished instance and activity attempt is simply ready again.
/// - **Instance ids never name files.** File names are `wal-<number>.log`,
///   `checkpoint-<number>.ckpt` and `LOCK`; ids are only ever data inside records.
/// - **Damage is refused, never silently cut.** Every byte the store writes is checksummed.
///   Recovery cuts back only a torn tail (a write a crash cut short, never acknowledged),
///   keeping the bytes it cuts; anything else fails the open with the file and byte offset
///   (see [Recovery](#recovery-torn-tails-and-damage)).
/// - **One process per directory.** Opening takes an exclusive lock on `LOCK` (`flock`); a
///   second open, in this process or another, fails with [`OpenError::Locked`].
///
/// # What reads return
/// [`status`](crate::store::Store::status) and [`list`](crate::store::Store::list) return
/// only what is on disk: a status changed by a write still on its way to disk is not shown
/// until that write is durable (they wait for it), so a reader never sees an outcome that a
/// crash could take back. This is the store's choice; the contract would allow less.
///
/// # Memory
/// The live state is the store engine the in-memory store also runs (`store/engine`): the
/// file store adds only its log, recovery and checkpoints. In memory, per instance: its
/// status (input and output included; as the JSON its last record holds after a restart,
/// until a call needs it), its inbox, timers, lease, activity attempts, and its history's
/// *length* plus where the history's events are in the files (one entry of 32 bytes per turn
/// since the last checkpoint, one per instance after it). The events themselves stay on disk:
/// [`load_history`](crate::store::Store::load_history), which the runtime calls only on a
/// cache miss, reads them from the segments or the checkpoint (usually from the page cache;
/// a cold read blocks the calling thread for one disk read). A turn's events are kept in
/// memory only from its commit until the writer has written them (one group commit).
/// Each segment or checkpoint that still holds a live history stays open for reading, so
/// after a checkpoint deletes segments their space is freed once no history points into
/// them (histories are repointed to the checkpoint as it is written). A custom
/// [`FileSystem`] provides these read handles with [`FileSystem::open_read`]; like a Unix
/// file descriptor, a handle must keep reading its file after a rename or deletion.
///
/// # On disk
/// A directory holds log segments and at most one checkpoint. A segment starts with a 16-byte
/// header: magic `DURWAL`, the [format version](DISK_FORMAT_VERSION) (`u32 LE`) and a CRC-32
/// of those 12 bytes. Then commit batches, each behind a 20-byte header: `header_crc: u32 LE`
/// (over the rest of the header), `length: u32 LE`, `sequence: u64 LE`, `crc32: u32 LE` (over
/// the records); then the records (create, send, commit, complete, purge) in a small binary
/// encoding: integers little endian, strings length-prefixed. Events, tasks and statuses are
/// embedded as the exact JSON the runtime serialised, so `strings wal-*.log` shows them. A
/// checkpoint (`checkpoint-<last batch it covers>.ckpt`) has the same framing, the number of
/// the last batch it covers in its checksummed header, and holds an image of every instance:
/// first the history events that were on disk when it began (`HISTORY` records, in pieces of
/// whole events of about 1 MiB), then each instance's status, inbox and attempts, naming its
/// history's pieces by position and holding the events that were still in memory inline.
///
/// # Recovery: torn tails and damage
/// [`FileStore::open`] loads the checkpoint, then replays every batch after it, in sequence
/// order; a batch is applied all or nothing. It then syncs every segment it replayed, and the
/// directory, before it takes work: a process killed between a write and its fsync leaves
/// batches in the page cache that were never synced, and what is acknowledged after the
/// restart must not build on batches a power cut could still take away. Whatever is wrong is one of two things:
/// - A **torn tail**: the last batch of the last segment is incomplete (the file ends inside
///   its header, or before the length its checksummed header gives), or the file ends in
///   zeros where a batch should start (space a file system allocated but never filled). Only
///   a write cut short by a crash leaves this, and a batch is acknowledged only once it is
///   complete and synced: a torn tail was never acknowledged. It is cut back and logged with
///   `tracing::warn!`; the bytes cut are kept in `wal-<n>.log.torn` (unless all zeros).
/// - **Damage**: anything else. A header or a complete batch whose checksum fails (also the
///   last one: a crash does not change bytes that were written, a failing disk does), a gap
///   in the sequence numbers, an unreadable record, a file that does not start with a durable
///   header, a checkpoint whose header disagrees with its name. The open fails with
///   [`OpenError::Corrupt`], naming the file and the byte offset where the damaged batch
///   starts, and neither cuts nor renames anything.
///
/// Since a batch's length is covered by its header's checksum, no flipped bit makes an
/// acknowledged batch look like a torn tail (`tests/file_damage.rs` flips a bit at every byte
/// of a log and a checkpoint). A segment other than the last may end in a batch a failed
/// write left incomplete: it is skipped, as its batches were written again to the next
/// segment (if one is missing, the sequence numbers show a gap: damage). If a file system
/// shows zeros *inside* the last write after a power cut, rather than at its end, the open
/// reports damage, and salvage keeps exactly what cutting a torn tail would.
///
/// To open a damaged directory anyway, use [`FileStoreOptions::salvage`]: it keeps every
/// batch before the damage, renames the damaged segment and all later ones to `*.damaged`,
/// copies a damaged checkpoint to `checkpoint-<n>.ckpt.damaged` (the instances stored after
/// its damage are lost), and writes a checkpoint of what it kept at once. The store never
/// deletes `*.damaged` and `*.torn` files: keep them for inspection, remove them when done.
///
/// # Failed writes
/// A failed write or fsync is never retried on the same file (Linux may report a later fsync
/// as successful after dropping the data). The pending batches, still in memory, are
/// rewritten to a new segment at once, and the failed segment is cut back to what was synced:
/// its page cache may still show bytes a failed fsync never wrote, which a restart would
/// otherwise replay and build on, until a power cut took them away. If that fails too, the store stops taking work: writes
/// and fetches fail with [`StoreError::Unavailable`] (a start on a full disk returns that
/// error; it does not hang), workflows are not failed (the runtime's workers back off), and
/// the writer retries on a new segment every [`retry_interval`](FileStoreOptions::retry_interval)
/// (always the same one: a segment whose first write failed holds nothing acknowledged, so
/// a retry replaces it rather than leave one more file behind).
/// Once a retry succeeds, work resumes by itself. A write that got `Unavailable` has its
/// effect kept in memory and written by the retry: its outcome is *unknown*, as after any
/// timeout (a retried start may then find `AlreadyExists`). In short: **after
/// [`StoreError::Unavailable`], the outcome of a write is unknown** — it may or may not
/// become durable; read the status back (or retry idempotently) once the store accepts work
/// again.
///
/// # Space
/// After [`checkpoint_bytes`](FileStoreOptions::checkpoint_bytes) of log (or twice the last
/// checkpoint's size, if larger), the writer rewrites the live state as a new checkpoint and
/// deletes the segments it covers, so purged instances and histories dropped by
/// continue-as-new stop taking space. [`FileStore::checkpoint`] forces one. A checkpoint that
/// fails (the disk is full, a history cannot be read) is logged with `tracing::warn!` and
/// tried again only after as much log again, so a checkpoint that keeps failing costs what
/// working ones would, not an attempt per group commit; meanwhile the log is kept and
/// replayed at open. [`FileStore::checkpoint`] always tries at once.
///
/// A checkpoint is streamed: the writer copies the history events already on disk (which never
/// change) without holding the store's state, then, holding it, writes the last batch it
/// covers and every instance's image, reading nothing from disk meanwhile; it writes and
/// recovery reads about 1 MiB at a time (or one event, if larger). What it keeps in memory
/// besides is a few dozen bytes per instance (where each history's pieces went), never the
/// histories, whatever the store's size. Calls wait for the second part (the images, encoded
/// from memory) but never for the copy; and writes wait for the whole checkpoint, since no
/// batch is written meanwhile.
///
/// # Backing up a live directory
/// Copy the files in this order while the store runs: first the `checkpoint-*.ckpt` file, then
/// every `wal-*.log` in increasing number (skip `LOCK`). A segment copied mid-write ends in a
/// torn tail, which the restore cuts back. If a checkpoint replaces the one you copied while
/// you copy (the segments you need would be deleted), start over; for a copy that never races,
/// call [`FileStore::checkpoint`] first and copy within `checkpoint_bytes` of traffic, or use
/// a file-system snapshot (LVM, ZFS, btrfs), which is always consistent. To restore, put the
/// copied files in an empty directory and open it.
///
/// # Testing
/// Besides the conformance kit and the fault-injection tests (`durable-runtime/tests/
/// file_store.rs`: torn tail, corrupt middle, salvage, second open, hostile ids, power cut
/// through a file layer that keeps only synced bytes, full disk; `file_damage.rs`: a bit
/// flipped at every byte of a closed log, a crashed log and a checkpoint is refused or
/// harmless, what recovery cuts or sets aside is kept, a format-1 directory opens;
/// `file_write_faults.rs`: retries on a full disk and failing checkpoints), the crash test
/// (`tests/tests/crash.rs`) SIGKILLs a child process running retry workflows at least 50
/// times and checks that no acknowledged start or outcome is lost and no acknowledged
/// activity runs again. Its long mode runs more kills:
/// `DURABLE_CRASH_KILLS=1000 cargo test -p durable-tests --test crash -- --nocapture`
/// (`DURABLE_CRASH_SEED=<n>` replays the kill points of a failed run).
///
/// # Upgrades
/// Every file header carries the on-disk format version. A release reads every older version
/// and writes its own; a newer file makes the open fail with [`OpenError::Corrupt`] saying
/// which version it needs, so a downgrade never misreads data. To move data to a newer format
/// at once, open with the new release and call [`FileStore::checkpoint`].
///
/// Format 2 added the checksums of file and batch headers. Format 1 did not cover a batch's
/// length: in a format-1 segment, a damaged length reaching past the end of the file is told
/// from a torn tail only if an intact batch follows it. After an upgrade, new writes go to
/// segments of the current format, and the next checkpoint rewrites the old files in it.
///
/// Format 4 lets a checkpoint name history events written earlier in it, so that it is
/// written and read a batch at a time; segments are framed as in format 2. (There is no
/// format 3: one flipped bit would turn it into 1, whose headers have no checksum.)
pub struct FileStore {
    shared: Arc<Shared>,
    writer: Mutex<Option<WriterHandle>>,
}

/// The writer: a thread of its own, or a task (`FileStoreOptions::writer_on_task`).
enum WriterHandle {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.shared.dir)
            .field("instances", &self.shared.state().engine.instances().len())
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Opens (creating it if needed) the store in `dir`, with the default options.
    pub async fn open(dir: impl AsRef<Path>) -> Result<FileStore, OpenError> {
        Self::open_with(dir, FileStoreOptions::default()).await
    }

    /// Opens the store in `dir` with `options`, recovering whatever the log holds.
    pub async fn open_with(
        dir: impl AsRef<Path>,
        options: FileStoreOptions,
    ) -> Result<FileStore, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        if options.writer_task {
            // The simulator's file system never blocks.
            return Self::open_blocking(dir, options);
        }
        tokio::task::spawn_blocking(move || Self::open_blocking(dir, options))
            .await
            .expect("opening a store does not panic")
    }

    fn open_blocking(dir: PathBuf, options: FileStoreOptions) -> Result<FileStore, OpenError> {
        let fs = Arc::clone(&options.file_system);
        fs.create_dir_all(&dir).map_err(|source| OpenError::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        let lock = fs.lock(&dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                OpenError::Locked { dir: dir.clone() }
            } else {
                OpenError::Io {
                    action: "lock",
                    path: dir.join(log::LOCK_FILE),
                    source,
                }
            }
        })?;
        let mut recovered = recovery::recover(&*fs, &dir, options.salvage)?;
        recovered.state.engine.changed.clear();
        let shared = Arc::new(Shared {
            state: Mutex::new(recovered.state),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            wake_task: tokio::sync::Notify::new(),
            durable: watch::channel(Durable::default()).0,
            failed: AtomicBool::new(false),
            durable_lsn: AtomicU64::new(0),
            signals: Arc::default(),
            options,
            dir,
            fs,
        });
        let mut writer = Writer {
            shared: Arc::clone(&shared),
            segment: None,
            reader: None,
            segment_no: recovered.last_segment,
            segment_len: 0,
            next_seq: recovered.next_seq,
            pending: Vec::new(),
            pending_waiters: Vec::new(),
            pending_watchers: Vec::new(),
            pending_lsn: 0,
            pending_placed: Vec::new(),
            failed: None,
            segment_unwritten: false,
            cut_back: Vec::new(),
            since_checkpoint: recovered.since_checkpoint,
            checkpoint_size: recovered.checkpoint_size,
            checkpoint_retry_at: 0,
            _lock: lock,
        };
        if recovered.salvaged {
            writer.checkpoint().map_err(|e| OpenError::Io {
                action: "checkpoint the salvaged state of",
                path: shared.dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        let handle = if shared.options.writer_task {
            WriterHandle::Task(tokio::spawn(writer.run_task()))
        } else {
            let thread = std::thread::Builder::new()
                .name("durable-file-writer".into())
                .spawn(move || writer.run())
                .map_err(|source| OpenError::Io {
                    action: "start the writer thread for",
                    path: shared.dir.clone(),
                    source,
                })?;
            WriterHandle::Thread(thread)
        };
        Ok(FileStore {
            shared,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Rewrites the live state as a checkpoint now and deletes the log it covers.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut queue = self.shared.queue();
            if queue.closing {
                return Err(closed());
            }
            queue.checkpoints.push(tx);
        }
        self.shared.wake();
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Writes what is queued, stops the writer and releases the directory's lock, so the
    /// directory can be opened again; later calls fail with `Unavailable`. Dropping the
    /// store does the same.
    pub async fn close(&self) {
        match self.stop() {
            None => {}
            Some(WriterHandle::Thread(thread)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Some(WriterHandle::Task(task)) => {
                let _ = task.await;
            }
        }
    }

    fn stop(&self) -> Option<WriterHandle> {
        {
            // Under the state lock no call is between its checks and its record.
            let _state = self.shared.state();
            self.shared.queue().closing = true;
        }
        self.shared.wake();
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Refuses work while writes fail or after close.
    fn usable(&self) -> Result<(), StoreError> {
        if self.shared.failed.load(Ordering::SeqCst) {
            let reason = self.shared.durable.borrow().failed.clone();
            return Err(StoreError::Unavailable(reason.unwrap_or_else(|| {
                "writes to the data directory fail".to_string()
            })));
        }
        Ok(())
    }

    /// Applies `record` in memory and queues it for the log; the receiver resolves once it
    /// is durable. Called with the state lock held, so the log order is the apply order.
    fn write(
        &self,
        state: &mut State,
        record: Record,
    ) -> Result<(oneshot::Receiver<Result<(), StoreError>>, Woken), StoreError> {
        record.check_times()?;
        let (tx, rx) = oneshot::channel();
        let mut queue = self.shared.queue();
        if queue.closing {
            return Err(closed());
        }
        let start = queue.buf.len();
        let events = record.encode(&mut queue.buf);
        let count = match &record {
            Record::Commit(commit) => commit.history.count(),
            _ => 0,
        };
        let id = match &record {
            Record::Commit(commit) if events.is_some() => Some(commit.id.clone()),
            _ => None,
        };
        state.last_lsn += 1;
        let woken = match state.apply(record, state.last_lsn, None) {
            Ok(woken) => woken,
            Err(error) => {
                queue.buf.truncate(start);
                return Err(error);
            }
        };
        queue.last_lsn = state.last_lsn;
        if let (Some(id), Some(events)) = (id, events) {
            // The writer tells the state where these events land in the log.
            queue.placed.push(Placed {
                id,
                lsn: state.last_lsn,
                offset: events.start as u64,
                len: u32::try_from(events.len()).expect("a turn is smaller than 4 GiB"),
                count: count as u32,
            });
        }
        queue.waiters.push(tx);
        queue.watchers.append(&mut state.engine.changed);
        let first = start == 0;
        drop(queue);
        if first {
            self.shared.wake();
        }
        Ok((rx, woken))
    }

    /// Runs a call that may find work fallen due, and signals that work.
    fn promoting<T>(&self, call: impl FnOnce(&mut Engine<state::Parts>) -> T) -> T {
        let mut state = self.shared.state();
        let result = call(&mut state.engine);
        let woken = state.engine.take_promoted();
        drop(state);
        woken.signal(&self.shared.signals);
        result
    }

    /// Signals the workers after a write.
    fn signal(&self, woken: Woken) {
        // Activity workers also when no attempt became ready, as this store always has: a
        // released lease moves `next_wakeup`, and an idle worker should not keep sleeping
        // until the expiry of a lease no one holds.
        Woken {
            activities: true,
            ..woken
        }
        .signal(&self.shared.signals);
    }

    async fn durable(rx: oneshot::Receiver<Result<(), StoreError>>) -> Result<(), StoreError> {
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Waits until the record at `lsn` is durable.
    async fn wait_durable(&self, lsn: Lsn) -> Result<(), StoreError> {
        let mut rx = self.shared.durable.subscribe();
        let durable = rx
            .wait_for(|d| d.lsn >= lsn || d.failed.is_some())
            .await
            .map_err(|_| closed())?;
        if durable.lsn >= lsn {
            return Ok(());
        }
        Err(StoreError::Unavailable(
            durable.failed.clone().unwrap_or_default(),
        ))
    }

    fn is_durable(&self, lsn: Lsn) -> bool {
        lsn == 0 || self.shared.durable_lsn.load(Ordering::SeqCst) >= lsn
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the file store is closed".into())
}

impl Drop for FileStore {
    fn drop(&mut self) {
        // A writer task finishes on its own (or dies with its runtime, as in a power cut).
        if let Some(WriterHandle::Thread(thread)) = self.stop() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl Store for FileStore {
    async fn create_instance(&self, new: NewInstance) -> Result<(), StoreError> {
        self.usable()?;
        let create = Box::new(Create::new(new));
        let (rx, woken) = {
            let mut state = self.shared.state();
            state
                .engine
                .check_create(create.status.instance_id(), create.replace_finished)?;
            self.write(&mut state, Record::Create(create))?
        };
        self.signal(woken);
        Self::durable(rx).await
    }

    async fn send(
        &self,
        id: &InstanceId,
        event: HistoryEvent,
        visible_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.usable()?;
        let record = Record::Send {
            id: id.clone(),
            event: raw_event(&event),
            at: visible_at,
        };
        let (rx, woken) = {
            let mut state = self.shared.state();
            state.engine.check_send(id)?;
            self.write(&mut state, record)?
        };
        self.signal(woken);
        Self::durable(rx).await
    }

    async fn fetch_orchestration(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.usable()?;
        self.promoting(|engine| engine.fetch_orchestration(now, lease_for))
    }

    async fn lease_orchestration(
        &self,
        id: &InstanceId,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<OrchestrationWork>, StoreError> {
        self.usable()?;
        self.promoting(|engine| engine.lease_orchestration(id, now, lease_for))
    }

    async fn load_history(&self, id: &InstanceId) -> Result<Vec<HistoryEvent>, StoreError> {
        // Copied under the lock, read without it (from the page cache, or the disk).
        let parts = self.shared.state().history(id)?;
        state::read_history(&parts)
    }

    async fn load_history_page(
        &self,
        id: &InstanceId,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let (parts, len) = self.shared.state().history_with_len(id)?;
        let events = state::read_history_range(&parts, from, limit)?;
        Ok(HistoryPage { events, len })
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        self.usable()?;
        let (fence, mut turn) = Commit::from_turn(commit);
        let (rx, woken) = {
            let mut state = self.shared.state();
            let old = state.engine.check_commit(&turn.id, &fence)?.status();
            // The log holds the whole status the turn leaves.
            turn.status = turn.status.resolve(old)?;
            let record = Record::Commit(Box::new(turn.map_history(Events::Mem)));
            self.write(&mut state, record)?
        };
        self.signal(woken);
        Self::durable(rx).await
    }

    async fn abandon_orchestration(
        &self,
        id: &InstanceId,
        lease: LeaseToken,
    ) -> Result<(), StoreError> {
        let woken = self
            .shared
            .state()
            .engine
            .abandon_orchestration(id, lease)?;
        woken.signal(&self.shared.signals);
        Ok(())
    }

    async fn fetch_activity(
        &self,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Option<ActivityWork>, StoreError> {
        self.usable()?;
        let fetched = self.promoting(|engine| engine.fetch_activity(now, lease_for))?;
        let Some((work, scheduled)) = fetched else {
            return Ok(None);
        };
        // An attempt is handed out only once the turn that scheduled it is durable.
        if !self.is_durable(scheduled) {
            if let Err(error) = self.wait_durable(scheduled).await {
                // Not signalled: writes fail, and workers would only fail again.
                let _ = self.shared.state().engine.abandon_activity(&work.lease);
                return Err(error);
            }
        }
        Ok(Some(work))
    }

    async fn complete_activity(
        &self,
        lease: &ActivityLease,
        result: HistoryEvent,
    ) -> Result<(), StoreError> {
        self.usable()?;
        let record = Record::Complete {
            id: lease.instance_id.clone(),
            seq: lease.id,
            event: raw_event(&result),
        };
        let (rx, woken) = {
            let mut state = self.shared.state();
            if !state.engine.check_complete(lease)? {
                return Ok(());
            }
            self.write(&mut state, record)?
        };
        self.signal(woken);
        Self::durable(rx).await
    }

    async fn renew_activity(
        &self,
        lease: &ActivityLease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        // Leases are never logged: nothing to write.
        self.usable()?;
        self.shared
            .state()
            .engine
            .renew_activity(lease, now, lease_for)
    }

    async fn abandon_activity(&self, lease: &ActivityLease) -> Result<(), StoreError> {
        let woken = self.shared.state().engine.abandon_activity(lease);
        woken.signal(&self.shared.signals);
        Ok(())
    }

    async fn status(&self, id: &InstanceId) -> Result<Option<InstanceStatus>, StoreError> {
        let (status, lsn) = {
            let state = self.shared.state();
            match state.engine.get(id) {
                None => return Ok(None),
                Some(instance) => (instance.status().get()?.into_owned(), instance.status_lsn()),
            }
        };
        // Never report a status a crash could take back.
        if !self.is_durable(lsn) {
            self.wait_durable(lsn).await?;
        }
        Ok(Some(status))
    }

    async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let (page, lsn) = {
            let state = self.shared.state();
            (state.engine.list(query)?, state.last_lsn)
        };
        if !self.is_durable(lsn) {
            self.wait_durable(lsn).await?;
        }
        Ok(page)
    }

    async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, StoreError> {
        let (counts, lsn) = {
            let state = self.shared.state();
            (state.engine.count(query)?, state.last_lsn)
        };
        if !self.is_durable(lsn) {
            self.wait_durable(lsn).await?;
        }
        Ok(counts)
    }

    async fn purge(&self, id: &InstanceId) -> Result<(), StoreError> {
        self.usable()?;
        let (rx, _) = {
            let mut state = self.shared.state();
            state.engine.check_purge(id)?;
            self.write(&mut state, Record::Purge { id: id.clone() })?
        };
        Self::durable(rx).await
    }

    async fn next_wakeup(&self) -> Result<Option<SystemTime>, StoreError> {
        Ok(self.shared.state().engine.next_wakeup())
    }

    async fn next_timer(&self, now: SystemTime) -> Result<Option<SystemTime>, StoreError> {
        Ok(self.shared.state().engine.next_timer(now))
    }

    fn signals(&self) -> Arc<WorkSignals> {
        Arc::clone(&self.shared.signals)
    }

    async fn has_work(&self, now: SystemTime) -> Result<bool, StoreError> {
        let last_lsn = self.shared.state().last_lsn;
        // A write on its way to disk is about to hand out work (an activity waits for it):
        // the test clock must not jump meanwhile.
        Ok(!self.is_durable(last_lsn) || self.promoting(|engine| engine.has_work(now)))
    }

    fn watch_status(&self, id: &InstanceId) -> watch::Receiver<u64> {
        self.shared.state().engine.watch(id)
    }
}
