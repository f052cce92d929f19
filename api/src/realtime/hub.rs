//! The realtime hub: the table of sessions, the single dispatcher task that fans committed
//! commits out to them, log catch-up for sessions that fell behind or resumed, expiry of
//! disconnected sessions, and their persistence across restarts.
//!
//! Delivery state machine of one session (see [`Mode`]):
//!
//! ```text
//!            connect                 queue full / cursor behind
//!   (new) ───────────▶ Live ─────────────────────────────────────▶ CatchUp
//!                       ▲   dispatcher renders seq == cursor          │
//!                       └─────────────────────────────────────────────┘
//!   stream dropped: Live|CatchUp|Held ──▶ Parked ──resume (Last-Event-ID)──▶ CatchUp
//!   Parked for longer than the grace period, or evicted by the count bound: removed.
//!   Live|CatchUp ──commit with frames for an unproven bound auth──▶ Held
//!   Held ──bound auth proves itself (POST), or is revoked──▶ CatchUp (from the held cursor)
//! ```
//!
//! Invariants:
//! 1. Only the dispatcher consumes the engine subscription; writers never wait for it.
//! 2. A commit is rendered for a session only under the session's lock and only when
//!    `cursor == seq`; the cursor then moves to `seq + 1`. Dispatcher and catch-up task may
//!    race, but exactly one of them renders each commit, in seq order.
//! 3. The catch-up task never reads past `engine.published_seq()`, so nothing is delivered
//!    before it is durable (on a `sync` cluster leader: before the cluster acknowledged it,
//!    `Cluster::visible_seq`).
//! 4. At most one catch-up task runs per session (`catch_up_running`, decided under the lock).
//! 5. Auth maintenance (token key change, record or collection deleted, auth secret rotated)
//!    is applied by the dispatcher to every session, in log order, whatever its mode.
//! 6. Lock order: a commit's shared encode cache ([`Prepared::cache`], in seq order) before a
//!    session's `inner`, never the other way round (the dispatcher holds a round's caches
//!    while it locks each session; a catch-up task takes one cache, then its session).
//! 7. A resume leaves the bound auth unproven (`auth_proven`); until it proves itself, a
//!    commit with frames for it stops the session at that seq ([`Mode::Held`]), nothing is
//!    rendered past it, and the release resumes from there: no gap, no duplicate, in order.
//!    The held backlog costs no memory (it is read back from the engine's recent commits or
//!    the log, like any catch-up; a compacted position gives `PB_RESET`, never silence).
//!
//! Resume across restarts: sessions (client id, subscriptions, bound auth as collection id +
//! record id + a hash of the record's token key, and the position where the last stream
//! started) are written to [`SESSIONS_FILE`] in the data dir, at most once per second when
//! something changed and on shutdown. On start they come back parked; a bound auth whose
//! record is gone or whose token key changed comes back as guest.

use super::render::{self, EncodeCache};
use super::session::{now_ms, Mode, Session, SessionInner};
use super::sse;
use super::topic;
use super::{RealtimeOptions, CATCH_UP_BATCH_COMMITS, DISPATCH_BATCH_COMMITS, SESSIONS_FILE};
use crate::access::{self, Auth};
use crate::auth::token;
use crate::error::ApiError;
use crate::model::record::from_row;
use crate::model::Schema;
use crate::state::{touches_collections, AppState};
use axum::http::StatusCode;
use engine::{Change, Commit, Seq};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// Counts of the hub's sessions ([`Hub::stats`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HubStats {
    /// Sessions, connected and parked.
    pub sessions: usize,
    /// Sessions whose stream went away (kept for a resume).
    pub parked: usize,
    /// Frames waiting in sessions' queues.
    pub queued_frames: usize,
}

/// A position named by a client: the `Last-Event-ID` it last received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeToken {
    /// The client id.
    pub client_id: String,
    /// `(seq, part)` of the last event received, or `None` when only `PB_CONNECT` was.
    pub position: Option<(Seq, u64)>,
}

impl ResumeToken {
    /// Parses `<clientId>` or `<clientId>.<seq>.<part>`.
    pub fn parse(text: &str) -> Option<ResumeToken> {
        let mut parts = text.trim().split('.');
        let client_id = parts.next()?.to_string();
        if client_id.is_empty()
            || client_id.len() > super::CLIENT_ID_LEN_MAX
            || !client_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        let position = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(seq), Some(part), None) => Some((seq.parse().ok()?, part.parse().ok()?)),
            _ => return None,
        };
        Some(ResumeToken {
            client_id,
            position,
        })
    }
}

