//! The projection scrub: finds a damaged or diverged `data.db` while serving and has the
//! writer replace it with a rebuild from the log (see FORMAT.md "Damaged projection").
//!
//! One scrub ([`scrub_once`]):
//! 1. `PRAGMA quick_check` on a read-only connection (b-tree and page damage), bounded in time.
//! 2. Content: a replay of the log is built into a scratch file beside `data.db` up to the
//!    projection's seq (from seq 1 while the log starts there; snapshots are not trusted for
//!    that, as in `verify`), caught up to the seq a read transaction on the live projection
//!    sees, and both are compared by an order-independent digest of the schema and of every
//!    table's rows ([`digest`]). Skipped when the disk has too little free space for the copy.
//! 3. On damage or a mismatch: loud error logs, then the writer swaps the rebuilt file in
//!    (the damaged one is moved aside as `data.db.damaged-<ms>`, never deleted).
//!
//! Invariants: the scrub never writes the live projection itself; it only reads it and hands a
//! complete rebuilt file to the writer, which does the swap between two groups. It stops
//! between replay batches when the engine shuts down. Scratch files are `.scrub-<pid>-<n>.db`
//! in the data dir and are removed afterwards (and at the next open if left behind).

#![allow(
    clippy::disallowed_methods,
    reason = "the scrub's scratch files are SQLite's, not the log's"
)]

use crate::commit::Seq;
use crate::error::{Error, Result};
use crate::log::LogReader;
use crate::projection::{self, Catalog};
use crate::writer::Message;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

/// Time budget of the scrub's `quick_check`.
const SCRUB_CHECK_BUDGET: Duration = Duration::from_secs(60);
/// Commits replayed per batch (the stop flag is checked between batches).
const SCRUB_BATCH: usize = 1024;

/// What one scrub found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrubReport {
    /// The projection passed the page check and equals a replay of the log at `seq`.
    Clean {
        /// The seq compared at.
        seq: Seq,
    },
    /// Damage or a mismatch was found and the projection was replaced by a rebuild.
    Repaired {
        /// What was wrong.
        reason: String,
    },
    /// The content comparison did not run (why); the page check passed.
    Skipped(String),
}

/// What a scrub needs, cloned out of the engine so it holds no engine reference.
pub(crate) struct ScrubContext {
    pub(crate) dir: PathBuf,
    pub(crate) reader: LogReader,
    pub(crate) sender: SyncSender<Message>,
    pub(crate) stop: Arc<AtomicBool>,
}

fn open_live(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn scratch_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        ".scrub-{}-{}.db",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Removes leftover scratch files of earlier scrubs (at open, under the data dir lock).
pub(crate) fn remove_scratch_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|name| name.starts_with(".scrub-"))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Runs one scrub. See the module docs.
pub(crate) fn scrub_once(ctx: &ScrubContext) -> Result<ScrubReport> {
    let db = ctx.dir.join(crate::engine::DATA_DB);
    let scratch = scratch_path(&ctx.dir);
    let result = scrub_with(ctx, &db, &scratch);
    remove_db(&scratch);
    result
}

fn scrub_with(ctx: &ScrubContext, db: &Path, scratch: &Path) -> Result<ScrubReport> {
    let live = open_live(db)?;
    let damage = match crate::engine::quick_check(&live, SCRUB_CHECK_BUDGET) {
        Ok(Some(problems)) => Some(format!("integrity check: {problems}")),
        Ok(None) => None,
        Err(Error::ProjectionDamaged(reason)) => Some(reason),
        Err(err) => return Err(err),
    };
    let damage = match damage {
        Some(reason) => reason,
        None => match compare(ctx, db, &live, scratch)? {
            Compared::Equal(seq) => return Ok(ScrubReport::Clean { seq }),
            Compared::Skipped(why) => return Ok(ScrubReport::Skipped(why)),
            Compared::Differ { seq, reason } => {
                drop(live);
                tracing::error!(
                    seq,
                    reason = %reason,
                    "SCRUB: the projection does not match the log; replacing it with a rebuild"
                );
                replace(ctx, scratch, seq, &reason)?;
                return Ok(ScrubReport::Repaired { reason });
            }
        },
    };
    drop(live);
    tracing::error!(reason = %damage, "SCRUB: the projection is damaged; rebuilding it from the log");
    remove_db(scratch);
    let seq = ctx.reader.last_seq();
    if ctx.reader.first_seq() > 1 {
        // A compacted log: start from the newest snapshot it continues (the only way).
        crate::snapshot::build_projection_at(
            &ctx.reader,
            &crate::snapshot::snapshots_dir(&ctx.dir),
            seq,
            scratch,
            |_| {},
        )?;
    } else {
        let conn = crate::engine::open_projection(scratch)?;
        let mut catalog = Catalog::default();
        if !replay(ctx, &conn, &mut catalog, 1, seq)? {
            return Ok(ScrubReport::Skipped("stopped".into()));
        }
    }
    replace(ctx, scratch, seq, &damage)?;
    Ok(ScrubReport::Repaired { reason: damage })
}

