//! Compaction: drop log history older than a retention window, keeping state, `verify`, resume
//! positions and restore points inside the window unchanged.
//!
//! The cut `C` is the retention point itself (the oldest seq to keep): history before it goes
//! even when it lies inside the segment being written (a small log is one segment).
//!
//! Steps (each one leaves a valid data dir if the process dies right after it; see the
//! "Compaction" section of `engine/FORMAT.md`):
//!
//! | step | what                                                              | a crash after it leaves |
//! |------|-------------------------------------------------------------------|-------------------------|
//! | 1    | choose the cut `C` (the retention point)                           | the old state |
//! | 2    | when `C` is past the first seq of the active segment: roll it (through the log's append lock, between two groups) | the old state plus a new, empty last segment |
//! | 3    | write `snapshots/snap-(C-1).db` (tmp, fsync, rename, fsync dir)    | the old state plus a snapshot |
//! | 4    | when `C` is inside segment `S`: copy `S`'s frames from `C` on to `seg-C.log.tmp`, fsync | the old state plus an ignored `.tmp` |
//! | 5    | rename it to `seg-C.log`, fsync `log/`, add it to the readers' index | `S` and `seg-C` overlap: recovery reads `S` up to `C-1`, then `seg-C` |
//! | 6    | tell in-process readers the log now starts at `C`                  | the same on disk        |
//! | 7..  | remove the segments before `C` (`S` included), oldest first, fsyncing `log/` after each | a log starting at some `F <= C`, with a snapshot at `C-1 >= F-1` |
//! | last | remove snapshots older than `C-1`, stale snapshot `.tmp` files and split `.tmp` files below `C` | the new state |
//! | files | remove the stored files no retained restore point needs (`files.rs`), older than [`FILES_GRACE_MS`], in `storage/` and in the registered external storage (S3) | the new state with fewer unreferenced files |
//!
//! Invariants:
//! 1. A segment is removed only after a snapshot at `C-1` is durable, so a log starting at any
//!    `F <= C` always has a snapshot in `[F-1, last]` to start replay from.
//! 2. Segments are removed oldest first with a directory fsync after each, so the remaining
//!    segments are always contiguous (or overlap only as step 5 leaves them).
//! 3. The active segment is never rewritten or removed: it is rolled first, and only an
//!    immutable segment is split (copied; the original stays until the copy is durable).
//! 4. A stored file's bytes go only when no restore point from `C - 1` on needs them: not
//!    referenced at `C - 1` (the durable snapshot) and not added by a commit in `[C, last]`,
//!    so its removal commit is older than the retained log start; and it is older than the
//!    grace period (an upload whose commit is still in flight is never touched).

use crate::commit::Seq;
use crate::error::{Error, Result};
use crate::files::{ExternalFiles, FILES_GRACE_MS};
use crate::log::{parse_segment_name, LogReader};
use crate::snapshot::{
    build_projection_at, list_snapshots, remove_if_exists, snapshot_name, sync_dir,
};
use crate::storage::Storage;
use std::path::{Path, PathBuf};

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Keep every commit newer than this many milliseconds before now.
    Duration {
        /// The window in milliseconds.
        window_ms: i64,
        /// "Now" in milliseconds since the epoch.
        now_ms: i64,
    },
    /// Keep at least the last N commits.
    Commits(u64),
}

/// A point of a compaction, for crash-injection tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactStep {
    /// The cut is chosen; nothing is written yet.
    Planned {
        /// First seq the log keeps.
        cut: Seq,
    },
    /// The active segment was rolled: the cut was inside it.
    Rolled,
    /// The snapshot at `cut - 1` is durable.
    SnapshotWritten(Seq),
    /// The frames from the cut on are copied to this durable `.tmp` file (not yet named).
    SplitCopied(PathBuf),
    /// The copy is named `seg-<cut>.log` and the directory fsynced: it overlaps the segment
    /// it was copied from until that one is removed.
    SplitNamed(PathBuf),
    /// A segment was removed (and the directory fsynced).
    SegmentRemoved(PathBuf),
    /// Old snapshots and temporary files are gone.
    Done,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// First seq of the log before.
    pub first_before: Seq,
    /// First seq of the log after.
    pub first_after: Seq,
    /// Last seq of the log.
    pub last_seq: Seq,
    /// Segments removed.
    pub segments_removed: usize,
    /// Bytes of log removed.
    pub bytes_removed: u64,
    /// The snapshot the log now starts from (0: none needed).
    pub snapshot_seq: Seq,
    /// Snapshots removed because they are older than the new log start.
    pub snapshots_removed: usize,
    /// Bytes of log copied into a new segment because the cut was inside a segment.
    pub bytes_copied: u64,
    /// Stored files removed (no retained restore point needs them).
    pub files_removed: usize,
    /// Their bytes.
    pub file_bytes_removed: u64,
}

