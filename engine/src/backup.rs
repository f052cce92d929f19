//! Point-in-time restore into a new data dir, and self-contained backup archives.
//!
//! `restore_dir` builds a data dir whose state is exactly the state after the last commit at or
//! before a point (a seq or a time): the nearest snapshot at or before it plus a replay, the log
//! range up to it (same seqs, so the restored dir continues the numbering), the snapshots
//! the copied log needs, and the stored files its restore points need (`storage/`, see
//! `files.rs`). `write_backup` does the same into a staging dir and packs it as a zip archive
//! with a manifest (see "Backup archives" in `engine/FORMAT.md`; `backup_zip.rs`);
//! `restore_archive` validates and unpacks one (zip, or the older tar), then restores from it.
//!
//! What it deliberately does not do: take the source's lock or talk to its writer. The source
//! is read through `LogReader::open_dir` (a torn tail is ignored) and consistent copies of its
//! projection, so it works while a server runs on the source.
//!
//! Invariants:
//! 1. The target appears only when complete: everything is built in a sibling staging dir,
//!    fsynced, then renamed into place. Bad input fails before the target exists.
//! 2. An archive entry is accepted only when its name is on an allow-list (`manifest.json`,
//!    `log/seg-<16 hex>.log`, `snapshots/snap-<16 hex>.db`, `storage/<c>/<r>/<name>` with safe
//!    components), it is a regular file, it is listed in the manifest and its size and CRC-32
//!    match. Links, absolute paths and `..` never pass.
//! 3. The restored dir's log starts at `F` and a snapshot at `F - 1` is in it whenever `F > 1`.
//! 4. The restored dir's `storage/` holds exactly the stored files its restore points need
//!    (`referenced(F - 1) ∪ added in [F, point]`), copied from the source's `storage/`; a
//!    needed file missing there fails the restore (unless `RestoreOptions::files` is off).

#![allow(
    clippy::disallowed_methods,
    reason = "restores create whole new data dirs; the log files go through Storage"
)]

use crate::commit::Seq;
use crate::engine::{open_projection, replay_into, DATA_DB, LOG_DIR};
use crate::error::{Error, Result};
use crate::files::STORAGE_DIR;
use crate::log::{parse_segment_name, write_log_range, LogReader, SEGMENT_BYTES_MAX_DEFAULT};
use crate::projection;
use crate::snapshot::{
    build_projection_at, copy_projection, list_snapshots, parse_snapshot_name, publish_as_snapshot,
    remove_if_exists, snapshot_name, snapshots_dir, sync_dir, sync_file, SNAPSHOT_DIR,
};
use crate::storage::{FsStorage, Storage};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Archive format name in the manifest.
pub(crate) const ARCHIVE_FORMAT: &str = "pocketlog-backup";
/// Archive format version written (2: a zip archive, with stored files).
pub(crate) const ARCHIVE_VERSION: u32 = 2;
/// Oldest archive format version read (1: a tar archive, no stored files).
pub(crate) const ARCHIVE_VERSION_MIN: u32 = 1;
/// Name of the manifest entry (always the first entry).
pub(crate) const MANIFEST_NAME: &str = "manifest.json";
/// Largest manifest accepted when reading an archive.
pub(crate) const MANIFEST_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Most entries accepted in one archive.
pub(crate) const ARCHIVE_ENTRIES_MAX: usize = 1_000_000;
const TAR_BLOCK: usize = 512;

/// A restore point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The newest state.
    Latest,
    /// The state right after this seq (0: the empty state before the first commit).
    Seq(Seq),
    /// The state after the last commit at or before this time (ms since the epoch).
    TimeMs(i64),
}

impl std::str::FromStr for At {
    type Err = Error;
    /// A decimal seq, `latest`, or an RFC 3339 time (`2025-01-31T12:00:00Z`).
    fn from_str(text: &str) -> Result<At> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("latest") {
            return Ok(At::Latest);
        }
        if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            return text
                .parse::<Seq>()
                .map(At::Seq)
                .map_err(|_| Error::invalid_target(format!("position {text:?} is out of range")));
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|time| At::TimeMs(time.timestamp_millis()))
            .map_err(|_| {
                Error::invalid_target(format!(
                    "{text:?} is neither a log position (a seq) nor an RFC 3339 time \
                     such as 2025-01-31T12:00:00Z"
                ))
            })
    }
}

