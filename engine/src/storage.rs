//! The I/O seam: every file operation of the log goes through [`Storage`].
//!
//! 1. [`FsStorage`] is the real file system and the only place that calls `std::fs`.
//! 2. Tests substitute a fault-injecting implementation (see `testing::FaultyStorage`).
//! 3. SQLite does its own I/O; the log is the source of truth, so only the log needs the seam.

#![allow(
    clippy::disallowed_methods,
    reason = "storage.rs is the one module that does the log's file I/O"
)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file opened for appending.
pub trait AppendFile: Send {
    /// Appends all bytes.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes appended bytes durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file back to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// The file-system operations the log needs.
pub trait Storage: Send + Sync + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) inside a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Size of a file.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Reads up to `max` bytes from `offset`.
    fn read_at(&self, path: &Path, offset: u64, max: usize) -> io::Result<Vec<u8>>;
    /// Opens a file for appending; `create` makes a new one (failing if it exists).
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn AppendFile>>;
    /// Writes a whole new file and syncs it.
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Renames a file.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Syncs a directory so created, renamed and removed entries are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Called by the writer after a group's log fsync, right before the projection's SQLite
    /// `COMMIT`; an error is treated as that `COMMIT` failing (a fault-injection point for
    /// tests: SQLite's own I/O does not go through this trait). The real file system never
    /// fails it.
    fn before_projection_commit(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

struct FsAppendFile {
    file: File,
}

impl AppendFile for FsAppendFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::End(0))?;
        self.file.sync_all()
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
    fn read_at(&self, path: &Path, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        file.take(max as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn AppendFile>> {
        let mut options = OpenOptions::new();
        options.append(true);
        if create {
            options.create_new(true);
        }
        let file = options.open(path)?;
        Ok(Box::new(FsAppendFile { file }))
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Joins a directory and a file name.
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
