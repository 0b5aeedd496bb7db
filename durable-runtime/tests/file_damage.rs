//! The file store against damaged files: older on-disk formats still open, a flipped bit
//! anywhere in a log or a checkpoint is refused or harmless (never silently drops an
//! acknowledged record), and what recovery cuts or sets aside is kept.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use durable_runtime::store::{FileStore, Store};

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
    let dir = std::env::var("DURABLE_FIXTURE_DIR").expect("DURABLE_FIXTURE_DIR is set");
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
    let files = load_fixture(1);
    assert!(files.len() >= 2, "a checkpoint and a segment: {files:?}");
    for (path, bytes) in &files {
        assert_eq!(format_of(bytes), 1, "{}", path.display());
    }
    let expected = expected(Some(FIXTURE_CHECKPOINT_AFTER)).await;
    let fs = MemFs::with_files(&files);
    let store = FileStore::open_with(DIR, options(&fs)).await.unwrap();
    let found = snapshot(&store).await;
    assert_eq!(found, expected);
    let (beta, _, _) = &found.instances["beta"];
    assert_eq!(beta.output, Some(serde_json::json!(-1.5e-300)), "bit for bit");
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
    assert_eq!(reopened, expected);
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
    assert_eq!(reopened, expected);
}
