//! `pb_public` static serving through HTTP, as measured on the reference (v0.40.6): files with
//! their types, `index.html` for directories, the 301 redirects, the SPA fallback (on and off),
//! conditional and range requests, HEAD, and traversal attempts (raw and encoded `..`, a symlink
//! out of the directory). Requests go over a raw socket so that paths reach the server unchanged.

#![allow(clippy::unwrap_used)]

mod common;

use api::ServerOptions;
use common::{start_with, TestServer};
use std::collections::HashMap;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw HTTP/1.1 exchange: (status, lower-case headers, body).
async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let split = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap();
    let head = String::from_utf8_lossy(&bytes[..split]).to_string();
    let body = bytes[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body)
}

fn write(dir: &Path, name: &str, content: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A public dir like the one measured on the reference, plus a secret next to it.
fn public_dir(root: &Path) -> std::path::PathBuf {
    let public = root.join("pb_public");
    write(&public, "index.html", b"<h1>root</h1>\n");
    write(&public, "sub/index.html", b"<p>sub</p>\n");
    write(&public, "style.css", b"body{}\n");
    write(&public, "app.js", b"x\n");
    write(&public, "img.png", b"\x89PNG");
    write(&public, "data.json", b"{}\n");
    write(&public, "noext", b"hi\n");
    write(&public, "bin", b"\x00\x01\x02");
    std::fs::create_dir_all(public.join("nodir")).unwrap();
    write(root, "secret.txt", b"secret\n");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("secret.txt"), public.join("link.txt")).unwrap();
    public
}

async fn server(root: &Path, index_fallback: bool) -> TestServer {
    start_with(ServerOptions {
        public_dir: Some(public_dir(root)),
        index_fallback,
        ..ServerOptions::default()
    })
    .await
}

#[tokio::test]
async fn files_are_served_with_the_reference_types_and_headers() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path(), true).await;
    for (path, content_type, body) in [
        ("/", "text/html; charset=utf-8", &b"<h1>root</h1>\n"[..]),
        ("/sub/", "text/html; charset=utf-8", b"<p>sub</p>\n"),
        ("/style.css", "text/css; charset=utf-8", b"body{}\n"),
        ("/app.js", "text/javascript; charset=utf-8", b"x\n"),
        ("/img.png", "image/png", b"\x89PNG"),
        ("/data.json", "application/json", b"{}\n"),
        ("/noext", "text/plain; charset=utf-8", b"hi\n"),
        ("/bin", "application/octet-stream", b"\x00\x01\x02"),
    ] {
        let (status, headers, got) = raw(&server, "GET", path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(got, body, "{path}");
        assert_eq!(headers["accept-ranges"], "bytes", "{path}");
        assert_eq!(headers["content-length"], body.len().to_string(), "{path}");
        assert!(headers.contains_key("last-modified"), "{path}");
        assert!(!headers.contains_key("cache-control"), "{path}");
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{path}");
    }
}

#[tokio::test]
async fn directories_and_index_files_redirect_like_the_reference() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path(), true).await;
    for (path, location) in [
        ("/index.html", "/"),
        ("/sub", "/sub/"),
        ("/sub/index.html", "/sub/"),
        ("/nodir", "/nodir/"),
    ] {
        let (status, headers, _) = raw(&server, "GET", path, &[]).await;
        assert_eq!(status, 301, "{path}");
        assert_eq!(headers["location"], location, "{path}");
    }
}

#[tokio::test]
async fn missing_paths_fall_back_to_the_root_index() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path(), true).await;
    for path in [
        "/missing",
        "/missing.js",
        "/missing/deep",
        "/nodir/",
        "/api/missing",
    ] {
        let (status, headers, body) = raw(&server, "GET", path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            headers["content-type"], "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(body, b"<h1>root</h1>\n", "{path}");
    }
    // Other methods never reach the static files; routes keep their answers.
    let (status, _, body) = raw(&server, "POST", "/missing", &[]).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("The requested resource wasn't found."));
    let (status, _, body) = raw(&server, "GET", "/api/health", &[]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("API is healthy."));
}

#[tokio::test]
async fn without_index_fallback_missing_paths_are_404() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path(), false).await;
    for path in ["/missing", "/missing.js", "/nodir/", "/api/missing"] {
        let (status, _, body) = raw(&server, "GET", path, &[]).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"data":{},"message":"File not found.","status":404}"#,
            "{path}"
        );
    }
    let (status, _, body) = raw(&server, "GET", "/sub/", &[]).await;
    assert_eq!((status, body.as_slice()), (200, &b"<p>sub</p>\n"[..]));
}

#[tokio::test]
async fn traversal_never_reads_outside_the_public_dir() {
    let root = tempfile::tempdir().unwrap();
    for fallback in [false, true] {
        let server = server(root.path().join(fallback.to_string()).as_path(), fallback).await;
        for path in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/..%2fsecret.txt",
            "/sub/../../secret.txt",
            "/sub/%2e%2e/%2e%2e/secret.txt",
            "/..%5csecret.txt",
            "/link.txt",
        ] {
            let (status, _, body) = raw(&server, "GET", path, &[]).await;
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains("secret"), "{path} leaked: {text}");
            if fallback {
                assert_eq!((status, text.as_ref()), (200, "<h1>root</h1>\n"), "{path}");
            } else {
                assert_eq!(status, 404, "{path}");
            }
        }
    }
}

#[tokio::test]
async fn head_conditional_and_range_requests() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path(), true).await;
    let (status, headers, body) = raw(&server, "HEAD", "/style.css", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "7");
    assert_eq!(headers["content-type"], "text/css; charset=utf-8");
    assert!(body.is_empty());

    let (_, headers, _) = raw(&server, "GET", "/style.css", &[]).await;
    let modified = headers["last-modified"].clone();
    let (status, headers, body) = raw(
        &server,
        "GET",
        "/style.css",
        &[("If-Modified-Since", modified.as_str())],
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(headers["last-modified"], modified);
    let (status, _, _) = raw(
        &server,
        "GET",
        "/style.css",
        &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    )
    .await;
    assert_eq!(status, 200);

    let (status, headers, body) =
        raw(&server, "GET", "/style.css", &[("Range", "bytes=0-2")]).await;
    assert_eq!(status, 206);
    assert_eq!(body, b"bod");
    assert_eq!(headers["content-range"], "bytes 0-2/7");
    let (status, _, body) = raw(&server, "GET", "/style.css", &[("Range", "bytes=-2")]).await;
    assert_eq!((status, body.as_slice()), (206, &b"}\n"[..]));
    let (status, headers, _) = raw(&server, "GET", "/style.css", &[("Range", "bytes=50-")]).await;
    assert_eq!(status, 416);
    assert_eq!(headers["content-range"], "bytes */7");
}

#[tokio::test]
async fn a_missing_public_dir_answers_file_not_found() {
    let root = tempfile::tempdir().unwrap();
    let server = start_with(ServerOptions {
        public_dir: Some(root.path().join("nope")),
        ..ServerOptions::default()
    })
    .await;
    let (status, _, body) = raw(&server, "GET", "/", &[]).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("File not found."));
}
