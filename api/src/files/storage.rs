//! Where record files live: [`Storage`] is local storage in PocketBase's layout
//! (`<data dir>/storage/<collectionId>/<recordId>/<name>`) or, when `settings.s3` is enabled,
//! an S3 bucket with the same keys (`<collectionId>/<recordId>/<name>`, thumbnails at
//! `<collectionId>/<recordId>/thumbs_<name>/<size>_<name>`, as the reference lays them out).
//! Temp uploads are always local, in `<data dir>/.tmp-uploads/`.
//!
//! As on the reference, switching S3 on does not move existing local files: from then on files
//! are looked up (and stored) in the bucket only, so earlier local files answer 404 until S3 is
//! switched off again.
//!
//! Invariants:
//! 1. Stored files are immutable: [`LocalStorage::persist`] never replaces an existing file
//!    (names carry a random suffix; a clash is an error), and nothing here deletes one (removal
//!    from a record only drops the reference; retention/GC is a later step).
//! 2. A file is durable before the commit that references it: the temp file was fsynced when
//!    the upload finished, and `persist` renames it into place and fsyncs the directories it
//!    created or changed, all before the commit is appended.
//! 3. Every path component is checked ([`names::is_safe_component`]): no traversal out of the
//!    storage root whatever a collection id, record id or file name contains.
//! 4. In S3, a file is uploaded to its final key and acknowledged by S3 before the commit that
//!    references it: for a single create or update before its command is queued
//!    (`files::write`, so the writer never waits for it), for batches and hooks from the
//!    writer thread after every check of the command. A commit that fails after that leaves
//!    an orphan object, never a reference to a missing one; unused keys are deleted after the
//!    command, and orphans of crashes are found with [`Storage::list`] and removed by
//!    `files::gc` (the start-up sweep, compaction). Local storage only renames, in the command.

use crate::files::multipart::TempFile;
use crate::files::names;
use crate::files::s3::{ObjectInfo, S3Config, S3Error, S3Store};
use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the storage directory in the data dir.
pub const STORAGE_DIR: &str = "storage";
/// Name of the temp upload directory in the data dir.
pub const TMP_UPLOADS_DIR: &str = ".tmp-uploads";

/// The local storage of one data dir.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    tmp: PathBuf,
}

fn unsafe_path() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "unsafe storage path component")
}

/// fsyncs a directory (so a rename or create inside it is durable).
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl LocalStorage {
    /// The storage of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        LocalStorage {
            root: data_dir.join(STORAGE_DIR),
            tmp: data_dir.join(TMP_UPLOADS_DIR),
        }
    }

    /// Where uploads are streamed to before their commit.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Removes leftover temp uploads (at start).
    pub fn sweep_tmp(&self) -> io::Result<usize> {
        crate::files::multipart::sweep(&self.tmp)
    }

    /// The path of a stored file, or `None` when a component is unsafe.
    pub fn path_of(&self, collection_id: &str, record_id: &str, name: &str) -> Option<PathBuf> {
        [collection_id, record_id, name]
            .iter()
            .all(|part| names::is_safe_component(part))
            .then(|| self.root.join(collection_id).join(record_id).join(name))
    }

    /// Moves a finished (fsynced) temp upload into place and makes the move durable.
    pub fn persist(
        &self,
        temp: TempFile,
        collection_id: &str,
        record_id: &str,
        name: &str,
    ) -> io::Result<PathBuf> {
        let target = self
            .path_of(collection_id, record_id, name)
            .ok_or_else(unsafe_path)?;
        let record_dir = target.parent().ok_or_else(unsafe_path)?.to_path_buf();
        let collection_dir = record_dir.parent().ok_or_else(unsafe_path)?.to_path_buf();
        let created_collection = !collection_dir.exists();
        let created_record = !record_dir.exists();
        std::fs::create_dir_all(&record_dir)?;
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a stored file is never replaced",
            ));
        }
        std::fs::rename(temp.path(), &target)?;
        temp.disarm();
        sync_dir(&record_dir)?;
        if created_record {
            sync_dir(&collection_dir)?;
        }
        if created_collection {
            sync_dir(&self.root)?;
            if let Some(data_dir) = self.root.parent() {
                sync_dir(data_dir)?;
            }
        }
        Ok(target)
    }
}

/// The storage record files go to and are served from: S3 when `settings.s3` is enabled,
/// else the local storage. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Storage {
    /// `<data dir>/storage/`.
    Local(LocalStorage),
    /// A bucket (temp uploads still go to the local temp dir).
    S3 {
        /// The local side (temp uploads).
        local: LocalStorage,
        /// The bucket.
        bucket: S3Store,
    },
}

/// A stored object as listed for retention/GC: its key (`<collectionId>/<recordId>/<name>`,
/// relative to the storage root), size and time.
pub type StoredObject = ObjectInfo;

/// The key of a stored file (`None` when a component is unsafe).
pub fn key_of(collection_id: &str, record_id: &str, name: &str) -> Option<String> {
    [collection_id, record_id, name]
        .iter()
        .all(|part| names::is_safe_component(part))
        .then(|| format!("{collection_id}/{record_id}/{name}"))
}

