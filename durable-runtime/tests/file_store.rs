//! The file store: the conformance kit, recovery, torn tails, damage, locking, hostile ids,
//! injected disk faults and simulated power loss.
use durable_runtime::store::{conformance, Durability, FileStore, FileStoreOptions};

mod conformance_kit {
    //! Every check of the store conformance kit, one test each, each on a new directory, with
    //! fsync on.

    durable_runtime::store_conformance_tests!(
        let dir = tempfile::tempdir().unwrap();
        durable_runtime::store::FileStore::open(dir.path()).await.unwrap()
    );
}

/// The kit again without fsync, through its runner: the knob changes durability, not
/// behaviour.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_kit_without_fsync() {
    let root = tempfile::tempdir().unwrap();
    let mut checks = 0;
    conformance::run_all(|| {
        checks += 1;
        let dir = root.path().join(checks.to_string());
        let options = FileStoreOptions::default().durability(Durability::None);
        async move { FileStore::open_with(dir, options).await.unwrap() }
    })
    .await;
}

mod support {
    //! A simulated file system: keeps only what was synced across a "power cut", and can
    //! fail writes like a full disk.

    use std::any::Any;
    use std::collections::{HashMap, HashSet};
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use durable_runtime::store::{FileSystem, WritableFile};

    #[derive(Debug, Default)]
    pub struct SimFile {
        data: Vec<u8>,
        synced: usize,
    }

    #[derive(Debug, Default)]
    pub struct Sim {
        files: HashMap<PathBuf, Arc<Mutex<SimFile>>>,
        durable_dir: HashMap<PathBuf, Arc<Mutex<SimFile>>>,
        locked: HashSet<PathBuf>,
        pub full: bool,
    }

    #[derive(Debug, Default, Clone)]
    pub struct SimFs(pub Arc<Mutex<Sim>>);

    impl SimFs {
        /// A power cut: unsynced bytes and unsynced directory entries are gone, and the
        /// lock with the process.
        pub fn power_cut(&self) {
            let mut sim = self.0.lock().unwrap();
            sim.files = sim.durable_dir.clone();
            for file in sim.files.values() {
                let mut f = file.lock().unwrap();
                let synced = f.synced;
                f.data.truncate(synced);
            }
            sim.locked.clear();
        }

        pub fn set_full(&self, full: bool) {
            self.0.lock().unwrap().full = full;
        }
    }

    struct Handle(Arc<Mutex<SimFile>>, SimFs);

    impl WritableFile for Handle {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            let full = self.1 .0.lock().unwrap().full;
            let mut f = self.0.lock().unwrap();
            if full {
                // Half of it lands, like a real short write before ENOSPC.
                f.data.extend_from_slice(&buf[..buf.len() / 2]);
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"));
            }
            f.data.extend_from_slice(buf);
            Ok(())
        }

