//! Realtime: PocketBase's SSE protocol (`docs/wire/realtime.md`) on top of the engine's commit
//! stream, with ordered, resumable, never-silently-lossy delivery.
//!
//! Pieces:
//! - [`topic`]: parsing of subscription strings (`coll/*`, `coll/ID`, `?options=`).
//! - [`session`]: one realtime client: its subscriptions, bound auth, cursor and bounded queue.
//! - [`render`]: turns one commit into the SSE frames of one session (rules, visibility,
//!   expand/fields), encoding each event's JSON once per distinct visibility.
//! - [`hub`]: the session table, the single dispatcher task, log catch-up, resume, expiry and
//!   persistence of sessions across restarts.
//! - [`sse`]: frame bytes and the streaming response body.
//! - [`views`]: `refresh` events for view collections when a source of the view changes.
//!
//! Invariants:
//! 1. A commit reaches a client only after the engine published it (it is durable).
//! 2. Each session receives its events in log order, exactly once per matching subscription:
//!    a commit is rendered for a session only when the session's cursor equals its seq, under
//!    the session lock, and the cursor then moves past it.
//! 3. Writers never wait for subscribers: one dispatcher task consumes the engine subscription
//!    (the server runs it, the catch-ups and the streams on a lower-priority runtime, see
//!    [`hub::Hub::run_on`]).
//! 4. Memory per session is bounded: when its queue is full the session switches to catch-up
//!    from its cursor (recent commits from the engine's memory, older ones from the log)
//!    instead of buffering more; catch-ups share decoded commits and encodings with the
//!    dispatcher ([`hub::Prepared`]).
//! 5. Rules, auth and visibility are evaluated at delivery time ("as they stand now").
//! 6. A client id or event id is not a credential. A resumed session bound to an auth record
//!    delivers nothing until that record proves itself on the new stream (a POST with its
//!    token, or the resume request's own `Authorization`); its events wait at the cursor
//!    ([`session::Mode::Held`]) and then arrive in order, so 2. holds. `POST /api/realtime`
//!    must come from the address that opened the stream (400) and from the bound auth (403),
//!    as in PocketBase.
//! 7. A subscription's `filter` option is a client filter with exactly the list API's
//!    restrictions for the subscriber (hidden fields, `@request.*`/`@collection.*`, listRules
//!    of traversed collections, email visibility): a rejected filter matches nothing.
//!
//! What it deliberately does not do: deliver the `@oauth2` pseudo-topic (no OAuth2 yet).

pub mod hub;
pub mod render;
pub mod session;
pub mod sse;
pub mod topic;
pub mod views;

pub use hub::Hub;

/// Largest number of subscriptions of one client (`docs/wire/realtime.md`).
pub const SUBSCRIPTIONS_MAX: usize = 1000;
/// Longest subscription string, in characters (`docs/wire/realtime.md`).
pub const SUBSCRIPTION_LEN_MAX: usize = 2500;
/// Longest client id accepted by `POST /api/realtime`.
pub const CLIENT_ID_LEN_MAX: usize = 255;
/// Commits read from the log per catch-up step.
pub const CATCH_UP_BATCH_COMMITS: usize = 64;
/// Commits taken from the engine subscription per dispatcher step.
pub const DISPATCH_BATCH_COMMITS: usize = 256;
/// The name of the file (in the data dir) that keeps sessions across restarts.
pub const SESSIONS_FILE: &str = "realtime_sessions.json";

/// Tunables of the realtime hub.
#[derive(Debug, Clone)]
pub struct RealtimeOptions {
    /// How long a disconnected session is kept for resume (default 5 minutes).
    pub grace_ms: u64,
    /// Most sessions kept at once (connected + disconnected); the oldest disconnected ones are
    /// dropped first when the limit is reached.
    pub sessions_max: usize,
    /// Most frames buffered per client before it switches to log catch-up.
    pub queue_frames_max: usize,
    /// Most bytes buffered per client before it switches to log catch-up.
    pub queue_bytes_max: usize,
    /// Interval of the `: ping` keep-alive comments (0 = none).
    pub ping_interval_ms: u64,
    /// Close a stream after this long without a delivered event (0 = never).
    pub idle_timeout_ms: u64,
    /// Close a stream after this long in total (0 = never).
    pub lifetime_max_ms: u64,
    /// Keep sessions in [`SESSIONS_FILE`] so they can be resumed after a restart.
    pub persist_sessions: bool,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        RealtimeOptions {
            grace_ms: 5 * 60 * 1000,
            sessions_max: 50_000,
            queue_frames_max: 512,
            queue_bytes_max: 1024 * 1024,
            ping_interval_ms: 25_000,
            idle_timeout_ms: 0,
            lifetime_max_ms: 0,
            persist_sessions: true,
        }
    }
}