/// A commit decoded for delivery, shared by the dispatcher and catch-up tasks so that a
/// thousand sessions catching up over the same commits decode and encode them once.
pub struct Prepared {
    schema: Arc<Schema>,
    /// The commit's record events, decoded against `schema`.
    pub events: Vec<render::RecordEvent>,
    cache: tokio::sync::Mutex<(std::time::Instant, EncodeCache)>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// The commit's encode cache. Encodings older than one second are dropped
    /// first: expansions and rule outcomes that read other records stay "as they stand now"
    /// within that bound.
    pub async fn cache(&self) -> tokio::sync::MappedMutexGuard<'_, EncodeCache> {
        let mut guard = self.cache.lock().await;
        if guard.0.elapsed() > PREPARED_CACHE_TTL {
            *guard = (std::time::Instant::now(), EncodeCache::default());
        }
        tokio::sync::MutexGuard::map(guard, |(_, cache)| cache)
    }
}

/// How long shared encodings of a commit are reused.
const PREPARED_CACHE_TTL: Duration = Duration::from_secs(1);
/// Decoded commits kept for sharing: two dispatch rounds' worth (a decoded commit holds its
/// records as JSON and their encodings, so this also bounds the memory it takes).
const PREPARED_MAX: usize = 2 * super::DISPATCH_BATCH_COMMITS;

#[derive(Debug, Default)]
struct PreparedCache {
    map: HashMap<Seq, Arc<Prepared>>,
    order: std::collections::VecDeque<Seq>,
}

/// The realtime hub. Created with the [`AppState`]; its tasks start on first use.
#[derive(Debug)]
pub struct Hub {
    options: RealtimeOptions,
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    started: tokio::sync::OnceCell<()>,
    shutting_down: AtomicBool,
    dirty: AtomicBool,
    catch_ups: std::sync::atomic::AtomicU64,
    sessions_file: RwLock<Option<PathBuf>>,
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    prepared: std::sync::Mutex<PreparedCache>,
}

/// What a stream starts with.
#[derive(Debug)]
pub struct Connected {
    /// The session.
    pub session: Arc<Session>,
    /// The stream generation.
    pub generation: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedAuth {
    collection_id: String,
    record_id: String,
    token_key_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedSession {
    client_id: String,
    subscriptions: Vec<String>,
    auth: Option<PersistedAuth>,
    connect_seq: Seq,
    connect_skip: Option<(Seq, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedFile {
    version: u32,
    sessions: Vec<PersistedSession>,
}

fn token_key_hash(record: &serde_json::Map<String, Value>) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let key = record.get("tokenKey").and_then(Value::as_str).unwrap_or("");
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(key.as_bytes()))
}

impl Hub {
    /// A hub with `options` (no task runs until [`Hub::ensure_started`]).
    pub fn new(options: RealtimeOptions) -> Hub {
        Hub {
            options,
            sessions: RwLock::new(HashMap::new()),
            started: tokio::sync::OnceCell::new(),
            shutting_down: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            catch_ups: std::sync::atomic::AtomicU64::new(0),
            sessions_file: RwLock::new(None),
            runtime: std::sync::OnceLock::new(),
            prepared: std::sync::Mutex::new(PreparedCache::default()),
        }
    }

    /// `commit` decoded against `schema`, shared while it is recent (rebuilt after a schema
    /// change).
    pub fn prepared(&self, schema: &Arc<Schema>, commit: &Commit) -> Arc<Prepared> {
        if let Some(found) = self
            .prepared
            .lock()
            .expect("prepared lock")
            .map
            .get(&commit.seq)
        {
            if Arc::ptr_eq(&found.schema, schema) {
                return Arc::clone(found);
            }
        }
        let built = Arc::new(Prepared {
            schema: Arc::clone(schema),
            events: render::record_events(schema, commit),
            cache: tokio::sync::Mutex::new((std::time::Instant::now(), EncodeCache::default())),
        });
        let mut cache = self.prepared.lock().expect("prepared lock");
        if cache.map.insert(commit.seq, Arc::clone(&built)).is_none() {
            cache.order.push_back(commit.seq);
        }
        while cache.order.len() > PREPARED_MAX {
            if let Some(old) = cache.order.pop_front() {
                cache.map.remove(&old);
            }
        }
        built
    }

    /// Runs the hub's tasks (dispatcher, catch-ups, sweeper, persister) on `runtime` instead
    /// of the caller's: the server gives fan-out its own lower-priority runtime so that a
    /// burst of deliveries never queues the request path behind it. Only the first call counts.
    pub fn run_on(&self, runtime: tokio::runtime::Handle) {
        let _ = self.runtime.set(runtime);
    }

    fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self.runtime.get() {
            Some(runtime) => {
                runtime.spawn(task);
            }
            None => {
                tokio::spawn(task);
            }
        }
    }

    /// The options.
    pub fn options(&self) -> &RealtimeOptions {
        &self.options
    }

    /// A session by client id.
    pub fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions
            .read()
            .expect("sessions lock")
            .get(client_id)
            .cloned()
    }

    /// Number of sessions (connected and parked).
    pub fn session_count(&self) -> usize {
        self.sessions.read().expect("sessions lock").len()
    }