/// Resolves a restore point to the seq whose state it names.
pub fn resolve_target(reader: &LogReader, at: At) -> Result<Seq> {
    let first = reader.first_seq();
    let last = reader.last_seq();
    match at {
        At::Latest => Ok(last),
        At::Seq(seq) if seq > last => Err(Error::SeqUnavailable {
            seq,
            reason: format!("it is beyond the end of the log (last seq {last})"),
        }),
        At::Seq(seq) if seq + 1 < first => Err(Error::SeqUnavailable {
            seq,
            reason: format!(
                "the log starts at seq {first}; older positions were compacted away \
                 (the oldest restore point is seq {})",
                first - 1
            ),
        }),
        At::Seq(seq) => Ok(seq),
        At::TimeMs(time_ms) => {
            // The first commit newer than `time_ms` (timestamps never decrease along the log).
            let (mut low, mut high) = (first, last + 1);
            while low < high {
                let middle = low + (high - low) / 2;
                let timestamp_ms = reader
                    .read_from(middle, 1)?
                    .first()
                    .map(|commit| commit.timestamp_ms)
                    .ok_or_else(|| Error::SeqUnavailable {
                        seq: middle,
                        reason: "missing from the log".into(),
                    })?;
                if timestamp_ms > time_ms {
                    high = middle;
                } else {
                    low = middle + 1;
                }
            }
            if low == first {
                let when = rfc3339(time_ms);
                return Err(match reader.read_from(first, 1)?.first() {
                    Some(commit) if first == 1 => Error::invalid_target(format!(
                        "{when} is before the first commit ({})",
                        rfc3339(commit.timestamp_ms)
                    )),
                    Some(commit) => Error::invalid_target(format!(
                        "{when} is before the oldest retained commit (seq {first} at {}); \
                         older history was compacted away",
                        rfc3339(commit.timestamp_ms)
                    )),
                    None => Error::invalid_target(format!("{when}: the log holds no commits")),
                });
            }
            Ok(low - 1)
        }
    }
}

fn rfc3339(time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{time_ms} ms"))
}

/// What to restore.
#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    /// The restore point.
    pub at: At,
    /// Copy the whole retained history up to the point (true), or only what is needed to go
    /// on from it: a snapshot at the point and an empty log continuing its numbering (false).
    pub history: bool,
    /// Segment size for the copied log.
    pub segment_bytes_max: u64,
    /// Copy the stored files the restore points need from the source's `storage/` (true), or
    /// leave `storage/` empty (false: the files live elsewhere, e.g. in S3).
    pub files: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            at: At::Latest,
            history: true,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            files: true,
        }
    }
}

/// Progress of a long operation: a phase and a count within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is being done (`replay`, `copy log`, `pack`, `unpack`, ...).
    pub phase: &'static str,
    /// Units done so far in this phase (commits or bytes).
    pub done: u64,
    /// Units in the phase.
    pub total: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The seq the restored state is at.
    pub seq: Seq,
    /// Time of that commit (ms), when it is still in the log.
    pub time_ms: Option<i64>,
    /// First seq of the restored log.
    pub log_first: Seq,
    /// Snapshot the projection started from (0: empty).
    pub base_seq: Seq,
    /// Commits replayed on top of it.
    pub replayed: u64,
    /// Commits copied into the new log.
    pub commits_copied: u64,
    /// Snapshots copied.
    pub snapshots: Vec<Seq>,
    /// Stored files copied.
    pub files: usize,
    /// Their bytes.
    pub file_bytes: u64,
}

fn check_new_target(target: &Path) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::invalid_target(format!(
                    "{} exists and is not empty; restore into a new directory",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => Err(Error::invalid_target(
            format!("{} exists and is a file", target.display()),
        )),
        Err(err) => Err(Error::io("read dir", target, err)),
    }
}

