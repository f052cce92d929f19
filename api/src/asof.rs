//! Time-travel reads: `GET …/records?asOf=<position|RFC3339>` and `GET …/records/{id}?asOf=…`
//! answer from the state at that point of the log, under today's schema and rules.
//!
//! How: the point resolves to a log position (`engine::admin::resolve_target`: a seq, or the
//! last commit at or before a time); the projection at that position is materialised into a
//! private temporary directory (`engine::admin::build_projection_at`: the nearest snapshot
//! plus a replay, as a point-in-time restore builds it) and the request's reads are served
//! from that file: [`scope`] sets a task-local that `AppState::read` (and `read_short`)
//! honour, so the records service (rules, filter, sort, expand, visibility) runs unchanged.
//!
//! Invariants:
//! 1. A materialised state is built at most once per position at a time, even under
//!    concurrent requests (one `OnceCell` per position; a failed build leaves it empty so
//!    the next request retries).
//! 2. The cache is bounded: at most [`ASOF_CACHE_ENTRIES`] states and [`ASOF_CACHE_BYTES`]
//!    bytes of materialised files; the least recently used go first. An evicted state's file
//!    is removed when the last request reading it ends (`Drop` of [`Materialized`]).
//! 3. A position beyond the head of the log, before the retained log, or a value that is
//!    neither a position nor an RFC 3339 time is a 400 with the reason; a state that today's
//!    schema cannot read (a collection or field created since) is a 400 too, never a 500.
//! 4. Nothing here writes the data dir: materialised files live in a temporary directory
//!    (mode 0700) that is removed when the server stops.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use engine::Seq;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The query parameter of a time-travel read.
pub const ASOF_PARAM: &str = "asOf";
/// Most materialised states kept.
pub const ASOF_CACHE_ENTRIES: usize = 8;
/// Most bytes of materialised state files kept (a state larger than this is still served,
/// then evicted as soon as another is built).
pub const ASOF_CACHE_BYTES: u64 = 1 << 30;
/// Idle read connections kept per materialised state.
pub const ASOF_IDLE_CONNECTIONS: usize = 4;

tokio::task_local! {
    static READ_AT: Arc<Materialized>;
}

/// The projection at one log position, materialised into a file.
pub struct Materialized {
    /// The position (every commit up to it, none after it).
    pub seq: Seq,
    path: PathBuf,
    bytes: u64,
    idle: Mutex<Vec<engine::admin::Projection>>,
}

impl Materialized {
    /// Runs `f` on a read connection over the materialised state (blocking).
    fn read<T>(
        &self,
        f: impl FnOnce(&engine::ReadConn<'_>) -> engine::Result<T>,
    ) -> engine::Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let projection = match pooled {
            Some(projection) => projection,
            None => engine::admin::Projection::open_for_reads(&self.path)?,
        };
        let result = projection.read(f);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < ASOF_IDLE_CONNECTIONS {
                idle.push(projection);
            }
        }
        result
    }
}

impl Drop for Materialized {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %err, "could not remove a materialised state");
        }
    }
}

type Cell = Arc<tokio::sync::OnceCell<Arc<Materialized>>>;

#[derive(Default)]
struct Entries {
    /// Position → its state (being built or built) and when it was last used.
    slots: HashMap<Seq, (Cell, u64)>,
    tick: u64,
}

/// The bounded cache of materialised past states (one per server).
#[derive(Default)]
pub struct AsOfCache {
    dir: Mutex<Option<Arc<tempfile::TempDir>>>,
    entries: Mutex<Entries>,
    builds: std::sync::atomic::AtomicU64,
}

impl AsOfCache {
    /// States built so far (a cache hit builds nothing).
    pub fn builds(&self) -> u64 {
        self.builds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// States held now.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.slots.len()).unwrap_or(0)
    }

