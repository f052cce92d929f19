//! Snapshots: consistent copies of the projection at a log position, and building a projection
//! at any position from the nearest snapshot plus a replay of the log.
//!
//! A snapshot is `snapshots/snap-<seq:016x>.db`: a plain SQLite database equal to a replay of
//! the log up to and including `seq` (its `_meta.last_seq` is `seq`). See `engine/FORMAT.md`.
//!
//! What it deliberately does not do: lock the data dir or talk to the writer. A snapshot is cut
//! from a read transaction (`VACUUM INTO` on a read-only connection), which sees one committed
//! state of the WAL database and never blocks the writer.
//!
//! Invariants:
//! 1. A file named `snap-<seq>.db` is complete: it is written as `snap-<seq>.db.tmp`, fsynced,
//!    renamed, and the directory is fsynced. Other names in `snapshots/` are ignored.
//! 2. The seq in the name equals the `_meta.last_seq` inside; the name is derived from the copy
//!    itself, never from what the caller believed the projection held.
//! 3. Snapshots are immutable once renamed into place; only compaction removes them.
//! 4. Replay on top of a snapshot uses the same projection code as the live writer
//!    (`apply_commits`), so snapshot + replay equals a replay from seq 1.

#![allow(
    clippy::disallowed_methods,
    reason = "snapshots are SQLite files, not log segments: they do not go through Storage"
)]

use crate::commit::Seq;
use crate::engine::{open_projection, replay_into};
use crate::error::{Error, Result};
use crate::log::LogReader;
use crate::projection::{self, Catalog};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Name of the snapshot directory inside the data dir.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

/// Name of the snapshot of the projection at `seq`.
pub fn snapshot_name(seq: Seq) -> String {
    format!("snap-{seq:016x}.db")
}

/// Parses a snapshot file name back into its seq.
pub fn parse_snapshot_name(name: &str) -> Option<Seq> {
    let hex = name.strip_prefix("snap-")?.strip_suffix(".db")?;
    if hex.len() != 16 {
        return None;
    }
    Seq::from_str_radix(hex, 16).ok()
}

/// The snapshots in a snapshot directory, sorted by seq (an absent directory has none).
pub(crate) fn list_snapshots(snapshots_dir: &Path) -> Result<Vec<(Seq, PathBuf)>> {
    let entries = match std::fs::read_dir(snapshots_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io("list", snapshots_dir, err)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| Error::io("list", snapshots_dir, err))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_snapshot_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// fsyncs a file by path.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|err| Error::io("fsync", path, err))
}

/// fsyncs a directory so entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|err| Error::io("fsync dir", dir, err))
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("remove", path, err)),
    }
}

/// Opens a database read-only (no WAL file is created for a plain file).
pub(crate) fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn)
}

/// Copies the database at `source` (WAL or not, possibly being written by another connection)
/// into the new file `target` from one read transaction. Returns the `_meta.last_seq` of the
/// copy. `target` must not exist. The copy is fsynced.
pub(crate) fn copy_projection(source: &Path, target: &Path) -> Result<Seq> {
    let conn = open_read_only(source)?;
    let target_text = target
        .to_str()
        .ok_or_else(|| Error::InvalidChange(format!("path {} is not UTF-8", target.display())))?;
    conn.execute("VACUUM INTO ?1", [target_text])?;
    drop(conn);
    let copy = open_read_only(target)?;
    let seq = projection::last_applied(&copy)?;
    drop(copy);
    sync_file(target)?;
    Ok(seq)
}

/// Moves a complete temporary file to its final name durably (rename, then fsync the dir).
fn publish(tmp: &Path, path: &Path, dir: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|err| Error::io("rename", path, err))?;
    sync_dir(dir)
}

