//! Request logs (PocketBase's `_logs`): a middleware records every `/api/` request and every
//! request of a JS hook's custom route, a background thread writes them in batches to
//! `pb_data/auxiliary.db`. An error a hook threw is the entry's `data.error`, with its file
//! and line (`hooks::events`).
//!
//! 1. Never on the request path: the middleware only builds a small entry and `try_send`s it on
//!    a bounded channel ([`QUEUE_CAPACITY`]); when the queue is full the entry is dropped and
//!    counted ([`RequestLogs::dropped`]), the request never waits.
//! 2. The writer thread starts with the first entry (a process that serves nothing, such as the
//!    `superuser` CLI, creates no file), drains up to [`BATCH_MAX`] entries per transaction and
//!    ends when the server's state is dropped.
//! 3. Settings (`settings.logs`): `maxDays` 0 turns request logging off, otherwise older rows
//!    are deleted (checked at most once a minute); `minLevel` drops entries below it; `logIP`
//!    keeps or blanks the IPs; `logAuthId` adds `data.authId`. `remoteIP` is the socket peer,
//!    `userIP` the real client IP behind the trusted proxy (`settings.trustedProxy`).
//! 4. The caller's auth (`data.auth` = collection name) is resolved in the writer thread from the
//!    `Authorization` token, fully verified (signature, tokenKey, expiry) — a forged token is
//!    logged as a guest.
//! 5. Not event-sourced: `auxiliary.db` is a plain SQLite file outside the log; losing it loses
//!    only diagnostics. So it is written without fsync (`synchronous = OFF`: a power loss may
//!    lose the last entries, never the data), and the writer lingers up to [`LINGER`] after an
//!    entry to gather a batch, so logs cost one small transaction per batch rather than per
//!    request (issue #21: the request-log thread was 40% of a signed-in view's CPU).
//! 6. The caller of a logged request is looked up in the verified-caller cache
//!    (`auth_cache.rs`) first; a token is verified again only when it is not cached.
//! 7. A request costs the writer no wake-up: after the first entry of a batch the writer sleeps
//!    [`LINGER`] and then drains the queue, so senders only ever wake an idle writer. Row ids
//!    are time-ordered ([`log_id`]: 15 chars `[a-z0-9]`, like PocketBase's, the creation time in
//!    base 36 then random), so inserts append to the id index instead of landing at random pages.

use crate::auth::token;
use crate::model::record::format_ms;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The file next to `data.db`.
pub const AUXILIARY_DB: &str = "auxiliary.db";
/// Entries waiting for the writer before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 16 * 1024;
/// Most entries written in one transaction.
pub const BATCH_MAX: usize = 4096;
/// How long the writer sleeps after the first entry of a batch before draining the queue.
pub const LINGER: Duration = Duration::from_millis(100);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Levels as PocketBase (slog): debug -4, info 0, warn 4, error 8.
pub const LEVEL_INFO: i64 = 0;
/// Error level (responses with status >= 400).
pub const LEVEL_ERROR: i64 = 8;

/// One log row before it is written.
#[derive(Debug)]
pub struct Entry {
    /// Row id.
    pub id: String,
    /// Milliseconds since the epoch.
    pub created_ms: i64,
    /// Level.
    pub level: i64,
    /// `METHOD url`.
    pub message: String,
    /// The `data` object (without `auth`, filled in by the writer).
    pub data: Map<String, Value>,
    /// The raw `Authorization` token, resolved by the writer.
    pub token: Option<String>,
    /// Add `data.authId`.
    pub log_auth_id: bool,
    /// `settings.logs.maxDays` when the entry was made.
    pub max_days: i64,
}

/// The request-log queue and its writer thread.
pub struct RequestLogs {
    path: PathBuf,
    sender: OnceLock<SyncSender<Entry>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for RequestLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLogs")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RequestLogs {
    /// Logs of the data dir `dir` (nothing is opened yet).
    pub fn new(dir: &Path) -> RequestLogs {
        RequestLogs {
            path: dir.join(AUXILIARY_DB),
            sender: OnceLock::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// The `auxiliary.db` path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries dropped because the queue was full (or the writer had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `entry` without waiting; drops it when the queue is full.
    pub fn push(&self, state: &Arc<AppState>, entry: Entry) {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
            let weak = Arc::downgrade(state);
            let path = self.path.clone();
            let spawned = std::thread::Builder::new()
                .name("pocketlog-request-logs".into())
                .spawn(move || writer(&path, &weak, &receiver));
            if let Err(err) = spawned {
                tracing::warn!(error = %err, "cannot start the request log writer");
            }
            sender
        });
        match sender.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let before = self.dropped.fetch_add(1, Ordering::Relaxed);
                if before.is_power_of_two() || before == 0 {
                    tracing::warn!(
                        dropped = before + 1,
                        "request log queue full: entries dropped"
                    );
                }
            }
        }
    }
}

