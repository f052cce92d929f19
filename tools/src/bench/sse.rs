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
    /// Every complete event in a received chunk is handled in place, without allocating.
    pub async fn consume(
        mut self,
        topic: &str,
        count: Arc<AtomicU64>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> SubscriberReport {
        let mut report = SubscriberReport::default();
        let mut last_n: Vec<i64> = vec![-1; self.writers];
        let mut stop = stop;
        let parser = EventParser::new(topic);
        // When the buffered bytes arrived: an event's latency ends when its bytes were read
        // from the socket, not when the parser got to it.
        let mut arrived_us = now_us();
        loop {
            // Whole events already buffered.
            let mut received = 0u64;
            while let Some(end) = parser.separator.find(&self.buffer[self.pos..]) {
                let block = &self.buffer[self.pos..self.pos + end];
                self.pos += end + 2;
                if let Some(sample) = parser.parse(block) {
                    received += 1;
                    report
                        .latencies_us
                        .push(arrived_us.saturating_sub(sample.t).min(u64::from(u32::MAX)) as u32);
                    if let Some(last) = last_n.get_mut(sample.w) {
                        if sample.n == *last {
                            report.duplicates += 1;
                        } else if sample.n < *last {
                            report.out_of_order += 1;
                        }
                        *last = (*last).max(sample.n);
                    }
                }
            }
            if received > 0 {
                report.received += received;
                count.fetch_add(received, Ordering::Relaxed);
            }
            if self.pos > 0 {
                self.buffer.drain(..self.pos);
                self.pos = 0;
            }
            let chunk = tokio::select! {
                chunk = self.response.chunk() => chunk,
                _ = stop.changed() => break,
            };
            match chunk {
                Ok(Some(chunk)) => {
                    arrived_us = now_us();
                    self.buffer.extend_from_slice(&chunk);
                }
                _ => break,
            }
        }
        report
    }
}

/// The numbers a benchmark record carries.
struct Sample {
    w: usize,
    n: i64,
    t: u64,
}

/// Reads benchmark events out of SSE blocks (searchers built once per stream).
struct EventParser {
    topic: Vec<u8>,
    separator: memchr::memmem::Finder<'static>,
    w: memchr::memmem::Finder<'static>,
    n: memchr::memmem::Finder<'static>,
    t: memchr::memmem::Finder<'static>,
}

impl EventParser {
    fn new(topic: &str) -> EventParser {
        EventParser {
            topic: topic.as_bytes().to_vec(),
            separator: memchr::memmem::Finder::new(b"\n\n"),
            w: memchr::memmem::Finder::new(b"\"w\":"),
            n: memchr::memmem::Finder::new(b"\"n\":"),
            t: memchr::memmem::Finder::new(b"\"t\":"),
        }
    }

    /// The `w`, `n`, `t` of one SSE event block when its name is the topic.
    fn parse(&self, block: &[u8]) -> Option<Sample> {
        let mut name_matches = false;
        let mut data: &[u8] = &[];
        for line in block.split(|&b| b == b'\n') {
            if let Some(rest) = line.strip_prefix(b"event:") {
                name_matches = rest.trim_ascii() == self.topic.as_slice();
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                data = rest;
            }
        }
        if !name_matches {
            return None;
        }
        let number = |finder: &memchr::memmem::Finder<'_>| {
            let at = finder.find(data)? + finder.needle().len();
            parse_integer(&data[at..])
        };
        Some(Sample {
            w: usize::try_from(number(&self.w)?).ok()?,
            n: number(&self.n)?,
            t: u64::try_from(number(&self.t)?).ok()?,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The integer after `key` in `data` (`"n":12` or `"n":12.0`).
#[cfg(test)]
fn number_after(data: &[u8], key: &[u8]) -> Option<i64> {
    let at = memchr::memmem::find(data, key)? + key.len();
    parse_integer(&data[at..])
}

/// The integer at the start of `text` (after blanks).
fn parse_integer(text: &[u8]) -> Option<i64> {
    let rest = text.trim_ascii_start();
    let (negative, rest) = match rest.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in &rest[..digits] {
        value = value
            .checked_mul(10)?
            .checked_add(i64::from(digit - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::{number_after, EventParser};

    #[test]
    fn benchmark_events_are_parsed_from_sse_blocks() {
        let parser = EventParser::new("bench_rt/*");
        let block = br#"id:abc.7.0
event:bench_rt/*
data:{"action":"create","record":{"n":17,"t":1700000000123456,"w":3}}"#;
        let sample = parser.parse(block).expect("a sample");
        assert_eq!(
            (sample.w, sample.n, sample.t),
            (3, 17, 1_700_000_000_123_456)
        );
        let other = br#"id:abc.7.0
event:other/*
data:{"action":"create","record":{"n":17,"t":1,"w":3}}"#;
        assert!(parser.parse(other).is_none());
        assert!(parser.parse(b"event:bench_rt/*\ndata:{\"n\":1}").is_none());
    }

    #[test]
    fn numbers_are_read_from_record_json() {
        let data = br#"{"action":"create","record":{"n":17,"t":1700000000123456,"w":3}}"#;
        assert_eq!(number_after(data, b"\"n\":"), Some(17));
        assert_eq!(number_after(data, b"\"t\":"), Some(1_700_000_000_123_456));
        assert_eq!(number_after(data, b"\"w\":"), Some(3));
        assert_eq!(number_after(data, b"\"x\":"), None);
    }
}
