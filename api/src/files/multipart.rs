//! Streaming `multipart/form-data` decoding (with the `multer` crate): text parts become the
//! same `(key, value)` pairs a urlencoded body gives (coerced by `request::form_body`,
//! so `@jsonPayload` and repeated keys behave identically), file parts are streamed to temp
//! files under `<data dir>/.tmp-uploads/` and fsynced.
//!
//! Invariants:
//! 1. Memory is bounded whatever the body: the body stream is cut into pieces of at most
//!    [`PIECE`] bytes and hands `multer` one piece per poll, so its buffer never holds more
//!    than a piece plus one boundary window; a part's header section may not exceed
//!    [`Limits::max_part_header_bytes`] (checked while `multer` looks for the end of the
//!    headers, not after buffering them); text parts are capped in total.
//! 2. Caps (parts, part header, file name, total size, text size) answer a clear 4xx
//!    (400, or 413 for the total), never a 500, and leave nothing behind: every temp file is
//!    a [`TempFile`], deleted on drop unless it was persisted into storage.
//! 3. A part is a file when it has a non-empty `filename` (Go's rule); an empty filename is
//!    a text value.

use crate::error::{ApiError, ApiResult};
use crate::files::sniff;
use axum::body::Bytes;
use futures::Stream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWriteExt;

/// Largest piece of the body handed to the decoder per poll.
pub const PIECE: usize = 64 * 1024;

/// Caps on a multipart body.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most parts (text and file) in one body.
    pub max_parts: usize,
    /// Most bytes of one part's header section.
    pub max_part_header_bytes: u64,
    /// Longest client file name in bytes.
    pub max_file_name_bytes: usize,
    /// Most bytes of the whole body (413 beyond).
    pub max_total_bytes: u64,
    /// Most bytes of all text parts together (kept in memory).
    pub max_text_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_parts: 1000,
            max_part_header_bytes: 16 * 1024,
            max_file_name_bytes: 1024,
            max_total_bytes: 32 * 1024 * 1024,
            max_text_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A temp file that is removed when dropped, unless [`TempFile::disarm`]ed (persisted).
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Wraps an existing temp file path.
    pub fn new(path: PathBuf) -> Self {
        TempFile { path, armed: true }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file (it was moved elsewhere); returns its path.
    pub fn disarm(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            if let Err(err) = std::fs::remove_file(&self.path) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), %err, "could not remove a temp upload");
                }
            }
        }
    }
}

/// One uploaded file, in a temp file.
#[derive(Debug)]
pub struct Upload {
    /// The part's name as sent (`avatar`, `files+`, `+files`, `requests.0.avatar`).
    pub key: String,
    /// The client's file name (as sent, unsanitized; only for messages and the stored name).
    pub original_name: String,
    /// Size in bytes.
    pub size: u64,
    /// Sniffed content type.
    pub mime: String,
    /// The bytes.
    pub temp: TempFile,
}

/// A decoded multipart body.
#[derive(Debug, Default)]
pub struct Form {
    /// Text parts in order (coerce with `request::form_body`).
    pub pairs: Vec<(String, String)>,
    /// File parts in order.
    pub files: Vec<Upload>,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.trim_start().starts_with("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(content_type).ok()
}

/// Whether a content type is multipart/form-data.
pub fn is_multipart(content_type: &str) -> bool {
    content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
}

/// Shared between the guarded stream and the decoder loop.
#[derive(Debug, Default)]
struct Guard {
    /// Bytes pulled since the decoder began looking for the next part's headers.
    pulled: AtomicU64,
    /// Whether the decoder is looking for headers now.
    in_headers: AtomicBool,
    /// Set when the header cap tripped.
    header_too_large: AtomicBool,
    /// Limit for `pulled` while in headers.
    header_limit: u64,
}

#[derive(Debug)]
struct HeaderTooLarge;

impl std::fmt::Display for HeaderTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("multipart part header too large")
    }
}

impl std::error::Error for HeaderTooLarge {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body stream cut into pieces of at most [`PIECE`] bytes, one piece per poll (then
/// `Pending` with an immediate wake), counting bytes for the header cap.
struct Guarded<S> {
    inner: S,
    pending: Bytes,
    yielded: bool,
    guard: Arc<Guard>,
}

impl<S, E> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.yielded {
            // One piece per decoder poll: let it consume what it has first.
            self.yielded = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => self.pending = bytes,
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        let take = self.pending.len().min(PIECE);
        let piece = self.pending.split_to(take);
        let guard = &self.guard;
        if guard.in_headers.load(Ordering::Relaxed) {
            let pulled = guard
                .pulled
                .fetch_add(piece.len() as u64, Ordering::Relaxed)
                + piece.len() as u64;
            if pulled > guard.header_limit + PIECE as u64 {
                guard.header_too_large.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Box::new(HeaderTooLarge))));
            }
        }
        self.yielded = true;
        Poll::Ready(Some(Ok(piece)))
    }
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request(message)
}

fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "Request entity too large.",
    )
}

