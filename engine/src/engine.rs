//! The engine handle: open a data dir, submit commands to the writer, read, subscribe.
//!
//! 1. One process owns a data dir (an OS lock on `.lock`).
//! 2. On open the log is recovered first, then the projection is brought level with it
//!    (caught up, or rebuilt when it is ahead of the log).
//! 3. The engine is synchronous and runtime-free: replies are callbacks, async readiness is a
//!    `Waker`.

use crate::commit::{Actor, Commit, Seq};
use crate::error::{Error, Result};
use crate::log::{Log, LogReader, RecoveryReport, SEGMENT_BYTES_MAX_DEFAULT};
use crate::projection::{self, Catalog};
use crate::storage::{FsStorage, Storage};
use crate::subscribe::{Hub, Subscription, HUB_RING_COMMITS_DEFAULT};
use crate::value::{Rows, Value};
use crate::writer::{Job, JobOutcome, Message, Tx, Writer};
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Name of the projection database inside the data dir.
pub const DATA_DB: &str = "data.db";
/// Name of the log directory inside the data dir.
pub const LOG_DIR: &str = "log";
/// Name of the lock file inside the data dir.
pub const LOCK_FILE: &str = ".lock";
/// Bytes of the projection a read connection maps into memory.
const READ_MMAP_BYTES: i64 = 1 << 30;
/// Commits applied per SQLite transaction during replay.
pub(crate) const REPLAY_BATCH_COMMITS: usize = 4096;

/// When appended frames are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fsync before any write is acknowledged (durable; the default).
    #[default]
    Always,
    /// Never fsync (tests, bulk loads): a power loss can lose acknowledged writes.
    None,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "always" => Ok(SyncPolicy::Always),
            "none" => Ok(SyncPolicy::None),
            other => Err(format!(
                "unknown sync policy {other:?} (use always or none)"
            )),
        }
    }
}

/// Engine settings.
#[derive(Clone)]
pub struct EngineConfig {
    /// fsync policy.
    pub sync: SyncPolicy,
    /// Jobs the writer queue holds before submitters get [`Error::Overloaded`].
    pub queue_capacity: usize,
    /// Most jobs in one group commit.
    pub group_max: usize,
    /// Segment size at which the log rolls to a new segment.
    pub segment_bytes_max: u64,
    /// Read-only SQLite connections kept for readers.
    pub read_pool_size: usize,
    /// Recent commits kept in memory for subscribers.
    pub hub_ring_commits: usize,
    /// The I/O seam for the log.
    pub storage: Arc<dyn Storage>,
    /// Wall clock in ms since the epoch (replaceable in tests).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Cut a snapshot in the background once this many commits were made since the last one
    /// (None: not by count).
    pub snapshot_every_commits: Option<u64>,
    /// Cut a snapshot in the background when this much time passed since the last one and
    /// there are new commits (None: not by time).
    pub snapshot_every_ms: Option<u64>,
    /// Time budget (ms) of the projection's integrity check (`PRAGMA quick_check`) at open;
    /// a check that does not finish in time is abandoned (the scrub covers it). 0: no check.
    pub integrity_check_ms: u64,
    /// Background scrub: every this many ms, check the projection's pages and compare its
    /// content with a replay of the log, rebuilding it on a mismatch. None: no scrub.
    pub scrub_every_ms: Option<u64>,
}

/// Default [`EngineConfig::integrity_check_ms`].
pub(crate) const INTEGRITY_CHECK_MS_DEFAULT: u64 = 2_000;
/// Default [`EngineConfig::scrub_every_ms`]: every 6 hours.
pub(crate) const SCRUB_EVERY_MS_DEFAULT: u64 = 6 * 60 * 60 * 1000;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            sync: SyncPolicy::Always,
            queue_capacity: 8192,
            group_max: 1024,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            read_pool_size: 8,
            hub_ring_commits: HUB_RING_COMMITS_DEFAULT,
            storage: Arc::new(FsStorage),
            clock: Arc::new(|| chrono::Utc::now().timestamp_millis()),
            snapshot_every_commits: None,
            snapshot_every_ms: None,
            integrity_check_ms: INTEGRITY_CHECK_MS_DEFAULT,
            scrub_every_ms: Some(SCRUB_EVERY_MS_DEFAULT),
        }
    }
}

/// A one-shot reply slot for [`Engine::execute`].
struct ReplySlot<T, E> {
    value: Mutex<Option<Option<std::result::Result<T, E>>>>,
    ready: Condvar,
}

impl<T, E> Default for ReplySlot<T, E> {
    fn default() -> Self {
        ReplySlot {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }
}

impl<T, E> ReplySlot<T, E> {
    /// Blocks until filled; `None` when the reply was dropped unanswered.
    fn wait(&self) -> Option<std::result::Result<T, E>> {
        let mut guard = self.value.lock().expect("reply slot lock");
        loop {
            if let Some(result) = guard.take() {
                return result;
            }
            guard = self.ready.wait(guard).expect("reply slot lock");
        }
    }
}

/// Fills a [`ReplySlot`] once; dropping it unfilled records "no answer".
struct SlotFiller<T, E>(Option<Arc<ReplySlot<T, E>>>);

impl<T, E> SlotFiller<T, E> {
    fn set(&mut self, result: Option<std::result::Result<T, E>>) {
        if let Some(slot) = self.0.take() {
            *slot.value.lock().expect("reply slot lock") = Some(result);
            slot.ready.notify_one();
        }
    }

    fn fill(&mut self, result: std::result::Result<T, E>) {
        self.set(Some(result));
    }
}

impl<T, E> Drop for SlotFiller<T, E> {
    fn drop(&mut self) {
        self.set(None);
    }
}

/// Sets a 0/1 gauge for the duration of a maintenance run.
struct RunningGauge<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> RunningGauge<'a> {
    fn start(gauge: &'a std::sync::atomic::AtomicU64) -> Self {
        gauge.store(1, std::sync::atomic::Ordering::Relaxed);
        RunningGauge(gauge)
    }
}

