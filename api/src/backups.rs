//! The backups and restore domain behind `/api/backups` (superusers only; the handlers in
//! `handlers/backups.rs` are HTTP glue), and the restore steps `pocketlog serve` runs at start.
//!
//! Backups are pocketlog archives (`engine::admin::write_backup`: a zip with a manifest, the log
//! range, snapshots and the stored files its restore points need; see FORMAT.md) stored as
//! `pb_data/backups/<key>.zip`. Restoring one brings back exactly the files of its point
//! (`storage/` is swapped in with the log and the projection). A PocketBase backup zip
//! (`data.db` at the root, no manifest) is accepted too: upload stores it as it is, and its
//! restore imports it (`crate::import`) into the same stage, files included, so switching
//! from PocketBase works through the dashboard's backups screen.
//!
//! 1. Creating a backup reads the log and a consistent projection copy from a read transaction;
//!    it never blocks writes. One backup or restore runs at a time (else 400).
//! 2. `create` accepts the extension `"at"`: a seq (number or digits) or an RFC 3339 time.
//! 3. Restore is staged: the archive is checked and restored into
//!    `pb_data/.pending_restore.ready/` before answering 204; then the server is asked to
//!    restart ([`restart_requested`]); `pocketlog serve` applies the stage before it opens the
//!    engine (and also on any later start, if the process died first). A bad archive is a 400
//!    and changes nothing.
//! 4. Every restore revokes the tokens issued before it (stricter than PocketBase, which
//!    revives tokens revoked after the restore point): each restore path leaves the marker
//!    [`ROTATE_SECRETS_MARKER`] in the data dir (the API before it stages, `pb-tools restore`
//!    once the new dir is complete) and the next start ([`finish_restore`]) rotates every
//!    auth collection's token secrets as one ordinary commit after the restored state, then
//!    removes the marker (after the commit is durable: a crash in between rotates again).
//! 5. The one-operation flag and the restart request are fields of [`Backups`] in `AppState`
//!    (no process-global state: two servers in one process do not share them).

use crate::access;
use crate::auth::token;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::model::record::format_ms;
use crate::model::SUPERUSERS_ID;
use crate::state::{AppState, ServerOptions};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Name of the backups directory inside the data dir.
pub const BACKUPS_DIR: &str = "backups";
/// Longest backup name.
pub const BACKUP_NAME_MAX: usize = 150;

/// The runtime state of backups in one server: the one-operation-at-a-time flag and the
/// restart request (a field of `AppState`).
#[derive(Debug, Default)]
pub struct Backups {
    busy: AtomicBool,
    restart: tokio::sync::Notify,
}

impl Backups {
    /// Notified after a restore was staged: the server should restart to apply it.
    pub fn restart_requested(&self) -> &tokio::sync::Notify {
        &self.restart
    }

    /// Takes the one-operation-at-a-time flag (400 when another backup or restore runs).
    fn take(&self) -> ApiResult<Busy<'_>> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(ApiError::bad_request(
                "Try again later - another backup/restore operation has already been started.",
            ));
        }
        Ok(Busy(&self.busy))
    }
}

/// Holds the one-operation-at-a-time flag until dropped.
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn backups_dir(state: &AppState) -> PathBuf {
    state.engine.dir().join(BACKUPS_DIR)
}

