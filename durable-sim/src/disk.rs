//! A simulated disk under the file store (`durable_runtime::store::FileSystem`): one
//! directory in memory that keeps, per file, the bytes written and how many of them are
//! synced, and, for the directory, the entries made durable by the last directory sync and
//! the changes since. Faults drawn from the run's seed (or written down by a regression):
//! torn writes (a prefix of a write lands, then it fails), a full disk (`ENOSPC` for a few
//! operations), failed fsyncs (whose bytes then never become durable, as on Linux, where
//! the page cache drops them). A crash is a process crash (everything written survives) or
//! a power cut: each file keeps its synced bytes and maybe a prefix of the rest (or, now
//! and then, zeros in its place), and the directory keeps its synced entries and a prefix
//! of the changes since.

use std::any::Any;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use durable_runtime::store::{FileStore, FileStoreOptions, FileSystem, Store, WritableFile};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::world::World;

/// How often the disk fails, per operation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiskRates {
    /// A write lands a prefix, then fails (`EIO`).
    pub torn_write: f64,
    /// A write or a file creation finds the disk full for a few operations.
    pub full: f64,
    /// An fsync (of a file or of the directory) fails.
    pub sync_error: f64,
    /// The process is killed just before an fsync of a file.
    #[serde(default)]
    pub kill: f64,
}

impl DiskRates {
    /// A disk that never fails (it still loses unsynced bytes at a power cut).
    pub const NONE: DiskRates = DiskRates {
        torn_write: 0.0,
        full: 0.0,
        sync_error: 0.0,
        kill: 0.0,
    };
}

/// One disk fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFault {
    /// The write lands this many thousandths of its bytes, then fails with `EIO`.
    TornWrite {
        /// Thousandths of the write that land.
        permille: u32,
    },
    /// The disk is full (`ENOSPC`) for this operation and the next `ops` writes or
    /// creations; a write lands `permille` thousandths of its bytes first.
    Full {
        /// Writing operations that fail after this one.
        ops: u32,
        /// Thousandths of the write that land.
        permille: u32,
    },
    /// The fsync fails with `EIO`; a file's unsynced bytes never become durable.
    SyncError,
    /// The process is killed between a write and its fsync: the fsync does not happen,
    /// nothing the process does afterwards reaches the disk, and the simulator crashes it
    /// (a process crash: the page cache keeps the unsynced bytes, at risk until synced).
    Kill,
}

/// Where a run's disk faults come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskPlan {
    /// Drawn at these rates from the disk's stream.
    Random(DiskRates),
    /// Exactly these, by disk operation number (a regression's schedule).
    Script(BTreeMap<u64, DiskFault>),
}

/// The directory the simulated file store lives in (the only one on the disk).
const DIR: &str = "/sim/data";

/// How long the file store waits before it retries a failed write (on the tokio clock).
const RETRY: Duration = Duration::from_millis(100);

/// Share of the seeds that run on the file store (the rest on the memory store).
const FILE_SHARE: f64 = 0.5;

/// The store a run uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreChoice {
    /// The in-memory store; a crash drops the runtime and keeps the store.
    #[default]
    Memory,
    /// The file store over a simulated disk; a crash drops the runtime and the store, cuts
    /// the power (or not), and opens the store again over what the disk kept.
    File(FileChoice),
}

/// The file store's disk and options in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChoice {
    /// The disk's faults.
    pub disk: DiskPlan,
    /// `FileStoreOptions::segment_size`.
    pub segment_size: u64,
    /// `FileStoreOptions::checkpoint_bytes`.
    pub checkpoint_bytes: u64,
}

