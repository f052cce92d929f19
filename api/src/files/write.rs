//! File fields inside a record write command (on the writer thread): resolve every file
//! field against the record's old and new values, stage [`engine::Change::FilesChanged`],
//! and — at the very end of the command, after every check of every write in it (a batch) —
//! move the added uploads into storage ([`PendingUploads::persist_ready`]).
//!
//! Invariants:
//! 1. Files are persisted only when the whole command has passed every check, so a refused
//!    write or batch leaves no stored file (its uploads' temp files are dropped); the stored
//!    files are renamed and fsynced before the command returns, i.e. before the commit is
//!    appended.
//! 2. The commit names exactly the files it adds and the names it drops; a deleted record
//!    drops all its files. Nothing here deletes bytes (retention/GC is later).
//! 3. Files of a failed group commit (append/fsync failure after the command) are orphans in
//!    storage, never referenced-but-missing.

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::files::body::file_specs;
use crate::files::fields::{self, NamedUpload};
use crate::files::storage::Storage;
use crate::model::Collection;
use engine::{Change, Tx};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};

/// The uploads of one write, bound to fields and named; moved out by the command that
/// uses them. Clones share the uploads (a batch upsert prepares a create and an update;
/// only one runs).
#[derive(Debug, Default, Clone)]
pub struct PendingUploads {
    storage: Option<Storage>,
    uploads: Arc<Mutex<Vec<NamedUpload>>>,
    /// Checked uploads waiting for the end of the command: (collection id, record id, upload).
    ready: Arc<Mutex<Vec<(String, String, NamedUpload)>>>,
}

fn take_all<T>(list: &Mutex<Vec<T>>) -> Vec<T> {
    match list.lock() {
        Ok(mut items) => std::mem::take(&mut *items),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    }
}

impl PendingUploads {
    /// Uploads to persist into `storage`.
    pub fn new(storage: Storage, uploads: Vec<NamedUpload>) -> Self {
        PendingUploads {
            storage: Some(storage),
            uploads: Arc::new(Mutex::new(uploads)),
            ready: Arc::default(),
        }
    }

    /// Uploads with no usable storage (a misconfigured S3): persisting them fails the
    /// command with a 400, so nothing is stored or referenced.
    pub fn unavailable(uploads: Vec<NamedUpload>) -> Self {
        PendingUploads {
            storage: None,
            uploads: Arc::new(Mutex::new(uploads)),
            ready: Arc::default(),
        }
    }

    /// Takes the uploads (empty after the first call).
    fn take(&self) -> Vec<NamedUpload> {
        take_all(&self.uploads)
    }

    /// Moves the checked uploads into storage (durably: renamed and fsynced locally, or
    /// acknowledged by S3). Call at the end of the command, after every write in it has
    /// passed its checks. An S3 failure (unreachable, refused) is a 400 `failed` (the
    /// reference's answer) and the command fails, so nothing refers to the file; objects
    /// already uploaded by this command are orphans for retention/GC.
    pub fn persist_ready(&self, failed: &str) -> ApiResult<()> {
        let ready = take_all(&self.ready);
        if ready.is_empty() {
            return Ok(());
        }
        let storage = self
            .storage
            .as_ref()
            .ok_or_else(|| ApiError::bad_request(failed))?;
        for (collection_id, record_id, upload) in ready {
            storage
                .persist(
                    upload.upload.temp,
                    &collection_id,
                    &record_id,
                    &upload.stored_name,
                )
                .map_err(|err| {
                    tracing::error!(%err, collection_id, record_id, "could not store an upload");
                    match storage {
                        Storage::S3 { .. } => ApiError::bad_request(failed),
                        Storage::Local(_) => ApiError::internal(err),
                    }
                })?;
        }
        crate::files::retention::failpoint(crate::files::retention::AFTER_FILE_PERSIST);
        Ok(())
    }
}

/// What a write does to a record's files.
#[derive(Debug, Default)]
pub struct RecordFiles {
    added: Vec<NamedUpload>,
    removed: Vec<String>,
}

/// Checks every file field of `new` (after modifiers) against `old` (`None` on create) and the
/// uploads; errors go into `errors` with the other field errors.
pub fn resolve(
    collection: &Collection,
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
    pending: &PendingUploads,
    errors: &mut FieldErrors,
) -> RecordFiles {
    let mut uploads = pending.take();
    let mut files = RecordFiles::default();
    for spec in file_specs(collection) {
        let (mine, rest): (Vec<NamedUpload>, Vec<NamedUpload>) = uploads
            .into_iter()
            .partition(|upload| upload.field == spec.name);
        uploads = rest;
        let old_names = fields::names_of(old.and_then(|record| record.get(&spec.name)));
        let new_names = fields::names_of(new.get(&spec.name));
        match fields::resolve(&spec, &old_names, &new_names, mine) {
            Ok(field) => {
                files.added.extend(field.added);
                files.removed.extend(field.removed);
            }
            Err(err) => errors.add(&spec.name, err.code, &err.message, err.params),
        }
    }
    files
}

/// Stages the commit's file change and queues the added files for
/// [`PendingUploads::persist_ready`]. Call after the record's own change is staged.
pub fn commit(
    tx: &mut Tx<'_>,
    pending: &PendingUploads,
    collection_id: &str,
    record_id: &str,
    files: RecordFiles,
) -> ApiResult<()> {
    if files.added.is_empty() && files.removed.is_empty() {
        return Ok(());
    }
    let added = files
        .added
        .iter()
        .map(|upload| upload.stored_name.clone())
        .collect();
    tx.stage(Change::FilesChanged {
        collection_id: collection_id.to_string(),
        record_id: record_id.to_string(),
        added,
        removed: files.removed,
    })
    .map_err(ApiError::from)?;
    let mut ready = match pending.ready.lock() {
        Ok(ready) => ready,
        Err(poisoned) => poisoned.into_inner(),
    };
    ready.extend(
        files
            .added
            .into_iter()
            .map(|upload| (collection_id.to_string(), record_id.to_string(), upload)),
    );
    Ok(())
}

/// Stages the release of every file of a deleted record (nothing if it had none).
pub fn record_deleted(
    tx: &mut Tx<'_>,
    collection: &Collection,
    record_id: &str,
    existing: &Map<String, Value>,
) -> ApiResult<()> {
    let removed: Vec<String> = file_specs(collection)
        .iter()
        .flat_map(|spec| fields::names_of(existing.get(&spec.name)))
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    tx.stage(Change::FilesChanged {
        collection_id: collection.id.clone(),
        record_id: record_id.to_string(),
        added: Vec::new(),
        removed,
    })
    .map_err(ApiError::from)?;
    Ok(())
}