/// True for names PocketBase accepts for new backups.
pub fn valid_name(name: &str) -> bool {
    name.len() <= BACKUP_NAME_MAX
        && name.strip_suffix(".zip").is_some_and(|stem| {
            !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// The file of an existing backup key, refusing anything that is not a plain file name.
pub fn backup_path(state: &AppState, key: &str) -> Option<PathBuf> {
    let plain = !key.is_empty()
        && !key.starts_with('.')
        && !key.contains(['/', '\\', '\0'])
        && key.len() <= 255;
    plain.then(|| backups_dir(state).join(key))
}

pub fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::internal(err.to_string())
}

fn parse_at(value: Option<&Value>) -> ApiResult<engine::admin::At> {
    let text = match value {
        None | Some(Value::Null) => return Ok(engine::admin::At::Latest),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) if text.trim().is_empty() => {
            return Ok(engine::admin::At::Latest)
        }
        Some(Value::String(text)) => text.clone(),
        Some(_) => String::new(),
    };
    text.parse::<engine::admin::At>().map_err(|err| {
        let mut errors = FieldErrors::default();
        errors.add(
            "at",
            "validation_invalid_restore_point",
            &err.to_string(),
            None,
        );
        errors.into_error("Failed to create backup.")
    })
}

pub fn default_name(state: &AppState) -> String {
    let app_name = state
        .settings()
        .pointer("/meta/appName")
        .and_then(Value::as_str)
        .unwrap_or("pocketlog")
        .to_string();
    let mut snake = String::new();
    for ch in app_name.chars() {
        if ch.is_ascii_alphanumeric() {
            if ch.is_ascii_uppercase() && !snake.is_empty() && !snake.ends_with('_') {
                snake.push('_');
            }
            snake.push(ch.to_ascii_lowercase());
        } else if !snake.ends_with('_') && !snake.is_empty() {
            snake.push('_');
        }
    }
    let snake = snake.trim_matches('_');
    format!(
        "pb_backup_{}_{}.zip",
        if snake.is_empty() { "app" } else { snake },
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    )
}

/// Maps an engine error of a backup or restore to a 400 (bad input) or a 500.
fn restore_error(err: engine::Error, message: &str) -> ApiError {
    match err {
        engine::Error::InvalidTarget(_)
        | engine::Error::SeqUnavailable { .. }
        | engine::Error::BadArchive(_)
        | engine::Error::FormatVersion { .. } => {
            ApiError::bad_request(&format!("{message} Raw error: {err}"))
        }
        other => ApiError::internal(other),
    }
}

/// The backups, newest first: `{key, modified, size}` each.
pub async fn list(state: &Arc<AppState>) -> ApiResult<Vec<Value>> {
    if let Some(bucket) = crate::backups_s3::bucket(state)? {
        return crate::backups_s3::list(&bucket).await;
    }
    let dir = backups_dir(state);
    let items = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(i64, Value)>> {
        let mut items = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(items),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".attrs") {
                continue;
            }
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |duration| duration.as_millis() as i64);
            items.push((
                modified_ms,
                json!({"key": name, "modified": format_ms(modified_ms), "size": meta.len()}),
            ));
        }
        items.sort_by_key(|item| std::cmp::Reverse(item.0));
        Ok(items)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    let items: Vec<Value> = items.into_iter().map(|(_, item)| item).collect();
    Ok(items)
}

/// Creates a backup from a `{"name"?: "x.zip", "at"?: seq | "RFC 3339 time"}` body.
pub async fn create(state: &Arc<AppState>, body: &Map<String, Value>) -> ApiResult<()> {
    let name = match body.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => default_name(state),
    };
    if !valid_name(&name) {
        let mut errors = FieldErrors::default();
        errors.add(
            "name",
            "validation_match_invalid",
            "Must be in a valid format.",
            None,
        );
        return Err(errors.into_error("An error occurred while validating the submitted data."));
    }
    let at = parse_at(body.get("at"))?;
    let busy = state.backups.take()?;
    let dir = backups_dir(state);
    let out = dir.join(&name);
    let bucket = crate::backups_s3::bucket(state)?;
    let in_bucket = match &bucket {
        Some(bucket) => crate::backups_s3::exists(bucket, &name).await,
        None => false,
    };
    if out.exists() || in_bucket {
        let mut errors = FieldErrors::default();
        errors.add(
            "name",
            "validation_backup_exists",
            "A backup with this name exists already.",
            None,
        );
        return Err(errors.into_error("An error occurred while validating the submitted data."));
    }
    let source = state.engine.dir().to_path_buf();
    let archive = out.clone();
    let result = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|err| engine::Error::Io {
                op: "create dir",
                path: dir.clone(),
                source: err,
            })
            .and_then(|()| {
                engine::admin::write_backup(
                    &source,
                    &out,
                    engine::admin::RestoreOptions {
                        at,
                        ..engine::admin::RestoreOptions::default()
                    },
                    &mut |_| {},
                )
            })
    })
    .await
    .map_err(internal)?;
    let stored = match (&result, &bucket) {
        (Ok(_), Some(bucket)) => crate::backups_s3::store(bucket, &archive, &name).await,
        _ => Ok(()),
    };
    drop(busy);
    result.map_err(|err| restore_error(err, "Failed to create backup."))?;
    stored
}

