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
    #[error("constraint failed: {}", .0.message)]
    Constraint(ConstraintViolation),
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
    /// This node is a replica (follower mode): it takes no local writes.
    #[error("this node is a replica; writes go to the cluster's leader")]
    NotLeader,
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
    /// A read ran longer than its deadline and was stopped ([`crate::ReadConn::within`]).
    #[error("the query ran longer than its timeout of {0:?}")]
    QueryTimeout(std::time::Duration),
    /// A requested log position is no longer (or not yet) in the log.
    #[error("position {seq} is not available: {reason}")]
    SeqUnavailable {
        /// The requested seq.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// Which kind of constraint a change broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConstraintKind {
    /// A unique index or the primary key.
    Unique,
    /// A `NOT NULL` column.
    NotNull,
    /// A `CHECK` constraint.
    Check,
    /// A foreign key.
    ForeignKey,
    /// Anything else SQLite reports as a constraint failure.
    Other,
}

/// A constraint failure, with the table and columns it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintViolation {
    /// Which kind of constraint.
    pub kind: ConstraintKind,
    /// The table, when SQLite names it (unique and not-null failures); empty otherwise.
    pub table: String,
    /// The columns in the constraint's order (one for not-null, every column of a composite
    /// unique index); empty when SQLite names none (checks, foreign keys, expression indexes).
    pub columns: Vec<String>,
    /// SQLite's message, for logs.
    pub message: String,
}

impl ConstraintViolation {
    /// Reads SQLite's constraint message: `UNIQUE constraint failed: t.a, t.b` and
    /// `NOT NULL constraint failed: t.a` name the table and columns; other forms (a `CHECK`
    /// with its name, `FOREIGN KEY constraint failed`, `index 'name'` for an expression index)
    /// leave them empty.
    fn parse(kind: ConstraintKind, message: String) -> ConstraintViolation {
        let mut table = String::new();
        let mut columns = Vec::new();
        if matches!(kind, ConstraintKind::Unique | ConstraintKind::NotNull) {
            let named = message
                .split_once("constraint failed:")
                .map(|(_, rest)| rest);
            for part in named.into_iter().flat_map(|rest| rest.split(',')) {
                let Some((owner, column)) = part.trim().split_once('.') else {
                    continue;
                };
                if table.is_empty() {
                    table = owner.to_string();
                }
                columns.push(column.to_string());
            }
        }
        ConstraintViolation {
            kind,
            table,
            columns,
            message,
        }
    }
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
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ConstraintKind::Unique,
                    rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => ConstraintKind::NotNull,
                    rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => ConstraintKind::Check,
                    rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ConstraintKind::ForeignKey,
                    _ => ConstraintKind::Other,
                };
                let message = message.clone().unwrap_or_else(|| err.to_string());
                return Error::Constraint(ConstraintViolation::parse(kind, message));
            }
        }
        Error::Sqlite(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '',
                                 a TEXT, b TEXT, n INTEGER CHECK (n >= 0));
             CREATE UNIQUE INDEX idx_title ON notes (title);
             CREATE UNIQUE INDEX idx_ab ON notes (a, b);
             CREATE UNIQUE INDEX idx_lower ON notes (lower(a), n);
             CREATE TABLE parents (id TEXT PRIMARY KEY);
             CREATE TABLE kids (id TEXT PRIMARY KEY, parent TEXT REFERENCES parents(id));
             INSERT INTO notes (id, title, a, b, n) VALUES ('x', 'one', 'p', 'q', 1);",
        )
        .expect("schema");
        conn
    }

    fn violation(sql: &str) -> ConstraintViolation {
        let err = db()
            .execute_batch(sql)
            .expect_err("the statement breaks a constraint");
        match Error::from(err) {
            Error::Constraint(violation) => violation,
            other => panic!("expected a constraint error, got {other:?}"),
        }
    }

    #[test]
    fn single_column_unique_names_table_and_column() {
        let found = violation("INSERT INTO notes (id, title) VALUES ('y', 'one')");
        assert_eq!(found.kind, ConstraintKind::Unique);
        assert_eq!(found.table, "notes");
        assert_eq!(found.columns, ["title"]);
        assert!(found.message.contains("notes.title"), "{}", found.message);
    }

    #[test]
    fn composite_unique_names_every_column_in_order() {
        let found = violation("INSERT INTO notes (id, title, a, b) VALUES ('y', 'two', 'p', 'q')");
        assert_eq!(found.kind, ConstraintKind::Unique);
        assert_eq!(found.table, "notes");
        assert_eq!(found.columns, ["a", "b"]);
    }

    #[test]
    fn primary_key_is_a_unique_violation_on_id() {
        let found = violation("INSERT INTO notes (id, title) VALUES ('x', 'two')");
        assert_eq!(found.kind, ConstraintKind::Unique);
        assert_eq!(found.table, "notes");
        assert_eq!(found.columns, ["id"]);
    }

    #[test]
    fn not_null_names_the_column() {
        let found = violation("INSERT INTO notes (id, title) VALUES ('y', NULL)");
        assert_eq!(found.kind, ConstraintKind::NotNull);
        assert_eq!(found.table, "notes");
        assert_eq!(found.columns, ["title"]);
    }

    #[test]
    fn check_and_foreign_key_and_expression_index_name_no_columns() {
        let check = violation("INSERT INTO notes (id, title, n) VALUES ('y', 'two', -1)");
        assert_eq!(check.kind, ConstraintKind::Check);
        assert!(
            check.columns.is_empty() && check.table.is_empty(),
            "{check:?}"
        );
        let foreign = violation("INSERT INTO kids (id, parent) VALUES ('k', 'missing')");
        assert_eq!(foreign.kind, ConstraintKind::ForeignKey);
        assert!(foreign.columns.is_empty(), "{foreign:?}");
        let expression =
            violation("INSERT INTO notes (id, title, a, n) VALUES ('y', 'two', 'P', 1)");
        assert_eq!(expression.kind, ConstraintKind::Unique);
        assert!(expression.columns.is_empty(), "{expression:?}");
        assert!(
            expression.message.contains("idx_lower"),
            "{}",
            expression.message
        );
    }

    #[test]
    fn display_keeps_sqlites_message() {
        let found = violation("INSERT INTO notes (id, title) VALUES ('y', 'one')");
        assert_eq!(
            Error::Constraint(found).to_string(),
            "constraint failed: UNIQUE constraint failed: notes.title"
        );
    }
}
