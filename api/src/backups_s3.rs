//! Backups in S3 (`settings.backups.s3` enabled), as the reference keeps them: each archive
//! is an object at the bucket's root named by its key (`<name>.zip`). `crate::backups` calls
//! these functions from its list, create, upload, download, delete and restore paths; the
//! archive is an opaque file here, moved between the local staging place in
//! `pb_data/backups/` and the bucket.
//!
//! Invariants:
//! 1. A created or uploaded backup is listed only once S3 acknowledged the whole object; the
//!    local staging copy is removed afterwards (also when the upload fails: nothing half-done
//!    stays).
//! 2. A restore downloads the archive to a hidden staging file (`.s3-restore-<key>`), stages
//!    the restore from it, and removes it whatever the outcome.
//! 3. S3 failures are 400s with the reference's messages (`Raw error: ...`), never a hang
//!    (bounded calls, `files::s3`).

use crate::error::{ApiError, ApiResult};
use crate::files::s3::{S3Config, S3Error, S3Store, BACKUPS_POINTER};
use crate::model::record::format_ms;
use crate::state::AppState;
use axum::body::Body;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The backups bucket, when `settings.backups.s3` is enabled.
pub fn bucket(state: &AppState) -> ApiResult<Option<S3Store>> {
    match S3Config::enabled(&state.settings(), BACKUPS_POINTER) {
        None => Ok(None),
        Some(config) => S3Store::open(&config).map(Some).map_err(|err| {
            ApiError::bad_request(&format!(
                "Failed to load the backups filesystem. Raw error: \n{err}."
            ))
        }),
    }
}

fn ms(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_millis() as i64)
}

/// The backups in the bucket, newest first: `{key, modified, size}` each.
pub async fn list(bucket: &S3Store) -> ApiResult<Vec<Value>> {
    let mut objects = bucket.list_root().await.map_err(|err| {
        ApiError::bad_request(&format!(
            "Failed to retrieve backup items. Raw error: \n{err}."
        ))
    })?;
    objects.sort_by_key(|object| std::cmp::Reverse(ms(object.modified)));
    Ok(objects
        .into_iter()
        .map(|object| {
            json!({"key": object.key, "modified": format_ms(ms(object.modified)), "size": object.size})
        })
        .collect())
}

/// Whether the bucket has a backup `key` (an unreachable bucket counts as "exists", so a
/// create does not go ahead blindly; the reference answers the same).
pub async fn exists(bucket: &S3Store, key: &str) -> bool {
    !matches!(bucket.head(key).await, Ok(None))
}

/// Moves the finished local archive `local` into the bucket as `key`, then removes `local`
/// (in both outcomes).
pub async fn store(bucket: &S3Store, local: &Path, key: &str) -> ApiResult<()> {
    let result = bucket.put_file(key, local).await;
    let _ = tokio::fs::remove_file(local).await;
    result.map_err(|err| {
        tracing::error!(key, %err, "could not store a backup in S3");
        ApiError::bad_request(&format!(
            "Failed to upload the backup to S3. Raw error: \n{err}."
        ))
    })
}

/// The download of backup `key`: (size, streamed body). A missing or unreachable object is the
/// reference's 400.
pub async fn download(bucket: &S3Store, key: &str) -> ApiResult<(u64, Body)> {
    match bucket.head(key).await {
        Ok(Some(object)) => Ok((
            object.size,
            Body::from_stream(bucket.stream(key, 0, object.size)),
        )),
        Ok(None) => Err(ApiError::bad_request_default()),
        Err(err) => {
            tracing::warn!(key, %err, "backups bucket unavailable");
            Err(ApiError::bad_request_default())
        }
    }
}

/// Deletes backup `key` from the bucket (a missing one is no error, as on the reference).
pub async fn delete(bucket: &S3Store, key: &str) -> ApiResult<()> {
    bucket.delete(key).await.map_err(|err| {
        ApiError::bad_request(&format!(
            "Invalid or already deleted backup file. Raw error: \n[key: {key}] {err}."
        ))
    })
}

/// Downloads backup `key` to a hidden staging file in `dir` for a restore; the caller removes
/// it. A missing backup is the reference's 400 `Missing or invalid backup file.`.
pub async fn fetch(bucket: &S3Store, key: &str, dir: &Path) -> ApiResult<PathBuf> {
    let missing = || ApiError::bad_request("Missing or invalid backup file.");
    match bucket.head(key).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(missing()),
        Err(err) => {
            tracing::warn!(key, %err, "backups bucket unavailable");
            return Err(missing());
        }
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(ApiError::internal)?;
    let path = dir.join(format!(".s3-restore-{key}"));
    match bucket.download_to(key, &path).await {
        Ok(_) => Ok(path),
        Err(err) => {
            let _ = tokio::fs::remove_file(&path).await;
            tracing::warn!(key, %err, "could not download a backup from S3");
            Err(match err {
                S3Error::NotFound(_) => missing(),
                other => ApiError::bad_request(&format!(
                    "Failed to restore the backup. Raw error: \n{other}."
                )),
            })
        }
    }
}
