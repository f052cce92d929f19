//! SSE bytes and the streaming response body of `GET /api/realtime`.
//!
//! 1. Frames are exactly `id:<id>\nevent:<name>\ndata:<json>\n\n` (no spaces after colons),
//!    one HTTP chunk each (spec §1.2).
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
    let mut out = String::with_capacity(id.len() + event.len() + data.len() + 20);
    out.push_str("id:");
    out.push_str(id);
    out.push_str("\nevent:");
    out.push_str(event);
    out.push_str("\ndata:");
    out.push_str(data);
    out.push_str("\n\n");
    Bytes::from(out)
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
