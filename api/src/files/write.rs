//! File fields inside a record write command (on the writer thread): resolve every file
//! field against the record's old and new values, stage [`engine::Change::FilesChanged`],
//! and — at the very end of the command, after every check of every write in it (a batch) —
//! move the added uploads into storage ([`PendingUploads::persist_ready`]).
//!
//! With S3, a single create or update uploads its files to their final keys BEFORE its
//! command is queued ([`PendingUploads::preupload`], on the request's task): a large upload
//! never holds the writer thread, so writes queued behind it do not wait for it. The command
//! then only checks that the keys it references are the uploaded ones; afterwards
//! [`PendingUploads::discard_unused`] deletes every uploaded key that the command did not
//! reference (a refused write). A create whose client gave no id gets its id here (the
//! command uses it). Batches, hooks and OAuth2 avatars still upload inside the command.
//!
//! Invariants:
//! 1. Files are referenced only when the whole command has passed every check, so a refused
//!    write or batch leaves no stored file (its uploads' temp files are dropped, its
//!    pre-uploaded keys deleted); the stored files are renamed and fsynced (local) or
//!    acknowledged by S3 before the command returns, i.e. before the commit is appended.
//!    A crash between a pre-upload and the commit leaves an orphan key for `files::gc`.
//! 2. The commit names exactly the files it adds and the names it drops; a deleted record
//!    drops all its files. Nothing here deletes bytes (retention/GC is later).
//! 3. Files of a failed group commit (append/fsync failure after the command) are orphans in
//!    storage, never referenced-but-missing.

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::files::body::file_specs;
use crate::files::fields::{self, NamedUpload};
use crate::files::storage::{key_of, Storage};
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
    /// Keys uploaded before the command, and whether the command referenced them.
    preuploaded: Arc<Mutex<Vec<(String, bool)>>>,
    /// The record id a create uses when its client gave none (chosen for the pre-upload).
    preassigned_id: Arc<Mutex<Option<String>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
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
            preuploaded: Arc::default(),
            preassigned_id: Arc::default(),
        }
    }

    /// Uploads with no usable storage (a misconfigured S3): persisting them fails the
    /// command with a 400, so nothing is stored or referenced.
    pub fn unavailable(uploads: Vec<NamedUpload>) -> Self {
        PendingUploads {
            storage: None,
            uploads: Arc::new(Mutex::new(uploads)),
            ready: Arc::default(),
            preuploaded: Arc::default(),
            preassigned_id: Arc::default(),
        }
    }

    /// Takes the uploads (empty after the first call).
    fn take(&self) -> Vec<NamedUpload> {
        take_all(&self.uploads)
    }

    /// The bucket, when there are uploads bound for S3 (what [`PendingUploads::preupload`]
    /// uploads).
    fn bucket_with_uploads(&self) -> Option<&crate::files::s3::S3Store> {
        let bucket = self.storage.as_ref()?.bucket()?;
        (!locked(&self.uploads).is_empty()).then_some(bucket)
    }

    /// The id a create without a client id uses (see [`PendingUploads::preupload_create`]).
    pub fn preassigned_id(&self) -> Option<String> {
        locked(&self.preassigned_id).clone()
    }

    /// [`PendingUploads::preupload`] for a create: the files go under the body's id, or under
    /// an id chosen now (the command then uses it) when the body has none.
    pub async fn preupload_create(
        &self,
        collection_id: &str,
        body: &Map<String, Value>,
        failed: &str,
    ) -> ApiResult<()> {
        if self.bucket_with_uploads().is_none() {
            return Ok(());
        }
        let given = body
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let id = match given {
            Some(id) => id.to_string(),
            None => {
                let id = crate::auth::token::new_record_id();
                *locked(&self.preassigned_id) = Some(id.clone());
                id
            }
        };
        self.preupload(collection_id, &id, failed).await
    }

    /// Uploads every upload to its final S3 key under `record_id` before the command is
    /// queued (nothing to do on local storage: the command only renames). A failed upload is
    /// the reference's 400 `failed`, with the keys uploaded so far deleted. An id that cannot
    /// be a key (unsafe) uploads nothing here: the command refuses it, or stores inside.
    pub async fn preupload(
        &self,
        collection_id: &str,
        record_id: &str,
        failed: &str,
    ) -> ApiResult<()> {
        let Some(bucket) = self.bucket_with_uploads() else {
            return Ok(());
        };
        let files: Vec<(String, std::path::PathBuf)> = locked(&self.uploads)
            .iter()
            .filter_map(|upload| {
                let key = key_of(collection_id, record_id, &upload.stored_name)?;
                Some((key, upload.upload.temp.path().to_path_buf()))
            })
            .collect();
        for (key, path) in files {
            if let Err(err) = bucket.put_file(&key, &path).await {
                tracing::error!(%err, key, "could not upload a file to S3");
                self.discard_unused().await;
                return Err(ApiError::bad_request(failed));
            }
            locked(&self.preuploaded).push((key, false));
        }
        Ok(())
    }

    /// Deletes the pre-uploaded keys that no command referenced (call once the command is
    /// answered, committed or not). A referenced key of a commit that then failed stays, for
    /// the orphan sweep (the failure may be ambiguous; a missing referenced file is worse).
    pub async fn discard_unused(&self) {
        let unused: Vec<String> = take_all(&self.preuploaded)
            .into_iter()
            .filter(|(_, used)| !used)
            .map(|(key, _)| key)
            .collect();
        let Some(bucket) = self.storage.as_ref().and_then(Storage::bucket) else {
            return;
        };
        for key in unused {
            if let Err(err) = bucket.delete(&key).await {
                tracing::warn!(%err, key, "could not delete an unused upload; the sweep will");
            }
        }
    }

    /// Marks `key` as referenced when it was pre-uploaded (and not yet used).
    fn use_preuploaded(&self, key: &str) -> bool {
        let mut preuploaded = locked(&self.preuploaded);
        match preuploaded
            .iter_mut()
            .find(|(uploaded, used)| uploaded == key && !used)
        {
            Some((_, used)) => {
                *used = true;
                true
            }
            None => false,
        }
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
            let key = key_of(&collection_id, &record_id, &upload.stored_name);
            if key.is_some_and(|key| self.use_preuploaded(&key)) {
                // Already at its final key; the temp file goes when `upload` drops.
                continue;
            }
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
