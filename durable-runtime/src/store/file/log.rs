//! The on-disk framing: file names, file headers, and commit batches carrying their length,
//! sequence number and a CRC-32 checksum (crc32fast).
//!
//! A segment is `SEGMENT_MAGIC`, the format version (u32 LE) and 4 reserved bytes, then
//! batches. A batch is `len: u32 LE`, `crc: u32 LE` over the next `8 + len` bytes,
//! `seq: u64 LE`, then `len` bytes of records (see `record`). A checkpoint has the
//! same shape with `CHECKPOINT_MAGIC` and the last batch sequence number it covers (u64 LE)
//! in its header; its batches are numbered from 1.

use std::fmt;

/// The version of the on-disk format this release writes and reads.
pub const DISK_FORMAT_VERSION: u32 = 1;

pub(crate) const LOCK_FILE: &str = "LOCK";
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"DURWAL\0\0";
pub(crate) const CHECKPOINT_MAGIC: &[u8; 8] = b"DURCKPT\0";
pub(crate) const SEGMENT_HEADER: usize = 16;
pub(crate) const CHECKPOINT_HEADER: usize = 24;
pub(crate) const FRAME_HEADER: usize = 16;

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

pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER] {
    let mut header = [0; SEGMENT_HEADER];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&DISK_FORMAT_VERSION.to_le_bytes());
    header
}

pub(crate) fn checkpoint_header(covers: u64) -> [u8; CHECKPOINT_HEADER] {
    let mut header = [0; CHECKPOINT_HEADER];
    header[..8].copy_from_slice(CHECKPOINT_MAGIC);
    header[8..12].copy_from_slice(&DISK_FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&covers.to_le_bytes());
    header
}

/// Appends one framed batch to `out`.
pub(crate) fn frame(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a batch is smaller than 4 GiB");
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A header problem: the file is not one of ours, or from a newer release.
#[derive(Debug)]
pub(crate) enum HeaderError {
    /// Shorter than a header: a file whose creation was cut short.
    Short,
    BadMagic,
    NewerVersion(u32),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => f.write_str("the file is shorter than its header"),
            HeaderError::BadMagic => f.write_str("the file does not start with a durable header"),
            HeaderError::NewerVersion(v) => write!(
                f,
                "the file has on-disk format version {v}; this release reads up to {DISK_FORMAT_VERSION}: upgrade durable"
            ),
        }
    }
}

/// Checks a file header; returns the checkpoint's covered sequence number (0 for segments).
pub(crate) fn check_header(bytes: &[u8], magic: &[u8; 8], len: usize) -> Result<u64, HeaderError> {
    if bytes.len() < len {
        return Err(HeaderError::Short);
    }
    if &bytes[..8] != magic {
        return Err(HeaderError::BadMagic);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version > DISK_FORMAT_VERSION {
        return Err(HeaderError::NewerVersion(version));
    }
    Ok(if len >= 24 {
        u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"))
    } else {
        0
    })
}

/// One intact batch found by [`scan`].
pub(crate) struct Batch<'a> {
    pub(crate) offset: usize,
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
    /// A damaged batch at `offset` with data after it: not explained by a cut-short write.
    Corrupt { offset: usize, reason: String },
}

/// Reads the batches of a file from `start`, stopping at the first damaged one.
pub(crate) fn scan(bytes: &[u8], start: usize) -> (Vec<Batch<'_>>, End) {
    let mut batches = Vec::new();
    let mut at = start;
    loop {
        if at == bytes.len() {
            return (batches, End::Clean);
        }
        let rest = &bytes[at..];
        let torn = |reason: &str| End::Torn {
            offset: at,
            reason: reason.to_string(),
        };
        if rest.len() < FRAME_HEADER {
            return (batches, torn("an incomplete batch header"));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let body_end = FRAME_HEADER + len;
        if len == 0 || body_end > rest.len() {
            // A frame reaching past the end is a write cut short; zeros are space the file
            // system allocated but never filled. Anything else is damage.
            let end = if len == 0 && rest.iter().all(|b| *b == 0) || body_end > rest.len() {
                torn("a batch cut short by the end of the file")
            } else {
                End::Corrupt {
                    offset: at,
                    reason: "a batch with length zero followed by data".into(),
                }
            };
            return (batches, end);
        }
        let actual = crc32fast::hash(&rest[8..body_end]);
        if actual != crc {
            let end = if body_end == rest.len() || rest[body_end..].iter().all(|b| *b == 0) {
                torn("the last batch's checksum does not match (a write cut short)")
            } else {
                End::Corrupt {
                    offset: at,
                    reason: format!("checksum mismatch (stored {crc:08x}, computed {actual:08x})"),
                }
            };
            return (batches, end);
        }
        let seq = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        batches.push(Batch {
            offset: at,
            seq,
            payload: &rest[FRAME_HEADER..body_end],
        });
        at += body_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(batches: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = segment_header().to_vec();
        for (seq, payload) in batches {
            frame(&mut out, *seq, payload);
        }
        out
    }

    #[test]
    fn intact_batches_scan_clean() {
        let bytes = file(&[(1, b"a"), (2, b"bc")]);
        let (batches, end) = scan(&bytes, SEGMENT_HEADER);
        assert_eq!(end, End::Clean);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].payload, b"bc");
    }

    #[test]
    fn every_cut_of_the_last_batch_is_a_torn_tail() {
        let bytes = file(&[(1, b"first"), (2, b"second batch")]);
        let second = SEGMENT_HEADER + FRAME_HEADER + 5;
        for cut in second + 1..bytes.len() {
            let (batches, end) = scan(&bytes[..cut], SEGMENT_HEADER);
            assert_eq!(batches.len(), 1, "cut at {cut}");
            assert!(
                matches!(end, End::Torn { offset, .. } if offset == second),
                "cut at {cut}: {end:?}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_before_the_tail_is_corruption() {
        let mut bytes = file(&[(1, b"first"), (2, b"second")]);
        bytes[SEGMENT_HEADER + FRAME_HEADER + 1] ^= 1;
        let (batches, end) = scan(&bytes, SEGMENT_HEADER);
        assert!(batches.is_empty());
        assert!(matches!(end, End::Corrupt { offset, .. } if offset == SEGMENT_HEADER));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(classify(&segment_name(7)), FileKind::Segment(7));
        assert_eq!(classify(&checkpoint_name(9)), FileKind::Checkpoint(9));
        assert_eq!(classify("x.tmp"), FileKind::Temporary);
        assert_eq!(classify("LOCK"), FileKind::Other);
    }
}