    /// How many catch-up tasks were started (slow readers and resumes), for metrics/tests.
    pub fn catch_ups_started(&self) -> u64 {
        self.catch_ups.load(Ordering::Relaxed)
    }

    /// Session counts and queued frames, for `/api/metrics` (O(sessions), no session lock).
    pub fn stats(&self) -> HubStats {
        let sessions = self.snapshot();
        HubStats {
            sessions: sessions.len(),
            parked: sessions.iter().filter(|s| s.is_parked()).count(),
            queued_frames: sessions.iter().map(|s| s.queued_frames()).sum(),
        }
    }

    fn snapshot(&self) -> Vec<Arc<Session>> {
        self.sessions
            .read()
            .expect("sessions lock")
            .values()
            .cloned()
            .collect()
    }

    fn mark_dirty(&self) {
        if self.options.persist_sessions {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Starts the dispatcher, the sweeper and the persister once, restoring persisted
    /// sessions first.
    pub async fn ensure_started(self: &Arc<Self>, state: &Arc<AppState>) {
        self.started
            .get_or_init(|| async {
                let path = state.engine.dir().join(SESSIONS_FILE);
                if self.options.persist_sessions {
                    self.restore(state, &path).await;
                    *self.sessions_file.write().expect("sessions file lock") = Some(path);
                }
                let from = state.engine.published_seq() + 1;
                match state.engine.subscribe(from) {
                    Ok(subscription) => {
                        self.spawn(dispatch_loop(
                            Arc::clone(self),
                            Arc::downgrade(state),
                            subscription,
                        ));
                    }
                    Err(err) => tracing::error!(error = %err, "realtime: cannot subscribe"),
                }
                self.spawn(sweep_loop(Arc::downgrade(self)));
                if self.options.persist_sessions {
                    self.spawn(persist_loop(Arc::downgrade(self)));
                }
            })
            .await;
    }

    /// Opens a stream from `ip`: a new session, or the resumed session named by `resume`.
    /// `proof` is the auth of the request itself (its `Authorization`): a resumed session
    /// bound to that same record needs no further proof on this stream.
    pub async fn connect(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        resume: Option<ResumeToken>,
        ip: Option<std::net::IpAddr>,
        proof: Option<Auth>,
    ) -> Result<Connected, ApiError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is shutting down.",
            ));
        }
        self.ensure_started(state).await;
        let mut reset: Option<(&str, &str)> = None;
        if let Some(token) = resume {
            if let Some(session) = self.session(&token.client_id) {
                return Ok(self.resume(state, session, token, ip, proof).await);
            }
            if let Some(connected) = self.adopt(state, &token, ip).await? {
                return Ok(connected);
            }
            reset = Some((
                "session_expired",
                "The realtime session to resume is unknown or expired; reload your data and subscribe again.",
            ));
        }
        let published = state.engine.published_seq();
        let session = Arc::new(Session::new(
            token::new_realtime_client_id(),
            published + 1,
            Mode::Live,
            &self.options,
        ));
        let generation = {
            let mut inner = session.inner.lock().await;
            inner.generation = 1;
            inner.stream_ip = ip;
            inner.generation
        };
        let mut first = vec![sse::connect_frame(&session.id, None)];
        if let Some((reason, message)) = reset {
            first.push(sse::reset_frame(&session.id, reason, message, published));
        }
        session.attach(generation, first);
        self.insert(Arc::clone(&session))?;
        self.mark_dirty();
        Ok(Connected {
            session,
            generation,
        })
    }

    /// In a cluster, a resume naming a session of another node at a position (positions are
    /// the same on every node) takes it over: a session with that client id, no
    /// subscriptions and no auth, held at the position until the client's subscription POST
    /// (with its own auth, checked as any), then caught up from there: no gap, no duplicate.
    /// `None` outside a cluster, without a position, or when the position is not here (not
    /// applied in time, or compacted).
    async fn adopt(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        token: &ResumeToken,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Option<Connected>, ApiError> {
        let (Some(cluster), Some((seq, part))) = (state.cluster.get(), token.position) else {
            return Ok(None);
        };
        if !cluster
            .wait_applied(seq, crate::cluster::FORWARD_APPLY_TIMEOUT)
            .await
            || seq < state.engine.log().first_seq()
        {
            return Ok(None);
        }
        let session = Arc::new(Session::new(
            token.client_id.clone(),
            seq,
            Mode::Held,
            &self.options,
        ));
        let generation = {
            let mut inner = session.inner.lock().await;
            inner.generation = 1;
            inner.stream_ip = ip;
            inner.skip = Some((seq, part));
            inner.connect_skip = inner.skip;
            inner.adopted = true;
            inner.generation
        };
        let first = vec![sse::connect_frame(
            &session.id,
            Some(serde_json::json!({"resumed": true})),
        )];
        session.attach(generation, first);
        self.insert(Arc::clone(&session))?;
        self.mark_dirty();
        tracing::debug!(client = %session.id, seq, "realtime: took over a session of another node");
        Ok(Some(Connected {
            session,
            generation,
        }))
    }

    fn insert(&self, session: Arc<Session>) -> Result<(), ApiError> {
        let mut sessions = self.sessions.write().expect("sessions lock");
        while sessions.len() >= self.options.sessions_max.max(1) {
            let oldest = sessions
                .values()
                .filter(|s| s.is_parked())
                .min_by_key(|s| s.parked_since_ms.load(Ordering::Acquire))
                .map(|s| s.id.clone());
            match oldest {
                Some(id) => {
                    sessions.remove(&id);
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Too many realtime clients, please try again later.",
                    ))
                }
            }
        }
        sessions.insert(session.id.clone(), session);
        Ok(())
    }

    async fn resume(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        session: Arc<Session>,
        token: ResumeToken,
        ip: Option<std::net::IpAddr>,
        proof: Option<Auth>,
    ) -> Connected {
        let mut inner = session.inner.lock().await;
        inner.generation += 1;
        let generation = inner.generation;
        // Naming a session is no credential: its bound auth applies on this stream only once
        // it proves itself (here, or by a POST with its token).
        inner.auth_proven = match (&inner.auth, &proof) {
            (Some(bound), Some(proof)) => same_record(bound, proof),
            _ => false,
        };
        inner.stream_ip = ip;
        let published = state.engine.published_seq();
        let (mut cursor, mut skip) = match token.position {
            Some((seq, part)) => (seq, Some((seq, part))),
            None => (inner.connect_seq, None),
        };
        if token.position.is_none() {
            skip = inner.connect_skip;
        }
        let mut first = vec![sse::connect_frame(
            &session.id,
            Some(serde_json::json!({"resumed": true})),
        )];
        let first_available = state.engine.log().first_seq();
        if cursor > published + 1 {
            cursor = published + 1;
            skip = None;
        }
        if cursor < first_available && cursor <= published {
            first.push(sse::reset_frame(
                &session.id,
                "position_compacted",
                "Events after the resumed position are no longer in the log; reload your data.",
                published,
            ));
            cursor = published + 1;
            skip = None;
        }
        inner.cursor = cursor;
        inner.skip = skip;
        inner.connect_seq = cursor;
        inner.connect_skip = skip;
        inner.mode = Mode::CatchUp;
        session.attach(generation, first);
        self.spawn_catch_up(state, &session, &mut inner);
        drop(inner);
        self.mark_dirty();
        Connected {
            session,
            generation,
        }
    }

    /// Called when a stream's body is dropped: parks the session unless a newer stream took
    /// over.
    pub fn stream_closed(self: &Arc<Self>, session: &Arc<Session>, generation: u64) {
        if !session.detach(generation) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let session = Arc::clone(session);
        let hub = Arc::clone(self);
        handle.spawn(async move {
            let mut inner = session.inner.lock().await;
            if inner.generation == generation {
                inner.mode = Mode::Parked;
            }
            drop(inner);
            session.writable.notify_waiters();
            hub.mark_dirty();
        });
    }

    fn spawn_catch_up(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        session: &Arc<Session>,
        inner: &mut SessionInner,
    ) {
        if inner.catch_up_running {
            return;
        }
        inner.catch_up_running = true;
        self.catch_ups.fetch_add(1, Ordering::Relaxed);
        self.spawn(catch_up(Arc::clone(state), Arc::clone(session)));
    }

    /// Fans published commits (consecutive seqs, none of them touching collections except
    /// possibly the first) out to every session: each session is locked once for the whole
    /// run, renders its commits in seq order and is woken once, so a burst of commits costs
    /// one lock and one stream write per session instead of one per commit.
    ///
    /// Returns the number of streams that were given frames.
    async fn dispatch(self: &Arc<Self>, state: &Arc<AppState>, commits: &[Arc<Commit>]) -> usize {
        let Some(first) = commits.first() else {
            return 0;
        };
        // The schema follows the commit before it is rendered (a no-op when the writer's
        // caller already made it follow).
        if let Err(err) = state.follow(first) {
            tracing::warn!(error = %err, "realtime: the schema could not follow a commit");
        }
        let schema = state.schema();
        let prepared: Vec<Arc<Prepared>> = commits
            .iter()
            .map(|commit| self.prepared(&schema, commit))
            .collect();
        // The encode caches are held for the whole round (catch-up tasks wanting one of these
        // commits wait for the round to end, then reuse its encodings).
        let mut caches = Vec::with_capacity(prepared.len());
        for prepared in &prepared {
            caches.push(prepared.cache().await);
        }
        let events: Vec<&[render::RecordEvent]> =
            prepared.iter().map(|p| p.events.as_slice()).collect();
        let mut woken = 0;
        for session in self.snapshot() {
            let mut inner = session.inner.lock().await;
            for ((commit, events), cache) in commits.iter().zip(&events).zip(caches.iter_mut()) {
                if maintain_auth(&mut inner, commit, &schema) {
                    self.mark_dirty();
                    // Nothing left to hold for a session that lost its bound auth.
                    self.release_held(state, &session, &mut inner);
                }
                let seq = commit.seq;
                match inner.mode {
                    Mode::Parked | Mode::Held => continue,
                    Mode::Live if inner.cursor > seq => continue,
                    Mode::Live if inner.cursor < seq => {
                        inner.mode = Mode::CatchUp;
                        self.spawn_catch_up(state, &session, &mut inner);
                        continue;
                    }
                    Mode::CatchUp if inner.cursor != seq => continue,
                    Mode::Live | Mode::CatchUp => {}
                }
                let frames = if events.is_empty() {
                    Some(Vec::new())
                } else {
                    render::render(state, &schema, &inner, seq, events, &mut *cache).await
                };
                let Some(frames) = frames else {
                    // The cursor stays at `seq`: the backlog waits for the owner's proof.
                    inner.mode = Mode::Held;
                    continue;
                };
                if session.try_push_quiet(frames) {
                    inner.cursor = seq + 1;
                    inner.skip = None;
                    inner.mode = Mode::Live;
                } else if inner.mode == Mode::Live {
                    inner.mode = Mode::CatchUp;
                    self.spawn_catch_up(state, &session, &mut inner);
                }
            }
            drop(inner);
            if session.notify_readable() {
                woken += 1;
            }
        }
        woken
    }

    /// Replaces a connected session's subscriptions and binds the POST's auth. The new set
    /// applies to commits from `switch_seq` on (the first seq not yet acknowledged).
    ///
    /// Checks, in PocketBase's order: 404 for an unknown or disconnected client, 400 when the
    /// POST does not come from the address that opened the stream, 403 when the auth differs
    /// from the one already bound (allowed: guest→guest, guest→user, user→same user). A POST
    /// by the bound auth proves it on the current stream and releases what was held.
    pub async fn set_subscriptions(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        client_id: &str,
        auth: Option<Auth>,
        ip: Option<std::net::IpAddr>,
        subscriptions: Vec<String>,
        switch_seq: Seq,
    ) -> Result<(), ApiError> {
        let missing = || ApiError::new(StatusCode::NOT_FOUND, "Missing or invalid client id.");
        let session = self.session(client_id).ok_or_else(missing)?;
        if session.is_parked() {
            return Err(missing());
        }
        let mut inner = session.inner.lock().await;
        if inner.stream_ip != ip {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid realtime client.",
            ));
        }
        let compatible = match (&inner.auth, &auth) {
            (None, _) => true,
            (Some(bound), Some(new)) => same_record(bound, new),
            (Some(_), None) => false,
        };
        if !compatible {
            return Err(ApiError::forbidden(
                "The current and the previous request authorization don't match.",
            ));
        }
        if auth.is_some() {
            inner.auth = auth;
            inner.auth_proven = true;
        }
        let mut topics: Vec<topic::Topic> = subscriptions.iter().map(|s| topic::parse(s)).collect();
        let rewind_to = positioned_start(state, &mut topics, inner.cursor)?;
        let positioned = topics.iter().any(|topic| topic.position.is_some())
            || std::mem::take(&mut inner.adopted);
        let old = std::mem::replace(&mut inner.subscriptions, Arc::new(topics));
        match rewind_to {
            // A positioned set applies from the cursor on (its floors decide), so commits
            // between the position and this request reach the positioned topics.
            None if positioned => inner.previous = None,
            Some(target) => {
                // Snapshot, then stream: the session goes back to the oldest named position;
                // every topic's floor keeps it from seeing a commit twice.
                inner.previous = None;
                inner.cursor = target;
                inner.connect_seq = inner.connect_seq.min(target);
                if matches!(inner.mode, Mode::Live | Mode::CatchUp) {
                    inner.mode = Mode::CatchUp;
                    self.spawn_catch_up(state, &session, &mut inner);
                }
            }
            None => inner.previous = (inner.cursor < switch_seq).then_some((old, switch_seq)),
        }
        if inner.auth_proven || inner.auth.is_none() {
            self.release_held(state, &session, &mut inner);
        }
        drop(inner);
        self.mark_dirty();
        Ok(())
    }

    /// A held session whose bound auth proved itself (or went away) continues from its
    /// cursor: the backlog is delivered in order by a catch-up.
    fn release_held(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        session: &Arc<Session>,
        inner: &mut SessionInner,
    ) {
        if inner.mode == Mode::Held && (inner.auth_proven || inner.auth.is_none()) {
            inner.mode = Mode::CatchUp;
            self.spawn_catch_up(state, session, inner);
        }
    }

    /// Ends every stream and writes the sessions file (graceful shutdown).
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for session in self.snapshot() {
            session.end();
        }
        if self.options.persist_sessions {
            self.persist().await;
        }
    }

    async fn persist(&self) {
        let Some(path) = self
            .sessions_file
            .read()
            .expect("sessions file lock")
            .clone()
        else {
            return;
        };
        self.dirty.store(false, Ordering::Release);
        let mut sessions = Vec::new();
        for session in self.snapshot() {
            let inner = session.inner.lock().await;
            sessions.push(PersistedSession {
                client_id: session.id.clone(),
                subscriptions: inner
                    .subscriptions
                    .iter()
                    .map(|t| t.raw.to_string())
                    .collect(),
                auth: inner.auth.as_ref().map(|auth| PersistedAuth {
                    collection_id: auth.collection.id.clone(),
                    record_id: auth.id().to_string(),
                    token_key_hash: token_key_hash(&auth.record),
                }),
                connect_seq: inner.connect_seq,
                connect_skip: inner.connect_skip,
            });
        }
        let file = PersistedFile {
            version: 1,
            sessions,
        };
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "realtime: cannot write the sessions file")
            }
            Err(err) => tracing::warn!(error = %err, "realtime: sessions writer failed"),
        }
    }

    async fn restore(&self, state: &Arc<AppState>, path: &std::path::Path) {
        let path = path.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
        let Ok(Ok(bytes)) = loaded else {
            return;
        };
        let file: PersistedFile = match serde_json::from_slice(&bytes) {
            Ok(file) => file,
            Err(err) => {
                tracing::warn!(error = %err, "realtime: ignoring an unreadable sessions file");
                return;
            }
        };
        let schema = state.schema();
        let mut restored = 0usize;
        for persisted in file.sessions.into_iter().take(self.options.sessions_max) {
            let auth = match &persisted.auth {
                Some(saved) => restore_auth(state, &schema, saved).await,
                None => None,
            };
            let session = Arc::new(Session::new(
                persisted.client_id,
                persisted.connect_seq,
                Mode::Parked,
                &self.options,
            ));
            {
                let mut inner = session.inner.lock().await;
                inner.auth = auth;
                inner.subscriptions = Arc::new(
                    persisted
                        .subscriptions
                        .iter()
                        .map(|s| topic::parse(s))
                        .collect(),
                );
                inner.connect_skip = persisted.connect_skip;
            }
            self.sessions
                .write()
                .expect("sessions lock")
                .insert(session.id.clone(), session);
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(
                sessions = restored,
                "realtime: restored sessions for resume"
            );
        }
    }

    fn sweep(&self) {
        let grace = self.options.grace_ms;
        let now = now_ms();
        let mut sessions = self.sessions.write().expect("sessions lock");
        let before = sessions.len();
        sessions.retain(|_, session| {
            let since = session.parked_since_ms.load(Ordering::Acquire);
            since == 0 || now.saturating_sub(since) < grace
        });
        if sessions.len() != before {
            drop(sessions);
            self.mark_dirty();
        }
    }
}

