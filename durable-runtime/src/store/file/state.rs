//! The live state: the store engine with histories held as file positions, and what the log
//! and the checkpoints need of it (applying records, placing a turn's events once written,
//! writing and restoring images). An instance keeps its history's length and where its events
//! are in the files; the events of a turn not yet written stay in memory until the writer
//! places them.

use std::io;
use std::sync::Arc;

use foldhash::HashMap;

use super::io::ReadableFile;
use super::record::{nanos, Dec, Enc, Events, InstanceImage, Piece, Record, IMAGE_PIECES};
use crate::history::HistoryEvent;
use crate::instance_id::InstanceId;
use crate::store::engine::{decode, Engine, History, Raw, Woken};
use crate::store::StoreError;

pub(crate) use crate::store::engine::Lsn;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) engine: Engine<Parts>,
    /// The last record's position.
    pub(crate) last_lsn: Lsn,
}

/// Where some of a history's events are.
#[derive(Clone)]
pub(crate) enum Part {
    /// The events of a turn whose record (at `lsn`) the writer has not placed yet.
    Mem { lsn: Lsn, events: Arc<Vec<Raw>> },
    /// `count` events, encoded as strings, in `len` bytes at `offset` of `file`.
    Disk {
        file: ReadableFile,
        offset: u64,
        len: u32,
        count: u32,
    },
}

impl Part {
    fn count(&self) -> u64 {
        match self {
            Part::Mem { events, .. } => events.len() as u64,
            Part::Disk { count, .. } => u64::from(*count),
        }
    }
}

/// Where a history's events are, in order: the file store's side of the engine's
/// [`History`] seam.
pub(crate) struct Parts {
    parts: Vec<Part>,
    len: u64,
    /// The record that began this history (a create, or a continue-as-new): a checkpoint
    /// taken at position `p` images histories begun at or before `p`, and a history begun
    /// after it has a larger position, so [`State::rebase`] can tell them apart.
    generation: Lsn,
}

impl History for Parts {
    type Turn = Option<Part>;

    fn begin(at: Lsn) -> Self {
        Parts {
            parts: Vec::new(),
            len: 0,
            generation: at,
        }
    }

    fn event_count(&self) -> u64 {
        self.len
    }

    fn append_turn(&mut self, turn: Option<Part>) {
        if let Some(part) = turn {
            self.len += part.count();
            self.parts.push(part);
        }
    }
}

/// The file a record or checkpoint batch was read from, and where its payload starts.
pub(crate) struct Source {
    pub(crate) file: ReadableFile,
    pub(crate) base: u64,
}

/// Where the writer placed the events of the turn at `lsn` of `id`.
pub(crate) struct Placed {
    pub(crate) id: InstanceId,
    pub(crate) lsn: Lsn,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) count: u32,
}

/// Where a checkpoint put the first `parts` parts of a history of generation `generation`.
pub(crate) struct Imaged {
    id: InstanceId,
    generation: Lsn,
    parts: usize,
    /// Offsets in the checkpoint file.
    pieces: Vec<Piece>,
    /// The last piece is the image's inline events (relative to the image's chunk until
    /// the chunk is written).
    inline: bool,
}

/// Moves the inline pieces of `imaged` from their chunk to the file offset `base`.
fn offset_inline(imaged: &mut [Imaged], base: u64) {
    for i in imaged.iter_mut().filter(|i| i.inline) {
        if let Some(last) = i.pieces.last_mut() {
            last.offset += base;
        }
    }
}

/// The parts of a history already on disk when a checkpoint begins: the checkpoint copies
/// them without the state lock (they never change), then images the rest under it.
pub(crate) struct OnDisk {
    pub(crate) id: InstanceId,
    pub(crate) generation: Lsn,
    /// The leading `Part::Disk`s of the history.
    pub(crate) parts: Vec<Part>,
}

/// Where a checkpoint copied the parts of an [`OnDisk`].
pub(crate) struct Copied {
    pub(crate) generation: Lsn,
    /// How many leading parts of the history the pieces hold.
    pub(crate) parts: usize,
    /// Offsets in the checkpoint file.
    pub(crate) pieces: Vec<Piece>,
}

fn part(events: Events, lsn: Lsn, source: Option<&Source>) -> Result<Option<Part>, StoreError> {
    Ok(match events {
        Events::Mem(events) if events.is_empty() => None,
        Events::Mem(events) => Some(Part::Mem {
            lsn,
            events: Arc::new(events),
        }),
        Events::At { count: 0, .. } => None,
        Events::At { offset, len, count } => {
            let source = source
                .ok_or_else(|| StoreError::Corrupt("events read back without their file".into()))?;
            Some(Part::Disk {
                file: Arc::clone(&source.file),
                offset: source.base + offset as u64,
                len: len as u32,
                count: count as u32,
            })
        }
    })
}