pub fn invalid_file(message: &str) -> ApiError {
    let mut errors = FieldErrors::default();
    errors.add("file", "validation_invalid_mime_type", message, None);
    errors.into_error("An error occurred while validating the submitted data.")
}

const NAME_EXISTS: &str = "name exists";

/// PocketBase's answer to an upload whose name is taken.
fn name_exists() -> ApiError {
    let mut errors = FieldErrors::default();
    errors.add(
        "file",
        "validation_backup_name_exists",
        "Backup file with the specified name already exists.",
        None,
    );
    errors.into_error("An error occurred while validating the submitted data.")
}

/// Stores an uploaded archive named `file_name` (checked to be a pocketlog backup or a
/// PocketBase backup zip).
pub async fn upload(state: &Arc<AppState>, file_name: String, content: Vec<u8>) -> ApiResult<()> {
    let base = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .to_string();
    if !base.ends_with(".zip") {
        return Err(invalid_file(&format!(
            "\"{base}\" mime type must be one of: application/zip."
        )));
    }
    let name = if valid_name(&base) {
        base.clone()
    } else {
        default_name(state)
    };
    let key = name.clone();
    let bucket = crate::backups_s3::bucket(state)?;
    if let Some(bucket) = &bucket {
        if crate::backups_s3::exists(bucket, &key).await {
            return Err(name_exists());
        }
    }
    let busy = state.backups.take()?;
    let dir = backups_dir(state);
    let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
        std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
        let target = dir.join(&name);
        if target.exists() {
            return Err(NAME_EXISTS.to_string());
        }
        let tmp = dir.join(format!(".upload-{name}.tmp"));
        std::fs::write(&tmp, &content).map_err(|err| err.to_string())?;
        // A pocketlog archive, or a PocketBase backup zip (restored by importing it).
        let checked = if crate::import::is_pocketbase_backup(&tmp) {
            Ok(())
        } else {
            engine::admin::read_manifest(&tmp)
                .map(drop)
                .map_err(|err| format!("not a pocketlog or PocketBase backup archive: {err}"))
        };
        match checked {
            Ok(()) => std::fs::rename(&tmp, &target).map_err(|err| err.to_string()),
            Err(err) => {
                let _ = std::fs::remove_file(&tmp);
                Err(err)
            }
        }
    })
    .await
    .map_err(internal)?;
    drop(busy);
    result.map_err(|reason| {
        if reason == NAME_EXISTS {
            return name_exists();
        }
        invalid_file(&format!(
            "\"{base}\" mime type must be one of: application/zip ({reason})."
        ))
    })?;
    if let Some(bucket) = bucket {
        let local = backups_dir(state).join(&key);
        crate::backups_s3::store(&bucket, &local, &key).await?;
    }
    Ok(())
}

/// True when `raw` is a valid superuser auth or file token.
pub async fn superuser_token(state: &Arc<AppState>, raw: &str) -> bool {
    let Some(claims) = token::decode_unverified(raw) else {
        return false;
    };
    if claims.collection_id != SUPERUSERS_ID {
        return false;
    }
    let schema = state.schema();
    let Some(collection) = schema.find(SUPERUSERS_ID).cloned() else {
        return false;
    };
    let Ok(Some(record)) = access::load_record(state, &collection, &claims.id).await else {
        return false;
    };
    let token_key = record.get("tokenKey").and_then(Value::as_str).unwrap_or("");
    let now = chrono::Utc::now().timestamp();
    let key = token::signing_key(token_key, &collection.token_secret("fileToken"));
    token::verify_as(raw, &key, now, token::TokenType::File).is_ok()
}

