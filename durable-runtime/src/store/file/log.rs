//! The on-disk framing: file names, file headers, and commit batches carrying their length,
//! sequence number and CRC-32 checksums (crc32fast).
//!
//! Format 4 (written) frames files as format 2 does; its checkpoints may hold history events
//! in `HISTORY` records that the instance images after them name by position (see `record`),
//! so that a checkpoint is written, and read back, a batch at a time.
//!
//! Format 2 (read): a segment is `SEGMENT_MAGIC`, the format version (u32 LE) and a CRC of
//! those 12 bytes, then batches. A batch is `header_crc: u32 LE` over the next 16 bytes,
//! `len: u32 LE`, `seq: u64 LE`, `crc: u32 LE` over the payload, then `len` bytes of records
//! (see `record`). A checkpoint has the same shape with `CHECKPOINT_MAGIC`, and after the
//! header CRC the last batch sequence number it covers (u64 LE), which the header CRC also
//! covers; its batches are numbered from 1. Every later format keeps the header CRC where it
//! is, so a damaged version number is told from a newer one.
//!
//! Format 1 (read only): the header's CRC bytes are zero, and a batch is `len`, `crc` over
//! `seq` and the payload, then `seq`: its length is not checksummed.
//!
//! A batch's checksummed header is what tells a torn tail from damage: a write cut short
//! leaves a prefix of what was written, so the last batch of a file may end early (its header
//! cut, or its header saying it is longer than what is left), or be followed by zeros a file
//! system allocated but never filled. A header or a complete batch whose checksum fails
//! cannot come from a cut-short write: it is damage.

use std::fmt;
use std::os::unix::fs::FileExt;

/// The version of the on-disk format this release writes. It reads every earlier one.
///
/// There is no format 3: one flipped bit turns 3 into 1, whose headers carry no checksum,
/// while no single flip turns 4 into 1 (or 0 into a version whose header is checked).
pub const DISK_FORMAT_VERSION: u32 = 4;

pub(crate) const LOCK_FILE: &str = "LOCK";
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"DURWAL\0\0";
pub(crate) const CHECKPOINT_MAGIC: &[u8; 8] = b"DURCKPT\0";
pub(crate) const SEGMENT_HEADER: usize = 16;
pub(crate) const CHECKPOINT_HEADER: usize = 24;
/// The size of the batch header this release writes.
pub(crate) const FRAME_HEADER: usize = 20;
/// The largest payload a batch can hold: its length is a `u32`. The writer cuts what it
/// writes into batches of at most this much (or less, see `FileStoreOptions::max_batch`),
/// and refuses a record that alone is larger.
pub(crate) const MAX_BATCH: usize = u32::MAX as usize;

/// How a file's batches are framed, by the file's format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Format 1: `len`, `crc` over `seq` and the payload, `seq`.
    V1,
    /// Format 2: `header_crc`, `len`, `seq`, `crc` over the payload.
    V2,
}

impl Framing {
    const fn header_len(self) -> usize {
        match self {
            Framing::V1 => 16,
            Framing::V2 => FRAME_HEADER,
        }
    }
}

/// The name of segment `n`.
pub(crate) fn segment_name(n: u64) -> String {
    format!("wal-{n:020}.log")
}

/// The name of the checkpoint covering batches up to `seq`.
pub(crate) fn checkpoint_name(seq: u64) -> String {
    format!("checkpoint-{seq:020}.ckpt")
}

/// What a store file name says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileKind {
    Segment(u64),
    Checkpoint(u64),
    Temporary,
    Other,
}

pub(crate) fn classify(name: &str) -> FileKind {
    let number = |s: &str| s.parse::<u64>().ok();
    if name.ends_with(".tmp") {
        return FileKind::Temporary;
    }
    if let Some(n) = name
        .strip_prefix("wal-")
        .and_then(|s| s.strip_suffix(".log"))
        .and_then(number)
    {
        return FileKind::Segment(n);
    }
    if let Some(n) = name
        .strip_prefix("checkpoint-")
        .and_then(|s| s.strip_suffix(".ckpt"))
        .and_then(number)
    {
        return FileKind::Checkpoint(n);
    }
    FileKind::Other
}

