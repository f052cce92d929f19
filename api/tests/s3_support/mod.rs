//! A real S3-compatible server for the S3 tests: `moto` in server mode (Python, installed by
//! `.ci/run`) on a free loopback port, started by [`Moto::start`] and killed when dropped,
//! plus helpers to create buckets and read what the bucket holds (keys, bytes) directly,
//! bypassing pocketlog, and to send multipart uploads.
//!
//! Each test starts its own moto (moto keeps everything in memory), so tests share nothing.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to start.
pub const START_WAIT: Duration = Duration::from_secs(60);

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    child: Child,
    client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub async fn start() -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] must be installed (.ci/run installs it)");
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            client: reqwest::Client::new(),
        };
        let start = Instant::now();
        loop {
            if let Ok(response) = moto.client.get(&moto.endpoint).send().await {
                if response.status().is_success() {
                    return moto;
                }
            }
            assert!(
                start.elapsed() < START_WAIT,
                "moto did not start on port {port} (is moto[server] installed? run .ci/run)"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) {
        let response = self
            .client
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(response.status().is_success(), "create bucket {bucket}");
    }

    /// The keys and sizes in `bucket`, sorted by key.
    pub async fn keys(&self, bucket: &str) -> Vec<(String, u64)> {
        let text = self
            .client
            .get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .send()
            .await
            .expect("list")
            .text()
            .await
            .expect("list body");
        let mut out = Vec::new();
        for item in text.split("<Contents>").skip(1) {
            let field = |name: &str| {
                item.split(&format!("<{name}>"))
                    .nth(1)
                    .and_then(|rest| rest.split(&format!("</{name}>")).next())
                    .unwrap_or("")
                    .to_string()
            };
            out.push((field("Key"), field("Size").parse().unwrap_or(0)));
        }
        out.sort();
        out
    }

    /// The bytes of `key` in `bucket` (`None` when missing), read with a signed client
    /// (moto refuses anonymous reads of private objects).
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let config = api::files::s3::S3Config {
            bucket: bucket.to_string(),
            region: "us-east-1".into(),
            endpoint: self.endpoint.clone(),
            access_key: "test-key".into(),
            secret: "test-secret-do-not-leak".into(),
            force_path_style: true,
        };
        let store = api::files::s3::S3Store::open(&config).expect("client");
        let size = store.head(key).await.expect("head")?.size;
        if size == 0 {
            return Some(Vec::new());
        }
        Some(store.get_range(key, 0..size).await.expect("get").to_vec())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An S3 settings block (path style, as moto needs on loopback).
pub fn s3_block(endpoint: &str, bucket: &str) -> Value {
    json!({
        "enabled": true, "bucket": bucket, "region": "us-east-1", "endpoint": endpoint,
        "accessKey": "test-key", "secret": "test-secret-do-not-leak", "forcePathStyle": true
    })
}

/// An endpoint nothing listens on.
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// A part: (name, file name for file parts, content).
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

const BOUNDARY: &str = "----pocketlogS3TestBoundary";

/// A multipart body: (content type, bytes).
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// A `w`×`h` PNG, top half red and bottom half blue.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(w, h, |_, y| {
        if y < h / 2 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}