impl StoreChoice {
    /// Draws the store of a seed. `DURABLE_SIM_STORE=memory` or `=file` forces one (the
    /// rest of the scenario stays as the seed draws it).
    pub(crate) fn generate(rng: &mut Rng) -> StoreChoice {
        let file = rng.chance(FILE_SHARE);
        let rates = if rng.chance(0.3) {
            DiskRates::NONE
        } else {
            let scale = [0.005, 0.02, 0.05][rng.below(3) as usize];
            DiskRates {
                torn_write: scale,
                full: scale / 2.0,
                sync_error: scale,
                kill: scale / 4.0,
            }
        };
        let choice = FileChoice {
            disk: DiskPlan::Random(rates),
            segment_size: [512, 4 << 10, 1 << 20][rng.below(3) as usize],
            checkpoint_bytes: [2 << 10, 32 << 10, 1 << 30][rng.below(3) as usize],
        };
        let file = match std::env::var("DURABLE_SIM_STORE").as_deref() {
            Ok("memory") => false,
            Ok("file") => true,
            _ => file,
        };
        if file {
            StoreChoice::File(choice)
        } else {
            StoreChoice::Memory
        }
    }
}

/// Opens the file store over what `disk` holds, with faults off while it recovers: the
/// store on a task of the current tokio runtime.
pub(crate) async fn open(disk: &SimDisk, choice: &FileChoice) -> Result<Arc<dyn Store>, String> {
    let options = FileStoreOptions::default()
        .file_system(Arc::new(disk.clone()))
        .writer_on_task()
        .segment_size(choice.segment_size)
        .checkpoint_bytes(choice.checkpoint_bytes)
        .retry_interval(RETRY);
    disk.set_faults(false);
    let opened = FileStore::open_with(DIR, options).await;
    disk.set_faults(true);
    disk.world.record(&format!("disk open {}", opened.is_ok()));
    match opened {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) => Err(format!(
            "the file store does not open over what the disk kept: {e}"
        )),
    }
}

/// A file's content.
#[derive(Debug, Default)]
struct Inode {
    /// Everything written (what reads see: the page cache).
    data: Vec<u8>,
    /// How many of those bytes are durable.
    synced: usize,
    /// An fsync failed: the unsynced bytes are dropped at a power cut, and later fsyncs
    /// make nothing more durable (they report success, as Linux may).
    lost: bool,
}

/// A change to the directory since its last sync.
#[derive(Debug, Clone)]
enum DirOp {
    Link(String, usize),
    Unlink(String),
    Rename(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Write,
    Sync,
    SyncDir,
}

struct Disk {
    plan: DiskPlan,
    /// Draws the faults (with `DiskPlan::Random`).
    rng: Rng,
    /// Draws what a crash keeps: a separate stream, so that a regression's written-down
    /// faults replay with the same crashes.
    cuts: Rng,
    /// Whether faults strike (off while the store opens).
    faults: bool,
    /// Operations that may fail, so far (numbers the fault schedule).
    ops: u64,
    injected: Vec<(u64, DiskFault)>,
    /// Writing operations left to fail with `ENOSPC`.
    full_for: u32,
    /// Grows at each crash: handles from before it fail.
    boot: u64,
    /// The process was killed (`DiskFault::Kill`): nothing reaches the disk until the crash.
    killed: bool,
    inodes: Vec<Inode>,
    /// The directory as calls see it.
    names: BTreeMap<String, usize>,
    /// The directory as its last sync left it on disk.
    durable: BTreeMap<String, usize>,
    /// Changes since that sync, in order.
    dir_ops: Vec<DirOp>,
}

/// The simulated disk (see the module docs). Cloning shares it.
#[derive(Clone)]
pub(crate) struct SimDisk {
    disk: Arc<Mutex<Disk>>,
    world: Arc<World>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").finish_non_exhaustive()
    }
}

fn error(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("simulated disk: {what}"))
}

fn eio(what: &str) -> io::Error {
    error(io::ErrorKind::Other, what)
}