/// Opens (creating) `auxiliary.db` with the `_logs` table.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = OFF;
         CREATE TABLE IF NOT EXISTS _logs (
             id TEXT PRIMARY KEY NOT NULL,
             level INTEGER DEFAULT 0 NOT NULL,
             message TEXT DEFAULT '' NOT NULL,
             data JSON DEFAULT '{}' NOT NULL,
             created TEXT DEFAULT '' NOT NULL
         );
         CREATE INDEX IF NOT EXISTS idx_logs_level ON _logs (level);
         CREATE INDEX IF NOT EXISTS idx_logs_message ON _logs (message);
         CREATE INDEX IF NOT EXISTS idx_logs_created_hour ON _logs (strftime('%Y-%m-%d %H:00:00', created));
         CREATE INDEX IF NOT EXISTS idx_logs_created ON _logs (created);",
    )?;
    Ok(conn)
}

/// Deletes rows older than `max_days` days before `now_ms`; returns how many.
pub fn prune(conn: &Connection, max_days: i64, now_ms: i64) -> rusqlite::Result<usize> {
    let cutoff = format_ms(now_ms.saturating_sub(max_days.saturating_mul(86_400_000)));
    conn.execute("DELETE FROM _logs WHERE created < ?1", [cutoff])
}

/// Inserts `entries` in one transaction.
pub fn insert(
    conn: &mut Connection,
    entries: &[(Entry, Map<String, Value>)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut statement = tx.prepare_cached(
            "INSERT OR IGNORE INTO _logs (id, level, message, data, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (entry, data) in entries {
            statement.execute(rusqlite::params![
                entry.id,
                entry.level,
                entry.message,
                serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string()),
                format_ms(entry.created_ms),
            ])?;
        }
    }
    tx.commit()
}

fn writer(path: &Path, state: &Weak<AppState>, receiver: &Receiver<Entry>) {
    let mut conn = match open(path) {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(error = %err, path = %path.display(), "cannot open the request log db; request logs are off");
            return;
        }
    };
    let mut last_prune: Option<Instant> = None;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        drain(receiver, &mut batch);
        if batch.len() < BATCH_MAX {
            // Sleep instead of waiting on the channel: a waiting receiver is woken by every
            // send, a sleeping one by none (invariant 7). A full batch goes at once, so a
            // backlog never waits a linger per batch.
            std::thread::sleep(LINGER);
            drain(receiver, &mut batch);
        }
        let max_days = batch.last().map_or(0, |entry| entry.max_days);
        let resolved: Vec<(Entry, Map<String, Value>)> = {
            let state = state.upgrade();
            // One verification per distinct token and batch (clients repeat theirs).
            let mut seen: std::collections::HashMap<String, (String, String)> =
                std::collections::HashMap::new();
            batch
                .into_iter()
                .map(|mut entry| {
                    let mut data = std::mem::take(&mut entry.data);
                    let (auth, id) = match (&state, entry.token.take()) {
                        (Some(state), Some(raw)) => seen
                            .entry(raw)
                            .or_insert_with_key(|raw| resolve_auth(state, raw))
                            .clone(),
                        _ => (String::new(), String::new()),
                    };
                    data.insert("auth".into(), json!(auth));
                    if entry.log_auth_id {
                        data.insert("authId".into(), json!(id));
                    }
                    (entry, data)
                })
                .collect()
        };
        if let Err(err) = insert(&mut conn, &resolved) {
            tracing::warn!(error = %err, entries = resolved.len(), "writing request logs failed");
        }
        if max_days > 0 && last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            match prune(&conn, max_days, chrono::Utc::now().timestamp_millis()) {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, max_days, "old request logs pruned"),
                Err(err) => tracing::warn!(error = %err, "pruning request logs failed"),
            }
        }
    }
}

/// Moves queued entries into `batch` without waiting, up to [`BATCH_MAX`].
fn drain(receiver: &Receiver<Entry>, batch: &mut Vec<Entry>) {
    while batch.len() < BATCH_MAX {
        match receiver.try_recv() {
            Ok(entry) => batch.push(entry),
            Err(_) => break,
        }
    }
}

/// (collection name, record id) of a valid auth token, or empty strings.
fn resolve_auth(state: &Arc<AppState>, raw: &str) -> (String, String) {
    let now = chrono::Utc::now().timestamp();
    if let Some(auth) = state.auth_cache.get(raw, now) {
        return (auth.collection.name.clone(), auth.id().to_string());
    }
    let verified = || -> Option<(String, String)> {
        let claims = token::decode_unverified(raw)?;
        if claims.token_type != token::TokenType::Auth {
            return None;
        }
        let schema = state.schema();
        let collection = schema.find(&claims.collection_id)?;
        if !collection.is_auth() {
            return None;
        }
        let sql = format!(
            "SELECT tokenKey FROM {} WHERE id = ?1",
            engine::quote_ident(&collection.name)
        );
        let id = claims.id.clone();
        let rows = state
            .engine
            .read(|conn| conn.query(&sql, &[engine::Value::Text(id)]))
            .ok()?;
        let token_key = rows.rows.first()?.first()?.as_str()?.to_string();
        let key = token::signing_key(&token_key, &collection.token_secret("authToken"));
        token::verify_as(raw, &key, now, token::TokenType::Auth).ok()?;
        Some((collection.name.clone(), claims.id))
    };
    verified().unwrap_or_default()
}