/// The file step of a compaction (invariant 4): sweeps the stored files that the restore
/// points from `from - 1` on do not need. Skipped (with a warning) when the snapshot at
/// `from - 1` predates the stored-files table.
fn collect_files(
    data_dir: &Path,
    reader: &LogReader,
    from: Seq,
    external: Option<&dyn ExternalFiles>,
    report: &mut CompactReport,
) -> Result<()> {
    if !data_dir.join(crate::files::STORAGE_DIR).is_dir() && external.is_none() {
        return Ok(());
    }
    let snapshots_dir = crate::snapshot::snapshots_dir(data_dir);
    let Some(needed) = crate::files::needed_files(reader, &snapshots_dir, from, reader.last_seq())?
    else {
        tracing::warn!(
            from,
            "the snapshot at the log start predates the stored-files table; stored files kept"
        );
        return Ok(());
    };
    let sweep = crate::files::sweep_storage(data_dir, &needed, FILES_GRACE_MS)?;
    if sweep.removed > 0 {
        tracing::info!(
            removed = sweep.removed,
            bytes = sweep.bytes_removed,
            "compaction removed stored files no retained restore point needs"
        );
    }
    report.files_removed = sweep.removed;
    report.file_bytes_removed = sweep.bytes_removed;
    if let Some(external) = external {
        // A bucket that cannot be reached now is swept at the next compaction: the log part
        // of this one is done and valid.
        match external.sweep(&needed, FILES_GRACE_MS) {
            Ok(sweep) => {
                if sweep.removed > 0 {
                    tracing::info!(
                        removed = sweep.removed,
                        bytes = sweep.bytes_removed,
                        kept = sweep.kept,
                        "compaction removed stored objects (S3) no retained restore point needs"
                    );
                }
                report.files_removed += sweep.removed;
                report.file_bytes_removed += sweep.bytes_removed;
            }
            Err(err) => tracing::warn!(
                error = %err,
                "compaction could not sweep the external file storage; retried next time"
            ),
        }
    }
    Ok(())
}

/// The oldest seq that `retention` keeps (may be `last + 1`: keep no commit).
pub(crate) fn retained_from(reader: &LogReader, retention: Retention) -> Result<Seq> {
    let first = reader.first_seq();
    let last = reader.last_seq();
    match retention {
        Retention::Commits(count) => Ok(last.saturating_sub(count).saturating_add(1).max(first)),
        Retention::Duration { window_ms, now_ms } => {
            let oldest_ms = now_ms.saturating_sub(window_ms);
            // Timestamps never decrease along the log, so the first commit at or after
            // `oldest_ms` is found by binary search.
            let (mut low, mut high) = (first, last + 1);
            while low < high {
                let middle = low + (high - low) / 2;
                let commit = reader.read_from(middle, 1)?;
                let timestamp_ms = commit
                    .first()
                    .map(|commit| commit.timestamp_ms)
                    .ok_or_else(|| Error::SeqUnavailable {
                        seq: middle,
                        reason: "missing from the log".into(),
                    })?;
                if timestamp_ms >= oldest_ms {
                    high = middle;
                } else {
                    low = middle + 1;
                }
            }
            Ok(low)
        }
    }
}

/// Compacts the log of `data_dir` to `retention`. The caller either holds the data dir lock
/// (offline) or is the engine itself, which passes `on_cut` to drop the removed segments from
/// its in-memory index before the files go. `on_step` sees every step; an error from it stops
/// the compaction there (crash injection in tests).
pub fn compact_dir(
    storage: &dyn Storage,
    data_dir: &Path,
    reader: &LogReader,
    retention: Retention,
    on_cut: &mut dyn FnMut(Seq),
    on_step: &mut dyn FnMut(&CompactStep) -> Result<()>,
) -> Result<CompactReport> {
    compact_dir_with(storage, data_dir, reader, retention, None, on_cut, on_step)
}