/// A sibling of `target` used while building it (`.<name>.<what>`).
fn sibling(target: &Path, what: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| Error::invalid_target(format!("{} has no file name", target.display())))?;
    let parent = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(".{name}.{what}")))
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("remove dir", dir, err)),
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Builds the new data dir `target` (absent or empty) from the data dir `source` at
/// `options.at`. Works while a server runs on `source`.
pub fn restore_dir(
    source: &Path,
    target: &Path,
    options: RestoreOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreReport> {
    check_new_target(target)?;
    let staging = sibling(target, "restoring")?;
    remove_dir_if_exists(&staging)?;
    std::fs::create_dir_all(&staging).map_err(|err| Error::io("create dir", &staging, err))?;
    let built = build_dir(source, &staging, options, progress);
    let report = match built {
        Ok(report) => report,
        Err(err) => {
            let _ = remove_dir_if_exists(&staging);
            return Err(err);
        }
    };
    if target.exists() {
        std::fs::remove_dir(target).map_err(|err| Error::io("remove empty dir", target, err))?;
    }
    std::fs::rename(&staging, target).map_err(|err| Error::io("rename", target, err))?;
    sync_dir(&parent_of(target))?;
    Ok(report)
}

/// Builds a complete data dir in the empty directory `out` (see [`restore_dir`]).
fn build_dir(
    source: &Path,
    out: &Path,
    options: RestoreOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreReport> {
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    let source_log = source.join(LOG_DIR);
    if !source_log.is_dir() {
        return Err(Error::invalid_target(format!(
            "{} has no {LOG_DIR}/ directory: is it a pocketlog data dir?",
            source.display()
        )));
    }
    let out_db = out.join(DATA_DB);
    // For the newest state, a consistent copy of the live projection is much cheaper than a
    // replay; the log is opened after the copy so it holds every commit the copy has.
    let mut copied: Option<Seq> = None;
    let source_db = source.join(DATA_DB);
    if options.at == At::Latest && source_db.exists() {
        copied = Some(copy_projection(&source_db, &out_db)?);
    }
    let (reader, _) = LogReader::open_dir(Arc::clone(&storage), &source_log)?;
    let seq = match (options.at, copied) {
        (At::Latest, Some(copied)) if copied <= reader.last_seq() => {
            if copied + 1 < reader.first_seq() {
                return Err(Error::SeqUnavailable {
                    seq: copied,
                    reason: "the projection is older than the log start".into(),
                });
            }
            reader.last_seq()
        }
        _ => resolve_target(&reader, options.at)?,
    };
    let source_snapshots = list_snapshots(&snapshots_dir(source))?;
    let total = seq;
    let mut report = RestoreReport {
        seq,
        ..RestoreReport::default()
    };
    match copied {
        Some(copied_seq) if copied_seq <= seq => {
            // Catch the copy up to the log's end.
            let conn = open_projection(&out_db)?;
            let mut catalog = projection::load_catalog(&conn)?;
            let mut done = copied_seq;
            if seq > copied_seq {
                replay_into(&conn, &mut catalog, &reader, copied_seq + 1, seq, |n| {
                    done += n;
                    progress(Progress {
                        phase: "replay",
                        done,
                        total,
                    });
                })?;
            }
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
            drop(conn);
            sync_file(&out_db)?;
            report.base_seq = copied_seq;
            report.replayed = seq - copied_seq;
        }
        _ => {
            for suffix in ["", "-wal", "-shm"] {
                remove_if_exists(Path::new(&format!("{}{suffix}", out_db.display())))?;
            }
            let mut done = 0;
            let built = build_projection_at(&reader, &snapshots_dir(source), seq, &out_db, |n| {
                done += n;
                progress(Progress {
                    phase: "replay",
                    done,
                    total,
                });
            })?;
            report.base_seq = built.base_seq;
            report.replayed = built.replayed;
        }
    }
    // The log range: from the oldest point the source can still restore (or the point itself),
    // up to the point.
    let first = reader.first_seq();
    let log_from = if !options.history {
        seq + 1
    } else if first > 1 {
        source_snapshots
            .iter()
            .map(|(snap, _)| *snap)
            .find(|snap| *snap + 1 >= first && *snap <= seq)
            .map_or(seq + 1, |snap| snap + 1)
    } else {
        1
    };
    let out_log = out.join(LOG_DIR);
    let mut copied_commits = 0;
    let range_total = (seq + 1).saturating_sub(log_from);
    write_log_range(
        storage.as_ref(),
        &reader,
        log_from,
        seq,
        &out_log,
        options.segment_bytes_max,
        |n| {
            copied_commits += n;
            progress(Progress {
                phase: "copy log",
                done: copied_commits,
                total: range_total,
            });
        },
    )?;
    report.commits_copied = copied_commits;
    report.log_first = log_from;
    // Snapshots the new log can continue from (the one at log_from - 1 is required).
    let out_snapshots = out.join(SNAPSHOT_DIR);
    std::fs::create_dir_all(&out_snapshots)
        .map_err(|err| Error::io("create dir", &out_snapshots, err))?;
    for (snap, path) in &source_snapshots {
        if *snap + 1 >= log_from && *snap <= seq {
            let copy = out_snapshots.join(snapshot_name(*snap));
            std::fs::copy(path, &copy).map_err(|err| Error::io("copy", &copy, err))?;
            sync_file(&copy)?;
            report.snapshots.push(*snap);
        }
    }
    if log_from > 1 && !report.snapshots.contains(&(log_from - 1)) {
        publish_as_snapshot(&out_db, log_from - 1, &out_snapshots)?;
        report.snapshots.push(log_from - 1);
    }
    sync_dir(&out_snapshots)?;
    if options.files {
        copy_needed_files(
            source,
            out,
            &reader,
            &out_snapshots,
            log_from,
            seq,
            &mut report,
        )?;
    }
    report.time_ms = if seq >= first && seq > 0 {
        reader
            .read_from(seq, 1)?
            .first()
            .map(|commit| commit.timestamp_ms)
    } else {
        None
    };
    sync_dir(out)?;
    Ok(report)
}

/// True for a safe storage path component (no traversal, no hidden names).
pub(crate) fn safe_component(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 255
        && !part.starts_with('.')
        && !part.contains(['/', '\\', '\0'])
}

/// Puts into `out/storage/` the stored files the restore points `[log_from - 1, seq]` of the
/// new dir need (invariant 4): hard links to the source's immutable files where possible,
/// copies (fsynced) otherwise.
fn copy_needed_files(
    source: &Path,
    out: &Path,
    reader: &LogReader,
    out_snapshots: &Path,
    log_from: Seq,
    seq: Seq,
    report: &mut RestoreReport,
) -> Result<()> {
    let out_storage = out.join(STORAGE_DIR);
    std::fs::create_dir_all(&out_storage)
        .map_err(|err| Error::io("create dir", &out_storage, err))?;
    let needed = match crate::files::needed_files(reader, out_snapshots, log_from, seq)? {
        Some(needed) => needed,
        None => {
            tracing::warn!(
                "the snapshot at seq {} predates the stored-files table: only files added \
                 after it are copied",
                log_from.saturating_sub(1)
            );
            let mut added = std::collections::BTreeSet::new();
            crate::files::added_in(reader, log_from, seq, &mut added)?;
            added
        }
    };
    let source_storage = source.join(STORAGE_DIR);
    let mut dirs = std::collections::BTreeSet::new();
    for (collection, record, name) in &needed {
        if ![collection, record, name]
            .iter()
            .all(|part| safe_component(part))
        {
            return Err(Error::invalid_target(format!(
                "the log names an unsafe stored file {collection:?}/{record:?}/{name:?}"
            )));
        }
        let from = source_storage.join(collection).join(record).join(name);
        let metadata = match std::fs::symlink_metadata(&from) {
            Ok(metadata) if metadata.is_file() => metadata,
            _ => {
                return Err(Error::invalid_target(format!(
                    "the stored file {} is needed at seq {seq} but missing \
                     (`pb-tools verify` lists missing files)",
                    from.display()
                )))
            }
        };
        let dir = out_storage.join(collection).join(record);
        std::fs::create_dir_all(&dir).map_err(|err| Error::io("create dir", &dir, err))?;
        let to = dir.join(name);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|err| Error::io("copy", &to, err))?;
            sync_file(&to)?;
        }
        report.files += 1;
        report.file_bytes += metadata.len();
        dirs.insert(dir);
    }
    let mut collections = std::collections::BTreeSet::new();
    for dir in &dirs {
        sync_dir(dir)?;
        collections.insert(parent_of(dir));
    }
    for dir in &collections {
        sync_dir(dir)?;
    }
    sync_dir(&out_storage)
}

