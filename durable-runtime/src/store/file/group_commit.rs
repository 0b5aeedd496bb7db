//! Group commit: one writer thread takes everything queued since its last fsync as one batch,
//! with no linger timer, so a lone commit pays one fsync and a busy store shares each fsync
//! among all the commits that arrived during the previous one. It also rotates segments,
//! writes checkpoints, and survives failed writes by rewriting to a new segment.

use std::any::Any;
use std::io;
use std::mem;
use std::sync::{Arc, MutexGuard};

use tokio::sync::oneshot;

use foldhash::HashMap;

use super::io::ReadableFile;
use super::log::{self, checkpoint_header, frame, segment_header, FRAME_HEADER};
use super::record::{Enc, Piece, HISTORY};
use super::state::{Copied, Lsn, OnDisk, Part, Placed, State};
use super::{Durability, Shared};
use crate::clock::Stopwatch;
use crate::instance_id::InstanceId;
use crate::metric;
use crate::store::StoreError;

/// Sends the outcome of a write to its caller.
pub(crate) type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// Records applied in memory and waiting for the writer.
#[derive(Default)]
pub(crate) struct Queue {
    /// Encoded records, back to back (see `record`).
    pub(crate) buf: Vec<u8>,
    /// Where in `buf` a batch after the first starts: the writer frames `buf` as one batch
    /// per stretch between these cuts, each at most `max_batch` bytes. Cut between records,
    /// never inside one (a record is never larger than `max_batch`).
    pub(crate) cuts: Vec<usize>,
    /// Where in `buf` the last batch starts (0 or the last cut).
    pub(crate) batch_start: usize,
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
    /// Segments a failed write or fsync left with bytes that may never become durable,
    /// and the length to cut each back to (what was synced). Linux may report a later
    /// fsync as successful after dropping them, while reads still show them: a restart
    /// would replay them, and acknowledge later batches on top of a batch a power cut then
    /// takes away (the simulator found this: a gap in the batches, and a store that no
    /// longer opens). Cut back before anything else is written.
    pub(crate) cut_back: Vec<(u64, u64)>,
    /// Log bytes written since the last checkpoint.
    pub(crate) since_checkpoint: u64,
    pub(crate) checkpoint_size: u64,
    /// After a failed checkpoint: the `since_checkpoint` an automatic retry waits for.
    pub(crate) checkpoint_retry_at: u64,
    /// The directory lock, released when the writer stops.
    pub(crate) _lock: Box<dyn Any + Send + Sync>,
}

/// Whether the writer has something to do.
fn queued(queue: &Queue) -> bool {
    !queue.buf.is_empty() || queue.closing || !queue.checkpoints.is_empty()
}

fn unavailable(message: &str) -> StoreError {
    StoreError::Unavailable(message.to_string())
}