/// The CRC of a file header: its first 12 bytes and whatever follows the CRC's 4 bytes.
fn header_crc(header: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..12]);
    hasher.update(&header[16..]);
    hasher.finalize()
}

fn seal<const N: usize>(mut header: [u8; N]) -> [u8; N] {
    let crc = header_crc(&header);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header
}

pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER] {
    let mut header = [0; SEGMENT_HEADER];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&DISK_FORMAT_VERSION.to_le_bytes());
    seal(header)
}

pub(crate) fn checkpoint_header(covers: u64) -> [u8; CHECKPOINT_HEADER] {
    let mut header = [0; CHECKPOINT_HEADER];
    header[..8].copy_from_slice(CHECKPOINT_MAGIC);
    header[8..12].copy_from_slice(&DISK_FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&covers.to_le_bytes());
    seal(header)
}

/// Appends one framed batch to `out`; `None`, with nothing appended, if `payload` is larger
/// than [`MAX_BATCH`].
#[must_use]
pub(crate) fn frame(out: &mut Vec<u8>, seq: u64, payload: &[u8]) -> Option<()> {
    out.extend_from_slice(&frame_header(seq, payload)?);
    out.extend_from_slice(payload);
    Some(())
}

/// The header of a batch numbered `seq` holding `payload`; `None` if `payload` is larger than
/// [`MAX_BATCH`], which no batch can be.
pub(crate) fn frame_header(seq: u64, payload: &[u8]) -> Option<[u8; FRAME_HEADER]> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut header = [0; FRAME_HEADER];
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    header[16..20].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let crc = crc32fast::hash(&header[4..]);
    header[..4].copy_from_slice(&crc.to_le_bytes());
    Some(header)
}

/// A header problem: the file is not one of ours, damaged, or from a newer release.
#[derive(Debug)]
pub(crate) enum HeaderError {
    /// Shorter than a header: a file whose creation was cut short.
    Short,
    BadMagic,
    Damaged {
        stored: u32,
        computed: u32,
    },
    UnknownVersion(u32),
    NewerVersion(u32),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => f.write_str("the file is shorter than its header"),
            HeaderError::BadMagic => f.write_str("the file does not start with a durable header"),
            HeaderError::Damaged { stored, computed } => write!(
                f,
                "the file header's checksum does not match (stored {stored:08x}, computed {computed:08x})"
            ),
            HeaderError::UnknownVersion(v) => {
                write!(f, "the file header names on-disk format {v}, which never existed")
            }
            HeaderError::NewerVersion(v) => write!(
                f,
                "the file has on-disk format version {v}; this release reads up to {DISK_FORMAT_VERSION}: upgrade durable"
            ),
        }
    }
}

/// What a valid file header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub(crate) framing: Framing,
    /// The last batch a checkpoint covers (0 for segments).
    pub(crate) covers: u64,
}

/// Checks a file header of `len` bytes starting with `magic`.
pub(crate) fn check_header(
    bytes: &[u8],
    magic: &[u8; 8],
    len: usize,
) -> Result<FileHeader, HeaderError> {
    if bytes.len() < len {
        return Err(HeaderError::Short);
    }
    let header = &bytes[..len];
    if &header[..8] != magic {
        return Err(HeaderError::BadMagic);
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let framing = match version {
        0 => return Err(HeaderError::UnknownVersion(0)),
        1 => Framing::V1,
        // From format 2 on, the header's CRC is checked before its version is believed.
        _ => {
            let stored = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
            let computed = header_crc(header);
            if stored != computed {
                return Err(HeaderError::Damaged { stored, computed });
            }
            if version > DISK_FORMAT_VERSION {
                return Err(HeaderError::NewerVersion(version));
            }
            Framing::V2
        }
    };
    let covers = match header.get(16..24) {
        Some(covers) => u64::from_le_bytes(covers.try_into().expect("8 bytes")),
        None => 0,
    };
    Ok(FileHeader { framing, covers })
}

/// One intact batch found by [`scan`].
pub(crate) struct Batch<'a> {
    /// Where its header starts in the file.
    pub(crate) offset: usize,
    /// Where its payload starts in the file.
    pub(crate) body: usize,
    pub(crate) seq: u64,
    pub(crate) payload: &'a [u8],
}