impl Drop for RunningGauge<'_> {
    fn drop(&mut self) {
        self.0.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads a collection's definition from the projection.
type ReadDef = dyn Fn(&str) -> Result<Option<crate::commit::CollectionDef>>;

/// The engine's closures a redaction uses (see [`Engine::redact`]).
struct RedactParts {
    purge: Box<dyn Fn() -> Result<()>>,
    read_def: Box<ReadDef>,
}

impl RedactParts {
    fn context<'a>(&'a self, engine: &'a Engine) -> crate::redact::RedactContext<'a> {
        crate::redact::RedactContext {
            dir: &engine.inner.dir,
            reader: &engine.inner.log_reader,
            storage: engine.inner.storage.as_ref(),
            hub: &engine.inner.hub,
            purge: &*self.purge,
            read_def: &*self.read_def,
        }
    }
}

/// A successful command: its value and, when it staged changes, its durable commit.
#[derive(Debug)]
pub struct Outcome<T> {
    /// What the command returned.
    pub value: T,
    /// The commit (None when the command staged nothing).
    pub commit: Option<Arc<Commit>>,
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure<E> {
    /// The command itself returned an error (its changes were rolled back).
    Command(E),
    /// The engine failed (I/O, poisoned, overloaded, closed).
    Engine(Error),
}

/// A read-only connection lent by the pool.
pub struct ReadConn<'a> {
    conn: &'a Connection,
}

impl<'a> ReadConn<'a> {
    /// A read connection over `conn` (a pooled one, or a read-only projection copy).
    pub(crate) fn over(conn: &'a Connection) -> ReadConn<'a> {
        ReadConn { conn }
    }

    /// Runs a query with bound values.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        projection::query(self.conn, sql, params)
    }

    /// Runs a query that counts its matching rows in the same scan (see
    /// [`projection::query_counted`]): the rows, and the count when it is exact (`plain`,
    /// the query without the counter, runs when it would not be).
    pub fn query_counted(
        &self,
        sql: &str,
        plain: &str,
        params: &[Value],
    ) -> Result<(Rows, Option<i64>)> {
        projection::query_counted(self.conn, sql, plain, params)
    }

    /// Runs `f` inside one read transaction and returns the log position the projection was
    /// at for it (`_meta.last_seq`): every commit up to that seq, and none after it, is
    /// visible to `f`'s queries ("snapshot, then stream").
    pub fn at_position<T>(&self, f: impl FnOnce(&ReadConn<'_>) -> Result<T>) -> Result<(Seq, T)> {
        self.conn.execute_batch("BEGIN")?;
        let result = match projection::last_applied(self.conn) {
            Ok(seq) => f(self).map(|value| (seq, value)),
            Err(err) => Err(err),
        };
        // A read transaction has nothing to keep: end it whatever happened.
        let ended = self.conn.execute_batch("COMMIT");
        let value = result?;
        ended?;
        Ok(value)
    }

    /// The canonical dump of the whole projection (see [`projection::dump`]), for comparing
    /// it with a fresh replay.
    pub fn dump(&self) -> Result<Vec<String>> {
        projection::dump(self.conn)
    }

    /// Runs `f` on this connection with a deadline: SQLite stops a statement still running
    /// after `timeout` (checked every [`PROGRESS_OPS`] VM steps), and the read fails with
    /// [`Error::QueryTimeout`].
    pub fn within<T>(
        &self,
        timeout: std::time::Duration,
        f: impl FnOnce(&ReadConn<'_>) -> Result<T>,
    ) -> Result<T> {
        let deadline = std::time::Instant::now() + timeout;
        let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&expired);
        self.conn.progress_handler(
            PROGRESS_OPS,
            Some(move || {
                let over = std::time::Instant::now() >= deadline;
                if over {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                over
            }),
        );
        let result = f(self);
        self.conn
            .progress_handler(PROGRESS_OPS, None::<fn() -> bool>);
        match result {
            Err(_) if expired.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(Error::QueryTimeout(timeout))
            }
            other => other,
        }
    }

    /// Runs one ad-hoc statement for a console: `Ok(None)` (nothing ran) when SQLite does not
    /// report it read-only; otherwise its columns with their declared types and at most
    /// `max_rows` rows (`truncated` says whether there were more). More than one statement
    /// is an [`Error::Sqlite`].
    pub fn console(&self, sql: &str, max_rows: usize) -> Result<Option<Console>> {
        let mut statement = self.conn.prepare(sql)?;
        if !statement.readonly() {
            return Ok(None);
        }
        let columns: Vec<(String, String)> = statement
            .columns()
            .iter()
            .map(|column| {
                (
                    column.name().to_string(),
                    column.decl_type().unwrap_or("").to_string(),
                )
            })
            .collect();
        let width = columns.len();
        let mut rows = statement.query([])?;
        let mut out = Vec::new();
        let mut truncated = false;
        while let Some(row) = rows.next()? {
            if out.len() == max_rows {
                truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(width);
            for index in 0..width {
                values.push(Value::from_ref(row.get_ref(index)?));
            }
            out.push(values);
        }
        Ok(Some(Console {
            columns,
            rows: out,
            truncated,
        }))
    }
}

/// VM steps between two deadline checks of [`ReadConn::within`].
pub const PROGRESS_OPS: i32 = 1000;

/// The answer of [`ReadConn::console`].
#[derive(Debug, Clone, PartialEq)]
pub struct Console {
    /// Column names and declared types (empty for expressions).
    pub columns: Vec<(String, String)>,
    /// The rows, at most the cap.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows beyond the cap were left out.
    pub truncated: bool,
}

struct ReadPool {
    path: PathBuf,
    /// Idle connections with the projection generation they were opened on, and the number
    /// of connections open.
    idle: Mutex<(Vec<(u64, Connection)>, usize)>,
    available: Condvar,
    max: usize,
    /// Bumped by the writer when it replaces the projection file: older connections are
    /// dropped instead of reused.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl ReadPool {
    fn open_conn(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "query_only", "ON")?;
        // Reads of large tables go through the OS page cache (shared, not heap) instead of
        // SQLite's small default cache.
        conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        projection::register_functions(&conn)?;
        projection::register_row_counter(&conn)?;
        // Room for the list queries' plans (EXPLAIN QUERY PLAN) next to the queries.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn current(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn with<T>(&self, f: impl FnOnce(&ReadConn<'_>) -> Result<T>) -> Result<T> {
        let current = self.current();
        let conn = {
            let mut guard = self.idle.lock().expect("pool lock");
            loop {
                if let Some((generation, conn)) = guard.0.pop() {
                    if generation == current {
                        break Some(conn);
                    }
                    // Opened on a replaced projection file: open a new one in its place.
                    drop(conn);
                    break None;
                }
                if guard.1 < self.max {
                    guard.1 += 1;
                    break None;
                }
                guard = self.available.wait(guard).expect("pool lock");
            }
        };
        let conn = match conn {
            Some(conn) => conn,
            None => match self.open_conn() {
                Ok(conn) => conn,
                Err(err) => {
                    self.idle.lock().expect("pool lock").1 -= 1;
                    self.available.notify_one();
                    return Err(err);
                }
            },
        };
        let result = f(&ReadConn { conn: &conn });
        self.idle.lock().expect("pool lock").0.push((current, conn));
        self.available.notify_one();
        result
    }

    /// Runs `f` on an idle connection now; `Err(f)` when none is idle (never waits, never
    /// opens one).
    fn try_with<T, F>(&self, f: F) -> std::result::Result<Result<T>, F>
    where
        F: FnOnce(&ReadConn<'_>) -> Result<T>,
    {
        let current = self.current();
        let conn = {
            let mut guard = self.idle.lock().expect("pool lock");
            match guard.0.pop() {
                Some((generation, conn)) if generation == current => conn,
                Some((_, stale)) => {
                    // A replaced projection file: give the slot back, let `with` reopen.
                    drop(stale);
                    guard.1 -= 1;
                    return Err(f);
                }
                None => return Err(f),
            }
        };
        let result = f(&ReadConn { conn: &conn });
        self.idle.lock().expect("pool lock").0.push((current, conn));
        self.available.notify_one();
        Ok(result)
    }
}

struct Inner {
    dir: PathBuf,
    sender: SyncSender<Message>,
    poisoned: Arc<Mutex<Option<String>>>,
    hub: Arc<Hub>,
    log_reader: LogReader,
    pool: ReadPool,
    metrics: Arc<crate::metrics::EngineMetrics>,
    writer: Mutex<Option<JoinHandle<()>>>,
    storage: Arc<dyn Storage>,
    /// Serializes snapshots and compactions of this data dir.
    maintenance: Mutex<()>,
    /// Stored files kept outside the data dir (an S3 bucket), swept by compaction too.
    external_files: Mutex<Option<Arc<dyn crate::files::ExternalFiles>>>,
    /// Dropping the sender stops the periodic snapshot thread.
    snapshotter: Mutex<Option<(SyncSender<()>, JoinHandle<()>)>>,
    /// Dropping the sender stops the periodic scrub thread.
    scrubber: Mutex<Option<(SyncSender<()>, JoinHandle<()>)>>,
    /// Set at shutdown: a running scrub stops between replay batches.
    scrub_stop: Arc<std::sync::atomic::AtomicBool>,
    /// Leader or follower (`replica.rs`).
    role: Arc<crate::replica::Role>,
    _lock: File,
}

/// A handle to an open data dir. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn lock_data_dir(dir: &Path) -> Result<File> {
    use fs2::FileExt;
    let path = dir.join(LOCK_FILE);
    #[expect(clippy::disallowed_methods, reason = "the lock file is not log I/O")]
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| Error::io("open lock", &path, err))?;
    file.try_lock_exclusive()
        .map_err(|_| Error::Locked(dir.to_path_buf()))?;
    Ok(file)
}

/// Opens (creating if needed) a projection database for writing: WAL mode and the bookkeeping
/// tables (`admin::Projection::open` is the public way in).
pub(crate) fn open_projection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    projection::init(&conn)?;
    Ok(conn)
}

