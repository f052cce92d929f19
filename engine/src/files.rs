//! Stored files in the data dir (`storage/<collectionId>/<recordId>/<name>`) seen from the log:
//! which files a point references, which files a range of restore points needs, and the sweep
//! that deletes the bytes of every other file (retention GC and orphans).
//!
//! The referenced set at a point is the projection's `_stored_files` table at that point: the
//! replay of every `Change::FilesChanged` (added names inserted, removed names deleted) and of
//! `CollectionDeleted` (all of that collection's rows deleted). It travels inside snapshots, so
//! it survives compaction. The files that the restore points `[from - 1, to]` need are
//! `referenced(from - 1) ∪ added in [from, to]` (names are unique and never reused, so a file
//! referenced at any point in the range is in one of the two sets).
//!
//! Invariants:
//! 1. [`sweep_storage`] never removes a file in the needed set, and never a file modified less
//!    than `grace_ms` ago (an upload renamed into place whose commit is not appended yet).
//! 2. It never follows a symlink and never leaves `storage/`: only regular files and
//!    PocketBase's `thumbs_<name>/` directories two levels below it are touched.
//! 3. A thumbnail directory goes only with its original (unneeded and gone).

#![allow(
    clippy::disallowed_methods,
    reason = "stored files are not log files: the sweep removes them directly"
)]

use crate::commit::{Change, Seq};
use crate::error::{Error, Result};
use crate::log::LogReader;
use crate::snapshot::{open_read_only, snapshot_name};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::Path;

/// Name of the local file storage directory in a data dir.
pub const STORAGE_DIR: &str = "storage";
/// How old an unreferenced stored file must be before a sweep beside a running server removes
/// it: an upload is renamed into storage just before its commit is appended, so a younger file
/// may be referenced by a commit in flight. (A sweep with the data dir locked and no writer —
/// at start, offline — passes 0.)
pub const FILES_GRACE_MS: i64 = 15 * 60 * 1000;
/// Commits read per batch when scanning the log for added files.
const SCAN_BATCH: usize = 1000;

/// A stored file: (collection id, record id, file name).
pub type FileKey = (String, String, String);

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSweep {
    /// Stored files kept.
    pub kept: usize,
    /// Unreferenced files younger than the grace period, kept this time.
    pub young: usize,
    /// Stored files removed.
    pub removed: usize,
    /// Their bytes.
    pub bytes_removed: u64,
}

/// The files referenced by the projection on `conn` (its `_stored_files` table); `None` when
/// it has no such table (a projection or snapshot made by an older build: unknown).
pub(crate) fn referenced_in(conn: &Connection) -> Result<Option<BTreeSet<FileKey>>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_stored_files'",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let mut statement = conn.prepare("SELECT collection_id, record_id, name FROM _stored_files")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(Some(rows.collect::<std::result::Result<_, _>>()?))
}

/// The files referenced by the projection database `db` (opened read-only); `None` when it
/// predates the `_stored_files` table.
pub fn referenced_at(db: &Path) -> Result<Option<BTreeSet<FileKey>>> {
    referenced_in(&open_read_only(db)?)
}

