//! Serving a stored file as the reference does (Go's `http.ServeContent` behind PocketBase):
//! `Content-Type` from the sniffed content, `Content-Disposition` inline for images, video,
//! audio and PDF (attachment otherwise, or always with `?download=1`), PocketBase's
//! `Cache-Control` and sandboxing `Content-Security-Policy`, `Last-Modified`, `ETag`,
//! conditional requests (304), single byte ranges (206, 416 when unsatisfiable), `HEAD`.
//!
//! Invariants: the body is streamed in chunks (bounded memory whatever the file size); a
//! multi-range request gets the whole file (200), which RFC 9110 allows; file responses carry
//! the [`FileResponse`] marker so the security-headers layer leaves out `X-Frame-Options`
//! (the reference sends none on files).

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io::SeekFrom;
use std::path::Path;
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Response extension marking a file download (no `X-Frame-Options`).
#[derive(Debug, Clone, Copy)]
pub struct FileResponse;

/// PocketBase's cache policy for files.
pub const CACHE_CONTROL: &str = "max-age=2592000, stale-while-revalidate=86400";
/// PocketBase's CSP for files.
pub const CSP: &str = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";
/// Read size while streaming.
const CHUNK: usize = 64 * 1024;

/// Whether the reference shows this type inline.
pub fn is_inline(mime: &str) -> bool {
    let essence = crate::files::sniff::essence(mime);
    matches!(
        essence.as_str(),
        "image/png"
            | "image/jpg"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/x-icon"
            | "image/vnd.microsoft.icon"
            | "image/bmp"
            | "application/pdf"
    ) || essence.starts_with("video/")
        || essence.starts_with("audio/")
}

/// A parsed `Range` header against a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No (usable) range: the whole file.
    Full,
    /// `start..=end`.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`); several ranges or another
/// unit ⇒ the whole file.
pub fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeAnswer::Unsatisfiable;
    };
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        let Ok(suffix) = end.parse::<u64>() else {
            return RangeAnswer::Unsatisfiable;
        };
        if suffix == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial(len.saturating_sub(suffix), len - 1);
    }
    let Ok(start) = start.parse::<u64>() else {
        return RangeAnswer::Unsatisfiable;
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    let end = if end.is_empty() {
        len - 1
    } else {
        match end.parse::<u64>() {
            Ok(end) if end >= start => end.min(len - 1),
            _ => return RangeAnswer::Unsatisfiable,
        }
    };
    RangeAnswer::Partial(start, end)
}

/// A strong validator from the file's size and modification time (stored files never change).
pub fn etag(len: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{len:x}-{nanos:x}\"")
}

