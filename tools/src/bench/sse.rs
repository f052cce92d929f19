//! A minimal SSE client for PocketBase's realtime protocol: connect, read `PB_CONNECT` for the
//! client id, subscribe with `POST /api/realtime`, then count events.
//!
//! Events are parsed cheaply (the generator must keep up with thousands of streams): only the
//! `event:` line and the `w`, `n`, `t` numbers of the record in the `data:` line are read.

use super::client::Server;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (the `t` stamp the writers put into records).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What one subscriber saw.
#[derive(Default)]
pub struct SubscriberReport {
    pub received: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
    pub latencies_us: Vec<u32>,
}

/// An SSE stream that has received `PB_CONNECT` and is subscribed.
pub struct Subscriber {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// Start of the unparsed part of `buffer`.
    pos: usize,
    writers: usize,
}

impl Subscriber {
    /// Connects and subscribes to `topic`.
    pub async fn connect(server: &Server, topic: &str, writers: usize) -> Result<Subscriber> {
        let response = server
            .sse
            .get(server.url("/api/realtime"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .context("opening /api/realtime")?;
        if !response.status().is_success() {
            bail!("GET /api/realtime answered {}", response.status());
        }
        let mut subscriber = Subscriber {
            response,
            buffer: Vec::new(),
            pos: 0,
            writers,
        };
        let client_id = loop {
            let (event, data) = subscriber
                .next_event()
                .await?
                .context("the stream ended before PB_CONNECT")?;
            if event == "PB_CONNECT" {
                let value: serde_json::Value =
                    serde_json::from_slice(&data).context("PB_CONNECT data")?;
                break value["clientId"].as_str().unwrap_or_default().to_string();
            }
        };
        let (status, body) = server
            .call(
                reqwest::Method::POST,
                "/api/realtime",
                None,
                Some(&json!({"clientId": client_id, "subscriptions": [topic]})),
            )
            .await?;
        if status != 204 {
            bail!("POST /api/realtime answered {status}: {body}");
        }
        Ok(subscriber)
    }

    /// The next event's name and data; `None` at the end of the stream.
    async fn next_event(&mut self) -> Result<Option<(String, Vec<u8>)>> {
        loop {
            if let Some(end) = find(&self.buffer[self.pos..], b"\n\n") {
                let block = &self.buffer[self.pos..self.pos + end];
                self.pos += end + 2;
                let mut event = String::new();
                let mut data = Vec::new();
                for line in block.split(|&b| b == b'\n') {
                    if let Some(rest) = line.strip_prefix(b"event:") {
                        event = String::from_utf8_lossy(rest).trim().to_string();
                    } else if let Some(rest) = line.strip_prefix(b"data:") {
                        data.extend_from_slice(rest);
                    }
                }
                return Ok(Some((event, data)));
            }
            if self.pos > 0 {
                self.buffer.drain(..self.pos);
                self.pos = 0;
            }
            match self
                .response
                .chunk()
                .await
                .context("reading the SSE stream")?
            {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }

    /// Reads events until the stream ends or `stop()` says so; `count` is bumped per event.
    pub async fn consume(
        mut self,
        topic: &str,
        count: Arc<AtomicU64>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> SubscriberReport {
        let mut report = SubscriberReport::default();
        let mut last_n: Vec<i64> = vec![-1; self.writers];
        let mut stop = stop;
        loop {
            let event = tokio::select! {
                event = self.next_event() => event,
                _ = stop.changed() => break,
            };
            let Ok(Some((name, data))) = event else { break };
            if name != topic {
                continue;
            }
            let received_at = now_us();
            let (Some(w), Some(n), Some(t)) = (
                number_after(&data, b"\"w\":"),
                number_after(&data, b"\"n\":"),
                number_after(&data, b"\"t\":"),
            ) else {
                continue;
            };
            report.received += 1;
            count.fetch_add(1, Ordering::Relaxed);
            report.latencies_us.push(
                received_at
                    .saturating_sub(t as u64)
                    .min(u64::from(u32::MAX)) as u32,
            );
            if let Some(last) = last_n.get_mut(w as usize) {
                if n == *last {
                    report.duplicates += 1;
                } else if n < *last {
                    report.out_of_order += 1;
                }
                *last = (*last).max(n);
            }
        }
        report
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The integer after `key` in `data` (`"n":12` or `"n":12.0`).
fn number_after(data: &[u8], key: &[u8]) -> Option<i64> {
    let at = find(data, key)? + key.len();
    let digits: Vec<u8> = data[at..]
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| b.is_ascii_digit() || *b == b'-')
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::number_after;

    #[test]
    fn numbers_are_read_from_record_json() {
        let data = br#"{"action":"create","record":{"n":17,"t":1700000000123456,"w":3}}"#;
        assert_eq!(number_after(data, b"\"n\":"), Some(17));
        assert_eq!(number_after(data, b"\"t\":"), Some(1_700_000_000_123_456));
        assert_eq!(number_after(data, b"\"w\":"), Some(3));
        assert_eq!(number_after(data, b"\"x\":"), None);
    }
}
