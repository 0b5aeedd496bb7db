//! The file store against damaged files: older on-disk formats still open, a flipped bit
//! anywhere in a log or a checkpoint is refused or harmless (never silently drops an
//! acknowledged record), and what recovery cuts or sets aside is kept.

mod support;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use durable_runtime::store::{FileStore, OpenError, Store};

use support::mem_fs::MemFs;
use support::workload::{self, options, snapshot, Snapshot, DIR};

/// The fixture's checkpoint was written after this step of the workload.
const FIXTURE_CHECKPOINT_AFTER: usize = 7;

fn fixture_dir(format: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-{format}"))
}

/// Writes the workload (checkpoint after step 7) in the format this release writes, into
/// the empty directory `$DURABLE_FIXTURE_DIR`. Run it before the on-disk format changes, to
/// keep a directory of the old format as a fixture (see `tests/fixtures/README.md`).
#[tokio::test]
#[ignore = "writes a fixture; run by hand before changing the on-disk format"]
async fn write_fixture() {
    let dir = std::env::var("DURABLE_FIXTURE_DIR")
        .expect("set DURABLE_FIXTURE_DIR to a new, empty directory (tests/fixtures/README.md)");
    let mut entries = std::fs::read_dir(&dir).expect("DURABLE_FIXTURE_DIR exists");
    assert!(
        entries.next().is_none(),
        "{dir} is not empty: never overwrite a fixture"
    );
    let store = FileStore::open(&dir).await.unwrap();
    workload::run(&store, Some(FIXTURE_CHECKPOINT_AFTER)).await;
    store.close().await;
    std::fs::remove_file(Path::new(&dir).join("LOCK")).unwrap();
}