    /// True when no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every materialised state (a redaction erased values they may hold); a state still
    /// being read is removed when its last reader ends.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.slots.clear();
        }
    }

    fn dir(&self) -> ApiResult<Arc<tempfile::TempDir>> {
        let mut dir = self
            .dir
            .lock()
            .map_err(|_| ApiError::internal("asOf cache lock"))?;
        if let Some(dir) = dir.as_ref() {
            return Ok(Arc::clone(dir));
        }
        let created = Arc::new(
            tempfile::Builder::new()
                .prefix("pocketlog-asof-")
                .tempdir()
                .map_err(ApiError::internal)?,
        );
        *dir = Some(Arc::clone(&created));
        Ok(created)
    }

    fn cell(&self, seq: Seq) -> ApiResult<Cell> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| ApiError::internal("asOf cache lock"))?;
        entries.tick += 1;
        let tick = entries.tick;
        let slot = entries
            .slots
            .entry(seq)
            .or_insert_with(|| (Cell::default(), tick));
        slot.1 = tick;
        Ok(Arc::clone(&slot.0))
    }

    /// Evicts least recently used built states (never `keep`) until the bounds hold.
    fn evict(&self, keep: Seq) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        loop {
            let built: Vec<(Seq, u64, u64)> = entries
                .slots
                .iter()
                .filter_map(|(seq, (cell, used))| {
                    cell.get().map(|state| (*seq, *used, state.bytes))
                })
                .collect();
            let bytes: u64 = built.iter().map(|(_, _, bytes)| bytes).sum();
            if entries.slots.len() <= ASOF_CACHE_ENTRIES && bytes <= ASOF_CACHE_BYTES {
                return;
            }
            let Some((oldest, _, _)) = built
                .into_iter()
                .filter(|(seq, _, _)| *seq != keep)
                .min_by_key(|(_, used, _)| *used)
            else {
                return;
            };
            entries.slots.remove(&oldest);
        }
    }

    fn forget(&self, seq: Seq) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries
                .slots
                .get(&seq)
                .is_some_and(|(cell, _)| cell.get().is_none())
            {
                entries.slots.remove(&seq);
            }
        }
    }
}

/// Resolves a request's `asOf` value (`None` when absent) and materialises that state (or
/// takes it from the cache).
pub async fn requested(
    state: &Arc<AppState>,
    query: &crate::request::Query,
) -> ApiResult<Option<Arc<Materialized>>> {
    let Some(text) = query.get(ASOF_PARAM) else {
        return Ok(None);
    };
    let at: engine::admin::At = text
        .parse()
        .map_err(|err: engine::Error| invalid(&err.to_string()))?;
    let reader = state.engine.log().clone();
    let seq = tokio::task::spawn_blocking(move || engine::admin::resolve_target(&reader, at))
        .await
        .map_err(ApiError::internal)?
        .map_err(|err| invalid(&err.to_string()))?;
    materialize(state, seq).await.map(Some)
}

fn invalid(reason: &str) -> ApiError {
    ApiError::bad_request(&format!("Invalid asOf value: {reason}."))
}

/// The state at `seq`, built once and cached.
pub async fn materialize(state: &Arc<AppState>, seq: Seq) -> ApiResult<Arc<Materialized>> {
    let cache = &state.asof;
    let cell = cache.cell(seq)?;
    let built = cell
        .get_or_try_init(|| async {
            let dir = cache.dir()?;
            let reader = state.engine.log().clone();
            let snapshots = engine::admin::snapshots_dir(state.engine.dir());
            let path = dir.path().join(format!(
                "asof-{seq:016x}-{}.db",
                crate::auth::token::new_record_id()
            ));
            let started = std::time::Instant::now();
            let out = path.clone();
            let report = tokio::task::spawn_blocking(move || {
                engine::admin::build_projection_at(&reader, &snapshots, seq, &out, |_| {})
            })
            .await
            .map_err(ApiError::internal)?;
            let report = match report {
                Ok(report) => report,
                Err(err) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(invalid(&err.to_string()));
                }
            };
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            cache
                .builds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                seq,
                base = report.base_seq,
                replayed = report.replayed,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "materialised a past state for asOf reads"
            );
            Ok::<_, ApiError>(Arc::new(Materialized {
                seq,
                path,
                bytes,
                idle: Mutex::new(Vec::new()),
            }))
        })
        .await;
    match built {
        Ok(materialized) => {
            let materialized = Arc::clone(materialized);
            cache.evict(seq);
            Ok(materialized)
        }
        Err(err) => {
            cache.forget(seq);
            Err(err)
        }
    }
}

/// Runs `future` with its reads served from `at` (when given).
pub async fn scope<F: std::future::Future>(at: Option<Arc<Materialized>>, future: F) -> F::Output {
    match at {
        Some(at) => READ_AT.scope(at, future).await,
        None => future.await,
    }
}

/// The materialised state the current task reads from, if any.
pub fn current() -> Option<Arc<Materialized>> {
    READ_AT.try_with(Arc::clone).ok()
}

/// `AppState::read` inside a [`scope`]: runs `f` over the materialised state off the async
/// runtime (with the server's query timeout).
pub async fn read<T, F>(
    timeout: Option<std::time::Duration>,
    at: Arc<Materialized>,
    f: F,
) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&engine::ReadConn<'_>) -> engine::Result<T> + Send + 'static,
{
    let seq = at.seq;
    tokio::task::spawn_blocking(move || match timeout {
        Some(timeout) => at.read(|conn| conn.within(timeout, f)),
        None => at.read(f),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|err| match err {
        engine::Error::Sqlite(reason) => ApiError::bad_request(&format!(
            "The state at position {seq} cannot be read with today's schema ({reason})."
        )),
        other => ApiError::from(other),
    })
}
