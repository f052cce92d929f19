//! Local file storage in PocketBase's layout: `<data dir>/storage/<collectionId>/<recordId>/<name>`,
//! temp uploads in `<data dir>/.tmp-uploads/`.
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

use crate::files::multipart::TempFile;
use crate::files::names;
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
