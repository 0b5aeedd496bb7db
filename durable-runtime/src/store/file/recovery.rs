//! Opening a directory: load the newest checkpoint, replay the log after it, cut back a torn
//! tail (keeping what was cut), and refuse (or, when asked, salvage) damage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::io::FileSystem;
use super::log::{self, End, FileKind, HeaderError};
use super::record::{CheckpointRecord, Dec, Record};
use super::state::{Source, State};
use super::OpenError;

pub(crate) struct Recovered {
    pub(crate) state: State,
    pub(crate) next_seq: u64,
    pub(crate) last_segment: u64,
    pub(crate) since_checkpoint: u64,
    pub(crate) checkpoint_size: u64,
    /// Damage was skipped: the caller writes a checkpoint before taking work, so the state no
    /// longer depends on the files set aside.
    pub(crate) salvaged: bool,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpenError {
    let path = path.to_path_buf();
    move |source| OpenError::Io {
        action,
        path,
        source,
    }
}

/// Damage at `offset` of `file`.
struct Damage {
    file: PathBuf,
    offset: u64,
    reason: String,
}

impl From<Damage> for OpenError {
    fn from(d: Damage) -> Self {
        OpenError::Corrupt {
            file: d.file,
            offset: d.offset,
            reason: d.reason,
        }
    }
}

/// Parses every record of a batch before applying any: a batch is applied all or nothing.
fn parse(payload: &[u8]) -> Result<Vec<Record>, String> {
    let mut d = Dec::new(payload);
    let mut records = Vec::new();
    while !d.done() {
        records.push(Record::decode(&mut d).map_err(|e| {
            format!("a batch with a valid checksum holds an unreadable record: {e}")
        })?);
    }
    Ok(records)
}

pub(crate) fn recover(
    fs: &dyn FileSystem,
    dir: &Path,
    salvage: bool,
) -> Result<Recovered, OpenError> {
    let names = fs.list(dir).map_err(io_error("list", dir))?;
    let mut segments = Vec::new();
    let mut checkpoints = Vec::new();
    for name in names {
        match log::classify(&name) {
            FileKind::Segment(n) => segments.push(n),
            FileKind::Checkpoint(c) => checkpoints.push(c),
            // A checkpoint that was never renamed into place: it covers nothing.
            FileKind::Temporary => {
                let path = dir.join(&name);
                fs.remove(&path).map_err(io_error("remove", &path))?;
            }
            FileKind::Other => {}
        }
    }
    segments.sort_unstable();
    checkpoints.sort_unstable();

    let mut state = State::default();
    let mut covers = 0;
    let mut checkpoint_size = 0;
    let mut salvaged = false;
    if let Some(&newest) = checkpoints.last() {
        let path = dir.join(log::checkpoint_name(newest));
        covers = newest;
        // A checkpoint is renamed into place only once synced: any damage is real damage.
        let damage = match load_checkpoint(&mut state, fs, &path, newest) {
            Ok(size) => {
                checkpoint_size = size;
                None
            }
            Err(Loaded::Fatal(error)) => return Err(error),
            Err(Loaded::Damaged(damage)) => Some(damage),
        };
        if let Some(damage) = damage {
            if !salvage {
                return Err(damage.into());
            }
            tracing::error!(target: "durable::file_store", file = %damage.file.display(), offset = damage.offset, reason = %damage.reason, "salvage: the checkpoint is damaged; instances stored after this point are lost; a copy is kept as *.damaged");
            let bytes = fs.read(&path).map_err(io_error("read", &path))?;
            checkpoint_size = bytes.len() as u64;
            keep_copy(fs, dir, &path, &bytes, "damaged")?;
            salvaged = true;
        }
    }

    let mut expected = covers + 1;
    let mut since_checkpoint = 0;
    let last = segments.last().copied();
    for (index, &n) in segments.iter().enumerate() {
        let path = dir.join(log::segment_name(n));
        let bytes = fs.read(&path).map_err(io_error("read", &path))?;
        let is_last = Some(n) == last;
        let damage = match log::check_header(&bytes, log::SEGMENT_MAGIC, log::SEGMENT_HEADER) {
            Ok(header) => {
                let segment = Segment {
                    path: &path,
                    bytes: &bytes,
                    framing: header.framing,
                    is_last,
                };
                replay_segment(&mut state, fs, dir, segment, &mut expected)?
            }
            // Created but never written: a crash or a failed write at rotation.
            Err(HeaderError::Short) => {
                tracing::warn!(target: "durable::file_store", file = %path.display(), "ignoring a segment cut short before its header");
                None
            }
            Err(e @ HeaderError::NewerVersion(_)) => {
                return Err(Damage {
                    file: path,
                    offset: 0,
                    reason: e.to_string(),
                }
                .into())
            }
            Err(e) => Some(Damage {
                file: path.clone(),
                offset: 0,
                reason: e.to_string(),
            }),
        };
        since_checkpoint += bytes.len() as u64;
        if let Some(damage) = damage {
            if !salvage {
                return Err(damage.into());
            }
            tracing::error!(target: "durable::file_store", file = %damage.file.display(), offset = damage.offset, reason = %damage.reason, "salvage: keeping everything before the damage; this and later segments are renamed to *.damaged");
            for &later in &segments[index..] {
                let from = dir.join(log::segment_name(later));
                let to = dir.join(format!("{}.damaged", log::segment_name(later)));
                fs.rename(&from, &to).map_err(io_error("rename", &from))?;
            }
            fs.sync_dir(dir).map_err(io_error("sync", dir))?;
            salvaged = true;
            break;
        }
    }
    // The entries of the files replayed, for the same reason (a segment created just before
    // the kill may not be in the directory for good yet).
    fs.sync_dir(dir).map_err(io_error("sync", dir))?;
    Ok(Recovered {
        state,
        next_seq: expected,
        last_segment: last.unwrap_or(0),
        since_checkpoint,
        checkpoint_size,
        salvaged,
    })
}

/// Why a checkpoint could not be loaded.
enum Loaded {
    /// Not damage: salvage cannot help.
    Fatal(OpenError),
    /// What was read before the damage stays loaded (for salvage).
    Damaged(Damage),
}

impl From<Damage> for Loaded {
    fn from(damage: Damage) -> Self {
        Loaded::Damaged(damage)
    }
}

/// Restores the instances of the checkpoint at `path` (named as covering `covers`), reading
/// it a batch at a time; returns its size.
fn load_checkpoint(
    state: &mut State,
    fs: &dyn FileSystem,
    path: &Path,
    covers: u64,
) -> Result<u64, Loaded> {
    let damage = |offset: usize, reason: String| Damage {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let fatal = |action| {
        let error = io_error(action, path);
        move |e| Loaded::Fatal(error(e))
    };
    let file = fs.open_read(path).map_err(fatal("open"))?;
    let mut header = [0; log::CHECKPOINT_HEADER];
    let n = log::read_full(&*file, 0, &mut header).map_err(fatal("read"))?;
    let header =
        match log::check_header(&header[..n], log::CHECKPOINT_MAGIC, log::CHECKPOINT_HEADER) {
            Ok(header) => header,
            Err(e @ HeaderError::NewerVersion(_)) => {
                return Err(Loaded::Fatal(damage(0, e.to_string()).into()))
            }
            Err(e) => return Err(damage(0, e.to_string()).into()),
        };
    if header.covers != covers {
        return Err(damage(
            0,
            format!(
                "the header says the checkpoint covers batches up to {}, its name says {covers}",
                header.covers
            ),
        )
        .into());
    }
    let mut restore = |batch: log::Batch<'_>| -> Result<(), Damage> {
        let source = Source {
            file: Arc::clone(&file),
            base: batch.body as u64,
        };
        let mut d = Dec::new(batch.payload);
        while !d.done() {
            let record = CheckpointRecord::decode(&mut d, batch.body as u64)
                .map_err(|e| damage(batch.offset, format!("unreadable instance image: {e}")))?;
            if let CheckpointRecord::Image(image) = record {
                state
                    .restore(*image, &source)
                    .map_err(|e| damage(batch.offset, e.to_string()))?;
            }
        }
        Ok(())
    };
    let (end, size) = match header.framing {
        // Format 1 (an upgrade's first open): read whole, as it was written.
        log::Framing::V1 => {
            let bytes = fs.read(path).map_err(fatal("read"))?;
            let (batches, end) = log::scan(&bytes, log::CHECKPOINT_HEADER, header.framing);
            for batch in batches {
                restore(batch)?;
            }
            (end, bytes.len() as u64)
        }
        log::Framing::V2 => {
            match log::stream(&*file, log::CHECKPOINT_HEADER as u64, &mut restore) {
                Ok(ended) => ended,
                Err(log::Stop::Io(e)) => return Err(fatal("read")(e)),
                Err(log::Stop::Batch(damage)) => return Err(damage.into()),
            }
        }
    };
    match end {
        End::Clean => Ok(size),
        // Complete before it was renamed into place: a torn checkpoint is damaged too.
        End::Torn { offset, reason } | End::Corrupt { offset, reason } => {
            Err(damage(offset, reason).into())
        }
    }
}

/// Writes a synced copy of `bytes` beside `path`, as `<name>.<suffix>`.
fn keep_copy(
    fs: &dyn FileSystem,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    suffix: &str,
) -> Result<PathBuf, OpenError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    let copy = dir.join(name);
    let mut file = fs.create(&copy).map_err(io_error("create", &copy))?;
    file.write_all(bytes).map_err(io_error("write", &copy))?;
    file.sync_data().map_err(io_error("sync", &copy))?;
    fs.sync_dir(dir).map_err(io_error("sync", dir))?;
    Ok(copy)
}