/// Digits of a log id's time prefix: 36^9 ms reach beyond the year 5000.
const LOG_ID_TIME_DIGITS: usize = 9;

/// A log row id: 15 chars `[a-z0-9]` (PocketBase's id alphabet and length), the creation time
/// `now_ms` in base 36 first, so ids sort by time and inserts append to the index; random after.
pub fn log_id(now_ms: i64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut time = [b'0'; LOG_ID_TIME_DIGITS];
    let mut rest = u64::try_from(now_ms).unwrap_or(0);
    for slot in time.iter_mut().rev() {
        *slot = DIGITS[(rest % 36) as usize];
        rest /= 36;
    }
    let mut id: String = time.iter().map(|&b| char::from(b)).collect();
    let random = token::new_record_id();
    id.push_str(&random[..token::RECORD_ID_LEN - LOG_ID_TIME_DIGITS]);
    id
}

/// `settings.logs` as the middleware needs it.
struct LogConfig {
    max_days: i64,
    min_level: i64,
    log_ip: bool,
    log_auth_id: bool,
}

impl LogConfig {
    /// None when request logging is off (`maxDays` 0).
    fn of(settings: &Value) -> Option<LogConfig> {
        let logs = settings.get("logs");
        let setting = |key: &str| logs.and_then(|logs| logs.get(key));
        let config = LogConfig {
            max_days: setting("maxDays").and_then(Value::as_i64).unwrap_or(5),
            min_level: setting("minLevel").and_then(Value::as_i64).unwrap_or(0),
            log_ip: setting("logIP").and_then(Value::as_bool).unwrap_or(true),
            log_auth_id: setting("logAuthId")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        (config.max_days > 0).then_some(config)
    }
}

/// The middleware: times the request and queues its log entry after the response head.
pub async fn middleware(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with(crate::routes::API_PREFIX)
        && !crate::hooks::routes::is_custom(&state, request.method().as_str(), request.uri().path())
    {
        return next.run(request).await;
    }
    let Some(config) = LogConfig::of(&state.settings()) else {
        return next.run(request).await;
    };
    let method = request.method().to_string();
    let url = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let (user_agent, referer, token) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let token = token::token_from_authorization(&header("authorization")).map(str::to_string);
        (header("user-agent"), header("referer"), token)
    };
    // `remoteIP` is the socket peer, `userIP` the real IP behind the trusted proxy.
    let (remote_ip, user_ip) = if config.log_ip {
        let ip = crate::ratelimit::client_ip_of(&state, request.headers(), request.extensions());
        (ip.remote, ip.real)
    } else {
        (String::new(), String::new())
    };
    let started = Instant::now();
    let (response, hook_error) = crate::hooks::events::with_error_slot(next.run(request)).await;
    let exec_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    let level = if status >= 400 {
        LEVEL_ERROR
    } else {
        LEVEL_INFO
    };
    if level < config.min_level {
        return response;
    }
    let mut data = Map::new();
    data.insert("type".into(), json!("request"));
    data.insert("method".into(), json!(method));
    data.insert("url".into(), json!(url));
    data.insert("status".into(), json!(status));
    data.insert("execTime".into(), json!(exec_ms));
    data.insert("remoteIP".into(), json!(remote_ip));
    data.insert("userIP".into(), json!(user_ip));
    data.insert("userAgent".into(), json!(user_agent));
    data.insert("referer".into(), json!(referer));
    if level >= LEVEL_ERROR {
        let reason = response.status().canonical_reason().unwrap_or("");
        // A hook's error names its file and line (`Error: boom at main.pb.js:3:9`).
        data.insert(
            "error".into(),
            json!(hook_error.as_deref().unwrap_or(reason)),
        );
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    state.logs.push(
        &state,
        Entry {
            id: log_id(now_ms),
            created_ms: now_ms,
            level,
            message: format!("{method} {url}"),
            data,
            token,
            log_auth_id: config.log_auth_id,
            max_days: config.max_days,
        },
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_have_pocketbase_shape_and_sort_by_time() {
        let times = [
            0_i64,
            1,
            35,
            36,
            1_700_000_000_000,
            1_700_000_000_001,
            4_000_000_000_000,
        ];
        let ids: Vec<String> = times.iter().map(|&ms| log_id(ms)).collect();
        for id in &ids {
            assert_eq!(id.len(), token::RECORD_ID_LEN, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
                "{id}"
            );
        }
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        assert_eq!(&log_id(36)[..LOG_ID_TIME_DIGITS], "000000010");
        // Two ids of the same millisecond differ (random suffix).
        assert_ne!(log_id(5), log_id(5));
    }
}