/// How a file's batches end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte belongs to an intact batch.
    Clean,
    /// From `offset` on, an incomplete batch or zeros: a write cut short.
    Torn { offset: usize, reason: String },
    /// A damaged batch at `offset`: not explained by a cut-short write.
    Corrupt { offset: usize, reason: String },
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the batches of a file from `start`, stopping at the first one that is not intact.
pub(crate) fn scan(bytes: &[u8], start: usize, framing: Framing) -> (Vec<Batch<'_>>, End) {
    let header = framing.header_len();
    let mut batches = Vec::new();
    let mut at = start;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let checked = match framing {
            Framing::V1 => check_v1(rest),
            Framing::V2 => check_v2(rest),
        };
        match checked {
            Ok((seq, len)) => {
                batches.push(Batch {
                    offset: at,
                    body: at + header,
                    seq,
                    payload: &rest[header..header + len],
                });
                at += header + len;
            }
            Err(Bad::Torn(reason)) => return (batches, End::Torn { offset: at, reason }),
            Err(Bad::Corrupt(reason)) => return (batches, End::Corrupt { offset: at, reason }),
        }
    }
    (batches, End::Clean)
}

/// Why [`stream`] stopped before the end of the batches.
pub(crate) enum Stop<E> {
    /// Reading the file failed.
    Io(std::io::Error),
    /// The caller's function refused a batch.
    Batch(E),
}

