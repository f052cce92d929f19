//! Record files served from S3 (`settings.s3` enabled): the same response as a local file
//! (`serve::plan`: headers, conditional requests, ranges, `HEAD`), with the body streamed
//! from the bucket in ranged reads, and `?thumb=` thumbnails generated once and cached in the
//! bucket at the reference's key (`<collectionId>/<recordId>/thumbs_<name>/<size>_<name>`).
//!
//! Invariants:
//! 1. A missing object, or a bucket that cannot be reached, answers 404 as the reference does
//!    (logged), never a 500 and never a hang (every S3 call is bounded, see `files::s3`).
//! 2. Thumbnails are derived data: generated from a bounded download of the original
//!    ([`MAX_THUMB_SOURCE_BYTES`], decoded under `thumbs`' limits), at most once at a time per
//!    key ([`get_or_create`]), uploaded before they are served; any failure serves the original.

use crate::error::{ApiError, ApiResult};
use crate::files::s3::{ObjectInfo, S3Store};
use crate::files::serve::{self, Plan};
use crate::files::storage::key_of;
use crate::files::{sniff, thumbs};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

/// Largest original (bytes) downloaded to make a thumbnail; a larger one serves the original.
pub const MAX_THUMB_SOURCE_BYTES: u64 = 64 * 1024 * 1024;

/// What the download handler asks for.
#[derive(Debug)]
pub struct Download<'a> {
    pub collection_id: &'a str,
    pub record_id: &'a str,
    pub filename: &'a str,
    /// `?thumb=` when the field offers that size.
    pub thumb: Option<&'a str>,
    /// `?download=1`.
    pub download: bool,
    /// `HEAD`: no body.
    pub head: bool,
}

fn missing(key: &str, err: Option<&crate::files::s3::S3Error>) -> ApiError {
    match err {
        Some(err) => tracing::warn!(key, %err, "S3 storage unavailable while serving a file"),
        None => tracing::error!(key, "a referenced file is missing from the S3 storage"),
    }
    ApiError::not_found()
}

async fn info(bucket: &S3Store, key: &str) -> ApiResult<ObjectInfo> {
    match bucket.head(key).await {
        Ok(Some(info)) => Ok(info),
        Ok(None) => Err(missing(key, None)),
        Err(err) => Err(missing(key, Some(&err))),
    }
}

async fn sniffed(bucket: &S3Store, key: &str, size: u64) -> ApiResult<String> {
    if size == 0 {
        return Ok(sniff::sniff(&[]));
    }
    let head = bucket
        .get_range(key, 0..size.min(sniff::SNIFF_LEN as u64))
        .await
        .map_err(|err| missing(key, Some(&err)))?;
    Ok(sniff::sniff(&head))
}

/// Serves a record file from the bucket (the caller has authorized the download).
pub async fn download(
    bucket: &S3Store,
    tmp_dir: &Path,
    request: &HeaderMap,
    wanted: Download<'_>,
) -> ApiResult<Response> {
    let key = key_of(wanted.collection_id, wanted.record_id, wanted.filename)
        .ok_or_else(ApiError::not_found)?;
    let mut object = info(bucket, &key).await?;
    let mut mime = sniffed(bucket, &key, object.size).await?;
    let mut served_name = wanted.filename.to_string();
    if let Some(thumb) = wanted.thumb {
        if thumbs::is_thumbable(&mime) {
            if let Some(thumb_key) = get_or_create(bucket, &object, thumb, tmp_dir).await {
                if let Ok(thumb_object) = info(bucket, &thumb_key).await {
                    mime = sniffed(bucket, &thumb_key, thumb_object.size).await?;
                    object = thumb_object;
                    served_name = format!("{thumb}_{served_name}");
                }
            }
        }
    }
    match serve::plan(
        object.size,
        object.modified,
        &mime,
        &served_name,
        wanted.download,
        request,
    ) {
        Plan::Done(response) => Ok(response),
        Plan::Body {
            status,
            headers,
            start,
            count,
        } => {
            let body = if wanted.head || count == 0 {
                Body::empty()
            } else {
                Body::from_stream(bucket.stream(&object.key, start, count))
            };
            Ok(serve::respond(status, headers, body))
        }
    }
}

/// Generations in flight, by thumbnail key (entries live only while one runs).
static IN_FLIGHT: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// The thumbnail key of `original` for `spec`, generating and uploading it once if needed;
/// `None` when it cannot be made (serve the original).
pub async fn get_or_create(
    bucket: &S3Store,
    original: &ObjectInfo,
    spec_text: &str,
    tmp_dir: &Path,
) -> Option<String> {
    let spec = thumbs::parse(spec_text)?;
    let (dir, name) = original.key.rsplit_once('/')?;
    let target = format!("{dir}/thumbs_{name}/{spec_text}_{name}");
    if matches!(bucket.head(&target).await, Ok(Some(_))) {
        return Some(target);
    }
    if original.size > MAX_THUMB_SOURCE_BYTES {
        return None;
    }
    let lock = {
        let mut map = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(target.clone()).or_default())
    };
    let guard = lock.lock().await;
    let result = if matches!(bucket.head(&target).await, Ok(Some(_))) {
        Some(target.clone())
    } else {
        match generate(bucket, &original.key, &target, spec, tmp_dir).await {
            Ok(()) => Some(target.clone()),
            Err(reason) => {
                tracing::debug!(%reason, key = original.key, "no thumbnail");
                None
            }
        }
    };
    drop(guard);
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&target);
    result
}

async fn generate(
    bucket: &S3Store,
    original: &str,
    target: &str,
    spec: thumbs::ThumbSpec,
    tmp_dir: &Path,
) -> Result<(), String> {
    tokio::fs::create_dir_all(tmp_dir)
        .await
        .map_err(|err| err.to_string())?;
    let temp = crate::files::multipart::TempFile::new(tmp_dir.join(format!(
        "thumb-source-{}",
        crate::files::names::random_part(12)
    )));
    bucket
        .download_to(original, temp.path())
        .await
        .map_err(|err| err.to_string())?;
    let source = temp.path().to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || thumbs::render(&source, spec))
        .await
        .map_err(|err| err.to_string())??;
    drop(temp);
    bucket
        .put_bytes(target, bytes)
        .await
        .map_err(|err| err.to_string())
}
