//! Deleting stored files that nothing needs, in local storage and in the S3 bucket: the
//! start-up orphan sweep (in the background) and compaction's sweep of the bucket.
//!
//! A stored file is needed when a retained restore point references it (the engine's
//! `needed_files`: referenced at the log start, or added by a retained commit). Keys are the
//! reference's layout: `<collectionId>/<recordId>/<name>` for files and
//! `<collectionId>/<recordId>/thumbs_<name>/<size>_<name>` for thumbnails.
//!
//! Invariants:
//! 1. A key is deleted only when it is not needed AND older than a cutoff: compaction passes
//!    `FILES_GRACE_MS` before now; the start sweep passes the moment the state was built
//!    (before any request could upload), minus [`S3_CLOCK_SKEW_MS`] for the bucket (its clock
//!    stamps `LastModified`). An upload whose commit is in flight is therefore never touched.
//! 2. A thumbnail goes only with its original (the original is unneeded, and gone or going).
//! 3. Only keys of that layout whose components are safe are touched; anything else in the
//!    bucket (e.g. `pb_backups/…`, or keys of another shape) is left alone.
//! 4. The start sweep never delays the start: it runs on its own thread after the state is
//!    built, reads the retained log only when some stored file is not referenced by the
//!    projection now (`_stored_files`, one query), deletes at most [`SWEEP_MAX_DELETES`] keys
//!    per run, and ends with one `tracing` summary line.

use crate::files::names::is_safe_component;
use crate::files::s3::{ObjectInfo, S3Error, S3Store};
use crate::files::storage::Storage;
use crate::state::AppState;
use engine::admin::{ExternalFiles, FileKey, FileSweep};
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

/// Keys deleted at most by one sweep (the rest go at the next one).
pub const SWEEP_MAX_DELETES: usize = 10_000;
/// How far the bucket's clock may lag this server's: the start sweep only deletes objects
/// stamped this much before the start.
pub const S3_CLOCK_SKEW_MS: u64 = 2_000;
/// The first component of the reference's backup keys, never swept here.
const BACKUPS_PREFIX: &str = "pb_backups";
/// The directory prefix of a file's thumbnails.
const THUMBS_PREFIX: &str = "thumbs_";

/// What a key of the storage layout is.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// A stored file.
    File(FileKey),
    /// A thumbnail of this stored file.
    Thumb(FileKey),
    /// Not of the layout: never touched.
    Other,
}

fn parse_key(key: &str) -> Key {
    let parts: Vec<&str> = key.split('/').collect();
    if !parts.iter().all(|part| is_safe_component(part)) || parts[0] == BACKUPS_PREFIX {
        return Key::Other;
    }
    let file = |c: &str, r: &str, n: &str| (c.to_string(), r.to_string(), n.to_string());
    match parts.as_slice() {
        [c, r, name] => Key::File(file(c, r, name)),
        [c, r, dir, _] => match dir.strip_prefix(THUMBS_PREFIX) {
            Some(original) if !original.is_empty() => Key::Thumb(file(c, r, original)),
            _ => Key::Other,
        },
        _ => Key::Other,
    }
}

/// The stored files of `objects` that are not in `referenced` and older than `cutoff`
/// (candidates of the start sweep: finding none spares reading the log).
fn candidates(objects: &[ObjectInfo], referenced: &BTreeSet<FileKey>, cutoff: SystemTime) -> usize {
    objects
        .iter()
        .filter(|object| object.modified < cutoff)
        .filter(
            |object| matches!(parse_key(&object.key), Key::File(key) if !referenced.contains(&key)),
        )
        .count()
}

/// The keys of `objects` to delete (invariants 1-3), at most `limit`, and the counts.
pub fn doomed_keys(
    objects: &[ObjectInfo],
    needed: &BTreeSet<FileKey>,
    cutoff: SystemTime,
    limit: usize,
) -> (Vec<String>, FileSweep) {
    let mut sweep = FileSweep::default();
    let mut doomed = Vec::new();
    // Originals that stay: needed, or too young to judge.
    let mut staying = BTreeSet::new();
    for object in objects {
        let Key::File(file) = parse_key(&object.key) else {
            continue;
        };
        if needed.contains(&file) {
            sweep.kept += 1;
            staying.insert(file);
        } else if object.modified >= cutoff {
            sweep.young += 1;
            staying.insert(file);
        } else if doomed.len() < limit {
            sweep.removed += 1;
            sweep.bytes_removed += object.size;
            doomed.push(object.key.clone());
        } else {
            staying.insert(file);
        }
    }
    for object in objects {
        if let Key::Thumb(original) = parse_key(&object.key) {
            if !needed.contains(&original) && !staying.contains(&original) && doomed.len() < limit {
                sweep.bytes_removed += object.size;
                doomed.push(object.key.clone());
            }
        }
    }
    (doomed, sweep)
}

