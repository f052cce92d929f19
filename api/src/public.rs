//! Static files of the public directory (`--publicDir`, PocketBase's `pb_public`) at `/`: the
//! catch-all for GET and HEAD requests that no route answers, as the reference's static route
//! (measured on v0.40.6):
//! - a file is served with `Accept-Ranges: bytes`, `Last-Modified`, its Content-Type (Go's
//!   built-in table, else by extension, else sniffed: UTF-8 text → `text/plain`) and no
//!   `Cache-Control`; `If-Modified-Since` → 304, one `Range` → 206 (unsatisfiable → 416);
//! - a directory serves its `index.html`; a directory path without the trailing slash is
//!   redirected (301) to it, and `…/index.html` is redirected (301) to its directory;
//! - a missing path (including a directory without `index.html`) serves `/index.html` with
//!   200 when `--indexFallback` is on (also under `/api/`, as the reference does), else 404
//!   `File not found.`.
//!
//! Invariants: no file outside the public directory is ever read. Paths with `..` segments
//! (raw or percent-encoded), NUL bytes or backslashes are treated as missing, and a path whose
//! canonical form leaves the directory (a symlink pointing out) is treated as missing too —
//! stricter than the reference, which follows such links.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Bytes read from disk per body chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Bytes looked at to sniff the type of a file without a known extension.
pub const SNIFF_BYTES: usize = 512;
/// The file served by directories and by the SPA fallback.
const INDEX: &str = "index.html";

/// Answers a GET or HEAD request for `path` (the URL path, still percent-encoded) from
/// `public_dir`; `None` when the path is not served (the caller answers 404).
pub async fn serve(
    public_dir: &Path,
    index_fallback: bool,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let root = tokio::fs::canonicalize(public_dir).await.ok()?;
    let lookup = match relative_path(path) {
        Some(relative) => find(&root, &relative, path).await,
        None => Lookup::Missing,
    };
    match lookup {
        Lookup::File(file) => Some(send(&file, method, headers).await),
        Lookup::Redirect(location) => Some(redirect(&location)),
        Lookup::Missing if index_fallback => match find(&root, &[], "/").await {
            Lookup::File(file) => Some(send(&file, method, headers).await),
            _ => None,
        },
        Lookup::Missing => None,
    }
}

/// The 404 answer of a path that is not served.
pub fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "File not found.").into_response()
}

enum Lookup {
    File(PathBuf),
    Redirect(String),
    Missing,
}

/// The decoded, checked segments of a URL path; `None` for a path that must never reach the
/// file system (`..`, NUL, backslash, undecodable).
fn relative_path(path: &str) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    for raw in path.split('/') {
        let segment = percent_decode(raw)?;
        if segment.is_empty() || segment == "." {
            continue;
        }
        if segment == ".." || segment.contains(['\0', '\\', '/']) {
            return None;
        }
        segments.push(segment);
    }
    Some(segments)
}

/// Decodes `%XX` escapes; `None` for a bad escape or non-UTF-8 result.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Resolves the segments under `root` (canonical): a file inside it, a redirect, or missing.
async fn find(root: &Path, segments: &[String], url_path: &str) -> Lookup {
    let mut candidate = root.to_path_buf();
    candidate.extend(segments);
    let Ok(real) = tokio::fs::canonicalize(&candidate).await else {
        return Lookup::Missing;
    };
    if !real.starts_with(root) {
        tracing::debug!(
            path = url_path,
            "static path leaves the public dir; not served"
        );
        return Lookup::Missing;
    }
    let Ok(meta) = tokio::fs::metadata(&real).await else {
        return Lookup::Missing;
    };
    if meta.is_dir() {
        if !url_path.ends_with('/') {
            return Lookup::Redirect(format!("{url_path}/"));
        }
        let index = real.join(INDEX);
        return match tokio::fs::canonicalize(&index).await {
            Ok(index) if index.starts_with(root) && is_file(&index).await => Lookup::File(index),
            _ => Lookup::Missing,
        };
    }
    if !meta.is_file() {
        return Lookup::Missing;
    }
    if segments.last().map(String::as_str) == Some(INDEX) {
        // `…/index.html` → its directory, as Go's file server.
        let directory = url_path.strip_suffix(INDEX).unwrap_or("/");
        return Lookup::Redirect(directory.to_string());
    }
    Lookup::File(real)
}