/// True when both are the same auth record.
/// Sets the floors of a new subscription set whose topics may name a position
/// (`options.query.position`) and returns where the session must go back to, if a position
/// is older than what the session already delivered (`cursor` is its next seq).
///
/// A positioned topic delivers the commits after its position. When the session must go
/// back, every other topic gets the session's delivered seq as its floor, so nothing is
/// delivered twice. A position older than the retained log, or past its head, is a 400.
fn positioned_start(
    state: &AppState,
    topics: &mut [topic::Topic],
    cursor: Seq,
) -> Result<Option<Seq>, ApiError> {
    let head = state.engine.last_seq();
    let first = state.engine.log().first_seq();
    let mut rewind_to: Option<Seq> = None;
    for topic in topics.iter() {
        let Some(position) = topic.position else {
            continue;
        };
        if position > head {
            return Err(ApiError::bad_request(
                "The subscription position is past the log head.",
            ));
        }
        if position + 1 < cursor {
            if position + 1 < first {
                return Err(ApiError::bad_request(
                    "The subscription position is no longer in the log; reload your data.",
                ));
            }
            rewind_to = Some(rewind_to.map_or(position + 1, |seq: Seq| seq.min(position + 1)));
        }
    }
    let delivered = cursor.saturating_sub(1);
    for topic in topics.iter_mut() {
        topic.floor = match (topic.position, rewind_to) {
            (Some(position), _) => position,
            (None, Some(_)) => delivered,
            (None, None) => 0,
        };
    }
    Ok(rewind_to)
}