/// One file of an archive, as listed in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the archive (`log/...` or `snapshots/...`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 of the content.
    pub crc32: u32,
}

/// The first entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`ARCHIVE_FORMAT`].
    pub format: String,
    /// Archive format version.
    pub version: u32,
    /// When the archive was made (ms since the epoch).
    pub created_ms: i64,
    /// First seq of the archived log (`seq_last + 1` when it holds no commits).
    pub seq_first: Seq,
    /// The state the archive restores to by default.
    pub seq_last: Seq,
    /// Time of the commit at `seq_last`, when known.
    pub time_last_ms: Option<i64>,
    /// Snapshots in the archive.
    pub snapshots: Vec<Seq>,
    /// Every other entry, with size and checksum.
    pub files: Vec<ManifestFile>,
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Archive size in bytes.
    pub bytes: u64,
}

fn crc_of_file(path: &Path) -> Result<(u64, u32)> {
    let mut file = std::fs::File::open(path).map_err(|err| Error::io("open", path, err))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file
            .read(&mut buf)
            .map_err(|err| Error::io("read", path, err))?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
        size += read as u64;
    }
    Ok((size, hasher.finalize()))
}

#[cfg(feature = "testing")]
fn tar_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(feature = "testing")]
fn tar_header(name: &str, size: u64, mtime_s: u64) -> [u8; TAR_BLOCK] {
    let mut header = [0u8; TAR_BLOCK];
    header[..name.len()].copy_from_slice(name.as_bytes());
    tar_octal(&mut header[100..108], 0o644);
    tar_octal(&mut header[108..116], 0);
    tar_octal(&mut header[116..124], 0);
    tar_octal(&mut header[124..136], size);
    tar_octal(&mut header[136..148], mtime_s);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|byte| u64::from(*byte)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    header
}

#[cfg(feature = "testing")]
fn write_entry(
    out: &mut impl Write,
    out_path: &Path,
    name: &str,
    source: &mut dyn Read,
    size: u64,
    mtime_s: u64,
) -> Result<()> {
    let io = |err| Error::io("write", out_path, err);
    assert!(name.len() < 100, "archive names are short by construction");
    out.write_all(&tar_header(name, size, mtime_s))
        .map_err(io)?;
    let copied = std::io::copy(&mut source.take(size), out).map_err(io)?;
    if copied != size {
        return Err(Error::io(
            "read",
            name,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while packing",
            ),
        ));
    }
    let padding = (TAR_BLOCK - (size as usize % TAR_BLOCK)) % TAR_BLOCK;
    out.write_all(&vec![0u8; padding]).map_err(io)
}