/// Deletes the backup `key` (400 when it is not there).
pub async fn delete(state: &Arc<AppState>, key: &str) -> ApiResult<()> {
    let busy = state.backups.take()?;
    if let Some(bucket) = crate::backups_s3::bucket(state)? {
        return crate::backups_s3::delete(&bucket, key).await;
    }
    let result = match backup_path(state, key) {
        Some(path) => tokio::fs::remove_file(&path)
            .await
            .map_err(|err| err.to_string()),
        None => Err("invalid key".into()),
    };
    drop(busy);
    result.map_err(|err| {
        ApiError::bad_request(&format!(
            "Invalid or already deleted backup file. Raw error: {err}"
        ))
    })?;
    Ok(())
}

/// Stages a restore of backup `key`, then asks the server to restart to apply it.
pub async fn restore(state: &Arc<AppState>, key: String) -> ApiResult<()> {
    let bucket = crate::backups_s3::bucket(state)?;
    let path = match &bucket {
        Some(bucket) => {
            backup_path(state, &key)
                .ok_or_else(|| ApiError::bad_request("Missing or invalid backup file."))?;
            crate::backups_s3::fetch(bucket, &key, &backups_dir(state)).await?
        }
        None => backup_path(state, &key)
            .filter(|path| path.is_file())
            .ok_or_else(|| ApiError::bad_request("Missing or invalid backup file."))?,
    };
    let fetched = bucket.is_some().then(|| path.clone());
    let busy = state.backups.take()?;
    let data_dir = state.engine.dir().to_path_buf();
    let options = ServerOptions {
        settings_key: state.options.settings_key.clone(),
        encryption_env: state.options.encryption_env.clone(),
        ..ServerOptions::default()
    };
    let runtime = tokio::runtime::Handle::current();
    let staged = tokio::task::spawn_blocking(move || {
        // The marker goes first: a stage that is ready is always applied at the next start,
        // so it must never be there without the marker. (A marker without a stage only
        // rotates the secrets once more.)
        mark_restored(&data_dir).map_err(internal)?;
        let staged = if crate::import::is_pocketbase_backup(&path) {
            stage_pocketbase(&data_dir, &path, options, &runtime)
        } else {
            engine::admin::stage_restore(&data_dir, &path, engine::admin::At::Latest)
                .map(|report| format!("restored at seq {}", report.seq))
                .map_err(|err| restore_error(err, "Failed to restore the backup."))
        };
        if staged.is_err() {
            let _ = std::fs::remove_file(data_dir.join(ROTATE_SECRETS_MARKER));
        }
        staged
    })
    .await
    .map_err(internal)?;
    drop(busy);
    if let Some(fetched) = fetched {
        let _ = tokio::fs::remove_file(fetched).await;
    }
    let summary = staged?;
    tracing::warn!(
        key,
        summary,
        "restore staged; restarting to apply it; every auth collection's token secrets \
         will be rotated on start, so tokens issued before the restore stop working"
    );
    let state = Arc::clone(state);
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        state.backups.restart_requested().notify_waiters();
    });
    Ok(())
}

