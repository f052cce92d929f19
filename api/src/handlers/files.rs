//! `GET`/`HEAD /api/files/{collectionIdOrName}/{recordId}/{filename}`: HTTP glue around
//! `crate::files::access::authorize` (who may download) and `crate::files::serve` (the
//! response: ranges, conditional requests, PocketBase's headers).
//!
//! `?download=1` forces `attachment`; `?token=` is the file token for protected files;
//! `?thumb=` serves the original (no thumbnails yet — the reference also serves the original
//! for sizes it does not offer).

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
    let path = crate::files::access::authorize(&state, &name, &id, &filename, token, data).await?;
    let download = query
        .get("download")
        .and_then(|value| parse_bool(value))
        .unwrap_or(false);
    crate::files::serve::serve(&path, &filename, download, &headers, method == Method::HEAD)
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