/// [`compact_dir`] that also sweeps `external` (stored files outside the data dir: an S3
/// bucket) in its file step.
pub(crate) fn compact_dir_with(
    storage: &dyn Storage,
    data_dir: &Path,
    reader: &LogReader,
    retention: Retention,
    external: Option<&dyn ExternalFiles>,
    on_cut: &mut dyn FnMut(Seq),
    on_step: &mut dyn FnMut(&CompactStep) -> Result<()>,
) -> Result<CompactReport> {
    let log_dir = data_dir.join(crate::engine::LOG_DIR);
    let snapshots_dir = crate::snapshot::snapshots_dir(data_dir);
    let first = reader.first_seq();
    let last = reader.last_seq();
    let cut = retained_from(reader, retention)?.max(first);
    let mut report = CompactReport {
        first_before: first,
        first_after: cut,
        last_seq: last,
        ..CompactReport::default()
    };
    on_step(&CompactStep::Planned { cut })?;
    if cut <= first {
        report.first_after = first;
        collect_files(data_dir, reader, first, external, &mut report)?;
        on_step(&CompactStep::Done)?;
        return Ok(report);
    }
    // Step 2: the segment holding the cut must be immutable before it is split.
    let active_first = reader.segment_list().last().map_or(first, |(seq, _)| *seq);
    if cut > active_first {
        reader.roll_active()?;
        on_step(&CompactStep::Rolled)?;
    }
    // Step 3: a durable snapshot at cut - 1.
    let snapshot_seq = cut - 1;
    let snapshot_path = snapshots_dir.join(snapshot_name(snapshot_seq));
    if !snapshot_path.exists() {
        std::fs::create_dir_all(&snapshots_dir)
            .map_err(|err| Error::io("create dir", &snapshots_dir, err))?;
        let tmp = PathBuf::from(format!("{}.tmp", snapshot_path.display()));
        remove_if_exists(&tmp)?;
        build_projection_at(reader, &snapshots_dir, snapshot_seq, &tmp, |_| {})?;
        for suffix in ["-wal", "-shm"] {
            remove_if_exists(Path::new(&format!("{}{suffix}", tmp.display())))?;
        }
        storage
            .rename(&tmp, &snapshot_path)
            .map_err(|err| Error::io("rename", &snapshot_path, err))?;
        sync_dir(&snapshots_dir)?;
    }
    report.snapshot_seq = snapshot_seq;
    on_step(&CompactStep::SnapshotWritten(snapshot_seq))?;
    // Steps 4 and 5: when the cut is inside a segment, copy its frames from the cut on into a
    // segment of their own.
    let holding = reader
        .segment_list()
        .iter()
        .map(|(seq_first, _)| *seq_first)
        .filter(|seq_first| *seq_first <= cut)
        .max()
        .unwrap_or(first);
    if holding < cut {
        let (path, bytes) = reader.split_segment(holding, cut, &mut |tmp| {
            on_step(&CompactStep::SplitCopied(tmp.to_path_buf()))
        })?;
        report.bytes_copied = bytes;
        tracing::debug!(segment = %path.display(), bytes, "compaction split a segment at its cut");
        on_step(&CompactStep::SplitNamed(path))?;
    }
    // Step 6: readers in this process learn the new start before any file goes.
    on_cut(cut);
    // Step 7: remove whole segments before the cut, oldest first.
    let doomed: Vec<(Seq, PathBuf)> = crate::log::list_segments(storage, &log_dir)?
        .into_iter()
        .filter(|(seq, _)| *seq < cut)
        .collect();
    for (seq_first, path) in doomed {
        let bytes = storage.len(&path).unwrap_or(0);
        storage
            .remove(&path)
            .map_err(|err| Error::io("remove", &path, err))?;
        storage
            .sync_dir(&log_dir)
            .map_err(|err| Error::io("fsync dir", &log_dir, err))?;
        report.segments_removed += 1;
        report.bytes_removed += bytes;
        tracing::debug!(segment = %path.display(), seq_first, "compaction removed a segment");
        on_step(&CompactStep::SegmentRemoved(path.clone()))?;
    }
    // Last step: snapshots older than the new start can no longer be continued by the log.
    for (seq, path) in list_snapshots(&snapshots_dir)? {
        if seq < snapshot_seq {
            remove_if_exists(&path)?;
            report.snapshots_removed += 1;
        }
    }
    remove_stale_tmp(&snapshots_dir)?;
    sync_dir(&snapshots_dir)?;
    remove_stale_split_tmp(storage, &log_dir, cut)?;
    collect_files(data_dir, reader, cut, external, &mut report)?;
    on_step(&CompactStep::Done)?;
    Ok(report)
}

/// Removes `seg-<X>.log.tmp` files with `X < cut`: copies of an interrupted split. (A `.tmp`
/// at or after the cut may be the writer's next segment being created: never touched.)
fn remove_stale_split_tmp(storage: &dyn Storage, log_dir: &Path, cut: Seq) -> Result<()> {
    let names = storage
        .list(log_dir)
        .map_err(|err| Error::io("list", log_dir, err))?;
    let mut removed = false;
    for name in names {
        let Some(segment) = name.strip_suffix(".tmp") else {
            continue;
        };
        if parse_segment_name(segment).is_some_and(|seq| seq < cut) {
            let path = log_dir.join(&name);
            storage
                .remove(&path)
                .map_err(|err| Error::io("remove", &path, err))?;
            removed = true;
        }
    }
    if removed {
        storage
            .sync_dir(log_dir)
            .map_err(|err| Error::io("fsync dir", log_dir, err))?;
    }
    Ok(())
}

/// Removes leftover `*.tmp` files of interrupted snapshot writes.
fn remove_stale_tmp(snapshots_dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(snapshots_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Error::io("list", snapshots_dir, err)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") || name.ends_with(".tmp-wal") || name.ends_with(".tmp-shm") {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}