/// Deletes `keys` from `bucket` (on the S3 runtime, from this non-async thread); the first
/// error stops the sweep (the rest go next time).
fn delete_keys(bucket: &S3Store, keys: Vec<String>) -> Result<(), S3Error> {
    let bucket = bucket.clone();
    crate::files::s3::blocking(async move {
        for key in keys {
            bucket.delete(&key).await?;
            tracing::debug!(key, "removed an unneeded stored object");
        }
        Ok(())
    })
}

fn list_bucket(bucket: &S3Store) -> Result<Vec<ObjectInfo>, S3Error> {
    let bucket = bucket.clone();
    crate::files::s3::blocking(async move { bucket.list("").await })
}

/// Sweeps `bucket`: deletes what [`doomed_keys`] names.
fn sweep_bucket(
    bucket: &S3Store,
    objects: &[ObjectInfo],
    needed: &BTreeSet<FileKey>,
    cutoff: SystemTime,
) -> Result<FileSweep, S3Error> {
    let (doomed, sweep) = doomed_keys(objects, needed, cutoff, SWEEP_MAX_DELETES);
    delete_keys(bucket, doomed)?;
    Ok(sweep)
}

/// The S3 bucket of a running server as compaction sees it ([`ExternalFiles`]): the bucket of
/// the settings at the moment of the sweep (none while S3 is off).
pub struct BucketFiles {
    state: Weak<AppState>,
    /// A shorter grace period than compaction's (tests: S3 objects cannot be aged).
    grace_ms: Option<i64>,
}

impl BucketFiles {
    /// The bucket of `state`'s settings.
    pub fn new(state: &Arc<AppState>) -> Self {
        BucketFiles {
            state: Arc::downgrade(state),
            grace_ms: None,
        }
    }

    /// [`BucketFiles::new`] whose sweeps use at most `grace_ms` (tests register it with
    /// `Engine::set_external_files` to sweep fresh objects; never used by a server).
    pub fn with_grace(state: &Arc<AppState>, grace_ms: i64) -> Self {
        BucketFiles {
            state: Arc::downgrade(state),
            grace_ms: Some(grace_ms),
        }
    }
}

impl ExternalFiles for BucketFiles {
    fn sweep(&self, needed: &BTreeSet<FileKey>, grace_ms: i64) -> Result<FileSweep, String> {
        let Some(state) = self.state.upgrade() else {
            return Ok(FileSweep::default());
        };
        let storage = Storage::current(&state).map_err(|err| err.to_string())?;
        drop(state);
        let Some(bucket) = storage.bucket() else {
            return Ok(FileSweep::default());
        };
        let grace_ms = self.grace_ms.map_or(grace_ms, |own| own.min(grace_ms));
        let grace = Duration::from_millis(u64::try_from(grace_ms.max(0)).unwrap_or(0));
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let objects = list_bucket(bucket).map_err(|err| err.to_string())?;
        sweep_bucket(bucket, &objects, needed, cutoff).map_err(|err| err.to_string())
    }
}

/// Registers the bucket with the engine's compaction and starts the background start-up
/// sweep (invariant 4). Call once the state is built, before serving.
pub fn start(state: &Arc<AppState>) {
    state
        .engine
        .set_external_files(Arc::new(BucketFiles::new(state)));
    let weak = Arc::downgrade(state);
    let started = SystemTime::now();
    let spawned = std::thread::Builder::new()
        .name("pocketlog-file-sweep".into())
        .spawn(move || {
            let clock = std::time::Instant::now();
            match start_sweep(&weak, started) {
                Ok(summary) => tracing::info!(
                    candidates = summary.candidates,
                    log_read = summary.log_read,
                    removed = summary.removed,
                    bytes = summary.bytes,
                    elapsed_ms = clock.elapsed().as_millis() as u64,
                    "start-up sweep of stored files no commit references (orphans of \
                     interrupted uploads)"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "the start-up sweep of stored files failed")
                }
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the start-up sweep of stored files");
    }
}

/// What the start sweep did.
#[derive(Debug, Default)]
struct StartSweep {
    candidates: usize,
    log_read: bool,
    removed: usize,
    bytes: u64,
}

/// The files the projection references now (one query).
fn referenced_now(state: &AppState) -> anyhow::Result<BTreeSet<FileKey>> {
    let rows = state
        .engine
        .read(|conn| {
            conn.query(
                "SELECT collection_id, record_id, name FROM _stored_files",
                &[],
            )
        })
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [engine::Value::Text(c), engine::Value::Text(r), engine::Value::Text(n)] => {
                Some((c.clone(), r.clone(), n.clone()))
            }
            _ => None,
        })
        .collect())
}

