//! The file store's checkpoints: streamed a batch at a time (memory holds a chunk, never the
//! store), no disk read under the state lock, histories of any size and any number recovered
//! exactly, and a crash at any point of a checkpoint loses nothing acknowledged.

mod support;

use std::any::Any;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::{
    FileStore, FileStoreOptions, FileSystem, StatusUpdate, Store, TurnCommit, WritableFile,
};
use serde_json::json;

use support::mem_fs::MemFs;
use support::workload::{id, new_instance, snapshot, t, DIR};

/// What a checkpoint may hold in one buffer: its chunk (1 MiB) plus one piece or image
/// (the largest value these tests write is 1.5 MiB, written alone in its batch).
const CHUNK: usize = 1 << 20;

/// A [`MemFs`] seen through a probe: the largest single write and read, a budget of
/// changes after which every change fails (a crash), and a gate that holds reads.
#[derive(Debug, Clone)]
struct Probe {
    fs: MemFs,
    shared: Arc<ProbeState>,
}

#[derive(Debug)]
struct ProbeState {
    largest_write: AtomicUsize,
    largest_read: AtomicUsize,
    /// Changes (create, write, sync, rename, remove, truncate) left before the crash.
    budget: AtomicI64,
    /// While set, reads of segments wait until it is cleared.
    gate: Mutex<bool>,
    opened: Condvar,
    /// A read is waiting at the gate.
    held: AtomicBool,
}

impl Probe {
    fn new(fs: &MemFs) -> Probe {
        Probe {
            fs: fs.clone(),
            shared: Arc::new(ProbeState {
                largest_write: AtomicUsize::new(0),
                largest_read: AtomicUsize::new(0),
                budget: AtomicI64::new(i64::MAX),
                gate: Mutex::new(false),
                opened: Condvar::new(),
                held: AtomicBool::new(false),
            }),
        }
    }

    fn options(&self) -> FileStoreOptions {
        FileStoreOptions::default().file_system(Arc::new(self.clone()))
    }

    fn reset_largest(&self) {
        self.shared.largest_write.store(0, Ordering::SeqCst);
        self.shared.largest_read.store(0, Ordering::SeqCst);
    }

    fn largest_write(&self) -> usize {
        self.shared.largest_write.load(Ordering::SeqCst)
    }

    fn largest_read(&self) -> usize {
        self.shared.largest_read.load(Ordering::SeqCst)
    }

    fn crash_after(&self, changes: i64) {
        self.shared.budget.store(changes, Ordering::SeqCst);
    }

    fn change(&self) -> io::Result<()> {
        if self.shared.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(io::Error::other("injected crash"));
        }
        Ok(())
    }

    fn close_gate(&self) {
        *self.shared.gate.lock().unwrap() = true;
    }

    fn open_gate(&self) {
        *self.shared.gate.lock().unwrap() = false;
        self.shared.opened.notify_all();
    }

    fn read(&self, n: usize) {
        self.shared.largest_read.fetch_max(n, Ordering::SeqCst);
    }
}

struct ProbeWriter(Probe, Box<dyn WritableFile>);

impl WritableFile for ProbeWriter {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.change()?;
        self.0
            .shared
            .largest_write
            .fetch_max(buf.len(), Ordering::SeqCst);
        self.1.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.change()?;
        self.1.sync_data()
    }
}

struct ProbeReader {
    probe: Probe,
    file: Arc<dyn FileExt + Send + Sync>,
    segment: bool,
}

impl FileExt for ProbeReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if self.segment {
            let mut closed = self.probe.shared.gate.lock().unwrap();
            while *closed {
                self.probe.shared.held.store(true, Ordering::SeqCst);
                closed = self.probe.shared.opened.wait(closed).unwrap();
            }
        }
        self.probe.read(buf.len());
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<usize> {
        Err(io::Error::other("read only"))
    }
}