impl Storage {
    /// The record-file storage of a data dir under `settings`. An S3 configuration that cannot
    /// even make a client (a malformed endpoint) is an error.
    pub fn from_settings(data_dir: &Path, settings: &Value) -> Result<Storage, S3Error> {
        let local = LocalStorage::new(data_dir);
        match S3Config::enabled(settings, crate::files::s3::FILES_POINTER) {
            None => Ok(Storage::Local(local)),
            Some(config) => Ok(Storage::S3 {
                local,
                bucket: S3Store::open(&config)?,
            }),
        }
    }

    /// The current record-file storage of a server.
    pub fn current(state: &crate::state::AppState) -> Result<Storage, S3Error> {
        Storage::from_settings(state.engine.dir(), &state.settings())
    }

    /// The local side (temp uploads; the files themselves when not on S3).
    pub fn local(&self) -> &LocalStorage {
        match self {
            Storage::Local(local) | Storage::S3 { local, .. } => local,
        }
    }

    /// The bucket, when files are on S3.
    pub fn bucket(&self) -> Option<&S3Store> {
        match self {
            Storage::Local(_) => None,
            Storage::S3 { bucket, .. } => Some(bucket),
        }
    }

    /// Stores a finished temp upload at its final place, durably, before returning. Runs on
    /// the writer thread (no async runtime): an S3 upload is waited for there.
    pub fn persist(
        &self,
        temp: TempFile,
        collection_id: &str,
        record_id: &str,
        name: &str,
    ) -> io::Result<()> {
        match self {
            Storage::Local(local) => local
                .persist(temp, collection_id, record_id, name)
                .map(|_| ()),
            Storage::S3 { bucket, .. } => {
                let key = key_of(collection_id, record_id, name).ok_or_else(unsafe_path)?;
                bucket
                    .put_file_blocking(&key, temp.path())
                    .map_err(io::Error::other)?;
                // The temp file is removed when `temp` drops.
                Ok(())
            }
        }
    }

    /// Every stored object whose key starts with `prefix` (e.g. `<collectionId>/` or
    /// `<collectionId>/<recordId>/`; `""` for all), thumbnails included.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, S3Error> {
        match self {
            Storage::S3 { bucket, .. } => bucket.list(prefix.trim_end_matches('/')).await,
            Storage::Local(local) => {
                let root = local.root.clone();
                let prefix = prefix.to_string();
                tokio::task::spawn_blocking(move || list_local(&root, &prefix))
                    .await
                    .map_err(|err| S3Error::Other(err.to_string()))?
                    .map_err(S3Error::from)
            }
        }
    }

    /// Deletes one stored object by key (as [`Storage::list`] gives it). Deleting a missing
    /// object is no error. Only retention/GC calls this: stored files are otherwise immutable.
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        if !key.split('/').all(names::is_safe_component) {
            return Err(S3Error::Other(format!("unsafe key {key:?}")));
        }
        match self {
            Storage::S3 { bucket, .. } => bucket.delete(key).await,
            Storage::Local(local) => match tokio::fs::remove_file(local.root.join(key)).await {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(S3Error::from(err)),
                _ => Ok(()),
            },
        }
    }
}

/// Every file under the local storage of `data_dir` (keys relative to `storage/`).
pub fn list_local_root(data_dir: &Path) -> io::Result<Vec<StoredObject>> {
    list_local(&data_dir.join(STORAGE_DIR), "")
}

fn list_local(root: &Path, prefix: &str) -> io::Result<Vec<StoredObject>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(root).map(Path::to_path_buf) else {
                continue;
            };
            let key = relative.to_string_lossy().replace('\\', "/");
            if key.starts_with(prefix) {
                out.push(StoredObject {
                    key,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_moves_into_the_layout_and_never_replaces() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = LocalStorage::new(dir.path());
        std::fs::create_dir_all(storage.tmp_dir()).expect("tmp");
        let temp_path = storage.tmp_dir().join("upload-a");
        std::fs::write(&temp_path, b"one").expect("write");
        let stored = storage
            .persist(
                TempFile::new(temp_path.clone()),
                "pbc_1",
                "rec1",
                "a_0123456789.txt",
            )
            .expect("persist");
        assert_eq!(
            stored,
            dir.path().join("storage/pbc_1/rec1/a_0123456789.txt")
        );
        assert_eq!(std::fs::read(&stored).expect("read"), b"one");
        assert!(!temp_path.exists());
        // A second file with the same name is refused; the first stays as it was.
        std::fs::write(&temp_path, b"two").expect("write");
        let err = storage
            .persist(
                TempFile::new(temp_path.clone()),
                "pbc_1",
                "rec1",
                "a_0123456789.txt",
            )
            .expect_err("no replace");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&stored).expect("read"), b"one");
        assert!(!temp_path.exists(), "the refused temp file is dropped");
    }

    #[test]
    fn unsafe_components_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = LocalStorage::new(dir.path());
        for (c, r, n) in [
            ("..", "r", "n"),
            ("c", "../x", "n"),
            ("c", "r", "../../etc/passwd"),
            ("c", "r", ".."),
            ("c", "r", ""),
            ("c/d", "r", "n"),
        ] {
            assert!(storage.path_of(c, r, n).is_none(), "{c} {r} {n}");
        }
        assert!(storage.path_of("c", "r", "n.txt").is_some());
    }
}
