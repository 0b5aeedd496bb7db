//! Group commit: one writer thread takes everything queued since its last fsync as one batch,
//! with no linger timer, so a lone commit pays one fsync and a busy store shares each fsync
//! among all the commits that arrived during the previous one. It also rotates segments,
//! writes checkpoints, and survives failed writes by rewriting to a new segment.

use std::any::Any;
use std::io;
use std::mem;
use std::sync::{Arc, MutexGuard};

use tokio::sync::oneshot;

use super::io::ReadableFile;
use super::log::{self, checkpoint_header, frame, segment_header, FRAME_HEADER};
use super::state::{Lsn, Placed, State};
use super::{Durability, Shared};
use crate::clock::Stopwatch;
use crate::metric;
use crate::store::StoreError;

/// Sends the outcome of a write to its caller.
pub(crate) type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// Records applied in memory and waiting for the writer.
#[derive(Default)]
pub(crate) struct Queue {
    /// Encoded records, back to back (see `record`).
    pub(crate) buf: Vec<u8>,
    /// The position of the last record in `buf`.
    pub(crate) last_lsn: Lsn,
    /// The turns' events in `buf` (offsets in `buf`), to place once written.
    pub(crate) placed: Vec<Placed>,
    pub(crate) waiters: Vec<Waiter>,
    /// Status watchers to tell once the queued records are durable.
    pub(crate) watchers: Vec<tokio::sync::watch::Sender<u64>>,
    /// Callers of `FileStore::checkpoint`.
    pub(crate) checkpoints: Vec<Waiter>,
    /// Set by `close`: the writer flushes what is queued and stops.
    pub(crate) closing: bool,
}

/// Where durability stands, for readers that must not see what is not on disk yet.
#[derive(Debug, Clone, Default)]
pub(crate) struct Durable {
    pub(crate) lsn: Lsn,
    /// Why writes currently fail, while they do.
    pub(crate) failed: Option<String>,
}

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) segment: Option<Box<dyn super::io::WritableFile>>,
    /// The current segment, open for reading the histories written to it.
    pub(crate) reader: Option<ReadableFile>,
    /// The number of the current segment, or of the last one if none is open.
    pub(crate) segment_no: u64,
    pub(crate) segment_len: u64,
    pub(crate) next_seq: u64,
    /// Framed batches not known to be durable, kept to rewrite after a failure.
    pub(crate) pending: Vec<u8>,
    pub(crate) pending_waiters: Vec<Waiter>,
    pub(crate) pending_watchers: Vec<tokio::sync::watch::Sender<u64>>,
    pub(crate) pending_lsn: Lsn,
    /// The turns' events in `pending` (offsets in `pending`).
    pub(crate) pending_placed: Vec<Placed>,
    pub(crate) failed: Option<String>,
    /// The file of segment `segment_no` was created by a write that failed: it holds nothing
    /// acknowledged, so the next attempt replaces it instead of adding a file at each retry.
    pub(crate) segment_unwritten: bool,
    /// Log bytes written since the last checkpoint.
    pub(crate) since_checkpoint: u64,
    pub(crate) checkpoint_size: u64,
    /// After a failed checkpoint: the `since_checkpoint` an automatic retry waits for.
    pub(crate) checkpoint_retry_at: u64,
    /// The directory lock, released when the writer stops.
    pub(crate) _lock: Box<dyn Any + Send + Sync>,
}

fn unavailable(message: &str) -> StoreError {
    StoreError::Unavailable(message.to_string())
}