fn enospc() -> io::Error {
    error(io::ErrorKind::StorageFull, "no space left on device")
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `permille` thousandths of `len`, less than `len` when `len` > 0.
fn landed(len: usize, permille: u32) -> usize {
    (len * permille.min(999) as usize / 1000).min(len.saturating_sub(1))
}

impl SimDisk {
    pub(crate) fn new(seed: u64, plan: DiskPlan, world: Arc<World>) -> Self {
        SimDisk {
            disk: Arc::new(Mutex::new(Disk {
                plan,
                rng: Rng::new(seed ^ 0xd15c_0000_d15c),
                cuts: Rng::new(seed ^ 0xc075_0000_c075),
                faults: true,
                ops: 0,
                injected: Vec::new(),
                full_for: 0,
                boot: 0,
                killed: false,
                inodes: Vec::new(),
                names: BTreeMap::new(),
                durable: BTreeMap::new(),
                dir_ops: Vec::new(),
            })),
            world,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The faults injected so far, by operation number.
    pub(crate) fn injected(&self) -> Vec<(u64, DiskFault)> {
        self.lock().injected.clone()
    }

    /// Switches faults on or off (off while the store opens: recovery is judged on what the
    /// crash left, not on new faults).
    pub(crate) fn set_faults(&self, on: bool) {
        self.lock().faults = on;
    }

    /// Whether the process was killed: the simulator must crash it now.
    pub(crate) fn killed(&self) -> bool {
        self.lock().killed
    }

    /// A crash: a power cut (seven in ten) or a process crash (always after a kill).
    pub(crate) fn crash_at_random(&self) {
        let power = {
            let mut disk = self.lock();
            !disk.killed && disk.cuts.chance(0.7)
        };
        self.crash(power);
    }

    /// The process dies: handles from before fail from now on. With `power`, the machine
    /// loses power too, and the disk keeps only what is durable, plus some of the rest.
    pub(crate) fn crash(&self, power: bool) {
        let mut disk = self.lock();
        let disk = &mut *disk;
        disk.boot += 1;
        disk.full_for = 0;
        disk.killed = false;
        let mut what = String::new();
        if power {
            // The directory: its synced entries and a prefix of the changes since.
            let keep = disk.cuts.below(disk.dir_ops.len() as u64 + 1) as usize;
            for op in disk.dir_ops.drain(..).take(keep) {
                apply(&mut disk.durable, op);
            }
            disk.names = disk.durable.clone();
            // Each file: its synced bytes, and none, all or a prefix of the rest.
            for (name, &ino) in &disk.names {
                let inode = &mut disk.inodes[ino];
                let unsynced = inode.data.len() - inode.synced;
                let kept = if inode.lost || unsynced == 0 {
                    0
                } else {
                    match disk.cuts.below(3) {
                        0 => 0,
                        1 => unsynced,
                        _ => disk.cuts.below(unsynced as u64 + 1) as usize,
                    }
                };
                inode.data.truncate(inode.synced + kept);
                // Now and then the file's size moved on but its data did not land: zeros
                // (only after a synced header: see docs/testing.md).
                let zeros = kept > 0 && inode.synced > 0 && disk.cuts.chance(0.1);
                if zeros {
                    inode.data[inode.synced..].fill(0);
                }
                what.push_str(&format!(
                    " {name}:{}+{kept}{}",
                    inode.synced,
                    if zeros { "z" } else { "" }
                ));
                inode.synced = inode.data.len();
                inode.lost = false;
            }
            // Files no name reaches are gone.
            let live: Vec<usize> = disk.names.values().copied().collect();
            for (ino, inode) in disk.inodes.iter_mut().enumerate() {
                if !live.contains(&ino) {
                    *inode = Inode::default();
                }
            }
        }
        // After a process crash the page cache still holds what was written: the next
        // process reads it, and a later power cut may still take what was not synced.
        self.world.record(&format!(
            "disk {} crash{what}",
            if power { "power" } else { "process" }
        ));
    }

    /// Decides the fault of operation `op` (the disk's lock held).
    fn decide(&self, disk: &mut Disk, op: Op) -> Option<DiskFault> {
        if !disk.faults {
            return None;
        }
        disk.ops += 1;
        let n = disk.ops;
        let writes = matches!(op, Op::Create | Op::Write);
        let fault = if writes && disk.full_for > 0 {
            disk.full_for -= 1;
            Some(DiskFault::Full {
                ops: 0,
                permille: 0,
            })
        } else {
            let drawn = match &disk.plan {
                DiskPlan::Script(faults) => faults.get(&n).copied(),
                DiskPlan::Random(rates) => {
                    let rates = *rates;
                    let rng = &mut disk.rng;
                    match op {
                        Op::Write if rng.chance(rates.torn_write) => Some(DiskFault::TornWrite {
                            permille: rng.below(1000) as u32,
                        }),
                        Op::Write | Op::Create if rng.chance(rates.full) => Some(DiskFault::Full {
                            ops: rng.range(0, 6) as u32,
                            permille: rng.below(1000) as u32,
                        }),
                        Op::Sync | Op::SyncDir if rng.chance(rates.sync_error) => {
                            Some(DiskFault::SyncError)
                        }
                        Op::Sync if rng.chance(rates.kill) => Some(DiskFault::Kill),
                        _ => None,
                    }
                }
            };
            // A fault only where it means something.
            let fault = match (op, drawn) {
                (Op::Write, Some(f @ DiskFault::TornWrite { .. })) => Some(f),
                (Op::Write | Op::Create, Some(f @ DiskFault::Full { .. })) => Some(f),
                (Op::Sync | Op::SyncDir, Some(f @ DiskFault::SyncError)) => Some(f),
                (Op::Sync, Some(f @ DiskFault::Kill)) => Some(f),
                _ => None,
            };
            if let Some(DiskFault::Full { ops, .. }) = fault {
                disk.full_for = ops;
            }
            if let Some(fault) = fault {
                disk.injected.push((n, fault));
            }
            fault
        };
        if fault.is_some() {
            // The store retries after its retry interval, on the tokio clock: the driver
            // moves the clock that far.
            let at = self.world.clock.now() + RETRY + Duration::from_millis(1);
            self.world.lock().backoffs.insert(at);
        }
        fault
    }

    fn record(&self, what: String) {
        self.world.record(&what);
    }
}

fn apply(names: &mut BTreeMap<String, usize>, op: DirOp) {
    match op {
        DirOp::Link(name, ino) => {
            names.insert(name, ino);
        }
        DirOp::Unlink(name) => {
            names.remove(&name);
        }
        DirOp::Rename(from, to) => {
            if let Some(ino) = names.remove(&from) {
                names.insert(to, ino);
            }
        }
    }
}

/// A file open for appending.
struct SimWritable {
    disk: SimDisk,
    ino: usize,
    boot: u64,
    name: String,
}

impl WritableFile for SimWritable {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut disk = self.disk.lock();
        if disk.boot != self.boot || disk.killed {
            return Err(eio("a handle from before the crash"));
        }
        let fault = self.disk.decide(&mut disk, Op::Write);
        let (len, result) = match fault {
            Some(DiskFault::TornWrite { permille }) => {
                (landed(buf.len(), permille), Err(eio("input/output error")))
            }
            Some(DiskFault::Full { permille, .. }) => (landed(buf.len(), permille), Err(enospc())),
            _ => (buf.len(), Ok(())),
        };
        disk.inodes[self.ino].data.extend_from_slice(&buf[..len]);
        drop(disk);
        self.disk.record(format!(
            "disk write {} {len}/{} {fault:?}",
            self.name,
            buf.len()
        ));
        result
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.disk.lock();
        if disk.boot != self.boot || disk.killed {
            return Err(eio("a handle from before the crash"));
        }
        let fault = self.disk.decide(&mut disk, Op::Sync);
        if fault == Some(DiskFault::Kill) {
            disk.killed = true;
        }
        let inode = &mut disk.inodes[self.ino];
        let result = if fault == Some(DiskFault::Kill) {
            Err(eio("killed before this fsync"))
        } else if fault.is_some() {
            inode.lost = true;
            Err(eio("fsync: input/output error"))
        } else {
            if !inode.lost {
                inode.synced = inode.data.len();
            }
            Ok(())
        };
        drop(disk);
        self.disk
            .record(format!("disk sync {} {fault:?}", self.name));
        result
    }
}

/// A file open for reading: the same file after a rename or deletion.
struct SimReadable {
    disk: SimDisk,
    ino: usize,
    boot: u64,
}

impl FileExt for SimReadable {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let disk = self.disk.lock();
        // A killed process still reads (until the crash the driver makes at its next step):
        // only what it would write is lost.
        if disk.boot != self.boot {
            return Err(eio("a handle from before the crash"));
        }
        let data = &disk.inodes[self.ino].data;
        let at = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<usize> {
        Err(error(io::ErrorKind::Unsupported, "read-only handle"))
    }
}

/// Fails once the process was killed: nothing it does reaches the disk.
fn alive(disk: &Disk) -> io::Result<()> {
    match disk.killed {
        true => Err(eio("the process was killed")),
        false => Ok(()),
    }
}

fn not_found(name: &str) -> io::Error {
    error(io::ErrorKind::NotFound, &format!("no file {name}"))
}

impl FileSystem for SimDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn lock(&self, _dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        // One store at a time by construction: a crash ends the last one's handles.
        Ok(Box::new(()))
    }

    fn list(&self, _dir: &Path) -> io::Result<Vec<String>> {
        Ok(self.lock().names.keys().cloned().collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let name = name_of(path);
        let disk = self.lock();
        let ino = *disk.names.get(&name).ok_or_else(|| not_found(&name))?;
        Ok(disk.inodes[ino].data.clone())
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn FileExt + Send + Sync>> {
        let name = name_of(path);
        let disk = self.lock();
        let ino = *disk.names.get(&name).ok_or_else(|| not_found(&name))?;
        Ok(Arc::new(SimReadable {
            disk: self.clone(),
            ino,
            boot: disk.boot,
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let name = name_of(path);
        let mut disk = self.lock();
        alive(&disk)?;
        let fault = self.decide(&mut disk, Op::Create);
        if fault.is_some() {
            drop(disk);
            self.record(format!("disk create {name} {fault:?}"));
            return Err(enospc());
        }
        // A new file replaces any of that name (until the directory is synced, a power cut
        // may bring the old one back).
        let ino = disk.inodes.len();
        disk.inodes.push(Inode::default());
        disk.names.insert(name.clone(), ino);
        disk.dir_ops.push(DirOp::Link(name.clone(), ino));
        let boot = disk.boot;
        drop(disk);
        self.record(format!("disk create {name}"));
        Ok(Box::new(SimWritable {
            disk: self.clone(),
            ino,
            boot,
            name,
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let name = name_of(path);
        let mut disk = self.lock();
        alive(&disk)?;
        let ino = *disk.names.get(&name).ok_or_else(|| not_found(&name))?;
        // Cut (or extended with zeros) and synced; bytes a failed fsync lost stay lost.
        let inode = &mut disk.inodes[ino];
        inode.data.resize(len as usize, 0);
        inode.synced = match inode.lost {
            false => inode.data.len(),
            true => inode.synced.min(inode.data.len()),
        };
        drop(disk);
        self.record(format!("disk truncate {name} {len}"));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (name_of(from), name_of(to));
        let mut disk = self.lock();
        alive(&disk)?;
        let ino = disk.names.remove(&from).ok_or_else(|| not_found(&from))?;
        disk.names.insert(to.clone(), ino);
        disk.dir_ops.push(DirOp::Rename(from.clone(), to.clone()));
        drop(disk);
        self.record(format!("disk rename {from} {to}"));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let name = name_of(path);
        let mut disk = self.lock();
        alive(&disk)?;
        disk.names.remove(&name).ok_or_else(|| not_found(&name))?;
        disk.dir_ops.push(DirOp::Unlink(name.clone()));
        drop(disk);
        self.record(format!("disk remove {name}"));
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        alive(&disk)?;
        let fault = self.decide(&mut disk, Op::SyncDir);
        let result = if fault.is_some() {
            Err(eio("fsync of the directory: input/output error"))
        } else {
            let disk = &mut *disk;
            for op in disk.dir_ops.drain(..) {
                apply(&mut disk.durable, op);
            }
            Ok(())
        };
        drop(disk);
        self.record(format!("disk sync-dir {fault:?}"));
        result
    }
}
