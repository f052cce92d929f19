//! The engine's one error type.
//!
//! 1. I/O failures name the operation and the path.
//! 2. Corruption names the segment file and the byte offset of the first bad frame.
//! 3. After a failed append or fsync the engine is poisoned; every later write returns
//!    [`Error::Poisoned`] until the data dir is reopened. Exception: a full disk
//!    ([`Error::is_storage_full`]) whose partial bytes were cut back poisons nothing; the
//!    write fails alone and writes work again once space is freed.
//! 4. An error answered for a write means it is not in the log (see FORMAT.md "Disk full").

use std::path::PathBuf;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("append", "fsync", "rename", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A frame before the tail of the log is damaged.
    #[error("log corrupt in {segment} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the bad frame inside the segment.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The log or a payload was written by a newer format version.
    #[error("unsupported format version {found} (this build reads up to {supported})")]
    FormatVersion {
        /// Version found on disk.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// An SQLite constraint (unique index, not-null, ...) failed while staging a change.
    #[error("constraint failed: {message}")]
    Constraint {
        /// Which kind of constraint, e.g. `unique`.
        kind: &'static str,
        /// SQLite's message (names the table and columns).
        message: String,
    },
    /// Any other SQLite error (bad SQL in a view query or index, ...).
    #[error("sqlite: {0}")]
    Sqlite(String),
    /// SQLite ran out of disk space (`SQLITE_FULL`).
    #[error("the disk is full: {0}")]
    StorageFull(String),
    /// One commit's payload exceeds the frame limit; only that command fails.
    #[error("the change is too large: its commit would take {bytes} bytes, the limit is {max}")]
    CommitTooLarge {
        /// Encoded payload size of the commit.
        bytes: u64,
        /// [`crate::FRAME_PAYLOAD_MAX`].
        max: u64,
    },
    /// The projection (`data.db`) is damaged (SQLite reports corruption or "not a database",
    /// or its bookkeeping rows do not parse). It is rebuilt from the log, never trusted.
    #[error("the projection (data.db) is damaged: {0}")]
    ProjectionDamaged(String),
    /// A previous append or fsync failed; the engine refuses writes until reopened.
    #[error("the engine is poisoned by an earlier write failure ({0}); restart to recover")]
    Poisoned(String),
    /// The writer queue is full.
    #[error("the writer queue is full; try again")]
    Overloaded,
    /// The engine is shut down.
    #[error("the engine is closed")]
    Closed,
    /// The data dir is owned by another process.
    #[error("data dir {0} is locked by another process (is another server running on it?)")]
    Locked(PathBuf),
    /// A change refers to something that does not exist (unknown collection, ...).
    #[error("invalid change: {0}")]
    InvalidChange(String),
    /// A restore or backup target that names no state of the log (a time before the first
    /// commit, a malformed position, ...).
    #[error("invalid restore point: {0}")]
    InvalidTarget(String),
    /// A backup archive that is damaged, of an unknown format, or holds unsafe entries.
    #[error("bad backup archive: {0}")]
    BadArchive(String),
    /// A requested log position is no longer (or not yet) in the log.
    #[error("position {seq} is not available: {reason}")]
    SeqUnavailable {
        /// The requested seq.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// Extra variants used by snapshots, restores and archives.
impl Error {
    /// A restore target (position or time) that names no state of the log.
    pub fn invalid_target(reason: impl Into<String>) -> Self {
        Error::InvalidTarget(reason.into())
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the error means "no space left" (ENOSPC, a quota, or SQLite's `SQLITE_FULL`):
    /// a condition the caller can fix by freeing space, after which writes work again.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::StorageFull(_) => true,
            Error::Io { source, .. } => io_is_storage_full(source),
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// ENOSPC / EDQUOT (by kind or raw OS code).
pub(crate) fn io_is_storage_full(err: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(err.raw_os_error(), Some(ENOSPC | EDQUOT))
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, message) = &err {
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) {
                return Error::ProjectionDamaged(
                    message.clone().unwrap_or_else(|| err.to_string()),
                );
            }
            if code.code == rusqlite::ErrorCode::DiskFull {
                return Error::StorageFull(message.clone().unwrap_or_else(|| err.to_string()));
            }
            if code.code == rusqlite::ErrorCode::ConstraintViolation {
                let kind = match code.extended_code {
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "unique",
                    rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => "not_null",
                    _ => "other",
                };
                return Error::Constraint {
                    kind,
                    message: message.clone().unwrap_or_else(|| err.to_string()),
                };
            }
        }
        Error::Sqlite(err.to_string())
    }
}