/// Opens an existing (or new) projection and checks it: readable header, `_meta`,
/// `_collections`, and a `PRAGMA quick_check` bounded to `check_ms`. Damage is
/// [`Error::ProjectionDamaged`]; other errors (a full disk, permissions) are returned as they
/// are, so they never make the engine move a healthy file aside.
fn open_checked_projection(path: &Path, check_ms: u64) -> Result<(Connection, Seq)> {
    let existed = path.exists();
    let conn = open_projection(path)?;
    let applied = projection::last_applied(&conn)?;
    projection::load_catalog(&conn)?;
    if existed && check_ms > 0 {
        if let Some(problems) = quick_check(&conn, std::time::Duration::from_millis(check_ms))? {
            return Err(Error::ProjectionDamaged(format!(
                "integrity check: {problems}"
            )));
        }
    }
    Ok((conn, applied))
}

/// Runs `PRAGMA quick_check` within `budget`: `Some(problems)` when it finds damage, `None`
/// when the file is fine or the check ran out of time (logged).
pub(crate) fn quick_check(
    conn: &Connection,
    budget: std::time::Duration,
) -> Result<Option<String>> {
    let handle = conn.get_interrupt_handle();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let timer = std::thread::Builder::new()
        .name("pocketlog-check-timer".into())
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(budget) {
                handle.interrupt();
            }
        })
        .map_err(|err| Error::io("spawn check timer", "data.db", err))?;
    let result = (|| -> rusqlite::Result<Vec<String>> {
        let mut statement = conn.prepare("PRAGMA quick_check(20)")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect()
    })();
    drop(stop);
    let _ = timer.join();
    match result {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(None),
        Ok(rows) => Ok(Some(rows.join("; "))),
        Err(rusqlite::Error::SqliteFailure(code, _))
            if code.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            tracing::warn!(
                budget_ms = budget.as_millis() as u64,
                "the projection's integrity check did not finish in time; skipped (the \
                 background scrub checks it)"
            );
            Ok(None)
        }
        Err(err) => match Error::from(err) {
            Error::ProjectionDamaged(reason) => Ok(Some(reason)),
            other => Err(other),
        },
    }
}

/// Moves a damaged projection (and its WAL files) aside as `data.db.damaged-<ms>[-wal|-shm]`,
/// never deleting it. Returns the new path of the main file.
pub(crate) fn move_projection_aside(path: &Path, reason: &str) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().timestamp_millis();
    let mut aside = PathBuf::from(format!("{}.damaged-{stamp}", path.display()));
    let mut n = 1;
    while aside.exists() {
        aside = PathBuf::from(format!("{}.damaged-{stamp}.{n}", path.display()));
        n += 1;
    }
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
        #[expect(
            clippy::disallowed_methods,
            reason = "the projection is SQLite's, not the log's"
        )]
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("move aside", from, err)),
        }
    }
    if let Some(dir) = path.parent() {
        crate::snapshot::sync_dir(dir)?;
    }
    tracing::warn!(path = %aside.display(), reason, "kept the damaged projection for inspection");
    Ok(aside)
}