fn start_sweep(state: &Weak<AppState>, started: SystemTime) -> anyhow::Result<StartSweep> {
    let Some(state) = state.upgrade() else {
        return Ok(StartSweep::default());
    };
    let referenced = referenced_now(&state)?;
    let local = crate::files::storage::list_local_root(state.engine.dir())?;
    let bucket = match Storage::current(&state) {
        Ok(storage) => storage.bucket().cloned(),
        Err(err) => {
            tracing::warn!(error = %err, "the S3 settings are unusable: the bucket is not swept");
            None
        }
    };
    let bucket_cutoff = started
        .checked_sub(Duration::from_millis(S3_CLOCK_SKEW_MS))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let objects = match &bucket {
        Some(bucket) => list_bucket(bucket)?,
        None => Vec::new(),
    };
    let mut summary = StartSweep {
        candidates: candidates(&local, &referenced, started)
            + candidates(&objects, &referenced, bucket_cutoff),
        ..StartSweep::default()
    };
    if summary.candidates == 0 {
        return Ok(summary);
    }
    summary.log_read = true;
    let Some(needed) = state
        .engine
        .needed_files()
        .map_err(|err| anyhow::anyhow!("{err}"))?
    else {
        tracing::warn!(
            "the snapshot at the log start predates the stored-files table: stored files are \
             not swept"
        );
        return Ok(summary);
    };
    if !local.is_empty() {
        let sweep = engine::admin::sweep_storage_older_than(state.engine.dir(), &needed, started)
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        summary.removed += sweep.removed;
        summary.bytes += sweep.bytes_removed;
    }
    if let Some(bucket) = &bucket {
        let sweep = sweep_bucket(bucket, &objects, &needed, bucket_cutoff)?;
        summary.removed += sweep.removed;
        summary.bytes += sweep.bytes_removed;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, age_s: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 10,
            modified: SystemTime::now() - Duration::from_secs(age_s),
        }
    }

    fn file(c: &str, r: &str, n: &str) -> FileKey {
        (c.into(), r.into(), n.into())
    }

    #[test]
    fn keys_are_parsed_by_the_reference_layout() {
        assert_eq!(parse_key("c/r/a.txt"), Key::File(file("c", "r", "a.txt")));
        assert_eq!(
            parse_key("c/r/thumbs_a.png/10x10_a.png"),
            Key::Thumb(file("c", "r", "a.png"))
        );
        for other in [
            "pb_backups/r/a.zip",
            "c/r",
            "c/r/x/y",
            "c/../a",
            "c/r/thumbs_/x",
            "a/b/c/d/e",
        ] {
            assert_eq!(parse_key(other), Key::Other, "{other}");
        }
    }

    #[test]
    fn only_old_unneeded_files_and_their_thumbs_are_doomed() {
        let objects = [
            object("c/r/kept.png", 3600),
            object("c/r/thumbs_kept.png/10x10_kept.png", 3600),
            object("c/r/old.png", 3600),
            object("c/r/thumbs_old.png/10x10_old.png", 3600),
            object("c/r/young.png", 0),
            object("c/r/thumbs_gone.png/10x10_gone.png", 3600),
            object("pb_backups/x/y", 3600),
            object("other", 3600),
        ];
        let needed = BTreeSet::from([file("c", "r", "kept.png")]);
        let cutoff = SystemTime::now() - Duration::from_secs(60);
        let (mut doomed, sweep) = doomed_keys(&objects, &needed, cutoff, 100);
        doomed.sort();
        assert_eq!(
            doomed,
            [
                "c/r/old.png",
                "c/r/thumbs_gone.png/10x10_gone.png",
                "c/r/thumbs_old.png/10x10_old.png"
            ]
        );
        assert_eq!((sweep.kept, sweep.young, sweep.removed), (1, 1, 1));
        // The limit holds: one key, and the thumb of an original that stays is kept.
        let (doomed, _) = doomed_keys(&objects, &needed, cutoff, 1);
        assert_eq!(doomed, ["c/r/old.png"]);
        // Nothing unreferenced and old: no candidate, the log is not read.
        assert_eq!(candidates(&objects[..2], &needed, cutoff), 0);
        assert_eq!(candidates(&objects, &needed, cutoff), 1);
    }
}
