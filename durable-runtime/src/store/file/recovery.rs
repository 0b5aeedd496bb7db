//! Opening a directory: take its lock, load the newest checkpoint, replay the log after it,
//! cut back a torn tail, and refuse (or, when asked, salvage) damage before the tail.

use std::path::{Path, PathBuf};

use super::io::FileSystem;
use super::log::{self, End, FileKind, HeaderError};
use super::record::{Dec, InstanceImage, Record};
use super::state::State;
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
    if let Some(&newest) = checkpoints.last() {
        let path = dir.join(log::checkpoint_name(newest));
        let bytes = fs.read(&path).map_err(io_error("read", &path))?;
        checkpoint_size = bytes.len() as u64;
        covers = log::check_header(&bytes, log::CHECKPOINT_MAGIC, log::CHECKPOINT_HEADER).map_err(
            |e| Damage {
                file: path.clone(),
                offset: 0,
                reason: e.to_string(),
            },
        )?;
        let (batches, end) = log::scan(&bytes, log::CHECKPOINT_HEADER);
        // A checkpoint is renamed into place only once synced: any damage is real damage.
        if let End::Torn { offset, reason } | End::Corrupt { offset, reason } = end {
            let damage = Damage {
                file: path.clone(),
                offset: offset as u64,
                reason,
            };
            if !salvage {
                return Err(damage.into());
            }
            tracing::error!(target: "durable::file_store", file = %damage.file.display(), offset, reason = %damage.reason, "salvage: the checkpoint is damaged; instances stored after this point are lost");
        }
        for batch in batches {
            let mut d = Dec::new(batch.payload);
            while !d.done() {
                let image = InstanceImage::decode(&mut d).map_err(|e| Damage {
                    file: path.clone(),
                    offset: batch.offset as u64,
                    reason: format!("unreadable instance image: {e}"),
                })?;
                state.restore(image);
            }
        }
    }

    let mut expected = covers + 1;
    let mut since_checkpoint = 0;
    let mut salvaged = false;
    let last = segments.last().copied();
    for (index, &n) in segments.iter().enumerate() {
        let path = dir.join(log::segment_name(n));
        let bytes = fs.read(&path).map_err(io_error("read", &path))?;
        let is_last = Some(n) == last;
        let damage = match log::check_header(&bytes, log::SEGMENT_MAGIC, log::SEGMENT_HEADER) {
            Ok(_) => replay_segment(&mut state, &path, &bytes, is_last, &mut expected, fs)?,
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
            Err(e @ HeaderError::BadMagic) => Some(Damage {
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
    Ok(Recovered {
        state,
        next_seq: expected,
        last_segment: last.unwrap_or(0),
        since_checkpoint,
        checkpoint_size,
        salvaged,
    })
}

/// Applies a segment's batches after `expected - 1`; returns the damage that stopped it.
fn replay_segment(
    state: &mut State,
    path: &Path,
    bytes: &[u8],
    is_last: bool,
    expected: &mut u64,
    fs: &dyn FileSystem,
) -> Result<Option<Damage>, OpenError> {
    let (batches, end) = log::scan(bytes, log::SEGMENT_HEADER);
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
        for record in records {
            if let Err(e) = state.apply(record, 0) {
                return Ok(Some(damage(e.to_string())));
            }
        }
        *expected += 1;
    }
    match end {
        End::Clean => Ok(None),
        End::Torn { offset, reason } if is_last => {
            tracing::warn!(target: "durable::file_store", file = %path.display(), offset, dropped_bytes = bytes.len() - offset, %reason, "cutting back a torn tail: a write that was never acknowledged");
            fs.truncate(path, offset as u64)
                .map_err(io_error("truncate", path))?;
            Ok(None)
        }
        // A failed write leaves this behind, and its batches are rewritten to the next
        // segment; if they are not there, the sequence check above reports the gap.
        End::Torn { offset, reason } => {
            tracing::warn!(target: "durable::file_store", file = %path.display(), offset, %reason, "skipping the tail of a segment abandoned after a failed write");
            Ok(None)
        }
        End::Corrupt { offset, reason } => Ok(Some(Damage {
            file: path.to_path_buf(),
            offset: offset as u64,
            reason,
        })),
    }
}