fn not_modified(request: &HeaderMap, tag: &str, modified: SystemTime) -> bool {
    if let Some(value) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return value
            .split(',')
            .map(str::trim)
            .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag);
    }
    if let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        return secs(modified) <= secs(since);
    }
    false
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The sniffed content type of a stored file (`application/octet-stream` if unreadable).
pub async fn sniff_file(path: &Path) -> String {
    let head = async {
        let file = tokio::fs::File::open(path).await?;
        let mut head = Vec::with_capacity(crate::files::sniff::SNIFF_LEN);
        file.take(crate::files::sniff::SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .await?;
        Ok::<_, std::io::Error>(head)
    };
    match head.await {
        Ok(head) => crate::files::sniff::sniff(&head),
        Err(_) => "application/octet-stream".to_string(),
    }
}

/// What to answer for a stored file: a finished response (304, 416), or the status, headers
/// and byte range of a body to stream.
pub enum Plan {
    /// Answer this as is.
    Done(Response),
    /// Stream `count` bytes from `start` with `status` and `headers`.
    Body {
        status: StatusCode,
        headers: HeaderMap,
        start: u64,
        count: u64,
    },
}

/// The response plan for a file of `len` bytes modified at `modified`, with the sniffed
/// content type `mime`, shown as `name` (the disposition's file name). Shared by the local
/// and the S3 storage.
pub fn plan(
    len: u64,
    modified: SystemTime,
    mime: &str,
    name: &str,
    download: bool,
    request: &HeaderMap,
) -> Plan {
    let disposition = if download || !is_inline(mime) {
        "attachment"
    } else {
        "inline"
    };
    let tag = etag(len, modified);
    let mut headers = HeaderMap::new();
    set(&mut headers, header::CACHE_CONTROL, CACHE_CONTROL);
    set(
        &mut headers,
        header::CONTENT_DISPOSITION,
        &format!("{disposition}; filename=\"{name}\""),
    );
    set(&mut headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(&mut headers, header::CONTENT_TYPE, mime);
    set(
        &mut headers,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(modified),
    );
    set(&mut headers, header::ETAG, &tag);
    if not_modified(request, &tag, modified) {
        let mut response = (StatusCode::NOT_MODIFIED, headers).into_response();
        response.headers_mut().remove(header::CONTENT_TYPE);
        response.extensions_mut().insert(FileResponse);
        return Plan::Done(response);
    }
    set(&mut headers, header::ACCEPT_RANGES, "bytes");
    let range = request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len))
        .unwrap_or(RangeAnswer::Full);
    let (status, start, count) = match range {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial(start, end) => {
            set(
                &mut headers,
                header::CONTENT_RANGE,
                &format!("bytes {start}-{end}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            headers.remove(header::ACCEPT_RANGES);
            headers.remove(header::CACHE_CONTROL);
            headers.remove(header::LAST_MODIFIED);
            headers.remove(header::ETAG);
            set(
                &mut headers,
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            let mut response = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                "invalid range: failed to overlap\n",
            )
                .into_response();
            response.extensions_mut().insert(FileResponse);
            return Plan::Done(response);
        }
    };
    set(&mut headers, header::CONTENT_LENGTH, &count.to_string());
    Plan::Body {
        status,
        headers,
        start,
        count,
    }
}

/// The file response of a [`Plan::Body`] with `body`.
pub fn respond(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = (status, headers, body).into_response();
    response.extensions_mut().insert(FileResponse);
    response
}

/// Serves `path` as `name` (the disposition's file name). `head`: no body.
pub async fn serve(
    path: &Path,
    name: &str,
    download: bool,
    request: &HeaderMap,
    head: bool,
) -> std::io::Result<Response> {
    let mut file = tokio::fs::File::open(path).await?;
    let meta = file.metadata().await?;
    let len = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let mut sniff_buf = vec![0u8; (crate::files::sniff::SNIFF_LEN as u64).min(len) as usize];
    file.read_exact(&mut sniff_buf).await?;
    let mime = crate::files::sniff::sniff(&sniff_buf);
    let (status, headers, start, count) = match plan(len, modified, &mime, name, download, request)
    {
        Plan::Done(response) => return Ok(response),
        Plan::Body {
            status,
            headers,
            start,
            count,
        } => (status, headers, start, count),
    };
    let body = if head || count == 0 {
        Body::empty()
    } else {
        file.seek(SeekFrom::Start(start)).await?;
        let stream = futures::stream::try_unfold((file, count), |(mut file, left)| async move {
            if left == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            let want = (left as usize).min(CHUNK);
            let mut buf = vec![0u8; want];
            let read = file.read(&mut buf).await?;
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "stored file shorter than its size",
                ));
            }
            buf.truncate(read);
            Ok(Some((Bytes::from(buf), (file, left - read as u64))))
        });
        Body::from_stream(stream)
    };
    Ok(respond(status, headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=2-5", 12), RangeAnswer::Partial(2, 5));
        assert_eq!(parse_range("bytes=2-", 12), RangeAnswer::Partial(2, 11));
        assert_eq!(parse_range("bytes=-3", 12), RangeAnswer::Partial(9, 11));
        assert_eq!(parse_range("bytes=-30", 12), RangeAnswer::Partial(0, 11));
        assert_eq!(parse_range("bytes=5-100", 12), RangeAnswer::Partial(5, 11));
        assert_eq!(parse_range("bytes=100-200", 12), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 12), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=x-2", 12), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 12), RangeAnswer::Full);
        assert_eq!(parse_range("items=0-1", 12), RangeAnswer::Full);
        assert_eq!(parse_range("bytes=0-", 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn inline_types() {
        assert!(is_inline("image/png"));
        assert!(is_inline("video/mp4"));
        assert!(is_inline("application/pdf"));
        assert!(!is_inline("text/plain; charset=utf-8"));
        assert!(!is_inline("image/svg+xml"));
    }

    async fn body_of(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    #[tokio::test]
    async fn serves_whole_partial_conditional() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hello_0123456789.txt");
        std::fs::write(&path, b"hello world\n").expect("write");
        let response = serve(
            &path,
            "hello_0123456789.txt",
            false,
            &HeaderMap::new(),
            false,
        )
        .await
        .expect("serve");
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h["content-type"], "text/plain; charset=utf-8");
        assert_eq!(
            h["content-disposition"],
            "attachment; filename=\"hello_0123456789.txt\""
        );
        assert_eq!(h["cache-control"], CACHE_CONTROL);
        assert_eq!(h["content-length"], "12");
        assert_eq!(h["accept-ranges"], "bytes");
        let tag = h["etag"].to_str().expect("etag").to_string();
        let last_modified = h["last-modified"].to_str().expect("lm").to_string();
        assert!(response.extensions().get::<FileResponse>().is_some());
        assert_eq!(body_of(response).await, b"hello world\n");

        let mut request = HeaderMap::new();
        request.insert(header::RANGE, HeaderValue::from_static("bytes=2-5"));
        let response = serve(&path, "n", false, &request, false)
            .await
            .expect("range");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(response.headers()["content-range"], "bytes 2-5/12");
        assert_eq!(body_of(response).await, b"llo ");

        request.insert(header::RANGE, HeaderValue::from_static("bytes=100-200"));
        let response = serve(&path, "n", false, &request, false)
            .await
            .expect("416");
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()["content-range"], "bytes */12");

        let mut request = HeaderMap::new();
        request.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&tag).expect("tag"),
        );
        let response = serve(&path, "n", false, &request, false)
            .await
            .expect("304");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        let mut request = HeaderMap::new();
        request.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_str(&last_modified).expect("lm"),
        );
        let response = serve(&path, "n", false, &request, false)
            .await
            .expect("304");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

        let response = serve(&path, "n", false, &HeaderMap::new(), true)
            .await
            .expect("head");
        assert_eq!(response.headers()["content-length"], "12");
        assert!(body_of(response).await.is_empty());
    }

    #[tokio::test]
    async fn images_inline_unless_download() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("red_0123456789.png");
        std::fs::write(
            &path,
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0",
        )
        .expect("write");
        let response = serve(&path, "red_0123456789.png", false, &HeaderMap::new(), false)
            .await
            .expect("serve");
        assert_eq!(response.headers()["content-type"], "image/png");
        assert_eq!(
            response.headers()["content-disposition"],
            "inline; filename=\"red_0123456789.png\""
        );
        let response = serve(&path, "red_0123456789.png", true, &HeaderMap::new(), false)
            .await
            .expect("serve");
        assert_eq!(
            response.headers()["content-disposition"],
            "attachment; filename=\"red_0123456789.png\""
        );
    }
}
