//! Raw HTTP/1.1 over TCP for the `edge_*` tests: what a client library hides (keep-alive
//! reuse, `Connection: close`, `100 Continue`, a peer that closes without answering) is what
//! these tests assert.

#![allow(dead_code)]

use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One parsed response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A keep-alive connection that reads responses one by one.
pub struct RawConn {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawConn {
    pub async fn connect(base: &str) -> RawConn {
        let address = base.trim_start_matches("http://");
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Writes raw bytes; false when the peer already closed.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads the next response (`None`: the peer closed or reset first, or `timeout` passed).
    /// A response to a HEAD request must not be read with this (its length is not sent).
    pub async fn response(&mut self, timeout: Duration) -> Option<RawResponse> {
        tokio::time::timeout(timeout, self.read_response())
            .await
            .ok()
            .flatten()
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn read_response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_string();
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buffer.len() < length {
            if !self.fill().await {
                return None;
            }
        }
        let body = self.buffer.drain(..length).collect();
        Some(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Whether the peer closes the connection (EOF or reset) within `timeout`, ignoring any
    /// bytes still sent.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A request head with a `Content-Length` (the body is sent separately).
pub fn head(method: &str, path: &str, content_length: usize, extra: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// `GET /api/health`.
pub const HEALTH: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: test\r\n\r\n";