/// Reads events `from..from + limit` of a history: whole parts before and after that range
/// are skipped without being read.
pub(crate) fn read_history_range(
    parts: &[Part],
    from: u64,
    limit: usize,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let end = from.saturating_add(limit as u64);
    let mut out = Vec::new();
    let mut first = 0u64;
    let mut buf = Vec::new();
    for part in parts {
        let count = part.count();
        let (start, stop) = (first, first + count);
        first = stop;
        if stop <= from {
            continue;
        }
        if start >= end {
            break;
        }
        let wanted = |i: u64| (from..end).contains(&(start + i));
        match part {
            Part::Mem { events, .. } => {
                for (i, event) in events.iter().enumerate() {
                    if wanted(i as u64) {
                        out.push(decode(event)?);
                    }
                }
            }
            Part::Disk {
                file, offset, len, ..
            } => {
                buf.resize(*len as usize, 0);
                file.read_exact_at(&mut buf, *offset)
                    .map_err(|e| StoreError::Unavailable(format!("cannot read a history: {e}")))?;
                let mut d = Dec::new(&buf);
                for i in 0..count {
                    // Events are framed one after another: those before the range are
                    // stepped over, not decoded.
                    let event = d.raw().map_err(StoreError::Corrupt)?;
                    if wanted(i) {
                        out.push(decode(&event)?);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Reads a history's events (from memory and from the page cache or disk).
pub(crate) fn read_history(parts: &[Part]) -> Result<Vec<HistoryEvent>, StoreError> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for part in parts {
        match part {
            Part::Mem { events, .. } => {
                for event in events.iter() {
                    out.push(decode(event)?);
                }
            }
            Part::Disk {
                file,
                offset,
                len,
                count,
            } => {
                buf.resize(*len as usize, 0);
                file.read_exact_at(&mut buf, *offset)
                    .map_err(|e| StoreError::Unavailable(format!("cannot read a history: {e}")))?;
                let mut d = Dec::new(&buf);
                for _ in 0..*count {
                    let event = d.raw().map_err(StoreError::Corrupt)?;
                    out.push(decode(&event)?);
                }
            }
        }
    }
    Ok(out)
}

impl State {
    /// Applies one record: the same code live and on recovery. Live calls have checked it;
    /// on recovery it was checked when first applied, so only a damaged log can make it fail.
    pub(crate) fn apply(
        &mut self,
        record: Record,
        lsn: Lsn,
        source: Option<&Source>,
    ) -> Result<Woken, StoreError> {
        Ok(match record {
            Record::Create(create) => self.engine.create(*create, lsn),
            Record::Send { id, event, at } => self.engine.send(&id, event, at),
            Record::Commit(commit) => {
                let commit = commit.try_map_history(|events| part(events, lsn, source))?;
                self.engine.commit(commit, lsn)?
            }
            Record::Complete { id, seq, event } => self.engine.complete(&id, seq, event),
            Record::Purge { id } => {
                self.engine.purge(&id);
                Woken::default()
            }
        })
    }

    /// Restores one instance from a checkpoint.
    pub(crate) fn restore(
        &mut self,
        image: InstanceImage,
        source: &Source,
    ) -> Result<(), StoreError> {
        let image = image.try_map_history(|imaged| {
            let mut history = Parts::begin(0);
            for piece in imaged.pieces.into_iter().filter(|p| p.count > 0) {
                history.append_turn(Some(Part::Disk {
                    file: Arc::clone(&source.file),
                    offset: piece.offset,
                    len: piece.len,
                    count: piece.count,
                }));
            }
            history.append_turn(part(imaged.inline, 0, Some(source))?);
            Ok::<_, StoreError>(history)
        })?;
        self.engine.restore(image);
        Ok(())
    }

    /// Where an instance's history is and its length, to read part of it without holding
    /// the state.
    pub(crate) fn history_with_len(&self, id: &InstanceId) -> Result<(Vec<Part>, u64), StoreError> {
        let history = self.engine.instance(id)?.history();
        Ok((history.parts.clone(), history.len))
    }

    /// Where an instance's history is, to read it without holding the state.
    pub(crate) fn history(&self, id: &InstanceId) -> Result<Vec<Part>, StoreError> {
        Ok(self.engine.instance(id)?.history().parts.clone())
    }

    /// Records where the writer put turns' events, dropping their copies in memory.
    pub(crate) fn place(&mut self, placed: impl IntoIterator<Item = Placed>, file: &ReadableFile) {
        for p in placed {
            // Not found: the history was replaced or the instance purged meanwhile.
            let Some(history) = self.engine.history_mut(&p.id) else {
                continue;
            };
            if let Some(slot) = history
                .parts
                .iter_mut()
                .find(|part| matches!(part, Part::Mem { lsn, .. } if *lsn == p.lsn))
            {
                *slot = Part::Disk {
                    file: Arc::clone(file),
                    offset: p.offset,
                    len: p.len,
                    count: p.count,
                };
            }
        }
    }

    /// Points histories at the checkpoint that now holds them, so the segments it covers
    /// can go.
    pub(crate) fn rebase(&mut self, imaged: Vec<Imaged>, file: &ReadableFile) {
        for i in imaged {
            let Some(history) = self.engine.history_mut(&i.id) else {
                continue;
            };
            if history.generation != i.generation || history.parts.len() < i.parts {
                continue;
            }
            let pieces = i.pieces.iter().map(|p| Part::Disk {
                file: Arc::clone(file),
                offset: p.offset,
                len: p.len,
                count: p.count,
            });
            history.parts.splice(..i.parts, pieces);
        }
    }

    // ----- checkpoints -------------------------------------------------------------------

    /// The parts of every history already on disk, for a checkpoint to copy without the
    /// state lock: file handles and positions, no bytes.
    pub(crate) fn on_disk(&self) -> Vec<OnDisk> {
        self.engine
            .instances()
            .filter_map(|(id, instance)| {
                let history = instance.history();
                let parts: Vec<Part> = history
                    .parts
                    .iter()
                    .take_while(|p| matches!(p, Part::Disk { .. }))
                    .cloned()
                    .collect();
                (!parts.is_empty()).then(|| OnDisk {
                    id: id.clone(),
                    generation: history.generation,
                    parts,
                })
            })
            .collect()
    }

    /// Encodes every instance's image, calling `chunk` with about `chunk_size` bytes at a
    /// time; `chunk` returns the file offset at which it puts them. A history's parts that
    /// `copied` holds are named by position; the rest are in memory (only the writer moves
    /// events to disk, and it is imaging), and go inline. Reads nothing from disk. Returns
    /// where each history went.
    pub(crate) fn image(
        &self,
        copied: &HashMap<InstanceId, Copied>,
        mut chunk: impl FnMut(&[u8]) -> io::Result<u64>,
        chunk_size: usize,
    ) -> io::Result<Vec<Imaged>> {
        let mut buf = Vec::with_capacity(chunk_size + 4096);
        let mut imaged = Vec::with_capacity(self.engine.instances().len());
        // Those of `imaged` whose inline piece is still relative to `buf`.
        let mut in_buf = 0;
        let no_pieces = Vec::new();
        for (id, instance) in self.engine.instances() {
            let history = instance.history();
            let (pieces, parts) = match copied.get(id) {
                Some(c) if c.generation == history.generation && c.parts <= history.parts.len() => {
                    (&c.pieces, c.parts)
                }
                _ => (&no_pieces, 0),
            };
            let mut e = Enc(&mut buf);
            e.u8(IMAGE_PIECES);
            e.pieces(pieces);
            e.whole_status(instance.status());
            let inline = &history.parts[parts..];
            let count: usize = inline.iter().map(|p| p.count() as usize).sum();
            e.len(count);
            let start = e.0.len();
            for part in inline {
                let Part::Mem { events, .. } = part else {
                    return Err(io::Error::other(
                        "a history has events on disk after events in memory",
                    ));
                };
                for event in events.iter() {
                    e.str(event);
                }
            }
            let len = e.0.len() - start;
            if !history.parts.is_empty() {
                let mut all = pieces.clone();
                if count > 0 {
                    all.push(Piece {
                        offset: start as u64,
                        len: len as u32,
                        count: count as u32,
                    });
                }
                imaged.push(Imaged {
                    id: id.clone(),
                    generation: history.generation,
                    parts: history.parts.len(),
                    pieces: all,
                    inline: count > 0,
                });
            }
            e.len(instance.inbox().len());
            for m in instance.inbox() {
                e.u64(m.id);
                e.opt(m.visible_at.map(nanos));
                e.opt(m.timer);
                e.str(&m.event);
            }
            e.u64(instance.next_message());
            e.pairs(instance.attempts());
            if buf.len() >= chunk_size {
                let base = chunk(&buf)?;
                offset_inline(&mut imaged[in_buf..], base);
                in_buf = imaged.len();
                buf.clear();
            }
        }
        if !buf.is_empty() {
            let base = chunk(&buf)?;
            offset_inline(&mut imaged[in_buf..], base);
        }
        Ok(imaged)
    }
}