        fn sync_data(&mut self) -> io::Result<()> {
            let mut f = self.0.lock().unwrap();
            f.synced = f.data.len();
            Ok(())
        }
    }

    /// A read handle: like a file descriptor, it keeps the file after a rename or removal,
    /// and sees what is written but not synced (the page cache).
    struct Reader(Arc<Mutex<SimFile>>);

    impl std::os::unix::fs::FileExt for Reader {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let f = self.0.lock().unwrap();
            let start = (offset as usize).min(f.data.len());
            let n = buf.len().min(f.data.len() - start);
            buf[..n].copy_from_slice(&f.data[start..start + n]);
            Ok(n)
        }

        fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<usize> {
            Err(io::Error::other("read only"))
        }
    }

    struct Lock(SimFs, PathBuf);

    impl Drop for Lock {
        fn drop(&mut self) {
            self.0 .0.lock().unwrap().locked.remove(&self.1);
        }
    }

    impl FileSystem for SimFs {
        fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }
        fn lock(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
            let mut sim = self.0.lock().unwrap();
            if !sim.locked.insert(dir.to_path_buf()) {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
            }
            Ok(Box::new(Lock(self.clone(), dir.to_path_buf())))
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            let sim = self.0.lock().unwrap();
            Ok(sim
                .files
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect())
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            let sim = self.0.lock().unwrap();
            let file = sim.files.get(path).ok_or(io::ErrorKind::NotFound)?;
            let data = file.lock().unwrap().data.clone();
            Ok(data)
        }
        fn open_read(
            &self,
            path: &Path,
        ) -> io::Result<Arc<dyn std::os::unix::fs::FileExt + Send + Sync>> {
            let sim = self.0.lock().unwrap();
            let file = sim.files.get(path).ok_or(io::ErrorKind::NotFound)?;
            Ok(Arc::new(Reader(Arc::clone(file))))
        }
        fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
            let mut sim = self.0.lock().unwrap();
            if sim.full {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"));
            }
            let file = Arc::new(Mutex::new(SimFile::default()));
            sim.files.insert(path.to_path_buf(), Arc::clone(&file));
            Ok(Box::new(Handle(file, self.clone())))
        }
        fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
            let sim = self.0.lock().unwrap();
            let file = sim.files.get(path).ok_or(io::ErrorKind::NotFound)?;
            let mut f = file.lock().unwrap();
            f.data.truncate(len as usize);
            f.synced = f.synced.min(len as usize);
            Ok(())
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let mut sim = self.0.lock().unwrap();
            let file = sim.files.remove(from).ok_or(io::ErrorKind::NotFound)?;
            sim.files.insert(to.to_path_buf(), file);
            Ok(())
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            self.0.lock().unwrap().files.remove(path);
            Ok(())
        }
        fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
            let mut sim = self.0.lock().unwrap();
            sim.durable_dir = sim.files.clone();
            Ok(())
        }
    }
}

mod scenarios {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use durable_runtime::history::{Event, HistoryEvent};
    use durable_runtime::store::{
        FileStore, FileStoreOptions, InstanceQuery, NewInstance, OpenError, StatusUpdate, Store,
        StoreError, TurnCommit,
    };
    use durable_runtime::{InstanceId, InstanceStatus, RuntimeStatus};
    use serde_json::json;

    use super::support::SimFs;

