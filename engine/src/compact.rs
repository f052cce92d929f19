//! Compaction: drop log history older than a retention window, keeping state, `verify`, resume
//! positions and restore points inside the window unchanged.
//!
//! Steps (each one leaves a valid data dir if the process dies right after it; see the
//! "Compaction" section of `engine/FORMAT.md`):
//!
//! | step | what                                                              | a crash after it leaves |
//! |------|-------------------------------------------------------------------|-------------------------|
//! | 1    | choose the cut `C`: the first seq of the segment holding the oldest retained seq | the old state |
//! | 2    | write `snapshots/snap-(C-1).db` (tmp, fsync, rename, fsync dir)    | the old state plus a snapshot |
//! | 3    | tell in-process readers the log now starts at `C`                  | the old state on disk   |
//! | 4..  | remove the segments before `C`, oldest first, fsyncing `log/` after each | a log starting at some `F <= C`, with a snapshot at `C-1 >= F-1` |
//! | last | remove snapshots older than `C-1` and stale `.tmp` files           | the new state           |
//!
//! What it deliberately does not do: rewrite or split a segment. Segments are removed only
//! whole; when the retention point falls inside the active segment, that segment stays.
//!
//! Invariants:
//! 1. A segment is removed only after a snapshot at `C-1` is durable, so a log starting at any
//!    `F <= C` always has a snapshot in `[F-1, last]` to start replay from.
//! 2. Segments are removed oldest first with a directory fsync after each, so the remaining
//!    segments are always contiguous.
//! 3. The active (last) segment is never removed.

use crate::commit::Seq;
use crate::error::{Error, Result};
use crate::log::{list_segments, LogReader};
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
    /// The snapshot at `cut - 1` is durable.
    SnapshotWritten(Seq),
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
}

/// The oldest seq that `retention` keeps (may be `last + 1`: keep nothing but the active
/// segment).
pub fn retained_from(reader: &LogReader, retention: Retention) -> Result<Seq> {
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
    let log_dir = data_dir.join(crate::engine::LOG_DIR);
    let snapshots_dir = crate::snapshot::snapshots_dir(data_dir);
    let segments = list_segments(storage, &log_dir)?;
    let first = reader.first_seq();
    let last = reader.last_seq();
    let keep_from = retained_from(reader, retention)?;
    // The cut is the first seq of the segment that holds `keep_from`; the active segment is
    // always kept.
    let cut = segments
        .iter()
        .map(|(seq_first, _)| *seq_first)
        .filter(|seq_first| *seq_first <= keep_from)
        .max()
        .unwrap_or(first)
        .max(first);
    let mut report = CompactReport {
        first_before: first,
        first_after: cut,
        last_seq: last,
        ..CompactReport::default()
    };
    on_step(&CompactStep::Planned { cut })?;
    if cut <= first {
        report.first_after = first;
        on_step(&CompactStep::Done)?;
        return Ok(report);
    }
    // Step 2: a durable snapshot at cut - 1.
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
    // Step 3: readers in this process learn the new start before any file goes.
    on_cut(cut);
    // Step 4: remove whole segments, oldest first.
    for (seq_first, path) in segments.iter().filter(|(seq, _)| *seq < cut) {
        let bytes = storage.len(path).unwrap_or(0);
        storage
            .remove(path)
            .map_err(|err| Error::io("remove", path, err))?;
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
    on_step(&CompactStep::Done)?;
    Ok(report)
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