/// Writes a backup archive `out` (which must not exist) of the data dir `source` at
/// `options.at`. Works while a server runs on `source`; never blocks its writer.
pub fn write_backup(
    source: &Path,
    out: &Path,
    options: RestoreOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<BackupReport> {
    if out.exists() {
        return Err(Error::invalid_target(format!(
            "{} exists already; choose a new file",
            out.display()
        )));
    }
    let staging = sibling(out, "building")?;
    remove_dir_if_exists(&staging)?;
    let result = (|| {
        let report = restore_dir(source, &staging, options, progress)?;
        pack(&staging, out, &report, progress, false)
    })();
    let _ = remove_dir_if_exists(&staging);
    result
}

/// A backup in the tar format of older builds (version 1, no stored files), to test that
/// such archives still restore.
#[cfg(feature = "testing")]
pub(crate) fn write_legacy_tar_backup(source: &Path, out: &Path) -> Result<BackupReport> {
    let staging = sibling(out, "building")?;
    remove_dir_if_exists(&staging)?;
    let options = RestoreOptions {
        files: false,
        ..RestoreOptions::default()
    };
    let result = (|| {
        let report = restore_dir(source, &staging, options, &mut |_| {})?;
        pack(&staging, out, &report, &mut |_| {}, true)
    })();
    let _ = remove_dir_if_exists(&staging);
    result
}

#[cfg(feature = "testing")]
fn write_tar(staging: &Path, tmp: &Path, manifest: &Manifest, manifest_bytes: &[u8]) -> Result<()> {
    let mtime_s = (manifest.created_ms / 1000).max(0) as u64;
    let file = std::fs::File::create(tmp).map_err(|err| Error::io("create", tmp, err))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut bytes = manifest_bytes;
    write_entry(
        &mut writer,
        tmp,
        MANIFEST_NAME,
        &mut bytes,
        manifest_bytes.len() as u64,
        mtime_s,
    )?;
    for entry in &manifest.files {
        let path = staging.join(&entry.path);
        let mut source = std::fs::File::open(&path).map_err(|err| Error::io("open", &path, err))?;
        write_entry(
            &mut writer,
            tmp,
            &entry.path,
            &mut source,
            entry.size,
            mtime_s,
        )?;
    }
    writer
        .write_all(&[0u8; TAR_BLOCK * 2])
        .map_err(|err| Error::io("write", tmp, err))?;
    let file = writer
        .into_inner()
        .map_err(|err| Error::io("write", tmp, err.into_error()))?;
    file.sync_all().map_err(|err| Error::io("fsync", tmp, err))
}

fn pack(
    staging: &Path,
    out: &Path,
    report: &RestoreReport,
    progress: &mut dyn FnMut(Progress),
    legacy_tar: bool,
) -> Result<BackupReport> {
    let staging_db = staging.join(DATA_DB);
    let staging_snapshots = staging.join(SNAPSHOT_DIR);
    // The state at the point itself travels as a snapshot, so a restore needs no replay.
    if report.seq > 0 {
        publish_as_snapshot(&staging_db, report.seq, &staging_snapshots)?;
    }
    let mut files = Vec::new();
    let mut snapshots = Vec::new();
    let mut segments: Vec<(Seq, String)> = Vec::new();
    for entry in
        std::fs::read_dir(staging.join(LOG_DIR)).map_err(|err| Error::io("list", staging, err))?
    {
        let entry = entry.map_err(|err| Error::io("list", staging, err))?;
        if let Some(name) = entry.file_name().to_str() {
            if let Some(seq) = parse_segment_name(name) {
                segments.push((seq, format!("{LOG_DIR}/{name}")));
            }
        }
    }
    segments.sort();
    for (seq, path) in list_snapshots(&staging_snapshots)? {
        snapshots.push(seq);
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .map(str::to_string)
            .unwrap_or_default();
        segments.push((seq, format!("{SNAPSHOT_DIR}/{name}")));
    }
    for (collection, record, name) in stored_files(&staging.join(STORAGE_DIR))? {
        segments.push((0, format!("{STORAGE_DIR}/{collection}/{record}/{name}")));
    }
    for (_, path) in &segments {
        let (size, crc32) = crc_of_file(&staging.join(path))?;
        files.push(ManifestFile {
            path: path.clone(),
            size,
            crc32,
        });
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let manifest = Manifest {
        format: ARCHIVE_FORMAT.into(),
        version: if legacy_tar {
            ARCHIVE_VERSION_MIN
        } else {
            ARCHIVE_VERSION
        },
        created_ms: now_ms,
        seq_first: report.log_first,
        seq_last: report.seq,
        time_last_ms: report.time_ms,
        snapshots,
        files,
    };
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    #[cfg(feature = "testing")]
    let written = if legacy_tar {
        write_tar(staging, &tmp, &manifest, &manifest_bytes)
    } else {
        crate::backup_zip::write_zip(staging, &tmp, &manifest, &manifest_bytes, progress)
    };
    #[cfg(not(feature = "testing"))]
    let written = crate::backup_zip::write_zip(staging, &tmp, &manifest, &manifest_bytes, progress);
    if let Err(err) = written {
        let _ = remove_if_exists(&tmp);
        return Err(err);
    }
    std::fs::rename(&tmp, out).map_err(|err| Error::io("rename", out, err))?;
    sync_dir(&parent_of(out))?;
    let bytes = std::fs::metadata(out)
        .map_err(|err| Error::io("stat", out, err))?
        .len();
    Ok(BackupReport { manifest, bytes })
}

/// The stored files under `storage` (regular files three levels down, sorted).
fn stored_files(storage: &Path) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    let list = |dir: &Path| -> Result<Vec<(String, std::fs::FileType)>> {
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(err) => return Err(Error::io("list", dir, err)),
        };
        for entry in entries {
            let entry = entry.map_err(|err| Error::io("list", dir, err))?;
            let kind = entry
                .file_type()
                .map_err(|err| Error::io("stat", dir, err))?;
            names.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(names)
    };
    for (collection, kind) in list(storage)? {
        if !kind.is_dir() {
            continue;
        }
        for (record, kind) in list(&storage.join(&collection))? {
            if !kind.is_dir() {
                continue;
            }
            for (name, kind) in list(&storage.join(&collection).join(&record))? {
                if kind.is_file() && safe_component(&name) {
                    out.push((collection.clone(), record.clone(), name));
                }
            }
        }
    }
    Ok(out)
}

/// Parses a manifest and checks its format and version.
pub(crate) fn check_manifest_header(bytes: &[u8]) -> Result<Manifest> {
    let parsed: Manifest = serde_json::from_slice(bytes)
        .map_err(|err| bad(format!("the manifest is not valid: {err}")))?;
    if parsed.format != ARCHIVE_FORMAT {
        return Err(bad(format!("unknown archive format {:?}", parsed.format)));
    }
    if !(ARCHIVE_VERSION_MIN..=ARCHIVE_VERSION).contains(&parsed.version) {
        return Err(Error::FormatVersion {
            found: parsed.version,
            supported: ARCHIVE_VERSION,
        });
    }
    Ok(parsed)
}

pub(crate) fn bad(reason: impl Into<String>) -> Error {
    Error::BadArchive(reason.into())
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|byte| *byte != 0)
        .filter(|byte| *byte != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// True for the entry names an archive may hold (invariant 2).
pub(crate) fn allowed_entry(name: &str) -> bool {
    if name == MANIFEST_NAME {
        return true;
    }
    if let Some(rest) = name.strip_prefix(&format!("{STORAGE_DIR}/")) {
        let parts: Vec<&str> = rest.split('/').collect();
        return parts.len() == 3 && parts.iter().all(|part| safe_component(part));
    }
    match name.split_once('/') {
        Some((dir, file)) if dir == LOG_DIR => parse_segment_name(file).is_some(),
        Some((dir, file)) if dir == SNAPSHOT_DIR => parse_snapshot_name(file).is_some(),
        _ => false,
    }
}

/// Reads and checks the archive `archive` (a zip, or a tar made by an older build: told
/// apart by their first bytes), unpacking it into the empty directory `out`. Returns its
/// manifest. Nothing outside `out` is ever written.
pub(crate) fn unpack_archive(
    archive: &Path,
    out: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest> {
    let file = std::fs::File::open(archive).map_err(|err| Error::io("open", archive, err))?;
    let mut magic = [0u8; 4];
    let read = (&file).read(&mut magic).unwrap_or(0);
    if read >= 2 && magic[..2] == [0x1f, 0x8b] {
        return Err(bad(
            "it is gzip-compressed; backups are zip archives (or plain tar from older builds)",
        ));
    }
    let manifest = if read == 4 && magic == crate::backup_zip::ZIP_MAGIC {
        crate::backup_zip::unpack_zip(archive, out, progress)?
    } else {
        unpack_tar(archive, out, progress)?
    };
    for dir in [out.join(LOG_DIR), out.join(SNAPSHOT_DIR)] {
        if dir.is_dir() {
            sync_dir(&dir)?;
        }
    }
    Ok(manifest)
}

/// [`unpack_archive`] for the tar archives (version 1) of older builds.
fn unpack_tar(archive: &Path, out: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Manifest> {
    let file = std::fs::File::open(archive).map_err(|err| Error::io("open", archive, err))?;
    let total = file
        .metadata()
        .map_err(|err| Error::io("stat", archive, err))?
        .len();
    let file = std::fs::File::open(archive).map_err(|err| Error::io("open", archive, err))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; TAR_BLOCK];
    let mut manifest: Option<Manifest> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut offset = 0u64;
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(bad(format!("truncated at byte {offset} (no end marker)")))
            }
            Err(err) => return Err(Error::io("read", archive, err)),
        }
        offset += TAR_BLOCK as u64;
        if header.iter().all(|byte| *byte == 0) {
            break;
        }
        if seen.len() >= ARCHIVE_ENTRIES_MAX {
            return Err(bad("too many entries"));
        }
        let stored_sum = parse_octal(&header[148..156]);
        let mut summed = header;
        summed[148..156].copy_from_slice(b"        ");
        let sum: u64 = summed.iter().map(|byte| u64::from(*byte)).sum();
        if stored_sum != Some(sum) {
            return Err(bad(format!(
                "header checksum mismatch at byte {}",
                offset - TAR_BLOCK as u64
            )));
        }
        let name_field: Vec<u8> = header[..100]
            .iter()
            .copied()
            .take_while(|byte| *byte != 0)
            .collect();
        let prefix: Vec<u8> = header[345..500]
            .iter()
            .copied()
            .take_while(|byte| *byte != 0)
            .collect();
        let mut name = String::from_utf8_lossy(&name_field).into_owned();
        if !prefix.is_empty() {
            name = format!("{}/{name}", String::from_utf8_lossy(&prefix));
        }
        let kind = header[156];
        if kind != b'0' && kind != 0 {
            let what = match kind {
                b'1' => "a hard link",
                b'2' => "a symbolic link",
                b'5' => "a directory",
                _ => "not a regular file",
            };
            return Err(bad(format!(
                "entry {name:?} is {what}; only regular files are allowed"
            )));
        }
        if !allowed_entry(&name) {
            return Err(bad(format!(
                "unexpected entry {name:?} (only {MANIFEST_NAME}, {LOG_DIR}/seg-*.log and \
                 {SNAPSHOT_DIR}/snap-*.db are allowed)"
            )));
        }
        if seen.contains(&name) {
            return Err(bad(format!("entry {name:?} appears twice")));
        }
        let size = parse_octal(&header[124..136])
            .ok_or_else(|| bad(format!("entry {name:?} has a malformed size")))?;
        if size > total.saturating_sub(offset) {
            return Err(bad(format!(
                "entry {name:?} runs past the end of the archive"
            )));
        }
        let padding = (TAR_BLOCK as u64 - size % TAR_BLOCK as u64) % TAR_BLOCK as u64;
        if seen.is_empty() {
            if name != MANIFEST_NAME {
                return Err(bad(format!(
                    "the first entry is {name:?}, not {MANIFEST_NAME}"
                )));
            }
            if size > MANIFEST_BYTES_MAX {
                return Err(bad("the manifest is too large"));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut reader)
                .take(size)
                .read_to_end(&mut bytes)
                .map_err(|err| Error::io("read", archive, err))?;
            manifest = Some(check_manifest_header(&bytes)?);
        } else {
            let listed = manifest
                .as_ref()
                .and_then(|manifest| manifest.files.iter().find(|file| file.path == name))
                .cloned()
                .ok_or_else(|| bad(format!("entry {name:?} is not in the manifest")))?;
            if listed.size != size {
                return Err(bad(format!(
                    "entry {name:?} has {size} bytes, the manifest says {}",
                    listed.size
                )));
            }
            let path = out.join(&name);
            let dir = parent_of(&path);
            std::fs::create_dir_all(&dir).map_err(|err| Error::io("create dir", &dir, err))?;
            let mut target =
                std::fs::File::create(&path).map_err(|err| Error::io("create", &path, err))?;
            let mut hasher = crc32fast::Hasher::new();
            let mut remaining = size;
            let mut buf = vec![0u8; 1 << 20];
            while remaining > 0 {
                let want = remaining.min(buf.len() as u64) as usize;
                reader
                    .read_exact(&mut buf[..want])
                    .map_err(|_| bad(format!("entry {name:?} is truncated")))?;
                hasher.update(&buf[..want]);
                target
                    .write_all(&buf[..want])
                    .map_err(|err| Error::io("write", &path, err))?;
                remaining -= want as u64;
            }
            if hasher.finalize() != listed.crc32 {
                return Err(bad(format!("entry {name:?} fails its checksum (damaged)")));
            }
            target
                .sync_all()
                .map_err(|err| Error::io("fsync", &path, err))?;
        }
        std::io::copy(&mut (&mut reader).take(padding), &mut std::io::sink())
            .map_err(|err| Error::io("read", archive, err))?;
        offset += size + padding;
        progress(Progress {
            phase: "unpack",
            done: offset,
            total,
        });
        seen.push(name);
    }
    let manifest = manifest.ok_or_else(|| bad("the archive is empty"))?;
    for file in &manifest.files {
        if !seen.contains(&file.path) {
            return Err(bad(format!("entry {:?} is missing", file.path)));
        }
    }
    Ok(manifest)
}