/// Undoes [`move_projection_aside`] (best effort; failures are logged).
pub(crate) fn move_projection_back(aside: &Path, path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", aside.display()));
        let to = PathBuf::from(format!("{}{suffix}", path.display()));
        #[expect(
            clippy::disallowed_methods,
            reason = "the projection is SQLite's, not the log's"
        )]
        if let Err(err) = std::fs::rename(&from, &to) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(from = %from.display(), error = %err, "could not move the projection back");
            }
        }
    }
}

/// Progress lines while the projection is caught up or rebuilt at open (at most one every
/// [`PROGRESS_EVERY`]).
struct Progress {
    started: std::time::Instant,
    last: std::time::Instant,
    rebuilding: bool,
    printed: bool,
    total: u64,
}

const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Progress {
    fn new(rebuilding: bool) -> Self {
        let now = std::time::Instant::now();
        Progress {
            started: now,
            last: now,
            rebuilding,
            printed: false,
            total: 0,
        }
    }

    fn tick(&mut self, applied: u64, seq: Seq) {
        let due = if self.printed {
            self.last.elapsed() >= PROGRESS_EVERY
        } else {
            self.rebuilding || self.started.elapsed() >= PROGRESS_EVERY
        };
        if !due {
            return;
        }
        self.printed = true;
        self.last = std::time::Instant::now();
        tracing::info!(
            commits = applied,
            seq,
            elapsed_s = self.started.elapsed().as_secs(),
            "{} the projection from the log",
            if self.rebuilding {
                "rebuilding"
            } else {
                "catching up"
            }
        );
    }

    fn add(&mut self, commits: u64) {
        self.total += commits;
        self.rebuilding = true;
        let total = self.total;
        self.tick(total, 0);
    }
}

/// Applies a catch-up batch at open (with the storage's projection-commit fault point).
fn apply_at_open(
    storage: &dyn Storage,
    conn: &Connection,
    catalog: &mut Catalog,
    commits: &[Commit],
) -> Result<Seq> {
    storage
        .before_projection_commit()
        .map_err(|err| Error::io("commit projection", DATA_DB, err))?;
    crate::writer::apply_batch(conn, catalog, commits)
}

/// Removes a projection database and its WAL files.
pub(crate) fn remove_projection(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        #[expect(
            clippy::disallowed_methods,
            reason = "the projection is SQLite's, not the log's"
        )]
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("remove", file, err)),
        }
    }
    Ok(())
}

/// Replays commits `[from, to]` from a log reader into a projection connection, reporting
/// progress as (applied, total). Returns the last applied seq.
pub(crate) fn replay_into(
    conn: &Connection,
    catalog: &mut Catalog,
    reader: &LogReader,
    from: Seq,
    to: Seq,
    mut progress: impl FnMut(u64),
) -> Result<Seq> {
    let mut next = from.max(1);
    let mut last = from.saturating_sub(1);
    while next <= to {
        let limit = ((to - next + 1) as usize).min(REPLAY_BATCH_COMMITS);
        let commits = reader.read_from(next, limit)?;
        if commits.is_empty() {
            break;
        }
        last = crate::writer::apply_batch(conn, catalog, &commits)?;
        next = last + 1;
        progress(commits.len() as u64);
    }
    Ok(last)
}

