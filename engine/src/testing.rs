//! Test support: a fault-injecting [`Storage`] and helpers shared by tests and fuzz targets.
//!
//! Compiled only with the `testing` cargo feature, which test and fuzz crates enable through
//! their dev-dependencies (the engine's own tests through a self dev-dependency); a normal
//! build never contains it.
//!
//! 1. [`FaultyStorage`] wraps the real file system and fails the Nth append, sync or rename,
//!    once or persistently, with an error of the chosen kind (e.g. "disk full").
//! 2. Fuzz targets call only functions of this module, so a crash input replays as a test.
//! 3. [`PowerLossStorage`] wraps the real file system and records every log write, sync,
//!    rename and removal; [`DiskModel`] replays such a journal and materialises what a power
//!    loss after any operation may leave (synced bytes survive; the unsynced tail is kept,
//!    dropped, torn, zeroed or page-scattered; unsynced directory entries survive or not).
//! 4. [`recover_segment_bytes`] is the recovery verdict on one segment's bytes, without I/O.

use crate::storage::{AppendFile, FsStorage, Storage};
use std::io;
use std::path::{Path, PathBuf};
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

/// The recovery verdict on the bytes of one segment file starting at `seq_first`, as
/// `Log::open` reaches it, without any I/O: the seqs of the valid frames in order and the
/// offset of a torn tail (None when the segment is whole), or the error the open refuses with.
/// `is_last` says whether the segment is the log's last one (only that one may be torn).
pub fn recover_segment_bytes(
    bytes: &[u8],
    seq_first: crate::Seq,
    is_last: bool,
) -> crate::Result<(Vec<crate::Seq>, Option<u64>)> {
    let mut seqs = Vec::new();
    let scan = crate::log::scan_segment(
        Path::new("segment"),
        bytes,
        seq_first,
        is_last,
        None,
        |commit, _| seqs.push(commit.seq),
    )?;
    Ok((seqs, scan.torn_at))
}

/// Writes a backup of `source` in the tar format of older builds (archive version 1, no
/// stored files), to test that such archives still restore.
pub fn write_legacy_tar_backup(
    source: &Path,
    out: &Path,
) -> crate::Result<crate::admin::BackupReport> {
    crate::backup::write_legacy_tar_backup(source, out)
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

/// Page size of the power-loss model: unsynced bytes reach the disk in whole pages of this many
/// bytes, aligned to absolute file offsets.
pub const POWER_LOSS_PAGE: usize = 4096;

/// One recorded log I/O operation (paths as the engine passed them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerOp {
    /// `Storage::write_new`: a whole new file, synced; its name is durable only after a
    /// directory sync.
    WriteNew(PathBuf, Vec<u8>),
    /// `AppendFile::append`: not durable until a sync.
    Append(PathBuf, Vec<u8>),
    /// `AppendFile::sync`: the file's bytes so far are durable.
    Sync(PathBuf),
    /// `AppendFile::truncate` (which syncs the file).
    Truncate(PathBuf, u64),
    /// `Storage::rename`.
    Rename(PathBuf, PathBuf),
    /// `Storage::remove`.
    Remove(PathBuf),
    /// `Storage::sync_dir`: the directory's current entries are durable.
    SyncDir(PathBuf),
}

/// What a power loss does to the bytes written after a file's last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailFate {
    /// Every byte reached the disk.
    Kept,
    /// None did (the file has its synced length).
    Dropped,
    /// The first `n` bytes did, the rest is gone (the file is shorter).
    Torn(usize),
    /// The length grew but no data block reached the disk: the bytes read back as zeros.
    Zeroed,
    /// The length grew and only the pages whose bit is set (bit 0 = the page holding the first
    /// unsynced byte, pages aligned to [`POWER_LOSS_PAGE`] in the file) reached the disk; the
    /// others read back as zeros.
    Scattered(u64),
}

/// Which directory entries survive a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamesFate {
    /// Only entries made durable by a directory sync.
    Synced,
    /// Every entry as the process last saw it.
    Current,
}

/// The real file system, recording every log write, sync, rename and removal so that a test
/// can later materialise the on-disk state a power loss after any operation may leave
/// (deterministic; see [`DiskModel`]). Must start on an empty log directory.
#[derive(Clone, Default)]
pub struct PowerLossStorage {
    journal: Arc<Mutex<Vec<PowerOp>>>,
    #[expect(clippy::type_complexity, reason = "a shared optional callback")]
    hook: Arc<Mutex<Option<Box<dyn FnMut(usize) + Send>>>>,
}

impl PowerLossStorage {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `hook` with the journal length after every recorded operation, on the thread
    /// doing the I/O (while the engine waits for it).
    pub fn on_op(&self, hook: impl FnMut(usize) + Send + 'static) {
        *self.hook.lock().expect("hook lock") = Some(Box::new(hook));
    }

    /// Operations recorded so far.
    pub fn len(&self) -> usize {
        self.journal.lock().expect("journal lock").len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the journal.
    pub fn journal(&self) -> Vec<PowerOp> {
        self.journal.lock().expect("journal lock").clone()
    }

    fn record(&self, op: PowerOp) {
        let len = {
            let mut journal = self.journal.lock().expect("journal lock");
            journal.push(op);
            journal.len()
        };
        if let Some(hook) = self.hook.lock().expect("hook lock").as_mut() {
            hook(len);
        }
    }
}

struct RecordingFile {
    inner: Box<dyn AppendFile>,
    path: PathBuf,
    storage: PowerLossStorage,
}

impl AppendFile for RecordingFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.append(bytes)?;
        self.storage
            .record(PowerOp::Append(self.path.clone(), bytes.to_vec()));
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()?;
        self.storage.record(PowerOp::Sync(self.path.clone()));
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)?;
        self.storage
            .record(PowerOp::Truncate(self.path.clone(), len));
        Ok(())
    }
}