/// Maps a decoder error to the answer.
fn decode_error(err: multer::Error, guard: &Guard) -> ApiError {
    if guard.header_too_large.load(Ordering::Relaxed) {
        return bad("Multipart part header is too large.");
    }
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large()
        }
        other => {
            tracing::debug!(err = %other, "malformed multipart body");
            ApiError::bad_request_default()
        }
    }
}

/// Decodes a multipart body (`content_type` carries the boundary), writing file parts to
/// temp files in `tmp_dir` (created if missing); without a `tmp_dir` file parts are read
/// and dropped (endpoints that take no files).
pub async fn read<S, E>(
    body: S,
    content_type: &str,
    tmp_dir: Option<&Path>,
    limits: &Limits,
) -> ApiResult<Form>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let boundary = boundary(content_type).ok_or_else(ApiError::bad_request_default)?;
    let guard = Arc::new(Guard {
        header_limit: limits.max_part_header_bytes,
        ..Guard::default()
    });
    let stream = Guarded {
        inner: body,
        pending: Bytes::new(),
        yielded: false,
        guard: Arc::clone(&guard),
    };
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_total_bytes));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut form = Form::default();
    let mut parts = 0usize;
    let mut text_bytes = 0u64;
    loop {
        guard.pulled.store(0, Ordering::Relaxed);
        guard.in_headers.store(true, Ordering::Relaxed);
        let next = multipart.next_field().await;
        guard.in_headers.store(false, Ordering::Relaxed);
        let Some(mut field) = next.map_err(|err| decode_error(err, &guard))? else {
            break;
        };
        parts += 1;
        if parts > limits.max_parts {
            return Err(bad(&format!(
                "Too many multipart parts (at most {}).",
                limits.max_parts
            )));
        }
        let header_bytes: u64 = field
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().len() + value.len() + 4) as u64)
            .sum();
        if header_bytes > limits.max_part_header_bytes {
            return Err(bad("Multipart part header is too large."));
        }
        let key = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().unwrap_or("").to_string();
        if file_name.is_empty() {
            let mut value = Vec::new();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|err| decode_error(err, &guard))?
            {
                text_bytes += chunk.len() as u64;
                if text_bytes > limits.max_text_bytes {
                    return Err(too_large());
                }
                value.extend_from_slice(&chunk);
            }
            form.pairs
                .push((key, String::from_utf8_lossy(&value).into_owned()));
            continue;
        }
        if file_name.len() > limits.max_file_name_bytes {
            return Err(bad(&format!(
                "File name too long (at most {} bytes).",
                limits.max_file_name_bytes
            )));
        }
        let Some(tmp_dir) = tmp_dir else {
            while field
                .chunk()
                .await
                .map_err(|err| decode_error(err, &guard))?
                .is_some()
            {}
            continue;
        };
        tokio::fs::create_dir_all(tmp_dir)
            .await
            .map_err(ApiError::internal)?;
        let path = tmp_dir.join(format!("upload-{}", crate::files::names::random_part(20)));
        let temp = TempFile::new(path.clone());
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(ApiError::internal)?;
        let mut head = Vec::new();
        let mut size = 0u64;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|err| decode_error(err, &guard))?
        {
            if head.len() < sniff::SNIFF_LEN {
                let want = (sniff::SNIFF_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..want]);
            }
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.flush().await.map_err(ApiError::internal)?;
        file.sync_all().await.map_err(ApiError::internal)?;
        drop(file);
        form.files.push(Upload {
            key,
            original_name: file_name,
            size,
            mime: sniff::sniff(&head),
            temp,
        });
    }
    Ok(form)
}

/// The text parts of a multipart body already in memory (endpoints that take no files:
/// sign-in, auth flows, …); file parts are skipped. Runs the decoder to completion on this
/// thread: the input is all there, so it never waits.
pub fn read_in_memory(content_type: &str, bytes: &[u8]) -> ApiResult<Vec<(String, String)>> {
    let chunk = Bytes::copy_from_slice(bytes);
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(chunk)]);
    let limits = Limits {
        max_total_bytes: bytes.len() as u64 + 1,
        ..Limits::default()
    };
    futures::executor::block_on(read(stream, content_type, None, &limits)).map(|form| form.pairs)
}

