//! SSE bytes and the streaming response body of `GET /api/realtime`.
//!
//! 1. Frames are exactly `id:<id>\nevent:<name>\ndata:<json>\n\n` (no spaces after colons;
//!    `docs/wire/realtime.md` "Frames"). A frame is written as soon as it is queued; frames
//!    that queued up while the stream was busy go out together in one HTTP chunk (SSE does
//!    not depend on chunk borders).
//! 2. Keep-alive is an SSE comment `: ping\n\n`, which EventSource implementations ignore.
//! 3. When the body is dropped (the connection went away) the session is parked for resume.

use super::hub::Hub;
use super::session::{Pop, Session};
use axum::body::{Body, Bytes};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The keep-alive comment.
pub const PING_FRAME: &[u8] = b": ping\n\n";

/// One event frame.
pub fn event_frame(id: &str, event: &str, data: &str) -> Bytes {
    let tail = event_tail(event, data);
    let mut out = Vec::with_capacity(3 + id.len() + tail.len());
    out.extend_from_slice(b"id:");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&tail);
    Bytes::from(out)
}

/// A queued frame. Event frames keep the part after their id line (`\nevent:…\ndata:…\n\n`)
/// as a shared buffer: every session that receives the same event with the same subscription
/// string and visibility holds the same bytes, and the per-session id line is only written
/// when the stream takes the frame ([`Frame::write_to`]).
#[derive(Debug, Clone)]
pub enum Frame {
    /// Complete frame bytes.
    Raw(Bytes),
    /// `id:<clientId>.<seq>.<part>` followed by `tail`.
    Event {
        /// The commit.
        seq: u64,
        /// The part number inside the commit.
        part: u64,
        /// `\nevent:<name>\ndata:<json>\n\n`.
        tail: Bytes,
    },
}

impl Frame {
    /// The encoded length for a session whose client id is `client_id_len` bytes long.
    pub fn len(&self, client_id_len: usize) -> usize {
        match self {
            Frame::Raw(bytes) => bytes.len(),
            Frame::Event { seq, part, tail } => {
                3 + client_id_len + 2 + digits(*seq) + digits(*part) + tail.len()
            }
        }
    }

    /// Appends the frame's bytes for `client_id` to `out`.
    pub fn write_to(&self, client_id: &str, out: &mut Vec<u8>) {
        match self {
            Frame::Raw(bytes) => out.extend_from_slice(bytes),
            Frame::Event { seq, part, tail } => {
                let mut buffer = [0u8; 20];
                out.extend_from_slice(b"id:");
                out.extend_from_slice(client_id.as_bytes());
                out.push(b'.');
                out.extend_from_slice(decimal(*seq, &mut buffer));
                out.push(b'.');
                out.extend_from_slice(decimal(*part, &mut buffer));
                out.extend_from_slice(tail);
            }
        }
    }
}

/// The shared part of an event frame: `\nevent:<event>\ndata:<data>\n\n`.
pub fn event_tail(event: &str, data: &str) -> Bytes {
    let mut out = Vec::with_capacity(7 + event.len() + 6 + data.len() + 2);
    out.extend_from_slice(b"\nevent:");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata:");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Number of decimal digits of `value`.
fn digits(mut value: u64) -> usize {
    let mut count = 1;
    while value >= 10 {
        value /= 10;
        count += 1;
    }
    count
}

/// `value` in decimal, written to the end of `buffer`.
fn decimal(mut value: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[at..];
        }
    }
}

/// The `PB_CONNECT` frame (its id is the client id, which the SDK reads).
pub fn connect_frame(client_id: &str, extra: Option<serde_json::Value>) -> Bytes {
    let mut data = serde_json::Map::new();
    data.insert("clientId".into(), serde_json::Value::from(client_id));
    if let Some(serde_json::Value::Object(extra)) = extra {
        data.extend(extra);
    }
    event_frame(
        client_id,
        "PB_CONNECT",
        &serde_json::Value::Object(data).to_string(),
    )
}

/// The `PB_RESET` frame: the client must reload its data (events were lost for good).
pub fn reset_frame(client_id: &str, reason: &str, message: &str, position: u64) -> Bytes {
    let data = serde_json::json!({
        "clientId": client_id,
        "reason": reason,
        "message": message,
        "position": position,
    });
    event_frame(client_id, "PB_RESET", &data.to_string())
}

/// Parks the session when the stream is dropped.
struct ParkOnDrop {
    hub: Arc<Hub>,
    session: Arc<Session>,
    generation: u64,
}

impl Drop for ParkOnDrop {
    fn drop(&mut self) {
        self.hub.stream_closed(&self.session, self.generation);
    }
}

struct StreamState {
    guard: ParkOnDrop,
    ping_every: Option<Duration>,
    next_ping: Instant,
    idle_timeout: Option<Duration>,
    last_event: Instant,
    deadline: Option<Instant>,
}

fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// The response body draining `session`'s queue for the stream of `generation`.
pub fn stream_body(hub: Arc<Hub>, session: Arc<Session>, generation: u64) -> Body {
    let options = hub.options().clone();
    let now = Instant::now();
    let ping_every = millis(options.ping_interval_ms);
    let state = StreamState {
        guard: ParkOnDrop {
            hub,
            session,
            generation,
        },
        ping_every,
        next_ping: now + ping_every.unwrap_or(Duration::from_secs(3600)),
        idle_timeout: millis(options.idle_timeout_ms),
        last_event: now,
        deadline: millis(options.lifetime_max_ms).map(|limit| now + limit),
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        loop {
            let session = &state.guard.session;
            let notify = match session.pop(state.guard.generation) {
                Pop::Frame(frame) => {
                    state.last_event = Instant::now();
                    return Some((Ok::<Bytes, std::io::Error>(frame), state));
                }
                Pop::Ended => return None,
                Pop::Empty(notify) => notify,
            };
            let mut wake_at = state.next_ping;
            if let Some(idle) = state.idle_timeout {
                wake_at = wake_at.min(state.last_event + idle);
            }
            if let Some(deadline) = state.deadline {
                wake_at = wake_at.min(deadline);
            }
            tokio::select! {
                () = notify.notified() => continue,
                () = tokio::time::sleep_until(wake_at) => {}
            }
            let now = Instant::now();
            if state.deadline.is_some_and(|deadline| now >= deadline)
                || state
                    .idle_timeout
                    .is_some_and(|idle| now >= state.last_event + idle)
            {
                return None;
            }
            if let Some(every) = state.ping_every {
                if now >= state.next_ping {
                    state.next_ping = now + every;
                    return Some((Ok(Bytes::from_static(PING_FRAME)), state));
                }
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames_match_the_plain_encoding() {
        for (seq, part) in [(0u64, 0u64), (9, 10), (1234567, 1000), (u64::MAX, 7)] {
            let frame = Frame::Event {
                seq,
                part,
                tail: event_tail("posts/*", "{\"a\":1}"),
            };
            let mut out = Vec::new();
            frame.write_to("abc", &mut out);
            let plain = event_frame(&format!("abc.{seq}.{part}"), "posts/*", "{\"a\":1}");
            assert_eq!(out, plain.to_vec());
            assert_eq!(frame.len(3), plain.len());
        }
        assert_eq!(
            &event_frame("abc.9.10", "posts/*", "{\"a\":1}")[..],
            b"id:abc.9.10\nevent:posts/*\ndata:{\"a\":1}\n\n"
        );
    }
}