fn same_record(a: &Auth, b: &Auth) -> bool {
    a.collection.id == b.collection.id && a.id() == b.id()
}

async fn restore_auth(
    state: &Arc<AppState>,
    schema: &Schema,
    saved: &PersistedAuth,
) -> Option<Auth> {
    let collection = Arc::clone(schema.find(&saved.collection_id)?);
    let record = access::load_record(state, &collection, &saved.record_id)
        .await
        .ok()??;
    (token_key_hash(&record) == saved.token_key_hash).then_some(Auth { collection, record })
}

/// Applies auth-relevant changes of `commit` to the session's bound auth; true when it
/// changed. A changed token key, a deleted record or collection, or a rotated auth secret
/// downgrade the session to guest (as PocketBase does; `docs/wire/realtime.md`).
fn maintain_auth(inner: &mut SessionInner, commit: &Commit, schema: &Schema) -> bool {
    let mut changed = false;
    for change in &commit.changes {
        let Some(auth) = &inner.auth else {
            return changed;
        };
        match change {
            Change::RecordUpdated {
                collection_id,
                id,
                values,
            } if *collection_id == auth.collection.id && id == auth.id() => {
                let columns: Vec<String> = values.iter().map(|(name, _)| name.clone()).collect();
                let row: Vec<engine::Value> = values.iter().map(|(_, v)| v.clone()).collect();
                let record = from_row(&auth.collection, &columns, &row);
                let old_key = auth.record.get("tokenKey");
                if record.get("tokenKey") != old_key {
                    inner.auth = None;
                } else if let Some(auth) = inner.auth.as_mut() {
                    auth.record = record;
                }
                changed = true;
            }
            Change::RecordDeleted {
                collection_id, id, ..
            }
            | Change::Redacted {
                collection_id, id, ..
            } if *collection_id == auth.collection.id && id == auth.id() => {
                inner.auth = None;
                changed = true;
            }
            Change::CollectionDeleted { id, .. } if *id == auth.collection.id => {
                inner.auth = None;
                changed = true;
            }
            Change::CollectionUpdated(def) if def.id == auth.collection.id => {
                match schema.find(&def.id) {
                    Some(collection)
                        if collection.token_secret("authToken")
                            == auth.collection.token_secret("authToken") =>
                    {
                        let collection = Arc::clone(collection);
                        if let Some(auth) = inner.auth.as_mut() {
                            auth.collection = collection;
                        }
                    }
                    _ => inner.auth = None,
                }
                changed = true;
            }
            _ => {}
        }
    }
    changed
}

