//! Offline operations on a data dir: backups and restores, compaction, point-in-time builds,
//! projection rebuilds and comparisons, and log inspection.
//!
//! These are what `pb-tools` and the backup endpoints call; a server serving requests needs
//! none of them (the run-time surface is the crate root). Every item here is re-exported from
//! the module that implements it; this module only groups them.
//!
//! Invariant: nothing here names a SQLite (rusqlite) type; a projection database is reached
//! through [`Projection`].

use crate::engine::open_projection;
use crate::projection::{self, Catalog};
use crate::{Commit, Error, LogReader, Result, Seq};
use rusqlite::Connection;
use std::path::Path;

/// Data dir layout: the projection file, the log directory and the lock file inside a data
/// dir, and where snapshots live.
pub use crate::engine::{DATA_DB, LOCK_FILE, LOG_DIR};
/// Snapshots and point-in-time projection builds (`snapshots/snap-<seq>.db`).
pub use crate::snapshot::{
    build_projection_at, parse_snapshot_name, snapshot_name, snapshots_dir, BuildReport,
};

/// Backups (a zip archive with a manifest, the log range, snapshots and stored files) and restores (into a
/// new data dir, or staged into a live one and applied at the next start).
pub use crate::backup::{
    apply_staged_restore, read_manifest, resolve_target, restore_archive, restore_dir,
    stage_restore, write_backup, At, BackupReport, Manifest, ManifestFile, Progress,
    RestoreOptions, RestoreReport, PENDING_RESTORE,
};

/// Stored files (`storage/<collectionId>/<recordId>/<name>`) seen from the log: the set a
/// projection references (`_stored_files`) and the sweep of files no restore point needs.
pub use crate::files::{
    referenced_at, sweep_storage_older_than, sweep_unneeded, ExternalFiles, FileKey, FileSweep,
    FILES_GRACE_MS, STORAGE_DIR,
};

/// Offline compaction of a data dir's log, step by step (a running engine compacts with
/// [`crate::Engine::compact`]).
pub use crate::compact::{compact_dir, CompactStep};

/// Log scanning and inspection: segment names, the segment header, frames and commit
/// payloads as they are on disk (see `FORMAT.md`).
pub use crate::codec::{decode_commit, encode_commit, DecodeError};
pub use crate::frame::{decode_frame, FrameRead};
pub use crate::log::{parse_segment_name, scan_log_dir, segment_name, SEGMENT_HEADER_LEN};
/// Cutting a deposed cluster leader's unreplicated tail aside (`.broken-cluster-*` files).
pub use crate::replica::{discard_log_tail, DiscardedTail, DISCARDED_TAIL_SUFFIX};

/// A projection database (`data.db` or a copy) opened outside an engine: to rebuild it from a
/// log, read its position, or compare its content with another.
///
/// Opened read-only it only reads ([`Projection::apply`] and [`Projection::replay`] fail);
/// opened writable it has WAL mode and the bookkeeping tables, and applies commits with the
/// same code as the engine's replay.
pub struct Projection {
    conn: Connection,
    catalog: Catalog,
    writable: bool,
}

impl Projection {
    /// Opens (creating if needed) a projection for writing.
    pub fn open(path: &Path) -> Result<Projection> {
        let conn = open_projection(path)?;
        let catalog = projection::load_catalog(&conn)?;
        Ok(Projection {
            conn,
            catalog,
            writable: true,
        })
    }

    /// Opens an existing projection read-only (safe beside a running server; creates no file).
    pub fn open_read_only(path: &Path) -> Result<Projection> {
        Ok(Projection {
            conn: crate::snapshot::open_read_only(path)?,
            catalog: Catalog::default(),
            writable: false,
        })
    }

    /// Opens an existing projection read-only for queries, like a connection of a running
    /// engine's read pool (`query_only`, the engine's SQL functions and row counter): for
    /// serving reads from a materialised past state (see [`Projection::read`]).
    pub fn open_for_reads(path: &Path) -> Result<Projection> {
        let conn = crate::snapshot::open_read_only(path)?;
        conn.pragma_update(None, "query_only", "ON")?;
        projection::register_functions(&conn)?;
        projection::register_row_counter(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Projection {
            conn,
            catalog: Catalog::default(),
            writable: false,
        })
    }

    /// Runs `f` with this projection as a [`crate::ReadConn`] (the queries a running engine's
    /// read pool serves work here too).
    pub fn read<T>(&self, f: impl FnOnce(&crate::ReadConn<'_>) -> Result<T>) -> Result<T> {
        f(&crate::ReadConn::over(&self.conn))
    }

    /// The seq of the last commit applied to it (0 for a new one).
    pub fn last_applied(&self) -> Result<Seq> {
        projection::last_applied(&self.conn)
    }

    /// The canonical dump of its content (schema and rows, in a fixed order): two projections
    /// hold the same state exactly when their dumps are equal.
    pub fn dump(&self) -> Result<Vec<String>> {
        projection::dump(&self.conn)
    }

    /// An order-independent digest of its content (equal content, equal digest).
    pub fn digest(&self) -> Result<u64> {
        crate::scrub::digest(&self.conn)
    }

    /// Applies `commits` (which must continue its seq) in one transaction; returns the last
    /// applied seq.
    pub fn apply(&mut self, commits: &[Commit]) -> Result<Seq> {
        self.check_writable()?;
        crate::writer::apply_batch(&self.conn, &mut self.catalog, commits)
    }

    /// Replays commits `[from, to]` of `reader` into it, reporting progress as the number of
    /// commits applied per batch; returns the last applied seq.
    pub fn replay(
        &mut self,
        reader: &LogReader,
        from: Seq,
        to: Seq,
        progress: impl FnMut(u64),
    ) -> Result<Seq> {
        self.check_writable()?;
        crate::engine::replay_into(&self.conn, &mut self.catalog, reader, from, to, progress)
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::Sqlite(
                "the projection was opened read-only; open it writable to apply commits".into(),
            ))
        }
    }
}