impl FileSystem for Probe {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.fs.create_dir_all(dir)
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        self.fs.lock(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.fs.list(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let bytes = self.fs.read(path)?;
        self.read(bytes.len());
        Ok(bytes)
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn FileExt + Send + Sync>> {
        let segment = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("wal-"));
        Ok(Arc::new(ProbeReader {
            probe: self.clone(),
            file: self.fs.open_read(path)?,
            segment,
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.change()?;
        Ok(Box::new(ProbeWriter(self.clone(), self.fs.create(path)?)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.change()?;
        self.fs.truncate(path, len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.change()?;
        self.fs.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.change()?;
        self.fs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.change()?;
        self.fs.sync_dir(dir)
    }
}

fn name(i: usize) -> String {
    format!("i{i:04}")
}

/// One turn of `name` at `at`, appending one `TaskCompleted` per size (its output a string
/// of that many bytes).
async fn turn(store: &FileStore, name: &str, at: u64, sizes: &[usize]) {
    let work = store
        .lease_orchestration(&id(name), t(at), Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} can be leased"));
    let mut commit = TurnCommit::for_work(&work, StatusUpdate::running());
    commit
        .history
        .push(HistoryEvent::new(Event::OrchestratorStarted {
            timestamp: t(at),
        }));
    commit
        .history
        .extend(work.messages.iter().map(|m| m.event.clone()));
    for (n, size) in sizes.iter().enumerate() {
        commit.history.push(HistoryEvent::new(Event::TaskCompleted {
            id: n as u64,
            output: json!("x".repeat(*size)),
        }));
    }
    store.commit_turn(commit).await.unwrap();
}

/// `n` instances with histories of every shape: short and long, one event larger than a
/// checkpoint's chunk, one history of thousands of events longer than a chunk.
async fn fill(store: &FileStore, n: usize, at: u64) {
    for i in 0..n {
        store
            .create_instance(new_instance(&name(i), json!(i), None))
            .await
            .unwrap();
        let sizes: Vec<usize> = match i {
            0 => vec![3 * CHUNK / 2],
            1 => vec![300; 4_000],
            _ => (0..i % 7).map(|k| 10 + k * 997 % 5_000).collect(),
        };
        turn(store, &name(i), at, &sizes).await;
    }
}

async fn more_turns(store: &FileStore, n: usize, at: u64) {
    for i in (0..n).step_by(3) {
        turn(store, &name(i), at, &[100 + i, 7]).await;
    }
}

#[tokio::test]
async fn many_and_large_histories_checkpoint_and_recover_exactly() {
    let fs = MemFs::default();
    let probe = Probe::new(&fs);
    let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
    fill(&store, 60, 1).await;
    store.checkpoint().await.unwrap();
    // Events after the checkpoint, then a checkpoint that copies the first one's pieces.
    more_turns(&store, 60, 2).await;
    store.checkpoint().await.unwrap();
    more_turns(&store, 60, 3).await;
    let live = snapshot(&store).await;
    assert_eq!(live.instances.len(), 60);
    let long = &live.instances[&name(1)].1;
    assert!(long.len() > 4_000, "{}", long.len());
    store.close().await;
    drop(store);

    let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
    assert_eq!(
        snapshot(&store).await,
        live,
        "reopened from checkpoint + log"
    );
    store.checkpoint().await.unwrap();
    store.close().await;
    drop(store);
    let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
    assert_eq!(
        snapshot(&store).await,
        live,
        "reopened from a checkpoint alone"
    );
}

#[tokio::test]
async fn a_checkpoint_and_its_recovery_hold_a_chunk_not_the_store() {
    let fs = MemFs::default();
    let probe = Probe::new(&fs);
    let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
    // About 8 MiB of histories, none of its events larger than 100 kB.
    for i in 0..80 {
        store
            .create_instance(new_instance(&name(i), json!(i), None))
            .await
            .unwrap();
        turn(&store, &name(i), 1, &[50_000, 50_000]).await;
    }
    probe.reset_largest();
    store.checkpoint().await.unwrap();
    let (written, read) = (probe.largest_write(), probe.largest_read());
    let checkpoint: usize = fs
        .files()
        .iter()
        .filter(|(path, _)| path.to_str().unwrap().ends_with(".ckpt"))
        .map(|(_, bytes)| bytes.len())
        .sum();
    assert!(
        checkpoint > 8_000_000,
        "the checkpoint holds {checkpoint} bytes"
    );
    let bound = CHUNK + 110_000;
    assert!(
        written <= bound,
        "a checkpoint of {checkpoint} bytes wrote {written} bytes at once (bound {bound})"
    );
    assert!(read <= bound, "the checkpoint read {read} bytes at once");
    store.close().await;
    drop(store);

    probe.reset_largest();
    let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
    let read = probe.largest_read();
    assert!(
        read <= bound,
        "recovering a checkpoint of {checkpoint} bytes read {read} bytes at once"
    );
    assert_eq!(store.load_history(&id(&name(79))).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_checkpoint_reads_no_disk_under_the_state_lock() {
    let fs = MemFs::default();
    let probe = Probe::new(&fs);
    let store = Arc::new(FileStore::open_with(DIR, probe.options()).await.unwrap());
    fill(&store, 10, 1).await;
    probe.close_gate();
    let checkpoint = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.checkpoint().await }
    });
    // The checkpoint's first read of a segment waits at the gate...
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !probe.shared.held.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the checkpoint reads");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // ...while calls that take the state lock go on: made from a thread of their own, so
    // that a call blocked on the lock fails this test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let caller = std::thread::spawn({
        let store = Arc::clone(&store);
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let status = store.status(&id(&name(3))).await.unwrap().unwrap();
                let leased = store
                    .lease_orchestration(&id(&name(4)), t(5), Duration::from_secs(1))
                    .await
                    .unwrap();
                let _ = tx.send((status, leased));
            })
        }
    });
    let answered = rx.recv_timeout(Duration::from_secs(20));
    probe.open_gate();
    caller.join().unwrap();
    let (status, leased) = answered.expect("store calls wait for a checkpoint's disk reads");
    assert_eq!(status.instance_id, id(&name(3)));
    assert!(leased.is_some());
    checkpoint.await.unwrap().unwrap();
}

#[tokio::test]
async fn commits_during_checkpoints_lose_nothing() {
    let fs = MemFs::default();
    let probe = Probe::new(&fs);
    let store = Arc::new(FileStore::open_with(DIR, probe.options()).await.unwrap());
    fill(&store, 30, 1).await;
    let writer = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            for round in 0..20u64 {
                more_turns(&store, 30, 10 + round).await;
                store
                    .create_instance(new_instance(&format!("new{round}"), json!(round), None))
                    .await
                    .unwrap();
            }
        }
    });
    while !writer.is_finished() {
        store.checkpoint().await.unwrap();
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let live = snapshot(&store).await;
    Arc::into_inner(store).unwrap().close().await;
    let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
    assert_eq!(snapshot(&store).await, live);
}