/// Stages a PocketBase backup zip the way [`engine::admin::stage_restore`] stages a pocketlog
/// archive: imported (`crate::import`) into `data_dir/.pending_restore/`, which is renamed to
/// `.pending_restore.ready` only when the import is complete. A failed import removes the
/// partial stage and is a 400. Returns a summary for the log.
fn stage_pocketbase(
    data_dir: &Path,
    archive: &Path,
    options: ServerOptions,
    runtime: &tokio::runtime::Handle,
) -> ApiResult<String> {
    let pending = data_dir.join(engine::admin::PENDING_RESTORE);
    let ready = data_dir.join(format!("{}.ready", engine::admin::PENDING_RESTORE));
    for dir in [&pending, &ready] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(internal)?;
        }
    }
    let result = crate::import::import(
        crate::import::Import {
            from: archive,
            target: &pending,
            options,
            scratch: Some(data_dir),
        },
        runtime,
        &mut |_, _| {},
    );
    let report = match result {
        Ok(report) => report,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&pending);
            return Err(ApiError::bad_request(&format!(
                "Failed to restore the backup. Raw error: {err:#}"
            )));
        }
    };
    std::fs::rename(&pending, &ready).map_err(internal)?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(internal)?;
    Ok(format!(
        "imported a PocketBase backup: {} collections, {} records, {} files",
        report.collections_imported,
        report.records.values().sum::<u64>(),
        report.files_imported
    ))
}

/// Applies a staged restore to `data_dir` (call before opening the engine); true when one was
/// applied.
pub fn apply_pending_restore(data_dir: &Path) -> anyhow::Result<bool> {
    Ok(engine::admin::apply_staged_restore(data_dir)?)
}

/// A file in a data dir asking the next start to rotate every auth collection's token
/// secrets (see the module docs, point 4). `pb-tools restore` writes the same name.
pub const ROTATE_SECRETS_MARKER: &str = ".restored-rotate-token-secrets";

/// Leaves [`ROTATE_SECRETS_MARKER`] in `data_dir` (durably: file and directory fsynced).
pub fn mark_restored(data_dir: &Path) -> std::io::Result<()> {
    let path = data_dir.join(ROTATE_SECRETS_MARKER);
    let file = std::fs::File::create(&path)?;
    std::io::Write::write_all(
        &mut &file,
        b"a restore happened: the next start rotates every auth collection's token secrets\n",
    )?;
    file.sync_all()?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// Finishes a restore at server start (call once, after `AppState::new` and before serving):
/// when [`ROTATE_SECRETS_MARKER`] is present, commits new secrets for every token type
/// (auth, verification, passwordReset, emailChange, file) of every auth collection as one
/// commit (the schema follows it) and removes the marker. Returns how many collections were
/// rotated (`None`: no restore to finish).
pub fn finish_restore(state: &Arc<AppState>) -> anyhow::Result<Option<usize>> {
    let dir = state.engine.dir().to_path_buf();
    let marker = dir.join(ROTATE_SECRETS_MARKER);
    if !marker.exists() {
        return Ok(None);
    }
    let schema = state.schema();
    let collections: Vec<crate::model::Collection> = schema
        .collections
        .iter()
        .filter(|c| c.is_auth())
        .map(|c| c.as_ref().clone())
        .collect();
    let count = collections.len();
    let result = state.execute(
        engine::Actor::System,
        move |tx: &mut engine::Tx<'_>| -> engine::Result<()> {
            let now = format_ms(tx.timestamp_ms());
            for mut collection in collections {
                for key in crate::model::collection::TOKEN_KEYS {
                    let mut option = collection.auth_option(key);
                    if let Value::Object(map) = &mut option {
                        map.insert("secret".into(), json!(token::new_collection_secret()));
                    }
                    collection.rest.insert((*key).to_string(), option);
                }
                collection.rest.insert("updated".into(), json!(now));
                tx.stage(engine::Change::CollectionUpdated(collection.to_def()))?;
            }
            Ok(())
        },
    );
    match result {
        Ok(_) => {}
        Err(engine::Failure::Command(err)) | Err(engine::Failure::Engine(err)) => {
            anyhow::bail!("rotating the token secrets after a restore failed: {err}")
        }
    }
    std::fs::remove_file(&marker)?;
    std::fs::File::open(&dir)?.sync_all()?;
    tracing::warn!(
        collections = count,
        "restored data dir: rotated the token secrets of every auth collection; tokens issued \
         before the restore no longer work"
    );
    Ok(Some(count))
}