impl Writer {
    /// The writer thread.
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        loop {
            let (checkpoints, closing) = {
                let mut queue = shared.queue();
                loop {
                    if queued(&queue) {
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
            self.round(checkpoints);
            if closing {
                break;
            }
        }
        self.finish();
    }

    /// The writer as a task of the current tokio runtime (`FileStoreOptions::writer_on_task`):
    /// the same rounds, woken by a `Notify`, retrying on the tokio clock.
    pub(crate) async fn run_task(mut self) {
        let shared = Arc::clone(&self.shared);
        loop {
            loop {
                if queued(&shared.queue()) {
                    break;
                }
                if self.failed.is_some() {
                    let retry = self.shared.options.retry_interval;
                    if tokio::time::timeout(retry, shared.wake_task.notified())
                        .await
                        .is_err()
                    {
                        break;
                    }
                } else {
                    shared.wake_task.notified().await;
                }
            }
            let (checkpoints, closing) = {
                let mut queue = shared.queue();
                self.take(&mut queue);
                (mem::take(&mut queue.checkpoints), queue.closing)
            };
            self.round(checkpoints);
            if closing {
                break;
            }
        }
        self.finish();
    }

    /// One round after taking the queue: write and sync it, then checkpoint if asked or due.
    fn round(&mut self, checkpoints: Vec<Waiter>) {
        let shared = Arc::clone(&self.shared);
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
    }

    /// Once the writer stops.
    fn finish(&mut self) {
        // Anything still pending could not be written: say so rather than hang.
        for waiter in self.pending_waiters.drain(..) {
            let _ = waiter.send(Err(unavailable(
                "the store was closed before this write was durable",
            )));
        }
    }

    /// Moves the queued records into framed batches, cut where the queue says (each batch at
    /// most `max_batch` bytes). They are written and synced together, and acknowledged only
    /// once all are durable.
    fn take(&mut self, queue: &mut Queue) {
        if queue.buf.is_empty() {
            return;
        }
        let base = self.pending.len() as u64;
        let mut ends = mem::take(&mut queue.cuts);
        ends.push(queue.buf.len());
        queue.batch_start = 0;
        let mut placed = queue.placed.drain(..).peekable();
        let mut from = 0;
        for (k, to) in ends.into_iter().enumerate() {
            // Batch `k`'s payload follows `k + 1` headers in what this call appends.
            let shift = base + ((k + 1) * FRAME_HEADER) as u64;
            while let Some(mut p) = placed.next_if(|p| p.offset < to as u64) {
                p.offset += shift;
                self.pending_placed.push(p);
            }
            let framed = frame(&mut self.pending, self.next_seq, &queue.buf[from..to]);
            debug_assert!(framed.is_some(), "the queue cuts batches at max_batch");
            self.next_seq += 1;
            from = to;
        }
        queue.buf.clear();
        self.pending_waiters.append(&mut queue.waiters);
        self.pending_watchers.append(&mut queue.watchers);
        self.pending_lsn = queue.last_lsn;
    }

    /// Moves the queued records into a framed batch, an empty one if nothing is queued: a
    /// checkpoint covers exactly the batch it numbered before it began.
    fn take_batch(&mut self, queue: &mut Queue) {
        if queue.buf.is_empty() {
            let _ = frame(&mut self.pending, self.next_seq, &[]);
            self.next_seq += 1;
        } else {
            self.take(queue);
        }
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
                self.must_cut_back(self.segment_no, self.segment_len);
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
                if self.segment_unwritten {
                    // Its header was never synced: an empty file is skipped at open.
                    self.must_cut_back(self.segment_no, 0);
                }
                // At once, so that a restart does not replay them; if it fails, before
                // each retry.
                if let Err(error) = self.cut_back() {
                    tracing::warn!(target: "durable::file_store", %error, "cannot cut back a segment after a failed write; tried again before the next write");
                }
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

    fn must_cut_back(&mut self, segment: u64, len: u64) {
        match self.cut_back.iter_mut().find(|(n, _)| *n == segment) {
            Some(cut) => cut.1 = cut.1.min(len),
            None => self.cut_back.push((segment, len)),
        }
    }

    /// Cuts back the segments failed writes left (see `cut_back`).
    fn cut_back(&mut self) -> io::Result<()> {
        while let Some(&(segment, len)) = self.cut_back.first() {
            let path = self.shared.dir.join(log::segment_name(segment));
            match self.shared.fs.truncate(&path, len) {
                // Never created (its creation failed): nothing to cut.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
            self.cut_back.remove(0);
        }
        Ok(())
    }

    /// Returns the offset in the segment where `pending` starts.
    fn write_pending(&mut self) -> io::Result<u64> {
        if self.segment.is_none() {
            self.cut_back()?;
        }
        let fs = &self.shared.fs;
        let sync = self.shared.options.durability == Durability::Fsync;
        #[cfg(feature = "__mutations")]
        let sync = sync && !crate::store::mutations::ack_before_fsync();
        match &mut self.segment {
            Some(file) => {
                let start = self.segment_len;
                #[cfg(feature = "__mutations")]
                if crate::store::mutations::ack_before_fsync() {
                    // The planted bug: the last batch is synced only now, after its ack.
                    file.sync_data()?;
                }
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
    ///
    /// Streamed, in two passes over the instances, so that memory holds a chunk of about
    /// [`CHUNK`] bytes (or one instance's image, if larger), never the store:
    /// 1. Without the state lock: the history events already on disk (they never change) are
    ///    copied into the checkpoint, in pieces of whole events.
    /// 2. Under the state lock, which reads nothing from disk: the queued records are written
    ///    as one last batch (the one the checkpoint covers), then every instance's image:
    ///    its status, inbox and attempts, its history's pieces by position, and the events
    ///    still in memory inline.
    pub(crate) fn checkpoint(&mut self) -> Result<(), StoreError> {
        // A second try finds the queue holding less than a batch unless writes keep coming
        // faster than 4 GiB per pass over the histories.
        for _ in 0..3 {
            if self.checkpoint_once()? {
                return Ok(());
            }
        }
        Err(unavailable(
            "checkpoint postponed: more than one batch of writes arrived during each of three \
             tries",
        ))
    }

    /// One try of [`checkpoint`](Self::checkpoint); `Ok(false)` if the queue held more than
    /// one batch when it came to write the batch the checkpoint covers (numbered before it
    /// began): those are written, the checkpoint is dropped, and may be tried again.
    fn checkpoint_once(&mut self) -> Result<bool, StoreError> {
        let shared = Arc::clone(&self.shared);
        let io = |action: &str, e: io::Error| {
            StoreError::Unavailable(format!("checkpoint: cannot {action}: {e}"))
        };
        if let Some(failed) = &self.failed {
            return Err(unavailable(failed));
        }
        // The batch pass 2 writes: the last one the checkpoint covers.
        let covers = self.next_seq;
        let fs = &shared.fs;
        let dir = &shared.dir;
        let name = log::checkpoint_name(covers);
        let tmp = dir.join(format!("{name}.tmp"));
        let mut out = Chunked {
            file: fs.create(&tmp).map_err(|e| io("create", e))?,
            written: 0,
            batches: 0,
        };
        out.write(&checkpoint_header(covers))
            .map_err(|e| io("write", e))?;

        // Pass 1: the histories' events on disk, copied without the state lock.
        let on_disk = shared.state().on_disk();
        let copied = copy_histories(&mut out, on_disk).map_err(|e| io("copy a history", e))?;

        // Pass 2: the state as of the batch `covers`, under the state lock.
        let state: MutexGuard<'_, State> = shared.state();
        {
            let mut queue = shared.queue();
            self.take_batch(&mut queue);
        }
        // Placed only after imaging: until then, every event after the copied ones is in
        // memory, and imaging reads nothing from disk.
        let placed = self.flush();
        if let Some(failed) = &self.failed {
            drop(state);
            return Err(unavailable(failed));
        }
        if self.next_seq != covers + 1 {
            // Written as several batches: the image would hold batches after `covers`, which
            // a recovery from it would replay a second time.
            drop(state);
            if let Some((placed, file)) = placed {
                shared.state().place(placed, &file);
            }
            drop(out);
            let _ = fs.remove(&tmp);
            return Ok(false);
        }
        let imaged = state.image(&copied, |chunk| out.batch(chunk), CHUNK);
        drop(state);
        drop(copied);
        if let Some((placed, file)) = placed {
            shared.state().place(placed, &file);
        }
        let imaged = imaged.map_err(|e| io("write", e))?;
        // Later batches go to a new segment, so every segment up to this one is covered.
        self.segment = None;
        let last_covered = self.segment_no;
        let mut file = out.file;
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
        self.checkpoint_size = out.written;
        tracing::debug!(target: "durable::file_store", covers, bytes = out.written, "checkpoint written");
        Ok(true)
    }
}

/// About how many bytes a checkpoint writes at a time (a batch of its file).
pub(crate) const CHUNK: usize = 1 << 20;

/// A checkpoint file being written, batch by batch.
struct Chunked {
    file: Box<dyn super::io::WritableFile>,
    written: u64,
    batches: u64,
}

impl Chunked {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes `payload` as the next batch; returns the file offset of its first byte.
    fn batch(&mut self, payload: &[u8]) -> io::Result<u64> {
        let header = log::frame_header(self.batches + 1, payload).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a checkpoint batch of {} bytes is larger than a batch of the on-disk \
                     format can be ({} bytes): an instance this large cannot be checkpointed, \
                     and stays in the log",
                    payload.len(),
                    log::MAX_BATCH
                ),
            )
        })?;
        self.batches += 1;
        self.write(&header)?;
        let at = self.written;
        self.write(payload)?;
        Ok(at)
    }
}

/// Copies the events of `on_disk` into `out` as `HISTORY` records, reading at most about
/// [`CHUNK`] bytes at a time (or one event, if larger), and cutting pieces at event
/// boundaries. Returns where each history's pieces went.
fn copy_histories(
    out: &mut Chunked,
    on_disk: Vec<OnDisk>,
) -> io::Result<HashMap<InstanceId, Copied>> {
    let mut copier = Copier {
        out,
        batch: Vec::with_capacity(CHUNK + 4096),
        in_batch: Vec::new(),
        copied: HashMap::default(),
    };
    let mut read = Vec::new();
    for OnDisk {
        id,
        generation,
        parts,
    } in on_disk
    {
        copier.copied.insert(
            id.clone(),
            Copied {
                generation,
                parts: parts.len(),
                pieces: Vec::new(),
            },
        );
        for part in &parts {
            let Part::Disk {
                file,
                offset,
                len,
                count,
            } = part
            else {
                continue;
            };
            let (mut at, end) = (*offset, *offset + u64::from(*len));
            let mut events = 0u64;
            while at < end {
                // Whole events, up to about CHUNK bytes.
                read.resize(((end - at) as usize).min(CHUNK), 0);
                file.read_exact_at(&mut read, at)?;
                let (mut used, mut n) = (0, 0u32);
                while let Some(size) = event_size(&read[used..]) {
                    if used + size > read.len() {
                        break;
                    }
                    used += size;
                    n += 1;
                }
                if n == 0 {
                    // One event larger than a chunk: read it whole.
                    let size = event_size(&read)
                        .filter(|size| at + *size as u64 <= end)
                        .ok_or_else(|| io::Error::other("a history's events are damaged"))?;
                    read.resize(size, 0);
                    file.read_exact_at(&mut read, at)?;
                    (used, n) = (size, 1);
                }
                copier.piece(&id, &read[..used], n)?;
                at += used as u64;
                events += u64::from(n);
            }
            if events != u64::from(*count) {
                return Err(io::Error::other(format!(
                    "a history part holds {events} events, the state says {count}"
                )));
            }
        }
    }
    copier.flush()?;
    Ok(copier.copied)
}

/// The size of the encoded event `bytes` starts with (its `u32` length and its text).
fn event_size(bytes: &[u8]) -> Option<usize> {
    let len = bytes.get(..4)?;
    Some(4 + u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize)
}

/// Pass 1 of a checkpoint: history pieces gathered into batches.
struct Copier<'a> {
    out: &'a mut Chunked,
    batch: Vec<u8>,
    /// The copies whose pieces from the given one on are still relative to `batch`.
    in_batch: Vec<(InstanceId, usize)>,
    copied: HashMap<InstanceId, Copied>,
}

impl Copier<'_> {
    fn piece(&mut self, id: &InstanceId, events: &[u8], count: u32) -> io::Result<()> {
        let mut e = Enc(&mut self.batch);
        e.u8(HISTORY);
        e.len(events.len());
        let piece = Piece {
            offset: e.0.len() as u64,
            len: events.len() as u32,
            count,
        };
        e.0.extend_from_slice(events);
        let copy = self.copied.get_mut(id).expect("inserted before its pieces");
        if self.in_batch.last().is_none_or(|(last, _)| last != id) {
            self.in_batch.push((id.clone(), copy.pieces.len()));
        }
        copy.pieces.push(piece);
        if self.batch.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let base = self.out.batch(&self.batch)?;
        for (id, first) in self.in_batch.drain(..) {
            if let Some(copy) = self.copied.get_mut(&id) {
                for piece in &mut copy.pieces[first..] {
                    piece.offset += base;
                }
            }
        }
        self.batch.clear();
        Ok(())
    }
}