impl Engine {
    /// Opens (creating if needed) the data dir.
    pub fn open(dir: &Path, config: EngineConfig) -> Result<(Engine, RecoveryReport)> {
        config
            .storage
            .create_dir_all(dir)
            .map_err(|err| Error::io("create dir", dir, err))?;
        let lock = lock_data_dir(dir)?;
        crate::scrub::remove_scratch_files(dir);
        let db_path = dir.join(DATA_DB);
        let log_dir = dir.join(LOG_DIR);
        let snapshots_dir = crate::snapshot::snapshots_dir(dir);
        // A damaged projection (unreadable header, truncated file, failed integrity check) is
        // moved aside, never deleted, and rebuilt from the log below.
        let mut rebuilt_fresh = false;
        let (mut conn, mut applied) =
            match open_checked_projection(&db_path, config.integrity_check_ms) {
                Ok(opened) => opened,
                Err(Error::ProjectionDamaged(reason)) => {
                    let aside = move_projection_aside(&db_path, &reason)?;
                    tracing::error!(
                        reason = %reason,
                        moved_to = %aside.display(),
                        "DAMAGED PROJECTION: data.db was moved aside; rebuilding it from the log"
                    );
                    rebuilt_fresh = true;
                    let conn = open_projection(&db_path)?;
                    (conn, 0)
                }
                Err(err) => return Err(err),
            };
        // A compacted log starts at some seq F > 1: a projection older than F - 1 cannot be
        // caught up from it and is replaced by the newest snapshot the log continues.
        let log_first = crate::log::list_segments(config.storage.as_ref(), &log_dir)
            .ok()
            .and_then(|segments| segments.first().map(|(seq, _)| *seq))
            .unwrap_or(1);
        if log_first > applied + 1 {
            let snapshots = crate::snapshot::list_snapshots(&snapshots_dir)?;
            let (seq, path) = snapshots
                .iter()
                .rev()
                .find(|(seq, _)| *seq >= log_first - 1)
                .cloned()
                .ok_or_else(|| Error::SeqUnavailable {
                    seq: applied + 1,
                    reason: format!(
                        "the log starts at seq {log_first}, the projection is at seq {applied} \
                         and {} has no snapshot at or after seq {}; restore from a backup",
                        snapshots_dir.display(),
                        log_first - 1
                    ),
                })?;
            tracing::info!(
                snapshot = seq,
                projection = applied,
                "the log starts after the projection; starting from a snapshot"
            );
            drop(conn);
            remove_projection(&db_path)?;
            crate::snapshot::copy_projection(&path, &db_path)?;
            conn = open_projection(&db_path)?;
            applied = projection::last_applied(&conn)?;
        }
        let mut catalog = projection::load_catalog(&conn)?;
        // Catch the projection up while the log is scanned: one transaction per batch. A
        // failure stops the catch-up (the log scan goes on): on a full disk the engine starts
        // with the projection behind and the writer finishes the catch-up once there is space;
        // any other failure means the projection does not fit the log and it is rebuilt.
        let mut pending: Vec<Commit> = Vec::new();
        let mut replayed = 0u64;
        let mut catch_up_error: Option<Error> = None;
        let mut progress = Progress::new(rebuilt_fresh);
        let (log, mut report) = Log::open(
            Arc::clone(&config.storage),
            &log_dir,
            config.segment_bytes_max,
            |commit| {
                if commit.seq > applied && catch_up_error.is_none() {
                    pending.push(commit.clone());
                    if pending.len() >= REPLAY_BATCH_COMMITS {
                        match apply_at_open(config.storage.as_ref(), &conn, &mut catalog, &pending)
                        {
                            Ok(_) => {
                                replayed += pending.len() as u64;
                                progress.tick(replayed, commit.seq);
                            }
                            Err(err) => catch_up_error = Some(err),
                        }
                        pending.clear();
                    }
                }
                Ok(())
            },
        )?;
        if !pending.is_empty() && catch_up_error.is_none() {
            match apply_at_open(config.storage.as_ref(), &conn, &mut catalog, &pending) {
                Ok(_) => replayed += pending.len() as u64,
                Err(err) => catch_up_error = Some(err),
            }
        }
        drop(pending);
        report.replayed = replayed;
        let shared = log.shared();
        let log_reader = LogReader::new(Arc::clone(&config.storage), Arc::clone(&shared));
        let log_last = log.next_seq() - 1;
        let mut behind = false;
        match catch_up_error {
            None => {}
            Some(err) if err.is_storage_full() => {
                tracing::error!(
                    error = %err,
                    projection = projection::last_applied(&conn).unwrap_or(0),
                    log = log_last,
                    "the disk is full: starting with the projection behind the log; reads \
                     serve the last projected state and writes resume once there is space"
                );
                catalog = projection::load_catalog(&conn)?;
                behind = true;
            }
            // The projection does not fit the log (damaged, or changes that cannot apply to
            // it): rebuild. I/O errors and the like are returned as they are.
            Some(err)
                if !rebuilt_fresh
                    && matches!(
                        err,
                        Error::ProjectionDamaged(_)
                            | Error::InvalidChange(_)
                            | Error::Constraint(_)
                            | Error::Sqlite(_)
                    ) =>
            {
                let reason = format!("catching it up with the log failed: {err}");
                drop(conn);
                let aside = move_projection_aside(&db_path, &reason)?;
                tracing::error!(
                    reason = %reason,
                    moved_to = %aside.display(),
                    "DAMAGED PROJECTION: data.db was moved aside; rebuilding it from the log"
                );
                let built = crate::snapshot::build_projection_at(
                    &log_reader,
                    &snapshots_dir,
                    log_last,
                    &db_path,
                    |n| progress.add(n),
                )?;
                conn = open_projection(&db_path)?;
                catalog = projection::load_catalog(&conn)?;
                report.rebuilt_projection = true;
                report.replayed = built.replayed;
            }
            Some(err) => return Err(err),
        }
        if rebuilt_fresh {
            report.rebuilt_projection = true;
        }
        if applied > log_last {
            tracing::warn!(
                projection = applied,
                log = log_last,
                "the projection is ahead of the log (lost unsynced log tail); rebuilding it"
            );
            drop(conn);
            remove_projection(&db_path)?;
            let built = crate::snapshot::build_projection_at(
                &log_reader,
                &snapshots_dir,
                log_last,
                &db_path,
                |_| {},
            )?;
            conn = open_projection(&db_path)?;
            catalog = projection::load_catalog(&conn)?;
            report.rebuilt_projection = true;
            report.replayed = built.replayed;
        }
        if report.replayed > 0 {
            tracing::info!(
                commits = report.replayed,
                "caught the projection up with the log"
            );
        }
        let projected = projection::last_applied(&conn)?;
        // Subscribers see only what the projection holds; the writer publishes the rest as it
        // catches up.
        let hub = Arc::new(Hub::new(projected, config.hub_ring_commits));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let poisoned = Arc::new(Mutex::new(None));
        let (sender, receiver) = sync_channel(config.queue_capacity.max(1));
        let metrics = Arc::new(crate::metrics::EngineMetrics::default());
        let clock = Arc::clone(&config.clock);
        let role = Arc::new(crate::replica::Role::default());
        let writer = Writer {
            conn,
            catalog,
            log,
            sync: config.sync == SyncPolicy::Always,
            group_max: config.group_max.max(1),
            hub: Arc::clone(&hub),
            poisoned: Arc::clone(&poisoned),
            clock: Box::new(move || clock()),
            last_timestamp_ms: 0,
            reader: log_reader.clone(),
            storage: Arc::clone(&config.storage),
            behind: behind || projected < log_last,
            db_path: db_path.clone(),
            projection_generation: Arc::clone(&generation),
            damage_seen: None,
            detached: false,
            role: Arc::clone(&role),
            metrics: Arc::clone(&metrics),
        };
        let handle = std::thread::Builder::new()
            .name("pocketlog-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|err| Error::io("spawn writer thread", dir, err))?;
        let pool = ReadPool {
            path: db_path,
            idle: Mutex::new((Vec::new(), 0)),
            available: Condvar::new(),
            max: config.read_pool_size.max(1),
            generation,
        };
        let engine = Engine {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                sender,
                poisoned,
                hub,
                log_reader,
                pool,
                metrics,
                writer: Mutex::new(Some(handle)),
                storage: Arc::clone(&config.storage),
                maintenance: Mutex::new(()),
                external_files: Mutex::new(None),
                snapshotter: Mutex::new(None),
                scrubber: Mutex::new(None),
                scrub_stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                role,
                _lock: lock,
            }),
        };
        if config.snapshot_every_commits.is_some() || config.snapshot_every_ms.is_some() {
            engine.start_snapshotter(config.snapshot_every_commits, config.snapshot_every_ms)?;
        }
        if let Some(every_ms) = config.scrub_every_ms {
            engine.start_scrubber(every_ms)?;
        }
        // An interrupted redaction is finished (or, when its commit never reached the log,
        // dropped) before anyone reads.
        if crate::redact::journal_exists(config.storage.as_ref(), dir) {
            engine.finish_redaction(&mut |_| Ok(()))?;
        }
        Ok((engine, report))
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn role(&self) -> &crate::replica::Role {
        &self.inner.role
    }