/// Reads only the manifest of an archive (after checking the whole archive's integrity).
pub fn read_manifest(archive: &Path) -> Result<Manifest> {
    let scratch = sibling(archive, &format!("check-{}", std::process::id()))?;
    remove_dir_if_exists(&scratch)?;
    std::fs::create_dir_all(&scratch).map_err(|err| Error::io("create dir", &scratch, err))?;
    let result = unpack_archive(archive, &scratch, &mut |_| {});
    let _ = remove_dir_if_exists(&scratch);
    result
}

/// Restores the archive `archive` into the new data dir `target` at `options.at` (default: the
/// archive's own point). Checks the whole archive first; on any error `target` is not created.
pub fn restore_archive(
    archive: &Path,
    target: &Path,
    options: RestoreOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreReport> {
    check_new_target(target)?;
    let unpacked = sibling(target, "unpacking")?;
    remove_dir_if_exists(&unpacked)?;
    std::fs::create_dir_all(&unpacked).map_err(|err| Error::io("create dir", &unpacked, err))?;
    let result = (|| {
        let manifest = unpack_archive(archive, &unpacked, progress)?;
        if !unpacked.join(LOG_DIR).is_dir() {
            return Err(bad("the archive holds no log"));
        }
        let at = match options.at {
            At::Latest => At::Seq(manifest.seq_last),
            other => other,
        };
        restore_dir(
            &unpacked,
            target,
            RestoreOptions { at, ..options },
            progress,
        )
    })();
    let _ = remove_dir_if_exists(&unpacked);
    result
}

/// Name of the marker of a restore staged for the next start (see [`stage_restore`]).
pub const PENDING_RESTORE: &str = ".pending_restore";

/// Stages the restore of `archive` into the data dir `data_dir` for its next start: the
/// archive is checked and restored into `data_dir/.pending_restore/` now; [`apply_staged_restore`]
/// swaps it in when no engine has the dir open. Works while a server runs.
pub fn stage_restore(data_dir: &Path, archive: &Path, at: At) -> Result<RestoreReport> {
    let pending = data_dir.join(PENDING_RESTORE);
    remove_dir_if_exists(&pending)?;
    let ready = data_dir.join(format!("{PENDING_RESTORE}.ready"));
    remove_dir_if_exists(&ready)?;
    let report = restore_archive(
        archive,
        &pending,
        RestoreOptions {
            at,
            ..RestoreOptions::default()
        },
        &mut |_| {},
    )?;
    std::fs::rename(&pending, &ready).map_err(|err| Error::io("rename", &ready, err))?;
    sync_dir(data_dir)?;
    Ok(report)
}

/// Applies a restore staged by [`stage_restore`], if there is one; call before opening the
/// engine (the caller holds no engine on `data_dir`). The replaced entries are moved to
/// `data_dir/.replaced-<ms>/` rather than deleted. Idempotent after a crash: the swap goes
/// entry by entry and a ready stage is finished on the next call. Returns true when a restore
/// was applied.
pub fn apply_staged_restore(data_dir: &Path) -> Result<bool> {
    let ready = data_dir.join(format!("{PENDING_RESTORE}.ready"));
    if !ready.is_dir() {
        remove_dir_if_exists(&data_dir.join(PENDING_RESTORE))?;
        return Ok(false);
    }
    let aside = data_dir.join(format!(
        ".replaced-{}",
        chrono::Utc::now().timestamp_millis()
    ));
    std::fs::create_dir_all(&aside).map_err(|err| Error::io("create dir", &aside, err))?;
    // The old WAL files go first, while the old data.db is still in place: a WAL must never
    // meet a database file it was not written for.
    if ready.join(DATA_DB).exists() {
        for name in ["data.db-wal", "data.db-shm"] {
            let live = data_dir.join(name);
            if live.exists() {
                std::fs::rename(&live, aside.join(name))
                    .map_err(|err| Error::io("rename", &live, err))?;
            }
        }
    }
    for name in [DATA_DB, LOG_DIR, SNAPSHOT_DIR, STORAGE_DIR] {
        let staged = ready.join(name);
        if !staged.exists() {
            // Moved in by an earlier, interrupted call.
            continue;
        }
        let live = data_dir.join(name);
        if live.exists() {
            std::fs::rename(&live, aside.join(name))
                .map_err(|err| Error::io("rename", &live, err))?;
        }
        std::fs::rename(&staged, &live).map_err(|err| Error::io("rename", &live, err))?;
    }
    sync_dir(data_dir)?;
    remove_dir_if_exists(&ready)?;
    sync_dir(data_dir)?;
    Ok(true)
}