/// The files of a fixture directory, as they would be in [`DIR`].
fn load_fixture(format: u32) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(fixture_dir(format)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("wal-") || name.starts_with("checkpoint-") {
            files.insert(Path::new(DIR).join(name), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// What the workload leaves in a new store (checkpoint after `checkpoint_after`).
async fn expected(checkpoint_after: Option<usize>) -> Snapshot {
    let fs = MemFs::default();
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    workload::run(&store, checkpoint_after).await;
    let snapshot = snapshot(&store).await;
    store.close().await;
    snapshot
}

fn format_of(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

#[tokio::test]
async fn a_format_1_directory_opens_and_moves_on_to_the_current_format() {
    // Written by a release whose history events were format 1 too.
    opens_and_moves_on(1, 1).await;
}

#[tokio::test]
async fn a_format_2_directory_opens_and_moves_on_to_the_current_format() {
    // Written by a release whose history events were format 1 too.
    opens_and_moves_on(2, 1).await;
}

/// The fixture of on-disk format `format` (history events of format `events`) opens with
/// every record as the workload left it, takes new writes beside the old files, reopens,
/// and a checkpoint moves it to the current format.
async fn opens_and_moves_on(format: u32, events: u32) {
    let files = load_fixture(format);
    assert!(files.len() >= 2, "a checkpoint and a segment: {files:?}");
    for (path, bytes) in &files {
        assert_eq!(format_of(bytes), format, "{}", path.display());
    }
    // The events keep the version they were written with.
    let mut expected = expected(Some(FIXTURE_CHECKPOINT_AFTER)).await;
    for (_, history, inbox) in expected.instances.values_mut() {
        let all = history
            .iter_mut()
            .chain(inbox.iter_mut().map(|d| &mut d.event));
        for event in all {
            event.format_version = events;
        }
    }
    let fs = MemFs::with_files(&files);
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    let found = snapshot(&store).await;
    assert_eq!(found, expected, "format {format}");
    let (beta, _, _) = &found.instances["beta"];
    assert_eq!(
        beta.output,
        Some(serde_json::json!(-1.5e-300)),
        "bit for bit"
    );
    assert!(!found.instances.contains_key("epsilon"), "purged");
    assert_eq!(found.activities.len(), 0);

    // New writes go to a segment of the current format beside the old files...
    store
        .create_instance(workload::new_instance("after", serde_json::json!(1), None))
        .await
        .unwrap();
    store.close().await;
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    let mut reopened = snapshot(&store).await;
    assert!(reopened.instances.remove("after").is_some());
    assert_eq!(reopened, expected, "format {format}, reopened");
    // ...and a checkpoint moves everything to it.
    store.checkpoint().await.unwrap();
    store.close().await;
    for (path, bytes) in fs.files() {
        if path.file_name().unwrap() != "LOCK" {
            assert_eq!(
                format_of(&bytes),
                durable_runtime::store::DISK_FORMAT_VERSION,
                "{}",
                path.display()
            );
        }
    }
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    let mut reopened = snapshot(&store).await;
    assert!(reopened.instances.remove("after").is_some());
    assert_eq!(reopened, expected, "format {format}, after a checkpoint");
}

/// splitmix64: a seeded sequence, so a failure names a case that can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Opens `files` (in a new [`MemFs`]) and reads everything back.
async fn open(files: &BTreeMap<PathBuf, Vec<u8>>) -> Result<Snapshot, OpenError> {
    let fs = MemFs::with_files(files);
    let store = FileStore::open_with(DIR, options(&fs)).await?;
    let found = snapshot(&store).await;
    store.close().await;
    Ok(found)
}

/// The directory the workload leaves, closed cleanly (checkpoint after `checkpoint_after`).
async fn written(checkpoint_after: Option<usize>) -> BTreeMap<PathBuf, Vec<u8>> {
    let fs = MemFs::default();
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    workload::run(&store, checkpoint_after).await;
    store.close().await;
    fs.files()
}

fn only(files: &BTreeMap<PathBuf, Vec<u8>>, prefix: &str) -> PathBuf {
    let mut matching = files
        .keys()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix));
    let path = matching.next().expect("one such file").clone();
    assert!(matching.next().is_none(), "one {prefix} file: {files:?}");
    path
}

/// Flips one bit (chosen by `rng`) at each byte position in `positions` of `target`, opens
/// each copy, and checks that the open either fails naming `target` at or before the flipped
/// byte, or returns exactly `expected`. Returns the positions whose flip was refused.
async fn flip_every_byte(
    files: &BTreeMap<PathBuf, Vec<u8>>,
    target: &Path,
    positions: Range<usize>,
    expected: &Snapshot,
    rng: &mut Rng,
) -> Vec<usize> {
    let mut refused = Vec::new();
    for pos in positions {
        let bit = rng.below(8);
        let mut damaged = files.clone();
        damaged.get_mut(target).unwrap()[pos] ^= 1 << bit;
        let case = format!("{} byte {pos} bit {bit}", target.display());
        match open(&damaged).await {
            Ok(found) => assert!(
                found == *expected,
                "{case}: opened without an error, but the content differs:\n{}",
                difference(expected, &found)
            ),
            Err(OpenError::Corrupt { file, offset, .. }) => {
                assert_eq!(file, target, "{case}: the damage is in the flipped file");
                assert!(offset <= pos as u64, "{case}: damage reported at {offset}");
                refused.push(pos);
            }
            Err(other) => panic!("{case}: {other}"),
        }
    }
    refused
}

/// What is missing or changed, instance by instance.
fn difference(expected: &Snapshot, found: &Snapshot) -> String {
    let mut out = String::new();
    for (id, want) in &expected.instances {
        match found.instances.get(id) {
            None => out += &format!("- instance {id} is missing\n"),
            Some(got) if got != want => out += &format!("- instance {id} differs: {got:?}\n"),
            Some(_) => {}
        }
    }
    for id in found.instances.keys() {
        if !expected.instances.contains_key(id) {
            out += &format!("- instance {id} is new\n");
        }
    }
    if expected.activities != found.activities {
        out += &format!("- activities: {:?}\n", found.activities);
    }
    out
}

#[tokio::test]
async fn a_flipped_bit_in_a_cleanly_closed_log_is_refused_never_silently_dropped() {
    let files = written(None).await;
    let segment = only(&files, "wal-");
    let expected = open(&files).await.unwrap();
    assert_eq!(expected.instances.len(), 5);
    let end = files[&segment].len();
    let refused = flip_every_byte(&files, &segment, 0..end, &expected, &mut Rng(1)).await;
    // More than the rule: every byte of the current format is checksummed.
    assert_eq!(refused.len(), end, "every flip is refused");
}

#[tokio::test]
async fn a_flipped_bit_in_a_checkpoint_is_refused_never_silently_dropped() {
    // Batches after the checkpoint: a checkpoint that claimed to cover them would hide them.
    let files = written(Some(FIXTURE_CHECKPOINT_AFTER)).await;
    let checkpoint = only(&files, "checkpoint-");
    let expected = open(&files).await.unwrap();
    let end = files[&checkpoint].len();
    let refused = flip_every_byte(&files, &checkpoint, 0..end, &expected, &mut Rng(2)).await;
    assert_eq!(refused.len(), end, "every flip is refused");
}

/// A crash while the last batch was written: that batch was never acknowledged, and the
/// file ends somewhere inside it. Flips inside it may be cut with it, as a torn tail.
#[tokio::test]
async fn a_flipped_bit_in_a_crashed_log_is_refused_never_silently_dropped() {
    let fs = MemFs::default();
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    for i in 0..workload::STEPS - 1 {
        workload::step(&store, i).await;
    }
    let acknowledged = fs.files();
    let segment = only(&acknowledged, "wal-");
    workload::step(&store, workload::STEPS - 1).await;
    store.close().await;
    let complete = fs.files()[&segment].clone();
    let (start, end) = (acknowledged[&segment].len(), complete.len());
    let expected = open(&acknowledged).await.unwrap();

    let mut rng = Rng(3);
    for round in 0..4 {
        let cut = start + 1 + rng.below(end - start - 1);
        let mut crashed = acknowledged.clone();
        crashed.insert(segment.clone(), complete[..cut].to_vec());
        assert_eq!(open(&crashed).await.unwrap(), expected, "cut at {cut}");
        // The whole file once, then the torn batch again with other cuts.
        let from = if round == 0 { 0 } else { start };
        let refused = flip_every_byte(&crashed, &segment, from..cut, &expected, &mut rng).await;
        // More than the rule: a flip in an acknowledged batch is always refused.
        let in_acknowledged = refused.iter().filter(|p| **p < start).count();
        assert_eq!(
            in_acknowledged,
            start - from,
            "every flip before {start} is refused"
        );
    }
}

#[tokio::test]
async fn a_torn_tail_is_cut_back_and_kept_aside() {
    let fs = MemFs::default();
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    for i in 0..workload::STEPS {
        workload::step(&store, i).await;
    }
    store.close().await;
    let mut files = fs.files();
    let segment = only(&files, "wal-");
    let good = files[&segment].len();
    // Half a batch (its header says it is longer): a write cut short by a crash.
    let mut torn = Vec::new();
    frame_like(&mut torn, 1000);
    torn.truncate(30);
    files.get_mut(&segment).unwrap().extend_from_slice(&torn);
    let expected = open(&written(None).await).await.unwrap();

    let fs = MemFs::with_files(&files);
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    assert_eq!(snapshot(&store).await, expected);
    store.close().await;
    let after = fs.files();
    assert_eq!(after[&segment].len(), good, "cut back");
    let kept = segment.with_file_name(format!(
        "{}.torn",
        segment.file_name().unwrap().to_str().unwrap()
    ));
    assert_eq!(after.get(&kept), Some(&torn), "the cut bytes are kept");
    // The kept tail is no segment: the directory opens as before.
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    assert_eq!(snapshot(&store).await, expected);
}

/// The first bytes of a current-format batch of `len` bytes, as the writer frames it.
fn frame_like(out: &mut Vec<u8>, len: u32) {
    let mut header = [0u8; 20];
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..16].copy_from_slice(&99u64.to_le_bytes());
    let crc = crc32fast::hash(&header[4..]);
    header[..4].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend(std::iter::repeat_n(b'x', len as usize));
}

#[tokio::test]
async fn salvage_sets_a_damaged_checkpoint_aside_and_keeps_a_copy() {
    let mut files = written(Some(FIXTURE_CHECKPOINT_AFTER)).await;
    let checkpoint = only(&files, "checkpoint-");
    let pos = files[&checkpoint].len() - 10;
    files.get_mut(&checkpoint).unwrap()[pos] ^= 0x10;
    let damaged = files[&checkpoint].clone();
    match open(&files).await {
        Err(OpenError::Corrupt { file, .. }) => assert_eq!(file, checkpoint),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }

    let fs = MemFs::with_files(&files);
    let store = FileStore::open_with(DIR, options(&fs).salvage(true))
        .await
        .unwrap();
    store.close().await;
    let after = fs.files();
    let copy = checkpoint.with_file_name(format!(
        "{}.damaged",
        checkpoint.file_name().unwrap().to_str().unwrap()
    ));
    assert_eq!(
        after.get(&copy),
        Some(&damaged),
        "a copy of the damaged checkpoint"
    );
    // The salvaged state was checkpointed: it opens without salvage from now on.
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    store.close().await;
}