/// Has the writer swap `scratch` (a projection at `seq`) in and waits for it.
fn replace(ctx: &ScrubContext, scratch: &Path, seq: Seq, reason: &str) -> Result<()> {
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    ctx.sender
        .send(Message::Replace {
            path: scratch.to_path_buf(),
            seq,
            reason: reason.to_string(),
            done,
        })
        .map_err(|_| Error::Closed)?;
    finished.recv().map_err(|_| Error::Closed)?
}

enum Compared {
    Equal(Seq),
    Differ { seq: Seq, reason: String },
    Skipped(String),
}

/// Replays `from..=to` into `conn` in batches; false when stopped.
fn replay(
    ctx: &ScrubContext,
    conn: &Connection,
    catalog: &mut Catalog,
    from: Seq,
    to: Seq,
) -> Result<bool> {
    let mut next = from;
    while next <= to {
        if ctx.stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let limit = ((to - next + 1) as usize).min(SCRUB_BATCH);
        let commits = ctx.reader.read_from(next, limit)?;
        let Some(last) = commits.last().map(|commit| commit.seq) else {
            return Err(Error::SeqUnavailable {
                seq: next,
                reason: "the log ended early".into(),
            });
        };
        crate::writer::apply_batch(conn, catalog, &commits)?;
        next = last + 1;
    }
    Ok(true)
}

fn compare(ctx: &ScrubContext, db: &Path, live: &Connection, scratch: &Path) -> Result<Compared> {
    let db_len = std::fs::metadata(db).map_or(0, |meta| meta.len());
    match fs2::available_space(&ctx.dir) {
        Ok(free) if free > db_len.saturating_mul(2) + (64 << 20) => {}
        Ok(free) => {
            return Ok(Compared::Skipped(format!(
                "{free} bytes free is too little for a {db_len}-byte copy"
            )))
        }
        Err(err) => return Ok(Compared::Skipped(format!("free space unknown: {err}"))),
    }
    let first = projection::last_applied(live)?;
    let log_first = ctx.reader.first_seq();
    remove_db(scratch);
    let base = if log_first > 1 {
        let snapshots = crate::snapshot::list_snapshots(&crate::snapshot::snapshots_dir(&ctx.dir))?;
        crate::snapshot::base_snapshot(&snapshots, log_first, first)?
    } else {
        None
    };
    let base_seq = match &base {
        Some((seq, path)) => {
            crate::snapshot::copy_projection(path, scratch)?;
            *seq
        }
        None => 0,
    };
    let conn = crate::engine::open_projection(scratch)?;
    let mut catalog = projection::load_catalog(&conn)?;
    if !replay(ctx, &conn, &mut catalog, base_seq + 1, first)? {
        return Ok(Compared::Skipped("stopped".into()));
    }
    // Pin the live projection at one seq and bring the replay to the same seq.
    live.execute_batch("BEGIN")?;
    let result = (|| -> Result<Compared> {
        let seq = projection::last_applied(live)?;
        if seq < first {
            return Ok(Compared::Skipped(
                "the projection went back (replaced?)".into(),
            ));
        }
        if !replay(ctx, &conn, &mut catalog, first + 1, seq)? {
            return Ok(Compared::Skipped("stopped".into()));
        }
        let live_digest = digest(live)?;
        let replay_digest = digest(&conn)?;
        if live_digest == replay_digest {
            Ok(Compared::Equal(seq))
        } else {
            Ok(Compared::Differ {
                seq,
                reason: format!(
                    "its content differs from a replay of the log at seq {seq} (digest \
                     {live_digest:016x}, replay {replay_digest:016x})"
                ),
            })
        }
    })();
    let _ = live.execute_batch("COMMIT");
    result
}

/// An order-independent digest of a projection: every schema object (type, name, SQL) and
/// every row of every table (views' rows are derived and not read), each hashed on its own
/// and summed, so equal content gives equal digests whatever the scan order.
pub(crate) fn digest(conn: &Connection) -> Result<u64> {
    let objects: Vec<(String, String, Option<String>)> = {
        let mut statement = conn
            .prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut total = 0u64;
    for (kind, name, sql) in &objects {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (kind, name, sql).hash(&mut hasher);
        total = total.wrapping_add(hasher.finish());
        if kind != "table" {
            continue;
        }
        let mut statement =
            conn.prepare(&format!("SELECT * FROM {}", projection::quote_ident(name)))?;
        let width = statement.column_count();
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            name.hash(&mut hasher);
            for index in 0..width {
                match row.get_ref(index)? {
                    ValueRef::Null => 0u8.hash(&mut hasher),
                    ValueRef::Integer(value) => (1u8, value).hash(&mut hasher),
                    ValueRef::Real(value) => (2u8, value.to_bits()).hash(&mut hasher),
                    ValueRef::Text(bytes) => (3u8, bytes).hash(&mut hasher),
                    ValueRef::Blob(bytes) => (4u8, bytes).hash(&mut hasher),
                }
            }
            total = total.wrapping_add(hasher.finish());
        }
    }
    Ok(total)
}
