//! Test support: a fault-injecting [`Storage`] and helpers shared by tests and fuzz targets.
//!
//! 1. [`FaultyStorage`] wraps the real file system and fails the Nth append, sync or rename,
//!    once or persistently, with an error of the chosen kind (e.g. "disk full").
//! 2. Fuzz targets call only functions of this module, so a crash input replays as a test.

use crate::storage::{AppendFile, FsStorage, Storage};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which operation to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// Appends to a log file.
    Append,
    /// fsync of a log file.
    Sync,
    /// Renames and directory syncs (segment creation).
    Rename,
    /// The projection's SQLite `COMMIT` after a group's log fsync
    /// ([`Storage::before_projection_commit`]).
    ProjectionCommit,
}

/// A planned failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Operation to fail.
    pub op: FaultOp,
    /// Fail the nth (1-based) such operation.
    pub nth: u64,
    /// Keep failing every later one too.
    pub persistent: bool,
    /// Error kind returned (`StorageFull` for disk full).
    pub kind: io::ErrorKind,
}

#[derive(Default)]
struct Counters {
    append: AtomicU64,
    sync: AtomicU64,
    rename: AtomicU64,
    projection_commit: AtomicU64,
}

/// The real file system with planned failures.
#[derive(Clone, Default)]
pub struct FaultyStorage {
    fault: Arc<Mutex<Option<Fault>>>,
    counters: Arc<Counters>,
}

impl FaultyStorage {
    /// No fault planned yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plans a fault, counting from now.
    pub fn plan(&self, fault: Fault) {
        self.counters.append.store(0, Ordering::SeqCst);
        self.counters.sync.store(0, Ordering::SeqCst);
        self.counters.rename.store(0, Ordering::SeqCst);
        self.counters.projection_commit.store(0, Ordering::SeqCst);
        *self.fault.lock().expect("fault lock") = Some(fault);
    }

    /// Removes the planned fault.
    pub fn clear(&self) {
        *self.fault.lock().expect("fault lock") = None;
    }

    fn check(&self, op: FaultOp) -> io::Result<()> {
        let counter = match op {
            FaultOp::Append => &self.counters.append,
            FaultOp::Sync => &self.counters.sync,
            FaultOp::Rename => &self.counters.rename,
            FaultOp::ProjectionCommit => &self.counters.projection_commit,
        };
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = *self.fault.lock().expect("fault lock");
        match fault {
            Some(fault)
                if fault.op == op
                    && (count == fault.nth || (fault.persistent && count > fault.nth)) =>
            {
                Err(io::Error::new(
                    fault.kind,
                    format!("injected {op:?} failure #{count}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

struct FaultyFile {
    inner: Box<dyn AppendFile>,
    storage: FaultyStorage,
}

impl AppendFile for FaultyFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(err) = self.storage.check(FaultOp::Append) {
            // A failed append may still leave a prefix of the bytes behind, as a real disk might.
            let _ = self.inner.append(&bytes[..bytes.len() / 2]);
            return Err(err);
        }
        self.inner.append(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.storage.check(FaultOp::Sync)?;
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        FsStorage.len(path)
    }
    fn read_at(&self, path: &Path, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        FsStorage.read_at(path, offset, max)
    }
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(FaultyFile {
            inner: FsStorage.open_append(path, create)?,
            storage: self.clone(),
        }))
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        FsStorage.write_new(path, bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultOp::Rename)?;
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(FaultOp::Rename)?;
        FsStorage.sync_dir(dir)
    }
    fn before_projection_commit(&self) -> io::Result<()> {
        self.check(FaultOp::ProjectionCommit)
    }
}

/// Fuzz entry: decode arbitrary bytes as a frame and a payload; must never panic.
pub fn fuzz_frame_decode(bytes: &[u8]) {
    if let crate::frame::FrameRead::Frame { payload, .. } = crate::frame::decode_frame(bytes) {
        let _ = crate::codec::decode_commit(payload);
    }
    let _ = crate::codec::decode_commit(bytes);
}

/// Fuzz entry: treat arbitrary bytes as the tail of a log segment and recover it; must never
/// panic, and whatever recovers must be a valid prefix.
pub fn fuzz_log_recover(bytes: &[u8]) {
    let Ok(dir) = tempdir_in_tmp() else { return };
    let log_dir = dir.join("log");
    let storage = FsStorage;
    if storage.create_dir_all(&log_dir).is_err() {
        return;
    }
    let mut segment = Vec::new();
    segment.extend_from_slice(crate::log::SEGMENT_MAGIC);
    segment.extend_from_slice(&crate::log::SEGMENT_VERSION.to_le_bytes());
    segment.extend_from_slice(&[0, 0]);
    segment.extend_from_slice(&1u64.to_le_bytes());
    segment.extend_from_slice(bytes);
    let path = log_dir.join(crate::log::segment_name(1));
    if storage.write_new(&path, &segment).is_ok() {
        let _ = crate::log::scan_log_dir(&storage, &log_dir, |_| {});
        let _ = crate::log::Log::open(Arc::new(FsStorage), &log_dir, 1 << 20, |_| Ok(()));
    }
    #[expect(clippy::disallowed_methods, reason = "test cleanup")]
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir_in_tmp() -> io::Result<std::path::PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pocketlog-fuzz-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    FsStorage.create_dir_all(&dir)?;
    Ok(dir)
}