/// The pause after a dispatch round that woke `woken` streams: about 20 µs per stream (so
/// stream writes take at most about half of a core however fast commits arrive), at most
/// [`COALESCE_MAX`]; nothing for a handful of streams.
fn coalesce_interval(woken: usize) -> Duration {
    (COALESCE_PER_STREAM * u32::try_from(woken).unwrap_or(u32::MAX)).min(COALESCE_MAX)
}

/// The wait before dispatching the first commit of a burst to `sessions` sessions.
fn first_round_gather(sessions: usize) -> Duration {
    if sessions < GATHER_FROM_SESSIONS {
        return Duration::ZERO;
    }
    (GATHER_PER_SESSION * u32::try_from(sessions).unwrap_or(u32::MAX)).min(COALESCE_MAX)
}

/// Sessions from which a burst's first round waits for the rest of the burst.
const GATHER_FROM_SESSIONS: usize = 500;
/// Wait per session before a burst's first round.
const GATHER_PER_SESSION: Duration = Duration::from_nanos(500);

/// Pause per stream woken by a dispatch round.
const COALESCE_PER_STREAM: Duration = Duration::from_micros(20);
/// Longest pause between dispatch rounds (bounds the added delivery latency).
const COALESCE_MAX: Duration = Duration::from_millis(25);