    const T0: u64 = 1_700_000_000;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + s)
    }

    fn new_instance(id: &str) -> NewInstance {
        let id = InstanceId::new(id).unwrap();
        NewInstance {
            status: InstanceStatus {
                instance_id: id,
                name: "wf".into(),
                version: 1,
                runtime_status: RuntimeStatus::Pending,
                created_at: t(0),
                last_updated_at: t(0),
                input: json!(1.5),
                output: None,
                custom_status: None,
                failure: None,
                parent: None,
            },
            start: HistoryEvent::new(Event::ExecutionStarted {
                name: "wf".into(),
                version: 1,
                input: json!(1.5),
                seed: 7,
                parent: None,
                generation: 0,
                eager_restarts: 0,
            }),
            start_at: None,
            replace_finished: false,
        }
    }

    /// Runs one turn of `id` that completes it with `output`.
    async fn complete(store: &FileStore, id: &str, output: serde_json::Value) {
        let id = InstanceId::new(id).unwrap();
        let work = store
            .lease_orchestration(&id, t(1), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let commit = TurnCommit {
            instance_id: id.clone(),
            lease: work.lease,
            expected_history_len: work.history_len,
            history: vec![HistoryEvent::new(Event::OrchestratorStarted {
                timestamp: t(1),
            })],
            replace_history: false,
            consumed: work.messages.iter().map(|m| m.id).collect(),
            completed_activities: vec![],
            activities: vec![],
            timers: vec![],
            cancelled_timers: vec![],
            sub_instances: vec![],
            messages: vec![],
            status: StatusUpdate {
                runtime_status: RuntimeStatus::Completed,
                output: Some(output),
                custom_status: None,
                failure: None,
                input: None,
            },
        };
        store.commit_turn(commit).await.unwrap();
    }

    async fn status(store: &FileStore, id: &str) -> Option<InstanceStatus> {
        store.status(&InstanceId::new(id).unwrap()).await.unwrap()
    }

    fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn reopen_recovers_statuses_histories_and_inboxes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).await.unwrap();
        store.create_instance(new_instance("a")).await.unwrap();
        store.create_instance(new_instance("b")).await.unwrap();
        complete(&store, "a", json!(-1.5e-300)).await;
        store.close().await;

        let store = FileStore::open(dir.path()).await.unwrap();
        let a = status(&store, "a").await.unwrap();
        assert_eq!(a.runtime_status, RuntimeStatus::Completed);
        assert_eq!(a.output, Some(json!(-1.5e-300)));
        assert_eq!(
            store
                .load_history(&InstanceId::new("a").unwrap())
                .await
                .unwrap()
                .len(),
            1
        );
        // b's start message survived and is delivered.
        let work = store
            .fetch_orchestration(t(2), Duration::from_secs(30))
            .await
            .unwrap()
            .expect("b has its start message");
        assert_eq!(work.instance_id.as_str(), "b");
        assert_eq!(work.messages.len(), 1);
    }

    /// Recovery keeps statuses as the JSON their records hold until a call needs them:
    /// read, listed, watched and changed by a turn, they behave as the live ones did, after a
    /// log replay and after a checkpoint.
    #[tokio::test]
    async fn recovered_statuses_read_list_and_change_like_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).await.unwrap();
        let mut other = new_instance("other");
        other.status.name = "other-wf".into();
        other.status.created_at = t(5);
        for new in [new_instance("done"), new_instance("live"), other] {
            store.create_instance(new).await.unwrap();
        }
        complete(&store, "done", json!({"n": 1.5e300})).await;
        let before = [
            status(&store, "done").await,
            status(&store, "live").await,
            status(&store, "other").await,
        ];
        let all = InstanceQuery::default();
        let by_name = InstanceQuery {
            name: Some("wf".into()),
            statuses: vec![RuntimeStatus::Pending, RuntimeStatus::Completed],
            created_to: Some(t(1)),
            ..InstanceQuery::default()
        };
        let listed = (
            store.list(&all).await.unwrap(),
            store.list(&by_name).await.unwrap(),
        );
        let wf = vec![before[0].clone().unwrap(), before[1].clone().unwrap()];
        assert_eq!(listed.1.instances, wf);
        store.close().await;

        for checkpoint in [false, true] {
            let store = FileStore::open(dir.path()).await.unwrap();
            let after = [
                status(&store, "done").await,
                status(&store, "live").await,
                status(&store, "other").await,
            ];
            assert_eq!(
                after, before,
                "statuses after a reopen (checkpoint: {checkpoint})"
            );
            let relisted = (
                store.list(&all).await.unwrap(),
                store.list(&by_name).await.unwrap(),
            );
            assert_eq!(
                relisted, listed,
                "lists after a reopen (checkpoint: {checkpoint})"
            );
            if checkpoint {
                // A turn on a recovered instance changes its status from the recovered one.
                let id = InstanceId::new("live").unwrap();
                let mut watch = store.watch_status(&id);
                complete(&store, "live", json!("late")).await;
                let live = status(&store, "live").await.unwrap();
                assert_eq!(live.runtime_status, RuntimeStatus::Completed);
                assert_eq!(live.output, Some(json!("late")));
                assert_eq!(live.input, json!(1.5), "the input is kept");
                assert_eq!(live.last_updated_at, t(1));
                // Told once durable, just after the commit returns.
                tokio::time::timeout(Duration::from_secs(10), watch.changed())
                    .await
                    .expect("the watcher is told")
                    .unwrap();
            }
            store.checkpoint().await.unwrap();
            store.close().await;
        }
    }

    #[tokio::test]
    async fn torn_tail_is_cut_back_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).await.unwrap();
        store.create_instance(new_instance("kept")).await.unwrap();
        store.close().await;
        let seg = segments(dir.path()).pop().unwrap();
        let good = std::fs::metadata(&seg).unwrap().len();
        // Half a batch: a write cut short by a crash.
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 9, 9]);
        std::fs::write(&seg, &bytes).unwrap();

        let store = FileStore::open(dir.path()).await.unwrap();
        assert!(status(&store, "kept").await.is_some());
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), good, "cut back");
        store.create_instance(new_instance("after")).await.unwrap();
        store.close().await;
        let store = FileStore::open(dir.path()).await.unwrap();
        assert!(status(&store, "after").await.is_some());
    }

    #[tokio::test]
    async fn corrupt_middle_refuses_to_open_then_salvage_keeps_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).await.unwrap();
        store.create_instance(new_instance("first")).await.unwrap();
        let seg = segments(dir.path()).pop().unwrap();
        let after_first = std::fs::metadata(&seg).unwrap().len();
        store.create_instance(new_instance("second")).await.unwrap();
        store.create_instance(new_instance("third")).await.unwrap();
        store.close().await;
        // Flip a byte inside the second batch: data follows it, so it is not a torn tail.
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[after_first as usize + 20] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();

        let error = FileStore::open(dir.path()).await.unwrap_err();
        match &error {
            OpenError::Corrupt { file, offset, .. } => {
                assert_eq!(file, &seg);
                assert_eq!(*offset, after_first);
            }
            other => panic!("expected Corrupt, got {other}"),
        }
        assert!(error.to_string().contains("salvage"), "{error}");

        let store = FileStore::open_with(dir.path(), FileStoreOptions::default().salvage(true))
            .await
            .unwrap();
        assert!(status(&store, "first").await.is_some());
        assert!(status(&store, "second").await.is_none());
        store.close().await;
        let damaged = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .ends_with(".damaged")
            })
            .count();
        assert_eq!(damaged, 1, "the damaged segment is kept aside, not deleted");
        // The salvaged state was checkpointed: it opens normally from now on.
        let store = FileStore::open(dir.path()).await.unwrap();
        assert!(status(&store, "first").await.is_some());
    }

    #[tokio::test]
    async fn a_second_open_of_one_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).await.unwrap();
        let error = FileStore::open(dir.path()).await.unwrap_err();
        assert!(matches!(error, OpenError::Locked { .. }), "{error}");
        store.close().await;
        FileStore::open(dir.path()).await.expect("free after close");
    }

    #[tokio::test]
    async fn hostile_instance_ids_stay_data() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(256);
        let ids = [
            "../x",
            "/etc/passwd",
            "a\\b",
            "ünïcødé/../..",
            long.as_str(),
            "LOCK",
        ];
        let store = FileStore::open(dir.path()).await.unwrap();
        for id in ids {
            store.create_instance(new_instance(id)).await.unwrap();
        }
        store.close().await;
        let store = FileStore::open(dir.path()).await.unwrap();
        for id in ids {
            assert_eq!(status(&store, id).await.unwrap().instance_id.as_str(), id);
        }
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                name == "LOCK" || name.starts_with("wal-") || name.starts_with("checkpoint-"),
                "unexpected file {name}"
            );
        }
        assert!(!dir.path().parent().unwrap().join("x").exists());
    }

    #[tokio::test]
    async fn power_cut_keeps_everything_acknowledged() {
        let fs = SimFs::default();
        let options = || FileStoreOptions::default().file_system(Arc::new(fs.clone()));
        let store = FileStore::open_with("/data", options()).await.unwrap();
        for i in 0..50 {
            store
                .create_instance(new_instance(&format!("i{i}")))
                .await
                .unwrap();
            if i % 2 == 0 {
                complete(&store, &format!("i{i}"), json!(i)).await;
            }
        }
        std::mem::forget(store); // the process dies: nothing is flushed or closed
        fs.power_cut();
        let store = FileStore::open_with("/data", options()).await.unwrap();
        for i in 0..50 {
            let s = status(&store, &format!("i{i}"))
                .await
                .expect("acknowledged");
            if i % 2 == 0 {
                assert_eq!(s.output, Some(json!(i)));
            }
        }
    }

    #[tokio::test]
    async fn full_disk_refuses_with_a_typed_error_and_recovers() {
        let fs = SimFs::default();
        let options = FileStoreOptions::default()
            .file_system(Arc::new(fs.clone()))
            .retry_interval(Duration::from_millis(5));
        let store = FileStore::open_with("/data", options).await.unwrap();
        store.create_instance(new_instance("before")).await.unwrap();
        fs.set_full(true);
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            store.create_instance(new_instance("on-full-disk")),
        )
        .await
        .expect("does not hang");
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        let again = store.create_instance(new_instance("while-full")).await;
        assert!(
            matches!(again, Err(StoreError::Unavailable(_))),
            "{again:?}"
        );
        let fetch = store
            .fetch_orchestration(t(1), Duration::from_secs(30))
            .await;
        assert!(
            matches!(fetch, Err(StoreError::Unavailable(_))),
            "workers back off"
        );
        fs.set_full(false);
        // The writer retries on a new segment; then work resumes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match store.create_instance(new_instance("after")).await {
                Ok(()) => break,
                Err(StoreError::Unavailable(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
        store.close().await;
        fs.power_cut();
        let store = FileStore::open_with(
            "/data",
            FileStoreOptions::default().file_system(Arc::new(fs.clone())),
        )
        .await
        .unwrap();
        assert!(status(&store, "before").await.is_some());
        assert!(status(&store, "after").await.is_some());
        // The write refused on the full disk was kept in memory and written by the retry:
        // its outcome was unknown, never half-applied.
        assert!(status(&store, "on-full-disk").await.is_some());
    }

    #[tokio::test]
    async fn checkpoint_after_purge_shrinks_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).await.unwrap();
        for i in 0..200 {
            let id = format!("p{i}");
            store.create_instance(new_instance(&id)).await.unwrap();
            complete(&store, &id, json!("x".repeat(1000))).await;
        }
        let size = |dir: &Path| -> u64 {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum()
        };
        let before = size(dir.path());
        for i in 0..200 {
            store
                .purge(&InstanceId::new(format!("p{i}")).unwrap())
                .await
                .unwrap();
        }
        store.checkpoint().await.unwrap();
        store.close().await;
        let after = size(dir.path());
        assert!(after * 10 < before, "{after} bytes after, {before} before");
        let store = FileStore::open(dir.path()).await.unwrap();
        assert!(status(&store, "p0").await.is_none());
        store.create_instance(new_instance("p0")).await.unwrap();
    }

    /// A turn that leaves `id` running, paused on an external event, with a history of
    /// `activities` completed activity calls before the wait (about 1 KB for 3).
    async fn pause(store: &FileStore, id: &str, activities: u64, finish: bool) {
        let id = InstanceId::new(id).unwrap();
        let work = store
            .lease_orchestration(&id, t(1), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let mut history = vec![HistoryEvent::new(Event::OrchestratorStarted {
            timestamp: t(1),
        })];
        history.extend(work.messages.iter().map(|m| m.event.clone()));
        for seq in 0..activities {
            history.push(HistoryEvent::new(Event::TaskScheduled {
                id: seq,
                name: "step".into(),
                input: json!(format!("input of step {seq}")),
                attempt: 1,
            }));
            history.push(HistoryEvent::new(Event::TaskCompleted {
                id: seq,
                output: json!(format!("the output of step {seq} of {id}")),
            }));
        }
        history.push(HistoryEvent::new(Event::EventWaitStarted {
            id: activities,
            name: "approval".into(),
        }));
        let commit = TurnCommit {
            instance_id: id.clone(),
            lease: work.lease,
            expected_history_len: work.history_len,
            history,
            replace_history: false,
            consumed: work.messages.iter().map(|m| m.id).collect(),
            completed_activities: vec![],
            activities: vec![],
            timers: vec![],
            cancelled_timers: vec![],
            sub_instances: vec![],
            messages: vec![],
            status: StatusUpdate {
                runtime_status: if finish {
                    RuntimeStatus::Completed
                } else {
                    RuntimeStatus::Running
                },
                output: finish.then(|| json!("done")),
                custom_status: None,
                failure: None,
                input: None,
            },
        };
        store.commit_turn(commit).await.unwrap();
    }

    /// Creates `n` instances and runs one turn of each, 1,000 at a time.
    async fn populate(store: &Arc<FileStore>, n: usize, finish: bool) {
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let tasks: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let store = Arc::clone(store);
                    let id = format!("instance-{i:06}");
                    tokio::spawn(async move {
                        store.create_instance(new_instance(&id)).await.unwrap();
                        pause(&store, &id, 3, finish).await;
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    }

    fn rss() -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(" / peak ")
    }

    /// Resident memory of a store holding 100,000 instances paused on an event (a benchmark
    /// figure, not a check): `cargo test --release -p durable-runtime --test file_store --
    /// --ignored --nocapture memory_of_100k_paused_instances`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: run it by name"]
    async fn memory_of_100k_paused_instances() {
        let dir = tempfile::tempdir().unwrap();
        eprintln!("before: RSS {}", rss());
        let store = Arc::new(FileStore::open(dir.path()).await.unwrap());
        let started = std::time::Instant::now();
        populate(&store, 100_000, false).await;
        eprintln!(
            "100,000 paused instances written in {:?}: RSS {}",
            started.elapsed(),
            rss()
        );
        let history = store
            .load_history(&InstanceId::new("instance-000042").unwrap())
            .await
            .unwrap();
        assert_eq!(history.len(), 9);
        store.close().await;
        drop(store);
        let started = std::time::Instant::now();
        let store = FileStore::open(dir.path()).await.unwrap();
        eprintln!(
            "reopened (no checkpoint) in {:?}: RSS {}",
            started.elapsed(),
            rss()
        );
        store.close().await;
    }

    /// How long reopening a directory with 100,000 finished instances takes with a warm page
    /// cache (a benchmark figure, not a check): `cargo test --release -p durable-runtime
    /// --test file_store -- --ignored --nocapture reopen_100k_finished_instances`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: run it by name"]
    async fn reopen_100k_finished_instances() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::open(dir.path()).await.unwrap());
        populate(&store, 100_000, true).await;
        store.close().await;
        drop(store);
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let store = FileStore::open(dir.path()).await.unwrap();
            let opened = started.elapsed();
            let status = status(&store, "instance-099999").await.unwrap();
            assert_eq!(status.runtime_status, RuntimeStatus::Completed);
            eprintln!(
                "reopened 100,000 finished instances in {opened:?}: RSS {}",
                rss()
            );
            store.close().await;
        }
    }

    /// One more turn of a running `id`: appends (or, continuing as new, replaces with)
    /// `n` events.
    async fn turn(store: &FileStore, id: &str, n: u64, replace: bool) {
        let id = InstanceId::new(id).unwrap();
        let work = store
            .lease_orchestration(&id, t(2), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let history = (0..n)
            .map(|i| {
                HistoryEvent::new(Event::EventRaised {
                    name: format!("e{i}"),
                    data: json!(i),
                })
            })
            .collect();
        let mut commit = TurnCommit::for_work(&work, StatusUpdate::running());
        commit.history = history;
        commit.replace_history = replace;
        store.commit_turn(commit).await.unwrap();
    }

    async fn history_len(store: &FileStore, id: &str) -> usize {
        store
            .load_history(&InstanceId::new(id).unwrap())
            .await
            .unwrap()
            .len()
    }

    /// Histories are not kept in memory: they are read back from the segments and the
    /// checkpoints, also across checkpoints that delete the segments they were in, a
    /// continue-as-new, and reopening.
    #[tokio::test]
    async fn histories_are_read_on_demand_from_segments_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: every batch rotates.
        let options = || FileStoreOptions::default().segment_size(1);
        let store = FileStore::open_with(dir.path(), options()).await.unwrap();
        for id in ["a", "b"] {
            store.create_instance(new_instance(id)).await.unwrap();
            pause(&store, id, 3, false).await;
        }
        turn(&store, "a", 2, false).await;
        assert_eq!(history_len(&store, "a").await, 11);
        store.checkpoint().await.unwrap();
        assert_eq!(
            segments(dir.path()).len(),
            0,
            "the checkpoint covers them all"
        );
        assert_eq!(history_len(&store, "a").await, 11);
        turn(&store, "a", 1, false).await;
        turn(&store, "b", 4, true).await;
        let a = store
            .load_history(&InstanceId::new("a").unwrap())
            .await
            .unwrap();
        assert!(matches!(&a[10].event, Event::EventRaised { name, .. } if name == "e1"));
        assert!(matches!(&a[11].event, Event::EventRaised { name, .. } if name == "e0"));
        assert_eq!(history_len(&store, "b").await, 4);
        store.checkpoint().await.unwrap();
        turn(&store, "a", 1, false).await;
        assert_eq!(history_len(&store, "a").await, 13);
        assert_eq!(history_len(&store, "b").await, 4);
        store.close().await;
        let store = FileStore::open_with(dir.path(), options()).await.unwrap();
        assert_eq!(history_len(&store, "a").await, 13);
        assert_eq!(history_len(&store, "b").await, 4);
        turn(&store, "b", 1, false).await;
        assert_eq!(history_len(&store, "b").await, 5);
    }
}