/// Reads as much of `buf` as the file holds from `at`; returns how much it read.
pub(crate) fn read_full(file: &dyn FileExt, at: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// [`scan`] for a format-2 file read from `file` one batch at a time: `each` sees every
/// intact batch from `start` in order, and memory holds one batch, never the whole file.
/// Returns how the batches end and where reading stopped.
pub(crate) fn stream<E>(
    file: &dyn FileExt,
    start: u64,
    mut each: impl FnMut(Batch<'_>) -> Result<(), E>,
) -> Result<(End, u64), Stop<E>> {
    let mut header = [0; FRAME_HEADER];
    let mut payload = Vec::new();
    let mut at = start;
    loop {
        let offset = at as usize;
        let n = read_full(file, at, &mut header).map_err(Stop::Io)?;
        if n == 0 {
            return Ok((End::Clean, at));
        }
        let (seq, len) = match check_v2_header(&header[..n]) {
            Ok(checked) => checked,
            Err(Bad::Torn(reason)) => return Ok((End::Torn { offset, reason }, at)),
            Err(Bad::Corrupt(reason)) => return Ok((End::Corrupt { offset, reason }, at)),
        };
        // The header's checksum held: `len` is what was written.
        payload.resize(len, 0);
        let got = read_full(file, at + FRAME_HEADER as u64, &mut payload).map_err(Stop::Io)?;
        if got < len {
            let reason = format!(
                "a batch of {len} bytes cut short by the end of the file after {got} bytes"
            );
            return Ok((End::Torn { offset, reason }, at));
        }
        if let Err(Bad::Corrupt(reason) | Bad::Torn(reason)) = check_payload(&header, &payload) {
            return Ok((End::Corrupt { offset, reason }, at));
        }
        each(Batch {
            offset,
            body: offset + FRAME_HEADER,
            seq,
            payload: &payload,
        })
        .map_err(Stop::Batch)?;
        at += (FRAME_HEADER + len) as u64;
    }
}

/// Why the batch at the start of a file's rest is not intact.
enum Bad {
    Torn(String),
    Corrupt(String),
}

fn zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

/// Checks the format-2 batch `rest` starts with; returns its sequence number and length.
fn check_v2(rest: &[u8]) -> Result<(u64, usize), Bad> {
    let (seq, len) = check_v2_header(rest)?;
    let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Err(Bad::Torn(format!(
            "a batch of {len} bytes cut short by the end of the file after {} bytes",
            rest.len() - FRAME_HEADER
        )));
    };
    check_payload(rest, payload)?;
    Ok((seq, len))
}

fn check_payload(header: &[u8], payload: &[u8]) -> Result<(), Bad> {
    let stored = u32_at(header, 16);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(Bad::Corrupt(format!(
            "the batch's checksum does not match (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    Ok(())
}

/// Checks the header of the format-2 batch `rest` starts with.
fn check_v2_header(rest: &[u8]) -> Result<(u64, usize), Bad> {
    if rest.len() < FRAME_HEADER {
        return Err(Bad::Torn(
            "a batch header cut short by the end of the file".into(),
        ));
    }
    let stored = u32_at(rest, 0);
    let computed = crc32fast::hash(&rest[4..FRAME_HEADER]);
    if stored != computed {
        if zeros(rest) {
            return Err(Bad::Torn(
                "zeros to the end of the file: space allocated but never written".into(),
            ));
        }
        return Err(Bad::Corrupt(format!(
            "the batch header's checksum does not match (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    Ok((u64_at(rest, 8), u32_at(rest, 4) as usize))
}

/// Checks the format-1 batch `rest` starts with. Its length is not checksummed, so a batch
/// reaching past the end of the file is a torn tail only if no intact batch follows it.
fn check_v1(rest: &[u8]) -> Result<(u64, usize), Bad> {
    const HEADER: usize = Framing::V1.header_len();
    if rest.len() < HEADER {
        return Err(Bad::Torn("an incomplete batch header".into()));
    }
    let len = u32_at(rest, 0) as usize;
    let seq = u64_at(rest, 8);
    let end = HEADER + len;
    if len == 0 || end > rest.len() {
        // Zeros are space the file system allocated but never filled.
        if len == 0 && !zeros(rest) {
            return Err(Bad::Corrupt(
                "a batch with length zero followed by data".into(),
            ));
        }
        if len > 0 && intact_v1_batch_follows(rest, seq) {
            return Err(Bad::Corrupt(
                "a batch whose length reaches past the end of the file, followed by an intact batch: its length is damaged".into(),
            ));
        }
        return Err(Bad::Torn("a batch cut short by the end of the file".into()));
    }
    let stored = u32_at(rest, 4);
    let computed = crc32fast::hash(&rest[8..end]);
    if stored != computed {
        if zeros(&rest[end..]) {
            return Err(Bad::Torn(
                "the last batch's checksum does not match (a write cut short)".into(),
            ));
        }
        return Err(Bad::Corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    Ok((seq, len))
}

/// Whether an intact format-1 batch numbered `seq + 1` starts somewhere in `rest` after the
/// batch header at its start.
fn intact_v1_batch_follows(rest: &[u8], seq: u64) -> bool {
    let next = (seq.wrapping_add(1)).to_le_bytes();
    (16..rest.len().saturating_sub(15)).any(|at| {
        rest[at + 8..at + 16] == next && {
            let end = at + 16 + u32_at(rest, at) as usize;
            end <= rest.len() && crc32fast::hash(&rest[at + 8..end]) == u32_at(rest, at + 4)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(batches: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = segment_header().to_vec();
        for (seq, payload) in batches {
            frame(&mut out, *seq, payload).unwrap();
        }
        out
    }

    fn scan_segment(bytes: &[u8]) -> (Vec<Batch<'_>>, End) {
        let header = check_header(bytes, SEGMENT_MAGIC, SEGMENT_HEADER).unwrap();
        assert_eq!(header.framing, Framing::V2);
        scan(bytes, SEGMENT_HEADER, header.framing)
    }

    #[test]
    fn intact_batches_scan_clean() {
        let bytes = file(&[(1, b"a"), (2, b"bc")]);
        let (batches, end) = scan_segment(&bytes);
        assert_eq!(end, End::Clean);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].payload, b"bc");
        assert_eq!(batches[1].body, batches[1].offset + FRAME_HEADER);
    }

    #[test]
    fn every_cut_of_the_last_batch_is_a_torn_tail() {
        let bytes = file(&[(1, b"first"), (2, b"second batch")]);
        let second = SEGMENT_HEADER + FRAME_HEADER + 5;
        for cut in second + 1..bytes.len() {
            let (batches, end) = scan_segment(&bytes[..cut]);
            assert_eq!(batches.len(), 1, "cut at {cut}");
            assert!(
                matches!(end, End::Torn { offset, .. } if offset == second),
                "cut at {cut}: {end:?}"
            );
        }
    }

    #[test]
    fn zeros_after_the_last_batch_are_a_torn_tail() {
        let mut bytes = file(&[(1, b"first")]);
        let good = bytes.len();
        bytes.resize(good + 4096, 0);
        let (batches, end) = scan_segment(&bytes);
        assert_eq!(batches.len(), 1);
        assert!(matches!(end, End::Torn { offset, .. } if offset == good));
    }

    /// The length and the sequence number are covered: no flipped bit in the last batch
    /// passes for a torn tail.
    #[test]
    fn a_flipped_bit_anywhere_in_a_batch_is_damage() {
        let bytes = file(&[(1, b"first"), (2, b"second")]);
        let second = SEGMENT_HEADER + FRAME_HEADER + 5;
        for pos in SEGMENT_HEADER..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[pos] ^= 1 << bit;
                let (_, end) = scan_segment(&damaged);
                let batch = if pos < second { SEGMENT_HEADER } else { second };
                assert!(
                    matches!(end, End::Corrupt { offset, .. } if offset == batch),
                    "byte {pos} bit {bit}: {end:?}"
                );
            }
        }
    }

    #[test]
    fn a_flipped_bit_in_a_file_header_is_damage() {
        for header in [&segment_header()[..], &checkpoint_header(7)[..]] {
            let magic = header[..8].try_into().unwrap();
            assert!(check_header(header, magic, header.len()).is_ok());
            for pos in 8..header.len() {
                for bit in 0..8 {
                    let mut damaged = header.to_vec();
                    damaged[pos] ^= 1 << bit;
                    let error = check_header(&damaged, magic, header.len()).unwrap_err();
                    assert!(
                        matches!(
                            error,
                            HeaderError::Damaged { .. } | HeaderError::UnknownVersion(_)
                        ),
                        "byte {pos} bit {bit}: {error}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_newer_format_is_told_from_a_damaged_one() {
        let mut header = segment_header();
        header[8..12].copy_from_slice(&(DISK_FORMAT_VERSION + 1).to_le_bytes());
        let header = seal(header);
        let error = check_header(&header, SEGMENT_MAGIC, SEGMENT_HEADER).unwrap_err();
        assert!(matches!(error, HeaderError::NewerVersion(v) if v == DISK_FORMAT_VERSION + 1));
    }

    /// Format 1, as the release that wrote it framed batches.
    fn frame_v1(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&seq.to_le_bytes());
        hasher.update(payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&hasher.finalize().to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(payload);
    }

    #[test]
    fn format_1_damaged_length_followed_by_an_intact_batch_is_damage() {
        let mut bytes = SEGMENT_MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        for (seq, payload) in [(1, &b"first"[..]), (2, b"second"), (3, b"third")] {
            frame_v1(&mut bytes, seq, payload);
        }
        let header = check_header(&bytes, SEGMENT_MAGIC, SEGMENT_HEADER).unwrap();
        assert_eq!(header.framing, Framing::V1);
        let (batches, end) = scan(&bytes, SEGMENT_HEADER, Framing::V1);
        assert_eq!((batches.len(), end), (3, End::Clean));
        assert_eq!(batches[0].body, SEGMENT_HEADER + 16);
        // Flips a high bit of the length of the batch at `at`.
        let damage_length = |at: usize| {
            let mut damaged = bytes.clone();
            damaged[at + 2] ^= 0x40;
            let (batches, end) = scan(&damaged, SEGMENT_HEADER, Framing::V1);
            (batches.len(), end)
        };
        let second = SEGMENT_HEADER + 16 + 5;
        let (kept, end) = damage_length(second);
        assert_eq!(kept, 1);
        assert!(
            matches!(end, End::Corrupt { offset, .. } if offset == second),
            "{end:?}"
        );
        // The last batch's length has nothing after it to check against: format 1 cannot
        // tell that from a torn tail (format 2 can).
        let third = second + 16 + 6;
        let (kept, end) = damage_length(third);
        assert_eq!(kept, 2);
        assert!(
            matches!(end, End::Torn { offset, .. } if offset == third),
            "{end:?}"
        );
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(classify(&segment_name(7)), FileKind::Segment(7));
        assert_eq!(classify(&checkpoint_name(9)), FileKind::Checkpoint(9));
        assert_eq!(classify("x.tmp"), FileKind::Temporary);
        assert_eq!(classify("LOCK"), FileKind::Other);
        assert_eq!(
            classify(&format!("{}.torn", segment_name(7))),
            FileKind::Other
        );
    }
}