/// Adds to `into` every file that a `FilesChanged` in `[from, to]` of `reader` added.
pub(crate) fn added_in(
    reader: &LogReader,
    from: Seq,
    to: Seq,
    into: &mut BTreeSet<FileKey>,
) -> Result<()> {
    let mut seq = from;
    while seq <= to {
        let commits = reader.read_from(seq, SCAN_BATCH)?;
        let Some(tail) = commits.last() else { break };
        seq = tail.seq + 1;
        for commit in commits.iter().filter(|commit| commit.seq <= to) {
            for change in &commit.changes {
                if let Change::FilesChanged {
                    collection_id,
                    record_id,
                    added,
                    ..
                } = change
                {
                    for name in added {
                        into.insert((collection_id.clone(), record_id.clone(), name.clone()));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The files the restore points `[from - 1, to]` need: those referenced at `from - 1` (read
/// from `snapshots_dir/snap-(from-1).db`, nothing when `from <= 1`) and those added in
/// `[from, to]`. `None` when that snapshot predates the `_stored_files` table.
pub(crate) fn needed_files(
    reader: &LogReader,
    snapshots_dir: &Path,
    from: Seq,
    to: Seq,
) -> Result<Option<BTreeSet<FileKey>>> {
    let mut needed = if from > 1 {
        let snapshot = snapshots_dir.join(snapshot_name(from - 1));
        if !snapshot.exists() {
            return Err(Error::invalid_target(format!(
                "no snapshot at seq {} to read the files referenced there",
                from - 1
            )));
        }
        match referenced_at(&snapshot)? {
            Some(referenced) => referenced,
            None => return Ok(None),
        }
    } else {
        BTreeSet::new()
    };
    added_in(reader, from, to, &mut needed)?;
    Ok(Some(needed))
}

fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|err| Error::io("list", dir, err)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(Error::io("list", dir, err)),
    }
}

/// Stored files kept outside the data dir (an S3 bucket), registered on a running engine
/// ([`crate::Engine::set_external_files`]) so that compaction's file step sweeps them with the
/// same needed set and grace period as `storage/`. Called on the compaction thread.
pub trait ExternalFiles: Send + Sync {
    /// Deletes every stored object not in `needed` and older than `grace_ms` (with the
    /// thumbnails of deleted files). An error leaves the rest for the next sweep.
    fn sweep(
        &self,
        needed: &BTreeSet<FileKey>,
        grace_ms: i64,
    ) -> std::result::Result<FileSweep, String>;
}

/// Removes every stored file of `data_dir` that is not in `needed` and older than `grace_ms`
/// (invariants 1-3), with the thumbnails of removed files and record/collection directories
/// left empty.
pub fn sweep_storage(
    data_dir: &Path,
    needed: &BTreeSet<FileKey>,
    grace_ms: i64,
) -> Result<FileSweep> {
    let cutoff = std::time::SystemTime::now()
        .checked_sub(std::time::Duration::from_millis(
            u64::try_from(grace_ms.max(0)).unwrap_or(0),
        ))
        .unwrap_or(std::time::UNIX_EPOCH);
    sweep_storage_older_than(data_dir, needed, cutoff)
}

/// [`sweep_storage`] with an absolute cutoff: only files modified before `cutoff` go (a
/// background sweep after a start passes the start time: every upload since is younger).
pub fn sweep_storage_older_than(
    data_dir: &Path,
    needed: &BTreeSet<FileKey>,
    cutoff: std::time::SystemTime,
) -> Result<FileSweep> {
    let root = data_dir.join(STORAGE_DIR);
    let mut sweep = FileSweep::default();
    for collection in entries(&root)? {
        let collection_path = collection.path();
        let collection_type = collection
            .file_type()
            .map_err(|err| Error::io("stat", &collection_path, err))?;
        if !collection_type.is_dir() {
            continue;
        }
        let collection_id = collection.file_name().to_string_lossy().into_owned();
        for record in entries(&collection_path)? {
            let record_path = record.path();
            let record_type = record
                .file_type()
                .map_err(|err| Error::io("stat", &record_path, err))?;
            if !record_type.is_dir() {
                continue;
            }
            let record_id = record.file_name().to_string_lossy().into_owned();
            let mut removed_here = false;
            let mut thumb_dirs = Vec::new();
            for file in entries(&record_path)? {
                let path = file.path();
                let metadata = std::fs::symlink_metadata(&path)
                    .map_err(|err| Error::io("stat", &path, err))?;
                let name = file.file_name().to_string_lossy().into_owned();
                if metadata.is_dir() {
                    if let Some(original) = name.strip_prefix("thumbs_") {
                        thumb_dirs.push((original.to_string(), path));
                    }
                    continue;
                }
                if !metadata.is_file() {
                    continue;
                }
                let key = (collection_id.clone(), record_id.clone(), name);
                if needed.contains(&key) {
                    sweep.kept += 1;
                    continue;
                }
                if metadata
                    .modified()
                    .map_or(true, |modified| modified >= cutoff)
                {
                    sweep.young += 1;
                    continue;
                }
                std::fs::remove_file(&path).map_err(|err| Error::io("remove", &path, err))?;
                tracing::debug!(path = %path.display(), "removed an unreferenced stored file");
                sweep.removed += 1;
                sweep.bytes_removed += metadata.len();
                removed_here = true;
            }
            for (original, path) in thumb_dirs {
                let key = (collection_id.clone(), record_id.clone(), original.clone());
                if !needed.contains(&key) && !record_path.join(&original).exists() {
                    std::fs::remove_dir_all(&path)
                        .map_err(|err| Error::io("remove dir", &path, err))?;
                    removed_here = true;
                }
            }
            if removed_here {
                crate::snapshot::sync_dir(&record_path)?;
                // An empty record directory goes too (remove_dir fails when not empty).
                if std::fs::remove_dir(&record_path).is_ok() {
                    crate::snapshot::sync_dir(&collection_path)?;
                }
            }
        }
        if std::fs::remove_dir(&collection_path).is_ok() {
            crate::snapshot::sync_dir(&root)?;
        }
    }
    Ok(sweep)
}

/// The orphan sweep: removes every stored file of `data_dir` that no restore point of its
/// retained log needs (`needed_files` over `[first, last]` of `reader`) and that is older than
/// `grace_ms`. Pass `grace_ms = 0` only when no writer runs on the dir (at start, offline).
/// Sweeps nothing when the snapshot at the log start predates the `_stored_files` table.
pub fn sweep_unneeded(data_dir: &Path, reader: &LogReader, grace_ms: i64) -> Result<FileSweep> {
    if !data_dir.join(STORAGE_DIR).is_dir() {
        return Ok(FileSweep::default());
    }
    let first = reader.first_seq();
    let last = reader.last_seq();
    let Some(needed) = needed_files(
        reader,
        &crate::snapshot::snapshots_dir(data_dir),
        first,
        last,
    )?
    else {
        tracing::warn!(
            "the snapshot at the log start predates the stored-files table: stored files \
             are not swept (a compaction past the next snapshot enables it)"
        );
        return Ok(FileSweep::default());
    };
    sweep_storage(data_dir, &needed, grace_ms)
}