    /// Sends a message to the writer, waiting while its queue is full.
    pub(crate) fn send(&self, message: Message) -> Result<()> {
        self.inner.sender.send(message).map_err(|_| Error::Closed)
    }

    /// Queues a command for the writer. `reply` runs on the writer thread once the command's
    /// commit is durable (or it failed). Returns [`Error::Overloaded`] at once when the queue
    /// is full.
    pub fn submit<T, E, C, R>(&self, actor: Actor, command: C, reply: R) -> Result<()>
    where
        T: Send + 'static,
        E: Send + 'static,
        C: FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
        R: FnOnce(std::result::Result<Outcome<T>, Failure<E>>) + Send + 'static,
    {
        if let Some(reason) = self.inner.poisoned.lock().expect("poison lock").clone() {
            return Err(Error::Poisoned(reason));
        }
        let job = Job {
            actor,
            command: Box::new(move |tx| match command(tx) {
                Ok(value) => Ok(Box::new(value)),
                Err(err) => Err(Box::new(err)),
            }),
            reply: Box::new(move |outcome| {
                let result = match outcome {
                    JobOutcome::Done { value, commit } => Ok(Outcome {
                        value: *value.downcast::<T>().expect("the job's own value type"),
                        commit,
                    }),
                    JobOutcome::CommandFailed(err) => Err(Failure::Command(
                        *err.downcast::<E>().expect("the job's own error type"),
                    )),
                    JobOutcome::EngineFailed(err) => Err(Failure::Engine(err)),
                };
                reply(result)
            }),
        };
        // Counted before the send so the writer's decrement never comes first.
        let queued = &self.inner.metrics.queued;
        queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self.inner.sender.try_send(Message::Job(job));
        if sent.is_err() {
            queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(Error::Closed),
        }
    }

    /// Runs a command and blocks until it is durable (tools, tests).
    pub fn execute<T, E, C>(
        &self,
        actor: Actor,
        command: C,
    ) -> std::result::Result<Outcome<T>, Failure<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        C: FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    {
        // A one-shot slot: cheaper for the writer to fill than a channel allocation per call.
        // If the reply is dropped without being called (writer gone), the guard fills the slot
        // with `Closed`, so the wait always ends.
        let slot: Arc<ReplySlot<Outcome<T>, Failure<E>>> = Arc::new(ReplySlot::default());
        let filler = SlotFiller::<Outcome<T>, Failure<E>>(Some(Arc::clone(&slot)));
        self.submit(actor, command, move |result| {
            let mut filler = filler;
            filler.fill(result);
        })
        .map_err(Failure::Engine)?;
        slot.wait().unwrap_or(Err(Failure::Engine(Error::Closed)))
    }