async fn is_file(path: &Path) -> bool {
    tokio::fs::metadata(path)
        .await
        .map(|meta| meta.is_file())
        .unwrap_or(false)
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Serves one file: conditional GET, one byte range, HEAD without a body.
async fn send(path: &Path, method: &Method, headers: &HeaderMap) -> Response {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return not_found();
    };
    let Ok(meta) = file.metadata().await else {
        return not_found();
    };
    let size = meta.len();
    let modified = meta.modified().ok();
    let last_modified = modified.map(httpdate::fmt_http_date);
    if let (Some(modified), Some(since)) = (
        modified,
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok()),
    ) {
        if truncate_to_seconds(modified) <= since {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            if let Some(value) = last_modified.as_deref().and_then(header_value) {
                response.headers_mut().insert(header::LAST_MODIFIED, value);
            }
            return response;
        }
    }
    let content_type = content_type(path, &mut file).await;
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(|text| parse_range(text, size));
    let (status, start, length) = match range {
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Some(None) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Some(value) = header_value(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
        None => (StatusCode::OK, 0, size),
    };
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        file_body(file, start, length).await
    };
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(value) = header_value(&content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    if let Some(value) = last_modified.as_deref().and_then(header_value) {
        out.insert(header::LAST_MODIFIED, value);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Some(value) = header_value(&format!("bytes {start}-{}/{size}", start + length - 1)) {
            out.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

fn header_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// HTTP dates have whole seconds.
fn truncate_to_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds)
}

/// One `bytes=` range (`a-b`, `a-`, `-n`) clamped to the file: `Some((start, end))`
/// inclusive, `None` when unsatisfiable. Several ranges are not supported: the first counts.
fn parse_range(text: &str, size: u64) -> Option<(u64, u64)> {
    let spec = text.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (from, to) = first.split_once('-')?;
    if size == 0 {
        return None;
    }
    let (start, end) = if from.is_empty() {
        let suffix: u64 = to.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let start: u64 = from.parse().ok()?;
        let end = if to.is_empty() {
            size - 1
        } else {
            to.parse::<u64>().ok()?.min(size - 1)
        };
        (start, end)
    };
    (start <= end && start < size).then_some((start, end))
}

/// The body: `length` bytes from `start`, read in [`CHUNK_BYTES`] chunks.
async fn file_body(mut file: tokio::fs::File, start: u64, length: u64) -> Body {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return Body::empty();
    }
    let stream = futures::stream::unfold((file, length), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left)
            .unwrap_or(CHUNK_BYTES)
            .min(CHUNK_BYTES);
        let mut buffer = vec![0u8; want];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok::<_, std::io::Error>(buffer), (file, left - read as u64)))
            }
            Err(err) => Some((Err(err), (file, 0))),
        }
    });
    Body::from_stream(stream)
}

/// Go's built-in extension table (what the reference answers for these).
const BUILTIN_TYPES: &[(&str, &str)] = &[
    ("avif", "image/avif"),
    ("css", "text/css; charset=utf-8"),
    ("gif", "image/gif"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("wasm", "application/wasm"),
    ("webp", "image/webp"),
    ("xml", "text/xml; charset=utf-8"),
];

/// The Content-Type of a file: by extension, else sniffed from its first bytes.
async fn content_type(path: &Path, file: &mut tokio::fs::File) -> String {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase);
    if let Some(extension) = extension {
        if let Some((_, known)) = BUILTIN_TYPES.iter().find(|(ext, _)| *ext == extension) {
            return (*known).to_string();
        }
        if let Some(guess) = mime_guess::from_ext(&extension).first_raw() {
            return if guess.starts_with("text/") {
                format!("{guess}; charset=utf-8")
            } else {
                guess.to_string()
            };
        }
    }
    sniff(file).await
}

/// A small part of Go's content sniffing: HTML, UTF-8 text, else binary.
async fn sniff(file: &mut tokio::fs::File) -> String {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut head = vec![0u8; SNIFF_BYTES];
    let read = file.read(&mut head).await.unwrap_or(0);
    head.truncate(read);
    let _ = file.seek(std::io::SeekFrom::Start(0)).await;
    let text = match std::str::from_utf8(&head) {
        Ok(text) => text,
        // A multi-byte character cut at the sniff limit is still text.
        Err(err) if err.error_len().is_none() => {
            std::str::from_utf8(&head[..err.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return "application/octet-stream".to_string(),
    };
    let lower = text.trim_start().to_ascii_lowercase();
    if ["<!doctype html", "<html", "<head", "<body"]
        .iter()
        .any(|tag| lower.starts_with(tag))
    {
        return "text/html; charset=utf-8".to_string();
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c' | '\x1b'))
    {
        return "application/octet-stream".to_string();
    }
    "text/plain; charset=utf-8".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_parent_segments_never_resolve() {
        assert_eq!(
            relative_path("/a/b.txt"),
            Some(vec!["a".into(), "b.txt".into()])
        );
        assert_eq!(relative_path("/a//./b"), Some(vec!["a".into(), "b".into()]));
        for bad in [
            "/../x",
            "/%2e%2e/x",
            "/a/%2E%2E/%2E%2E/x",
            "/..%2fx",
            "/a%5c..",
            "/%00",
            "/%zz",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-2", 7), Some((0, 2)));
        assert_eq!(parse_range("bytes=5-", 7), Some((5, 6)));
        assert_eq!(parse_range("bytes=-3", 7), Some((4, 6)));
        assert_eq!(parse_range("bytes=2-100", 7), Some((2, 6)));
        assert_eq!(parse_range("bytes=9-10", 7), None);
        assert_eq!(parse_range("bytes=3-1", 7), None);
        assert_eq!(parse_range("items=0-1", 7), None);
    }
}
