//! A file system in memory for the file store's tests: files can be read and replaced byte
//! by byte, writes can fail like a full disk or a broken device, and a power cut keeps only
//! what was synced.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use durable_runtime::store::{FileSystem, WritableFile};

#[derive(Debug, Default)]
struct File {
    data: Vec<u8>,
    /// How many bytes a power cut keeps.
    synced: usize,
}

type Shared = Arc<Mutex<File>>;

type Rule = Box<dyn Fn(&Path) -> bool + Send + Sync>;

#[derive(Default)]
struct Inner {
    files: BTreeMap<PathBuf, Shared>,
    /// The directory entries as of the last `sync_dir`.
    durable: BTreeMap<PathBuf, Shared>,
    locked: HashSet<PathBuf>,
    /// Writes fail with `StorageFull` after half of the buffer landed; creating an empty
    /// file still works, as on a real full disk.
    full: bool,
    /// Creations, writes and syncs of the paths it matches fail with an I/O error.
    broken: Option<Rule>,
    /// Every `write_all` call, failed or not.
    writes: u64,
    /// Every path `create` was called with, in order, failed or not.
    created: Vec<PathBuf>,
}

/// A file system in memory; clones share the same files.
#[derive(Clone, Default)]
pub struct MemFs(Arc<Mutex<Inner>>);

impl fmt::Debug for MemFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFs")
            .field("files", &self.inner().files.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn lock(file: &Shared) -> MutexGuard<'_, File> {
    file.lock().unwrap()
}

impl MemFs {
    /// A file system holding `files`, all of them synced.
    pub fn with_files(files: &BTreeMap<PathBuf, Vec<u8>>) -> MemFs {
        let fs = MemFs::default();
        {
            let mut inner = fs.inner();
            for (path, data) in files {
                let file = Arc::new(Mutex::new(File {
                    data: data.clone(),
                    synced: data.len(),
                }));
                inner.files.insert(path.clone(), Arc::clone(&file));
                inner.durable.insert(path.clone(), file);
            }
        }
        fs
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap()
    }

    /// Every file and its content (synced or not).
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.inner()
            .files
            .iter()
            .map(|(path, file)| (path.clone(), lock(file).data.clone()))
            .collect()
    }

    /// The names of the files in `dir`, sorted.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        self.list(dir).unwrap()
    }

    pub fn set_full(&self, full: bool) {
        self.inner().full = full;
    }

    /// Makes creations, writes and syncs of the paths `rule` matches fail (`None`: none).
    pub fn break_paths(&self, rule: Option<Rule>) {
        self.inner().broken = rule;
    }

    pub fn writes(&self) -> u64 {
        self.inner().writes
    }

    pub fn created(&self) -> Vec<PathBuf> {
        self.inner().created.clone()
    }

    /// A power cut: unsynced bytes and directory entries are gone, and so is every lock.
    pub fn power_cut(&self) {
        let mut inner = self.inner();
        inner.files = inner.durable.clone();
        for file in inner.files.values() {
            let mut f = lock(file);
            let synced = f.synced;
            f.data.truncate(synced);
        }
        inner.locked.clear();
    }

    fn broken(&self, path: &Path) -> io::Result<()> {
        match &self.inner().broken {
            Some(rule) if rule(path) => Err(io::Error::other(format!(
                "injected failure on {}",
                path.display()
            ))),
            _ => Ok(()),
        }
    }
}

struct Writer {
    fs: MemFs,
    path: PathBuf,
    file: Shared,
}

impl WritableFile for Writer {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let full = {
            let mut inner = self.fs.inner();
            inner.writes += 1;
            inner.full
        };
        self.fs.broken(&self.path)?;
        let mut f = lock(&self.file);
        if full {
            f.data.extend_from_slice(&buf[..buf.len() / 2]);
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        f.data.extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.broken(&self.path)?;
        let mut f = lock(&self.file);
        f.synced = f.data.len();
        Ok(())
    }
}

/// Like a file descriptor, it keeps its file after a rename or removal, and sees what was
/// written but not synced.
struct Reader(Shared);

impl FileExt for Reader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let f = lock(&self.0);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(f.data.len());
        let n = buf.len().min(f.data.len() - start);
        buf[..n].copy_from_slice(&f.data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<usize> {
        Err(io::Error::other("read only"))
    }
}

struct DirLock(MemFs, PathBuf);

impl Drop for DirLock {
    fn drop(&mut self) {
        self.0.inner().locked.remove(&self.1);
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl FileSystem for MemFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        if !self.inner().locked.insert(dir.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        Ok(Box::new(DirLock(self.clone(), dir.to_path_buf())))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .inner()
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let inner = self.inner();
        let file = inner.files.get(path).ok_or_else(|| not_found(path))?;
        let data = lock(file).data.clone();
        Ok(data)
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn FileExt + Send + Sync>> {
        let inner = self.inner();
        let file = inner.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(Reader(Arc::clone(file))))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.inner().created.push(path.to_path_buf());
        self.broken(path)?;
        let file = Shared::default();
        self.inner()
            .files
            .insert(path.to_path_buf(), Arc::clone(&file));
        Ok(Box::new(Writer {
            fs: self.clone(),
            path: path.to_path_buf(),
            file,
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let inner = self.inner();
        let file = inner.files.get(path).ok_or_else(|| not_found(path))?;
        let mut f = lock(file);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        f.data.truncate(len);
        f.synced = f.synced.min(len);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut inner = self.inner();
        let file = inner.files.remove(from).ok_or_else(|| not_found(from))?;
        inner.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match self.inner().files.remove(path) {
            Some(_) => Ok(()),
            None => Err(not_found(path)),
        }
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut inner = self.inner();
        inner.durable = inner.files.clone();
        Ok(())
    }
}