    /// Runs `f` with a pooled read-only connection (blocks while all are busy).
    pub fn read<T>(&self, f: impl FnOnce(&ReadConn<'_>) -> Result<T>) -> Result<T> {
        let result = self.inner.pool.with(f);
        if let Err(Error::ProjectionDamaged(reason)) = &result {
            // Have the writer check the file and rebuild it from the log (never blocks; a
            // full queue drops the report, the next damaged read sends it again).
            tracing::error!(reason = %reason, "a read found the projection damaged");
            let _ = self.inner.sender.try_send(Message::Damaged(reason.clone()));
        }
        result
    }

    /// Runs `f` with a pooled read-only connection if one is idle right now, on this thread;
    /// hands `f` back otherwise (for callers that would rather not wait, e.g. on an async
    /// runtime thread with a short point query).
    pub fn try_read<T, F>(&self, f: F) -> std::result::Result<Result<T>, F>
    where
        F: FnOnce(&ReadConn<'_>) -> Result<T>,
    {
        self.inner.pool.try_with(f)
    }

    /// The engine's run-time metrics (lock-free counters and histograms).
    pub fn metrics(&self) -> &crate::metrics::EngineMetrics {
        &self.inner.metrics
    }

    /// The number of log segment files.
    pub fn segment_count(&self) -> usize {
        self.inner.log_reader.segment_count()
    }

    /// Last durable seq.
    pub fn last_seq(&self) -> Seq {
        self.inner.log_reader.last_seq()
    }

    /// Last seq published to subscribers (durable and applied).
    pub fn published_seq(&self) -> Seq {
        self.inner.hub.last_seq()
    }

    /// A reader of the log.
    pub fn log(&self) -> &LogReader {
        &self.inner.log_reader
    }

    /// Up to `max` published commits from seq `from` on, from memory: `None` when `from` is
    /// older than the recent commits kept in memory (read the log instead), empty when
    /// nothing at `from` is published yet. Never blocks on I/O.
    pub fn recent_commits(&self, from: Seq, max: usize) -> Option<Vec<Arc<Commit>>> {
        self.inner.hub.recent(from.max(1), max)
    }

    /// Subscribes to every commit with seq >= `from`.
    pub fn subscribe(&self, from: Seq) -> Result<Subscription> {
        let first = self.inner.log_reader.first_seq();
        if from < first && from != 0 {
            return Err(Error::SeqUnavailable {
                seq: from,
                reason: format!("the log starts at {first}"),
            });
        }
        Ok(Subscription::new(
            Arc::clone(&self.inner.hub),
            self.inner.log_reader.clone(),
            from.max(1),
        ))
    }

    /// Cuts a snapshot of the projection now (`snapshots/snap-<seq>.db`) from a read
    /// transaction; the writer goes on meanwhile. Returns the snapshot's seq and path.
    pub fn snapshot(&self) -> Result<(Seq, PathBuf)> {
        let _guard = self.inner.maintenance.lock().expect("maintenance lock");
        let written = crate::snapshot::write_snapshot(
            &self.inner.dir.join(DATA_DB),
            &crate::snapshot::snapshots_dir(&self.inner.dir),
        );
        if written.is_ok() {
            self.inner
                .metrics
                .snapshots
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        written
    }

    /// Copies the projection as it is now into the new file `target` (a consistent copy from
    /// one read transaction; the writer goes on). Returns the copy's seq.
    pub fn copy_projection(&self, target: &Path) -> Result<Seq> {
        crate::snapshot::copy_projection(&self.inner.dir.join(DATA_DB), target)
    }

    /// Registers where stored files live outside the data dir (an S3 bucket): compaction's
    /// file step sweeps it as it sweeps `storage/` (same needed set, same grace period).
    pub fn set_external_files(&self, files: Arc<dyn crate::files::ExternalFiles>) {
        *self
            .inner
            .external_files
            .lock()
            .expect("external files lock") = Some(files);
    }

    /// The stored files that the retained restore points need (`files.rs`: referenced at the
    /// log start, or added by a retained commit), read under the maintenance lock so that no
    /// compaction moves the log start meanwhile. Reads the retained log: call it in the
    /// background. `None` when the snapshot at the log start predates the stored-files table.
    pub fn needed_files(
        &self,
    ) -> Result<Option<std::collections::BTreeSet<crate::files::FileKey>>> {
        let _guard = self.inner.maintenance.lock().expect("maintenance lock");
        let reader = &self.inner.log_reader;
        crate::files::needed_files(
            reader,
            &crate::snapshot::snapshots_dir(&self.inner.dir),
            reader.first_seq(),
            reader.last_seq(),
        )
    }

    /// Removes log history older than `retention` while serving: readers of older positions
    /// get [`Error::SeqUnavailable`] from then on. See `compact.rs` for the crash-safe steps.
    pub fn compact(
        &self,
        retention: crate::compact::Retention,
    ) -> Result<crate::compact::CompactReport> {
        let _guard = self.inner.maintenance.lock().expect("maintenance lock");
        let reader = self.inner.log_reader.clone();
        let external = self
            .inner
            .external_files
            .lock()
            .expect("external files lock")
            .clone();
        let _running = RunningGauge::start(&self.inner.metrics.compacting);
        let report = crate::compact::compact_dir_with(
            self.inner.storage.as_ref(),
            &self.inner.dir,
            &self.inner.log_reader,
            retention,
            external.as_deref(),
            &mut |cut| reader.forget_before(cut),
            &mut |_| Ok(()),
        );
        if report.is_ok() {
            let metrics = &self.inner.metrics;
            metrics
                .compactions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64);
            metrics
                .last_compaction_ms
                .store(now, std::sync::atomic::Ordering::Relaxed);
        }
        report
    }

    /// Erases `fields` (names; all of them must be columns of the collection, `id` excepted;
    /// none: [`crate::redact::default_fields`]) of record `record_id` of `collection` (id or name) from the whole data dir: appends a
    /// [`crate::Change::Redacted`] commit, then rewrites every earlier frame of the log, every
    /// snapshot and the projection file without the values (see `redact.rs`). Blocks for the
    /// duration; writes go on meanwhile, other maintenance waits.
    pub fn redact(
        &self,
        actor: Actor,
        collection: &str,
        record_id: &str,
        fields: &[String],
    ) -> Result<crate::redact::RedactReport> {
        self.redact_with_steps(actor, collection, record_id, fields, &mut |_| Ok(()))
    }

    /// [`Engine::redact`] with a callback at every step; an error from it stops the
    /// redaction there, as a crash would (crash-injection tests; the next open finishes it).
    pub fn redact_with_steps(
        &self,
        actor: Actor,
        collection: &str,
        record_id: &str,
        fields: &[String],
        on_step: &mut dyn FnMut(&crate::redact::RedactStep) -> Result<()>,
    ) -> Result<crate::redact::RedactReport> {
        use crate::redact::REDACT_FIELDS_MAX;
        let _guard = self.inner.maintenance.lock().expect("maintenance lock");
        let _running = RunningGauge::start(&self.inner.metrics.redacting);
        // An earlier redaction left unfinished goes first.
        self.finish_redaction_locked(&mut |_| Ok(()))?;
        if fields.len() > REDACT_FIELDS_MAX {
            return Err(Error::InvalidChange(format!(
                "a redaction names at most {REDACT_FIELDS_MAX} fields"
            )));
        }
        let lookup = collection.to_string();
        let collection_id = self
            .read(move |conn| {
                conn.query(
                    "SELECT id FROM _collections WHERE id = ?1 OR name = ?1 COLLATE NOCASE",
                    &[Value::Text(lookup)],
                )
            })?
            .rows
            .first()
            .and_then(|row| row.first())
            .and_then(|value| value.as_str().map(str::to_string))
            .ok_or_else(|| Error::InvalidChange(format!("unknown collection {collection}")))?;
        let ctx_parts = self.redact_parts();
        let ctx = ctx_parts.context(self);
        crate::redact::begin(&ctx, &collection_id, record_id, on_step)?;
        let (id, names) = (record_id.to_string(), fields.to_vec());
        let command_collection = collection_id.clone();
        let committed = self.execute(actor, move |tx| -> Result<()> {
            let def = tx
                .collection(&command_collection)
                .cloned()
                .ok_or_else(|| Error::InvalidChange("the collection is gone".into()))?;
            let names = if names.is_empty() {
                crate::redact::default_fields(&def)
            } else {
                names
            };
            let mut field_ids = Vec::new();
            let mut field_names = Vec::new();
            for name in &names {
                let column = def
                    .columns
                    .iter()
                    .find(|column| column.name == *name)
                    .ok_or_else(|| {
                        Error::InvalidChange(format!("collection {} has no field {name}", def.name))
                    })?;
                if crate::redact::under_full_unique_index(&def, &column.name) {
                    return Err(Error::InvalidChange(format!(
                        "field {name} is under a unique index without WHERE: erasing it \
                         could make two records collide"
                    )));
                }
                if !field_ids.contains(&column.id) {
                    field_ids.push(column.id.clone());
                    field_names.push(column.name.clone());
                }
            }
            tx.stage(crate::commit::Change::Redacted {
                collection_id: def.id.clone(),
                id,
                fields: field_names,
                field_ids,
            })
        });
        let failure = match committed {
            Ok(_) => None,
            Err(Failure::Command(err) | Failure::Engine(err)) => Some(err),
        };
        // Finishes the redaction when its commit is in the log; drops the journal otherwise.
        let report = crate::redact::finish(&ctx, on_step)?;
        if report.is_some() {
            self.inner
                .metrics
                .redactions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match (failure, report) {
            (Some(err), _) => Err(err),
            (None, Some(report)) => Ok(report),
            (None, None) => Err(Error::InvalidChange(
                "the redaction's commit is not in the log".into(),
            )),
        }
    }

    /// Finishes a redaction an earlier run left unfinished (see `redact.rs`); `None` when
    /// there was none (or its commit never reached the log).
    pub(crate) fn finish_redaction(
        &self,
        on_step: &mut dyn FnMut(&crate::redact::RedactStep) -> Result<()>,
    ) -> Result<Option<crate::redact::RedactReport>> {
        let _guard = self.inner.maintenance.lock().expect("maintenance lock");
        self.finish_redaction_locked(on_step)
    }

    fn finish_redaction_locked(
        &self,
        on_step: &mut dyn FnMut(&crate::redact::RedactStep) -> Result<()>,
    ) -> Result<Option<crate::redact::RedactReport>> {
        if !crate::redact::journal_exists(self.inner.storage.as_ref(), &self.inner.dir) {
            return Ok(None);
        }
        let parts = self.redact_parts();
        crate::redact::finish(&parts.context(self), on_step)
    }

    fn redact_parts(&self) -> RedactParts {
        let sender = self.inner.sender.clone();
        let engine = self.clone();
        RedactParts {
            purge: Box::new(move || {
                let (done, result) = sync_channel(1);
                sender
                    .send(Message::Purge { done })
                    .map_err(|_| Error::Closed)?;
                result.recv().map_err(|_| Error::Closed)?
            }),
            read_def: Box::new(move |collection_id| {
                let id = collection_id.to_string();
                let rows = engine.read(move |conn| {
                    conn.query(
                        "SELECT def FROM _collections WHERE id = ?1",
                        &[Value::Text(id)],
                    )
                })?;
                let Some(text) = rows
                    .rows
                    .first()
                    .and_then(|row| row.first())
                    .and_then(|value| value.as_str().map(str::to_string))
                else {
                    return Ok(None);
                };
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|err| Error::ProjectionDamaged(format!("_collections row: {err}")))
            }),
        }
    }

    fn start_snapshotter(&self, every_commits: Option<u64>, every_ms: Option<u64>) -> Result<()> {
        let (stop, stopped) = sync_channel::<()>(1);
        let weak = Arc::downgrade(&self.inner);
        let snapshots =
            crate::snapshot::list_snapshots(&crate::snapshot::snapshots_dir(&self.inner.dir))?;
        let mut last_seq = snapshots.last().map_or(0, |(seq, _)| *seq);
        let mut last_at = std::time::Instant::now();
        let tick = std::time::Duration::from_millis(every_ms.unwrap_or(1000).clamp(10, 1000));
        let handle = std::thread::Builder::new()
            .name("pocketlog-snapshots".into())
            .spawn(move || loop {
                match stopped.recv_timeout(tick) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                let published = engine.published_seq();
                let by_count = every_commits.is_some_and(|n| published >= last_seq + n.max(1));
                let by_time = every_ms.is_some_and(|ms| {
                    published > last_seq && last_at.elapsed().as_millis() as u64 >= ms
                });
                if by_count || by_time {
                    match engine.snapshot() {
                        Ok((seq, path)) => {
                            tracing::debug!(seq, path = %path.display(), "periodic snapshot");
                            last_seq = seq;
                        }
                        Err(err) => tracing::warn!(error = %err, "periodic snapshot failed"),
                    }
                    last_at = std::time::Instant::now();
                }
            })
            .map_err(|err| Error::io("spawn snapshot thread", &self.inner.dir, err))?;
        *self.inner.snapshotter.lock().expect("snapshotter lock") = Some((stop, handle));
        Ok(())
    }

    /// Scrubs the projection now (see `scrub.rs`): checks its pages, compares its content with
    /// a replay of the log, and has the writer replace it with a rebuild on damage or a
    /// mismatch. Blocks for the duration (a full replay of the log).
    pub fn scrub(&self) -> Result<crate::scrub::ScrubReport> {
        let _guard = self.inner.maintenance.lock().expect("maintenance lock");
        crate::scrub::scrub_once(&self.scrub_context())
    }

    fn scrub_context(&self) -> crate::scrub::ScrubContext {
        crate::scrub::ScrubContext {
            dir: self.inner.dir.clone(),
            reader: self.inner.log_reader.clone(),
            sender: self.inner.sender.clone(),
            stop: Arc::clone(&self.inner.scrub_stop),
        }
    }

    fn start_scrubber(&self, every_ms: u64) -> Result<()> {
        let (stop, stopped) = sync_channel::<()>(1);
        let weak = Arc::downgrade(&self.inner);
        let every = std::time::Duration::from_millis(every_ms.max(10));
        let handle = std::thread::Builder::new()
            .name("pocketlog-scrub".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                match engine.scrub() {
                    Ok(crate::scrub::ScrubReport::Clean { seq }) => {
                        tracing::debug!(seq, "scrub: the projection matches the log")
                    }
                    Ok(crate::scrub::ScrubReport::Repaired { reason }) => {
                        tracing::error!(reason = %reason, "scrub: the projection was repaired")
                    }
                    Ok(crate::scrub::ScrubReport::Skipped(why)) => {
                        tracing::info!(why = %why, "scrub: content comparison skipped")
                    }
                    Err(err) => tracing::warn!(error = %err, "scrub failed"),
                }
            })
            .map_err(|err| Error::io("spawn scrub thread", &self.inner.dir, err))?;
        *self.inner.scrubber.lock().expect("scrubber lock") = Some((stop, handle));
        Ok(())
    }

    /// The poison reason, if a write failed.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.poisoned.lock().expect("poison lock").clone()
    }

    /// Stops the writer after the queued jobs, and wakes subscribers. Idempotent.
    pub fn shutdown(&self) {
        self.inner
            .scrub_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let scrubber = self.inner.scrubber.lock().expect("scrubber lock").take();
        if let Some((stop, handle)) = scrubber {
            drop(stop);
            let _ = handle.join();
        }
        let snapshotter = self
            .inner
            .snapshotter
            .lock()
            .expect("snapshotter lock")
            .take();
        if let Some((stop, handle)) = snapshotter {
            drop(stop);
            let _ = handle.join();
        }
        let _ = self.inner.sender.send(Message::Shutdown);
        if let Some(handle) = self.inner.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
        self.inner.hub.close();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.scrub_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.sender.send(Message::Shutdown);
        if let Some(handle) = self.writer.lock().ok().and_then(|mut guard| guard.take()) {
            let _ = handle.join();
        }
        self.hub.close();
    }
}
