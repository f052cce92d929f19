//! `GET`/`HEAD /api/files/{collectionIdOrName}/{recordId}/{filename}`: HTTP glue around
//! `crate::files::access::authorize` (who may download) and `crate::files::serve` (the
//! response: ranges, conditional requests, PocketBase's headers).
//!
//! `?download=1` forces `attachment`; `?token=` is the file token for protected files;
//! `?thumb=` serves the cached thumbnail (`crate::files::thumbs`) when the field offers that
//! size and the file is an image, else the original (as the reference).

use super::common::{parse_bool, Query};
use crate::access::RequestData;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use std::sync::Arc;

/// `GET`/`HEAD /api/files/{c}/{id}/{filename}`
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path((name, id, filename)): Path<(String, String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let data = RequestData::new(method.as_str(), &headers, &query);
    let token = query.get("token").map(String::as_str);
    let (original, spec) =
        crate::files::access::authorize(&state, &name, &id, &filename, token, data).await?;
    let download = query
        .get("download")
        .and_then(|value| parse_bool(value))
        .unwrap_or(false);
    let storage = crate::files::storage::Storage::current(&state).map_err(|err| {
        tracing::warn!(%err, "the S3 storage is misconfigured");
        ApiError::not_found()
    })?;
    if let Some(bucket) = storage.bucket() {
        let collection_id = state
            .schema()
            .find(&name)
            .map(|collection| collection.id.clone())
            .ok_or_else(ApiError::not_found)?;
        let thumb = query
            .get("thumb")
            .map(String::as_str)
            .filter(|thumb| crate::files::thumbs::offered(thumb, &spec.thumbs));
        let wanted = crate::files::serve_s3::Download {
            collection_id: &collection_id,
            record_id: &id,
            filename: &filename,
            thumb,
            download,
            head: method == Method::HEAD,
        };
        return crate::files::serve_s3::download(
            bucket,
            storage.local().tmp_dir(),
            &headers,
            wanted,
        )
        .await;
    }
    let mut path = original;
    let mut served_name = filename;
    if let Some(thumb) = query.get("thumb").filter(|thumb| !thumb.is_empty()) {
        if crate::files::thumbs::offered(thumb, &spec.thumbs)
            && crate::files::thumbs::is_thumbable(&crate::files::serve::sniff_file(&path).await)
        {
            if let Some(cached) = crate::files::thumbs::get_or_create(&path, thumb).await {
                served_name = format!("{thumb}_{served_name}");
                path = cached;
            }
        }
    }
    crate::files::serve::serve(
        &path,
        &served_name,
        download,
        &headers,
        method == Method::HEAD,
    )
    .await
    .map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            tracing::error!(path = %path.display(), "a referenced file is missing from storage");
            ApiError::not_found()
        } else {
            ApiError::internal(err)
        }
    })
}