/// Removes every leftover temp upload (call at start, before serving): a crash between an
/// upload and its commit leaves its temp file here, never a referenced file.
pub fn sweep(tmp_dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(tmp_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %tmp_dir.display(), "removed leftover temp uploads");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_stream(
        chunks: Vec<Vec<u8>>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send + 'static {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))))
    }

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn part(name: &str, file: Option<&str>, content: &[u8]) -> Vec<u8> {
        let mut out = b"--XyZ\r\n".to_vec();
        match file {
            Some(file) => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn end() -> Vec<u8> {
        b"--XyZ--\r\n".to_vec()
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    #[tokio::test]
    async fn text_and_file_parts() {
        let dir = tempfile::tempdir().expect("dir");
        let mut body = part("title", None, b"hello");
        body.extend(part("@jsonPayload", None, b"{\"n\":1}"));
        body.extend(part("files+", Some("a.txt"), b"some text"));
        body.extend(part("files", Some(""), b"empty name is text"));
        body.extend(end());
        // Delivered in tiny chunks: boundaries split across chunks still decode.
        let chunks = body.chunks(7).map(<[u8]>::to_vec).collect();
        let form = read(
            body_stream(chunks),
            CT,
            Some(dir.path()),
            &Limits::default(),
        )
        .await
        .expect("decodes");
        assert_eq!(
            form.pairs,
            vec![
                ("title".to_string(), "hello".to_string()),
                ("@jsonPayload".to_string(), "{\"n\":1}".to_string()),
                ("files".to_string(), "empty name is text".to_string()),
            ]
        );
        assert_eq!(form.files.len(), 1);
        let upload = &form.files[0];
        assert_eq!(upload.key, "files+");
        assert_eq!(upload.original_name, "a.txt");
        assert_eq!(upload.size, 9);
        assert_eq!(upload.mime, "text/plain; charset=utf-8");
        assert_eq!(
            std::fs::read(upload.temp.path()).expect("temp"),
            b"some text"
        );
        drop(form);
        assert_eq!(files_in(dir.path()), 0, "temp files removed on drop");
    }

    #[tokio::test]
    async fn large_file_streams_in_pieces() {
        let dir = tempfile::tempdir().expect("dir");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut body = part("f", Some("big.bin"), &content);
        body.extend(end());
        // One huge chunk: the guarded stream still feeds the decoder piece by piece.
        let form = read(
            body_stream(vec![body]),
            CT,
            Some(dir.path()),
            &Limits::default(),
        )
        .await
        .expect("decodes");
        assert_eq!(form.files[0].size, content.len() as u64);
        assert_eq!(
            std::fs::read(form.files[0].temp.path()).expect("read"),
            content
        );
    }

    #[tokio::test]
    async fn caps_answer_4xx_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = Limits {
            max_parts: 10,
            max_total_bytes: 100_000,
            ..Limits::default()
        };
        // Too many parts.
        let mut body = Vec::new();
        for i in 0..11 {
            body.extend(part(&format!("k{i}"), Some("x.txt"), b"x"));
        }
        body.extend(end());
        let err = read(body_stream(vec![body]), CT, Some(dir.path()), &limits)
            .await
            .expect_err("too many parts");
        assert_eq!(err.status.as_u16(), 400);
        assert_eq!(files_in(dir.path()), 0);
        // Total too large.
        let mut body = part("f", Some("big.bin"), &vec![7u8; 200_000]);
        body.extend(end());
        let err = read(body_stream(vec![body]), CT, Some(dir.path()), &limits)
            .await
            .expect_err("too large");
        assert_eq!(err.status.as_u16(), 413);
        assert_eq!(files_in(dir.path()), 0);
        // A 1 MB part header, refused before it is buffered whole.
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nX-Pad: "
                .to_vec();
        body.extend(vec![b'a'; 1024 * 1024]);
        body.extend(b"\r\n\r\nx\r\n--XyZ--\r\n");
        let err = read(
            body_stream(vec![body]),
            CT,
            Some(dir.path()),
            &Limits::default(),
        )
        .await
        .expect_err("header too large");
        assert_eq!(err.status.as_u16(), 400);
        assert_eq!(files_in(dir.path()), 0);
        // A too long file name.
        let long = "a".repeat(2000);
        let mut body = part("f", Some(&long), b"x");
        body.extend(end());
        let err = read(
            body_stream(vec![body]),
            CT,
            Some(dir.path()),
            &Limits::default(),
        )
        .await
        .expect_err("name too long");
        assert_eq!(err.status.as_u16(), 400);
        // Garbage.
        let err = read(
            body_stream(vec![b"not multipart".to_vec()]),
            CT,
            Some(dir.path()),
            &Limits::default(),
        )
        .await
        .expect_err("garbage");
        assert_eq!(err.status.as_u16(), 400);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn in_memory_text_parts_skip_files() {
        let mut body = part("identity", None, b"a@b.c");
        body.extend(part("avatar", Some("a.png"), b"\x89PNG"));
        body.extend(part("password", None, b"1234567890"));
        body.extend(end());
        let pairs = read_in_memory(CT, &body).expect("decodes");
        assert_eq!(
            pairs,
            vec![
                ("identity".to_string(), "a@b.c".to_string()),
                ("password".to_string(), "1234567890".to_string()),
            ]
        );
        assert!(read_in_memory(CT, b"junk").is_err());
    }

    #[test]
    fn sweep_removes_leftovers() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("upload-1"), b"x").expect("write");
        std::fs::write(dir.path().join("upload-2"), b"y").expect("write");
        assert_eq!(sweep(dir.path()).expect("sweep"), 2);
        assert_eq!(files_in(dir.path()), 0);
        assert_eq!(sweep(&dir.path().join("missing")).expect("missing"), 0);
    }
}