#[tokio::test]
async fn a_crash_at_any_point_of_a_checkpoint_keeps_everything_acknowledged() {
    // How many changes a checkpoint makes, counted once without a crash.
    let changes = {
        let fs = MemFs::default();
        let probe = Probe::new(&fs);
        let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
        fill(&store, 12, 1).await;
        more_turns(&store, 12, 2).await;
        probe.crash_after(i64::MAX / 2);
        store.checkpoint().await.unwrap();
        i64::MAX / 2 - probe.shared.budget.load(Ordering::SeqCst)
    };
    assert!(changes > 5, "{changes}");
    for crash_at in 0..=changes {
        let fs = MemFs::default();
        let probe = Probe::new(&fs);
        let store = FileStore::open_with(DIR, probe.options()).await.unwrap();
        fill(&store, 12, 1).await;
        // A first checkpoint, so that the crashing one also copies checkpoint pieces.
        store.checkpoint().await.unwrap();
        more_turns(&store, 12, 2).await;
        let acknowledged = snapshot(&store).await;
        probe.crash_after(crash_at);
        let _ = store.checkpoint().await;
        drop(store);
        fs.power_cut();
        probe.crash_after(i64::MAX);
        let store = FileStore::open_with(DIR, probe.options())
            .await
            .unwrap_or_else(|e| panic!("crash after {crash_at} changes: {e}"));
        assert_eq!(
            snapshot(&store).await,
            acknowledged,
            "crash after {crash_at} of {changes} changes"
        );
    }
}

#[tokio::test]
async fn a_checkpoint_finding_several_batches_queued_writes_them_and_tries_again() {
    // Batches of at most this much (the format's 4 GiB, lowered for the test).
    const MAX: usize = 2_000;
    let fs = MemFs::default();
    let probe = Probe::new(&fs);
    let options = || probe.options().max_batch(MAX);
    let store = Arc::new(FileStore::open_with(DIR, options()).await.unwrap());
    for i in 0..3 {
        store
            .create_instance(new_instance(&name(i), json!(i), None))
            .await
            .unwrap();
        turn(&store, &name(i), 1, &[50, 60]).await;
    }
    // The checkpoint numbers the batch it covers, then reads the histories on disk: held
    // there while more than one batch's worth of creations is queued.
    probe.close_gate();
    let checkpoint = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.checkpoint().await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !probe.shared.held.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the checkpoint reads");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut creates: Vec<_> = (10..40)
        .map(|i| Box::pin(store.create_instance(new_instance(&name(i), json!(i), None))))
        .collect();
    for create in &mut creates {
        assert!(
            futures::poll!(create.as_mut()).is_pending(),
            "queued behind the checkpoint"
        );
    }
    probe.open_gate();
    for created in futures::future::join_all(creates).await {
        created.unwrap();
    }
    checkpoint.await.unwrap().unwrap();
    // A write after the checkpoint: recovery reads its batch right after the checkpoint's.
    store
        .create_instance(new_instance("after", json!(0), None))
        .await
        .unwrap();
    let live = snapshot(&store).await;
    assert_eq!(live.instances.len(), 34);
    Arc::into_inner(store).unwrap().close().await;
    let names = fs.names(Path::new(DIR));
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("checkpoint-"))
            .count(),
        1,
        "one checkpoint, no temporary file left: {names:?}"
    );
    let store = FileStore::open_with(DIR, options())
        .await
        .unwrap_or_else(|e| panic!("the store reopens: {e}"));
    assert_eq!(
        snapshot(&store).await,
        live,
        "nothing replayed twice or lost"
    );
}