/// Syncs a segment replayed whole (`FileSystem::truncate` to its own length syncs it). A
/// process killed between a write and its fsync leaves batches in the page cache that
/// were never synced: recovery replays them, and the batches acknowledged after the restart
/// build on them, so they must not be lost to a power cut that keeps the later ones (the
/// simulator found this: a gap in the batches, and a store that no longer opens).
fn make_durable(fs: &dyn FileSystem, path: &Path, len: usize) -> Result<(), OpenError> {
    fs.truncate(path, len as u64)
        .map_err(io_error("sync", path))
}

/// A segment being replayed.
struct Segment<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    framing: log::Framing,
    is_last: bool,
}

/// Applies a segment's batches after `expected - 1`; returns the damage that stopped it.
fn replay_segment(
    state: &mut State,
    fs: &dyn FileSystem,
    dir: &Path,
    segment: Segment<'_>,
    expected: &mut u64,
) -> Result<Option<Damage>, OpenError> {
    let Segment {
        path,
        bytes,
        framing,
        is_last,
    } = segment;
    let file = fs.open_read(path).map_err(io_error("open", path))?;
    let (batches, end) = log::scan(bytes, log::SEGMENT_HEADER, framing);
    for batch in batches {
        let damage = |reason: String| Damage {
            file: path.to_path_buf(),
            offset: batch.offset as u64,
            reason,
        };
        if batch.seq < *expected {
            // Covered by the checkpoint, or written twice around a failed write.
            continue;
        }
        if batch.seq > *expected {
            return Ok(Some(damage(format!(
                "batch {} follows batch {}: the batches between are missing",
                batch.seq,
                *expected - 1
            ))));
        }
        let records = match parse(batch.payload) {
            Ok(records) => records,
            Err(reason) => return Ok(Some(damage(reason))),
        };
        let source = Source {
            file: Arc::clone(&file),
            base: batch.body as u64,
        };
        for record in records {
            if let Err(e) = state.apply(record, 0, Some(&source)) {
                return Ok(Some(damage(e.to_string())));
            }
        }
        *expected += 1;
    }
    match end {
        End::Clean => {
            make_durable(fs, path, bytes.len())?;
            Ok(None)
        }
        End::Torn { offset, reason } if is_last => {
            let tail = &bytes[offset..];
            // Never acknowledged, but kept for inspection unless it holds nothing.
            let kept = if tail.iter().any(|b| *b != 0) {
                Some(keep_copy(fs, dir, path, tail, "torn")?)
            } else {
                None
            };
            tracing::warn!(target: "durable::file_store", file = %path.display(), offset, cut_bytes = tail.len(), kept = ?kept, %reason, "cutting back a torn tail: a write that was never acknowledged");
            fs.truncate(path, offset as u64)
                .map_err(io_error("truncate", path))?;
            Ok(None)
        }
        // A failed write leaves this behind, and its batches are rewritten to the next
        // segment; if they are not there, the sequence check above reports the gap.
        End::Torn { offset, reason } => {
            tracing::warn!(target: "durable::file_store", file = %path.display(), offset, %reason, "skipping the tail of a segment abandoned after a failed write");
            make_durable(fs, path, bytes.len())?;
            Ok(None)
        }
        End::Corrupt { offset, reason } => Ok(Some(Damage {
            file: path.to_path_buf(),
            offset: offset as u64,
            reason,
        })),
    }
}