/// True when `commit` creates, changes or deletes a collection.
async fn dispatch_loop(
    hub: Arc<Hub>,
    state: Weak<AppState>,
    mut subscription: engine::Subscription,
) {
    let mut next_round = tokio::time::Instant::now();
    loop {
        std::future::poll_fn(|cx| subscription.poll_ready(cx)).await;
        // Coalescing: after a round that woke many streams, the next one starts no earlier
        // than `coalesce_interval` after it, so the commits published meanwhile reach each
        // stream in one write (the cost per stream write dwarfs the cost per frame).
        // The first commit of a burst also waits a little (about half a microsecond per
        // session, nothing for a few hundred): with thousands of streams a round costs far
        // more than that, and the commits that follow in the burst then share it.
        let gather = first_round_gather(hub.session_count());
        let now = tokio::time::Instant::now();
        if now < next_round {
            tokio::time::sleep_until(next_round.max(now + gather)).await;
        } else if !gather.is_zero() {
            tokio::time::sleep(gather).await;
        }
        let round_started = tokio::time::Instant::now();
        let Some(state) = state.upgrade() else {
            return;
        };
        let batch = match subscription.try_next_batch(DISPATCH_BATCH_COMMITS) {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(error = %err, "realtime: reading commits failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if batch.is_empty() {
            if subscription.is_closed() {
                return;
            }
            continue;
        }
        if let (Some(cluster), Some(last)) = (state.cluster.get(), batch.last()) {
            // A `sync` cluster leader delivers only what the cluster acknowledged.
            cluster.wait_visible(last.seq).await;
        }
        // Runs of commits that end before each commit touching collections: the schema
        // follows such a commit before it is rendered, as when commits are dispatched one by
        // one.
        let mut start = 0;
        let mut woken = 0;
        for end in 1..=batch.len() {
            if end == batch.len() || touches_collections(&batch[end]) {
                woken += hub.dispatch(&state, &batch[start..end]).await;
                start = end;
            }
        }
        next_round = round_started + coalesce_interval(woken);
    }
}

/// Waits until the session's queue has room again, or it left catch-up mode (then false).
async fn wait_for_room(session: &Arc<Session>) -> bool {
    loop {
        let notified = session.writable.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if session.has_room() {
            return true;
        }
        let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
        if session.inner.lock().await.mode != Mode::CatchUp {
            return false;
        }
    }
}

/// Reads the log from the session's cursor and renders it until the dispatcher takes over.
async fn catch_up(state: Arc<AppState>, session: Arc<Session>) {
    let stop = |mut inner: tokio::sync::MutexGuard<'_, SessionInner>| {
        inner.catch_up_running = false;
    };
    loop {
        if !wait_for_room(&session).await {
            let inner = session.inner.lock().await;
            if inner.mode != Mode::CatchUp {
                return stop(inner);
            }
            continue;
        }
        let cursor = {
            let inner = session.inner.lock().await;
            if inner.mode != Mode::CatchUp {
                return stop(inner);
            }
            inner.cursor
        };
        let published = state.engine.published_seq();
        // A `sync` cluster leader delivers only what the cluster acknowledged.
        let published = state
            .cluster
            .get()
            .map_or(published, |cluster| cluster.visible_seq(published));
        if cursor > published {
            // The dispatcher renders `cursor` as soon as it is published.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let limit = CATCH_UP_BATCH_COMMITS.min((published - cursor + 1) as usize);
        // Recent commits come from the engine's memory (shared, no I/O); older ones from the
        // log on a blocking thread.
        let read = match state.engine.recent_commits(cursor, limit) {
            Some(commits) if !commits.is_empty() => Ok(Ok(commits)),
            _ => {
                let reader_state = Arc::clone(&state);
                tokio::task::spawn_blocking(move || {
                    reader_state
                        .engine
                        .log()
                        .read_from(cursor, limit)
                        .map(|commits| commits.into_iter().map(Arc::new).collect())
                })
                .await
            }
        };
        let commits: Vec<Arc<Commit>> = match read {
            Ok(Ok(commits)) => commits,
            Ok(Err(engine::Error::SeqUnavailable { .. })) => {
                let mut inner = session.inner.lock().await;
                if inner.mode != Mode::CatchUp {
                    return stop(inner);
                }
                if inner.cursor == cursor {
                    let frame = sse::reset_frame(
                        &session.id,
                        "position_compacted",
                        "Events after the delivered position are no longer in the log; reload your data.",
                        published,
                    );
                    if session.try_push(vec![sse::Frame::Raw(frame)]) {
                        inner.cursor = published + 1;
                        inner.skip = None;
                    }
                }
                continue;
            }
            Ok(Err(err)) => {
                tracing::error!(error = %err, "realtime: catch-up read failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(err) => {
                tracing::error!(error = %err, "realtime: catch-up reader failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        'commits: for commit in commits.iter().filter(|c| c.seq <= published) {
            loop {
                // Lock order: a commit's encode cache before a session's state, as the
                // dispatcher does (it holds a round's caches while it locks each session).
                let schema = state.schema();
                let prepared = state.realtime.prepared(&schema, commit);
                let mut cache = prepared.cache().await;
                let mut inner = session.inner.lock().await;
                if inner.mode != Mode::CatchUp {
                    return stop(inner);
                }
                if inner.cursor != commit.seq {
                    break 'commits;
                }
                let frames = if prepared.events.is_empty() {
                    Some(Vec::new())
                } else {
                    render::render(
                        &state,
                        &schema,
                        &inner,
                        commit.seq,
                        &prepared.events,
                        &mut cache,
                    )
                    .await
                };
                drop(cache);
                let Some(frames) = frames else {
                    // Held until the owner proves itself; the cursor keeps the backlog.
                    inner.mode = Mode::Held;
                    return stop(inner);
                };
                if session.try_push(frames) {
                    inner.cursor = commit.seq + 1;
                    inner.skip = None;
                    break;
                }
                drop(inner);
                if !wait_for_room(&session).await {
                    let inner = session.inner.lock().await;
                    if inner.mode != Mode::CatchUp {
                        return stop(inner);
                    }
                }
            }
        }
    }
}

async fn sweep_loop(hub: Weak<Hub>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        hub.sweep();
    }
}

async fn persist_loop(hub: Weak<Hub>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        if hub.shutting_down.load(Ordering::Acquire) {
            return;
        }
        if hub.dirty.load(Ordering::Acquire) {
            hub.persist().await;
        }
    }
}