/// Cuts a snapshot of the projection `db_path` into `snapshots_dir` without blocking writers.
/// Returns its seq and path. When a snapshot at that seq exists already, it is kept and the
/// new copy is dropped.
pub(crate) fn write_snapshot(db_path: &Path, snapshots_dir: &Path) -> Result<(Seq, PathBuf)> {
    std::fs::create_dir_all(snapshots_dir)
        .map_err(|err| Error::io("create dir", snapshots_dir, err))?;
    let tmp = snapshots_dir.join(format!(
        "snap-cut-{}-{}.db.tmp",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    remove_if_exists(&tmp)?;
    let seq = match copy_projection(db_path, &tmp) {
        Ok(seq) => seq,
        Err(err) => {
            let _ = remove_if_exists(&tmp);
            return Err(err);
        }
    };
    let path = snapshots_dir.join(snapshot_name(seq));
    if path.exists() {
        remove_if_exists(&tmp)?;
        return Ok((seq, path));
    }
    publish(&tmp, &path, snapshots_dir)?;
    Ok((seq, path))
}

/// Publishes the (complete, fsynced) projection file `db` as the snapshot at `seq`.
pub(crate) fn publish_as_snapshot(db: &Path, seq: Seq, snapshots_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(snapshots_dir)
        .map_err(|err| Error::io("create dir", snapshots_dir, err))?;
    let path = snapshots_dir.join(snapshot_name(seq));
    if path.exists() {
        return Ok(path);
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    remove_if_exists(&tmp)?;
    let copied = copy_projection(db, &tmp)?;
    if copied != seq {
        let _ = remove_if_exists(&tmp);
        return Err(Error::InvalidChange(format!(
            "projection {} is at seq {copied}, not {seq}",
            db.display()
        )));
    }
    publish(&tmp, &path, snapshots_dir)?;
    Ok(path)
}

/// The snapshot to start from for a projection at `target`: the newest one at or before
/// `target` that the log can continue (seq >= `log_first - 1`). `None` means "start from an
/// empty projection" (only possible while the log still starts at seq 1).
pub(crate) fn base_snapshot(
    snapshots: &[(Seq, PathBuf)],
    log_first: Seq,
    target: Seq,
) -> Result<Option<(Seq, PathBuf)>> {
    let floor = log_first.saturating_sub(1);
    let found = snapshots
        .iter()
        .rev()
        .find(|(seq, _)| *seq <= target && *seq >= floor)
        .cloned();
    if found.is_none() && log_first > 1 {
        return Err(Error::SeqUnavailable {
            seq: target,
            reason: format!(
                "the log starts at seq {log_first} and there is no snapshot between seq {floor} \
                 and {target} to start from"
            ),
        });
    }
    Ok(found)
}

/// What [`build_projection_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildReport {
    /// Seq of the snapshot it started from (0: an empty projection).
    pub base_seq: Seq,
    /// Commits replayed on top of it.
    pub replayed: u64,
    /// The seq the new projection is at.
    pub seq: Seq,
}

/// Builds a new projection file `out` (which must not exist) equal to a replay of the log up to
/// `target`: copies the nearest usable snapshot, then replays the rest of `reader`. `progress`
/// receives the number of commits of each replayed batch.
pub fn build_projection_at(
    reader: &LogReader,
    snapshots_dir: &Path,
    target: Seq,
    out: &Path,
    progress: impl FnMut(u64),
) -> Result<BuildReport> {
    if out.exists() {
        return Err(Error::InvalidChange(format!(
            "{} exists already",
            out.display()
        )));
    }
    if target > reader.last_seq() {
        return Err(Error::SeqUnavailable {
            seq: target,
            reason: format!("the log ends at seq {}", reader.last_seq()),
        });
    }
    let snapshots = list_snapshots(snapshots_dir)?;
    let base = base_snapshot(&snapshots, reader.first_seq(), target)?;
    let base_seq = match &base {
        Some((seq, path)) => {
            copy_projection(path, out)?;
            *seq
        }
        None => 0,
    };
    let conn = open_projection(out)?;
    let mut catalog: Catalog = projection::load_catalog(&conn)?;
    let seq = if target > base_seq {
        replay_into(&conn, &mut catalog, reader, base_seq + 1, target, progress)?
    } else {
        base_seq
    };
    if seq != target {
        return Err(Error::SeqUnavailable {
            seq: target,
            reason: format!("the replay stopped at seq {seq}"),
        });
    }
    // Fold the WAL into the main file so the result is one self-contained, durable file.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    drop(conn);
    sync_file(out)?;
    Ok(BuildReport {
        base_seq,
        replayed: target - base_seq,
        seq,
    })
}

/// The snapshot directory of a data dir.
pub fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOT_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_sort_and_parse() {
        assert_eq!(snapshot_name(1), "snap-0000000000000001.db");
        assert_eq!(parse_snapshot_name(&snapshot_name(0xabc)), Some(0xabc));
        assert_eq!(parse_snapshot_name("snap-1.db"), None);
        assert_eq!(parse_snapshot_name("snap-0000000000000001.db.tmp"), None);
        assert!(snapshot_name(9) < snapshot_name(10));
    }

    #[test]
    fn base_snapshot_respects_the_log_start() {
        let snaps = vec![(5, PathBuf::from("a")), (9, PathBuf::from("b"))];
        assert_eq!(base_snapshot(&snaps, 1, 4).ok().flatten(), None);
        assert_eq!(
            base_snapshot(&snaps, 1, 7).ok().flatten().map(|s| s.0),
            Some(5)
        );
        assert_eq!(
            base_snapshot(&snaps, 6, 12).ok().flatten().map(|s| s.0),
            Some(9)
        );
        assert!(base_snapshot(&snaps, 11, 12).is_err());
    }
}
