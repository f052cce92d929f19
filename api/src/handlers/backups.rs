//! Backups API (`/api/backups`, superusers only): HTTP glue over `crate::backups`, which
//! holds the archive format notes, the one-operation-at-a-time rule and the restore steps.
//!
//! Invariants: the superuser check comes first (after the request body is read, for the
//! routes that take one); a download needs a superuser *file* token in `?token=` (auth tokens
//! live far longer and must not end up in URLs and logs), as PocketBase.

use crate::backups;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Superuser, SuperuserBody};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path as PathExtract, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// `GET /api/backups`
pub async fn backups_list(
    State(state): State<Arc<AppState>>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let items = backups::list(&state).await?;
    Ok(axum::Json(Value::Array(items)).into_response())
}

/// `POST /api/backups` — `{"name"?: "x.zip", "at"?: seq | "RFC 3339 time"}`
pub async fn backups_create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    SuperuserBody(_, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body: Map<String, Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        super::common::parse_body(&headers, &bytes)?
    };
    backups::create(&state, &body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `file` part of a multipart body: (file name, content).
fn multipart_file(headers: &HeaderMap, body: &[u8]) -> Option<(String, Vec<u8>)> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let boundary = content_type
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("boundary="))
        .next()?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut parts = Vec::new();
    let mut start = find(body, delimiter, 0)?;
    loop {
        let after = start + delimiter.len();
        if body.get(after..after + 2) == Some(b"--") {
            break;
        }
        let next = find(body, delimiter, after)?;
        parts.push(&body[after..next]);
        start = next;
    }
    for part in parts {
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let split = find(part, b"\r\n\r\n", 0)?;
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let content = &part[split + 4..];
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let disposition = head
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("content-disposition"))?;
        let param = |key: &str| {
            disposition
                .split(';')
                .filter_map(|item| item.trim().strip_prefix(key))
                .next()
                .map(|value| value.trim_matches('"').to_string())
        };
        if param("name=").as_deref() == Some("file") {
            return Some((param("filename=").unwrap_or_default(), content.to_vec()));
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|index| index + from)
}

/// `POST /api/backups/upload` (multipart field `file`)
pub async fn backups_upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    SuperuserBody(_, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let Some((file_name, content)) = multipart_file(&headers, &bytes) else {
        let mut errors = FieldErrors::default();
        errors.add("file", "validation_required", "Cannot be blank.", None);
        return Err(errors.into_error("An error occurred while validating the submitted data."));
    };
    backups::upload(&state, file_name, content).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/backups/{key}?token=…`
pub async fn backups_download(
    State(state): State<Arc<AppState>>,
    PathExtract(key): PathExtract<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let forbidden = || ApiError::forbidden("Insufficient permissions to access the resource.");
    let token = query.get("token").cloned().unwrap_or_default();
    if token.is_empty() || !backups::superuser_token(&state, &token).await {
        return Err(forbidden());
    }
    let path = backups::backup_path(&state, &key).ok_or_else(ApiError::not_found)?;
    if let Some(bucket) = crate::backups_s3::bucket(&state)? {
        let (size, body) = crate::backups_s3::download(&bucket, &key).await?;
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/zip")
            .header(header::CONTENT_LENGTH, size)
            .header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{key}\""),
            )
            .body(body)
            .map_err(backups::internal);
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found())?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{key}\""),
        )
        .body(Body::from(bytes))
        .map_err(backups::internal)
}

/// `DELETE /api/backups/{key}`
pub async fn backups_delete(
    State(state): State<Arc<AppState>>,
    PathExtract(key): PathExtract<String>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    backups::delete(&state, &key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/backups/{key}/restore`
pub async fn backups_restore(
    State(state): State<Arc<AppState>>,
    PathExtract(key): PathExtract<String>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    backups::restore(&state, key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