impl Storage for PowerLossStorage {
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
        if create {
            self.record(PowerOp::WriteNew(path.to_path_buf(), Vec::new()));
        }
        Ok(Box::new(RecordingFile {
            inner: FsStorage.open_append(path, create)?,
            path: path.to_path_buf(),
            storage: self.clone(),
        }))
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        FsStorage.write_new(path, bytes)?;
        self.record(PowerOp::WriteNew(path.to_path_buf(), bytes.to_vec()));
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)?;
        self.record(PowerOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)?;
        self.record(PowerOp::Remove(path.to_path_buf()));
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)?;
        self.record(PowerOp::SyncDir(dir.to_path_buf()));
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct ModelFile {
    content: Vec<u8>,
    durable_len: usize,
}

/// The file system as a sequence of [`PowerOp`]s left it, with what is durable: per file the
/// synced prefix of its bytes (the log only appends, so what is synced is always a prefix),
/// and per directory the entries made durable by the last directory sync.
#[derive(Debug, Clone, Default)]
pub struct DiskModel {
    files: Vec<ModelFile>,
    current: std::collections::BTreeMap<PathBuf, usize>,
    synced: std::collections::BTreeMap<PathBuf, usize>,
}

impl DiskModel {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: &PowerOp) {
        match op {
            PowerOp::WriteNew(path, bytes) => {
                let file = ModelFile {
                    content: bytes.clone(),
                    durable_len: bytes.len(),
                };
                match self.current.get(path) {
                    Some(&id) => self.files[id] = file,
                    None => {
                        self.files.push(file);
                        self.current.insert(path.clone(), self.files.len() - 1);
                    }
                }
            }
            PowerOp::Append(path, bytes) => {
                if let Some(&id) = self.current.get(path) {
                    self.files[id].content.extend_from_slice(bytes);
                }
            }
            PowerOp::Sync(path) => {
                if let Some(&id) = self.current.get(path) {
                    self.files[id].durable_len = self.files[id].content.len();
                }
            }
            PowerOp::Truncate(path, len) => {
                if let Some(&id) = self.current.get(path) {
                    let file = &mut self.files[id];
                    file.content.truncate(*len as usize);
                    file.durable_len = file.content.len();
                }
            }
            PowerOp::Rename(from, to) => {
                if let Some(id) = self.current.remove(from) {
                    self.current.insert(to.clone(), id);
                }
            }
            PowerOp::Remove(path) => {
                self.current.remove(path);
            }
            PowerOp::SyncDir(dir) => {
                self.synced.retain(|path, _| path.parent() != Some(dir));
                for (path, id) in &self.current {
                    if path.parent() == Some(dir) {
                        self.synced.insert(path.clone(), *id);
                    }
                }
            }
        }
    }

    /// True when the surviving directory entries depend on [`NamesFate`].
    pub fn names_unsynced(&self) -> bool {
        self.current != self.synced
    }

    /// Bytes written after the last sync, per surviving file (0 when synced), largest first.
    pub fn unsynced_tails(&self, names: NamesFate) -> Vec<(PathBuf, usize, usize)> {
        let mut out: Vec<(PathBuf, usize, usize)> = self
            .names(names)
            .iter()
            .map(|(path, &id)| {
                let file = &self.files[id];
                (
                    path.clone(),
                    file.durable_len,
                    file.content.len() - file.durable_len,
                )
            })
            .filter(|(_, _, unsynced)| *unsynced > 0)
            .collect();
        out.sort_by_key(|(_, _, unsynced)| std::cmp::Reverse(*unsynced));
        out
    }

    fn names(&self, names: NamesFate) -> &std::collections::BTreeMap<PathBuf, usize> {
        match names {
            NamesFate::Synced => &self.synced,
            NamesFate::Current => &self.current,
        }
    }

    /// The files a power loss leaves: each surviving entry (per `names`) holds its synced bytes
    /// followed by its unsynced bytes as `tail` mangles them. Paths are the recorded ones.
    pub fn crash_state(&self, names: NamesFate, tail: TailFate) -> Vec<(PathBuf, Vec<u8>)> {
        self.names(names)
            .iter()
            .map(|(path, &id)| {
                let file = &self.files[id];
                let mut bytes = file.content[..file.durable_len].to_vec();
                let unsynced = &file.content[file.durable_len..];
                match tail {
                    TailFate::Kept => bytes.extend_from_slice(unsynced),
                    TailFate::Dropped => {}
                    TailFate::Torn(n) => {
                        bytes.extend_from_slice(&unsynced[..n.min(unsynced.len())])
                    }
                    TailFate::Zeroed => bytes.resize(file.content.len(), 0),
                    TailFate::Scattered(mask) => {
                        let first_page = file.durable_len / POWER_LOSS_PAGE;
                        for (index, &byte) in unsynced.iter().enumerate() {
                            let page = (file.durable_len + index) / POWER_LOSS_PAGE - first_page;
                            let reached = page < 64 && mask & (1 << page) != 0;
                            bytes.push(if reached { byte } else { 0 });
                        }
                    }
                }
                (path.clone(), bytes)
            })
            .collect()
    }
}