impl Writer {
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        loop {
            let (checkpoints, closing) = {
                let mut queue = shared.queue();
                loop {
                    if !queue.buf.is_empty() || queue.closing || !queue.checkpoints.is_empty() {
                        break;
                    }
                    if self.failed.is_some() {
                        let (guard, wait) = shared
                            .wake
                            .wait_timeout(queue, self.shared.options.retry_interval)
                            .unwrap_or_else(|p| p.into_inner());
                        queue = guard;
                        if wait.timed_out() {
                            break;
                        }
                    } else {
                        queue = shared.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
                    }
                }
                self.take(&mut queue);
                (mem::take(&mut queue.checkpoints), queue.closing)
            };
            if let Some((placed, file)) = self.flush() {
                shared.state().place(placed, &file);
            }
            let wanted = !checkpoints.is_empty() || self.checkpoint_due();
            if wanted && self.failed.is_none() {
                let outcome = self.checkpoint();
                match &outcome {
                    Ok(()) => self.checkpoint_retry_at = 0,
                    Err(error) => {
                        // Imaging the state costs about what the last checkpoint wrote: tried
                        // once per threshold of log, a failing checkpoint costs what a
                        // working one does, not one attempt per group commit.
                        let wait = self.checkpoint_threshold();
                        self.checkpoint_retry_at = self.since_checkpoint + wait;
                        tracing::warn!(target: "durable::file_store", %error, retry_after_bytes = wait, "checkpoint failed; the log is kept and replayed instead, and the checkpoint is tried again after this much more log");
                    }
                }
                for waiter in checkpoints {
                    let _ = waiter.send(outcome.clone());
                }
            } else {
                for waiter in checkpoints {
                    let _ = waiter.send(Err(unavailable(
                        self.failed.as_deref().unwrap_or("the store is closing"),
                    )));
                }
            }
            if closing {
                break;
            }
        }
        // Anything still pending could not be written: say so rather than hang.
        for waiter in self.pending_waiters.drain(..) {
            let _ = waiter.send(Err(unavailable(
                "the store was closed before this write was durable",
            )));
        }
    }

    /// Moves the queued records into a framed batch.
    fn take(&mut self, queue: &mut Queue) {
        if queue.buf.is_empty() {
            return;
        }
        let base = (self.pending.len() + FRAME_HEADER) as u64;
        for mut placed in queue.placed.drain(..) {
            placed.offset += base;
            self.pending_placed.push(placed);
        }
        frame(&mut self.pending, self.next_seq, &queue.buf);
        self.next_seq += 1;
        queue.buf.clear();
        self.pending_waiters.append(&mut queue.waiters);
        self.pending_watchers.append(&mut queue.watchers);
        self.pending_lsn = queue.last_lsn;
    }

    fn checkpoint_threshold(&self) -> u64 {
        self.shared
            .options
            .checkpoint_bytes
            .max(2 * self.checkpoint_size)
    }

    fn checkpoint_due(&self) -> bool {
        self.since_checkpoint > self.checkpoint_threshold().max(self.checkpoint_retry_at)
    }

    /// Writes the pending batches and syncs them; on failure, rewrites them to a new segment
    /// once, and otherwise enters the failed state until a later attempt succeeds. Once
    /// written, returns where the turns' events are, for the state to drop its copies.
    #[must_use]
    fn flush(&mut self) -> Option<(Vec<Placed>, ReadableFile)> {
        if self.pending.is_empty() {
            return None;
        }
        let mut outcome = self.write_pending();
        if let Err(error) = &outcome {
            if self.segment.is_some() {
                // Never again on this file: after a failed write or fsync its page cache state is
                // unknown, and a later fsync may report success for data it dropped.
                tracing::warn!(target: "durable::file_store", %error, segment = self.segment_no, "write failed; rewriting the pending batches to a new segment");
                self.segment = None;
                outcome = self.write_pending();
            }
        }
        match outcome {
            Ok(start) => {
                let mut placed = mem::take(&mut self.pending_placed);
                for p in &mut placed {
                    p.offset += start;
                }
                let file = self.reader.clone().expect("a segment was written");
                if self.failed.take().is_some() {
                    tracing::info!(target: "durable::file_store", "writes succeed again; the store accepts work");
                    self.shared
                        .failed
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                }
                self.since_checkpoint += self.pending.len() as u64;
                self.pending.clear();
                let lsn = self.pending_lsn;
                self.shared
                    .durable_lsn
                    .store(lsn, std::sync::atomic::Ordering::SeqCst);
                // Writers first, then readers: a turn's worker hears that its commit is
                // durable before a client waiting on the status it wrote.
                for waiter in self.pending_waiters.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
                self.shared.durable.send_modify(|d| {
                    d.lsn = lsn;
                    d.failed = None;
                });
                for watcher in self.pending_watchers.drain(..) {
                    watcher.send_modify(|revision| *revision += 1);
                }
                if self.segment_len > self.shared.options.segment_size {
                    self.segment = None;
                }
                Some((placed, file))
            }
            Err(error) => {
                self.segment = None;
                let message = format!(
                    "cannot write to {}: {error}; the store stops taking work and retries every {:?}",
                    self.shared.dir.display(),
                    self.shared.options.retry_interval
                );
                if self.failed.is_none() {
                    tracing::error!(target: "durable::file_store", "{message}");
                }
                self.shared
                    .failed
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.shared
                    .durable
                    .send_modify(|d| d.failed = Some(message.clone()));
                for watcher in self.pending_watchers.drain(..) {
                    watcher.send_modify(|revision| *revision += 1);
                }
                for waiter in self.pending_waiters.drain(..) {
                    let _ = waiter.send(Err(StoreError::Unavailable(format!(
                        "{message} (this write is kept in memory and may still become durable)"
                    ))));
                }
                self.failed = Some(message);
                None
            }
        }
    }

    /// Returns the offset in the segment where `pending` starts.
    fn write_pending(&mut self) -> io::Result<u64> {
        let fs = &self.shared.fs;
        let sync = self.shared.options.durability == Durability::Fsync;
        match &mut self.segment {
            Some(file) => {
                let start = self.segment_len;
                file.write_all(&self.pending)?;
                if sync {
                    let took = Stopwatch::start();
                    file.sync_data()?;
                    metric::file_sync(took.elapsed(), self.pending_waiters.len());
                }
                self.segment_len += self.pending.len() as u64;
                Ok(start)
            }
            None => {
                if !self.segment_unwritten {
                    self.segment_no += 1;
                }
                // Until this write is synced, the new file holds nothing acknowledged.
                self.segment_unwritten = true;
                let path = self.shared.dir.join(log::segment_name(self.segment_no));
                // Replaces the file a failed attempt left: truncated, none of its pages or
                // write errors carry over to what is written now.
                let mut file = fs.create(&path)?;
                let reader = fs.open_read(&path)?;
                let header = segment_header();
                file.write_all(&header)?;
                file.write_all(&self.pending)?;
                if sync {
                    let took = Stopwatch::start();
                    file.sync_data()?;
                    metric::file_sync(took.elapsed(), self.pending_waiters.len());
                    fs.sync_dir(&self.shared.dir)?;
                }
                self.segment_unwritten = false;
                self.segment_len = (header.len() + self.pending.len()) as u64;
                self.segment = Some(file);
                self.reader = Some(reader);
                Ok(header.len() as u64)
            }
        }
    }

    /// Rewrites the live state as a checkpoint and drops the segments it covers: purged
    /// instances and histories replaced by continue-as-new take no more space.
    pub(crate) fn checkpoint(&mut self) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.shared);
        let mut state: MutexGuard<'_, State> = shared.state();
        // Flush what is queued under the state lock, so the image is exactly the state after
        // the last batch it covers.
        {
            let mut queue = shared.queue();
            self.take(&mut queue);
        }
        if let Some((placed, file)) = self.flush() {
            state.place(placed, &file);
        }
        if let Some(failed) = &self.failed {
            return Err(unavailable(failed));
        }
        let covers = self.next_seq - 1;
        let mut body = checkpoint_header(covers).to_vec();
        let mut n = 0;
        let imaged = state.image(
            |chunk| {
                n += 1;
                let base = (body.len() + FRAME_HEADER) as u64;
                frame(&mut body, n, chunk);
                base
            },
            1 << 20,
        );
        drop(state);
        let imaged = imaged.map_err(|e| {
            StoreError::Unavailable(format!("checkpoint: cannot read a history: {e}"))
        })?;
        // Later batches go to a new segment, so every segment up to this one is covered.
        self.segment = None;
        let last_covered = self.segment_no;
        let io = |action: &str, e: io::Error| {
            StoreError::Unavailable(format!("checkpoint: cannot {action}: {e}"))
        };
        let fs = &shared.fs;
        let dir = &shared.dir;
        let name = log::checkpoint_name(covers);
        let tmp = dir.join(format!("{name}.tmp"));
        let mut file = fs.create(&tmp).map_err(|e| io("create", e))?;
        file.write_all(&body).map_err(|e| io("write", e))?;
        file.sync_data().map_err(|e| io("sync", e))?;
        drop(file);
        fs.rename(&tmp, &dir.join(&name))
            .map_err(|e| io("rename", e))?;
        fs.sync_dir(dir).map_err(|e| io("sync the directory", e))?;
        // Histories are read from the checkpoint from now on, before the segments go.
        let reader = fs.open_read(&dir.join(&name)).map_err(|e| io("open", e))?;
        shared.state().rebase(imaged, &reader);
        for file in fs.list(dir).map_err(|e| io("list", e))? {
            let old = match log::classify(&file) {
                log::FileKind::Segment(n) => n <= last_covered,
                log::FileKind::Checkpoint(c) => c != covers,
                log::FileKind::Temporary => file != format!("{name}.tmp"),
                log::FileKind::Other => false,
            };
            if old {
                fs.remove(&dir.join(&file)).map_err(|e| io("remove", e))?;
            }
        }
        fs.sync_dir(dir).map_err(|e| io("sync the directory", e))?;
        self.since_checkpoint = 0;
        self.checkpoint_size = body.len() as u64;
        tracing::debug!(target: "durable::file_store", covers, bytes = body.len(), "checkpoint written");
        Ok(())
    }
}
