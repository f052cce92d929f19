//! The webhooks' auxiliary store (`pb_data/webhooks.db`): per-endpoint cursors, the delivery
//! log and the dead-letter list.
//!
//! 1. Not event-sourced: this is delivery bookkeeping, not data. It is written without fsync
//!    (`synchronous = NORMAL` in WAL mode); after a power loss a cursor may be *behind* what was
//!    delivered (events are sent again: at least once), never ahead — the cursor is written
//!    only after the events up to it were delivered or dead-lettered.
//! 2. Bounded: each endpoint keeps its newest [`DELIVERIES_KEEP`] delivery attempts and
//!    [`DEAD_KEEP`] dead letters; older rows are pruned as new ones arrive.
//! 3. Every call is blocking SQLite I/O: callers on the async runtime use `spawn_blocking`.

use engine::Seq;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Mutex;

/// The file next to `data.db`.
pub const WEBHOOKS_DB: &str = "webhooks.db";
/// Delivery attempts kept per endpoint.
pub const DELIVERIES_KEEP: i64 = 1000;
/// Dead letters kept per endpoint.
pub const DEAD_KEEP: i64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cursors (hook TEXT PRIMARY KEY NOT NULL, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, hook TEXT NOT NULL,
  position INTEGER NOT NULL, action TEXT NOT NULL, collection TEXT NOT NULL, record TEXT NOT NULL,
  attempt INTEGER NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL, duration_ms INTEGER NOT NULL,
  created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_hook ON deliveries (hook, id);
CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY AUTOINCREMENT, hook TEXT NOT NULL,
  position INTEGER NOT NULL, action TEXT NOT NULL, collection TEXT NOT NULL, record TEXT NOT NULL,
  attempts INTEGER NOT NULL, error TEXT NOT NULL, body TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS dead_hook ON dead (hook, id);
";

/// One delivery attempt (or a dead letter) as recorded.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Webhook id.
    pub hook: String,
    /// Log position of the event.
    pub position: Seq,
    /// `create`, `update`, `delete`.
    pub action: String,
    /// Collection name.
    pub collection: String,
    /// Record id.
    pub record: String,
    /// 1-based attempt number (the attempts made, for a dead letter).
    pub attempt: u32,
    /// HTTP status (0: no response).
    pub status: u16,
    /// Error text (empty on success).
    pub error: String,
    /// Request duration.
    pub duration_ms: u64,
    /// When (RFC 3339-ish, PocketBase's format).
    pub created: String,
}

/// The store (one connection behind a mutex: writes are small and rare next to HTTP calls).
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating) `<dir>/webhooks.db`.
    pub fn open(dir: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(dir.join(WEBHOOKS_DB))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored cursor (last position delivered or dead-lettered) of `hook`.
    pub fn cursor(&self, hook: &str) -> rusqlite::Result<Option<Seq>> {
        self.conn()
            .query_row(
                "SELECT position FROM cursors WHERE hook = ?1",
                params![hook],
                |row| row.get::<_, i64>(0),
            )
            .optional()
            .map(|position| position.map(|p| p.max(0) as Seq))
    }

    /// Stores the cursor of `hook`.
    pub fn set_cursor(&self, hook: &str, position: Seq) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT INTO cursors (hook, position) VALUES (?1, ?2)
             ON CONFLICT (hook) DO UPDATE SET position = excluded.position",
            params![hook, position as i64],
        )?;
        Ok(())
    }

    /// Stores the cursor of `hook` if `current()` still holds once the store is locked (a
    /// task's write racing a replay loses).
    pub fn set_cursor_if(
        &self,
        hook: &str,
        position: Seq,
        current: impl FnOnce() -> bool,
    ) -> rusqlite::Result<()> {
        let conn = self.conn();
        if !current() {
            return Ok(());
        }
        conn.execute(
            "INSERT INTO cursors (hook, position) VALUES (?1, ?2)
             ON CONFLICT (hook) DO UPDATE SET position = excluded.position",
            params![hook, position as i64],
        )?;
        Ok(())
    }

    /// Records one delivery attempt (pruning the oldest beyond [`DELIVERIES_KEEP`]).
    pub fn log_attempt(&self, attempt: &Attempt) -> rusqlite::Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO deliveries (hook, position, action, collection, record, attempt, status,
               error, duration_ms, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                attempt.hook,
                attempt.position as i64,
                attempt.action,
                attempt.collection,
                attempt.record,
                attempt.attempt,
                attempt.status,
                attempt.error,
                attempt.duration_ms as i64,
                attempt.created
            ],
        )?;
        prune(&conn, "deliveries", &attempt.hook, DELIVERIES_KEEP)
    }

    /// Adds a dead letter with the body that could not be delivered.
    pub fn add_dead(&self, attempt: &Attempt, body: &str) -> rusqlite::Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO dead (hook, position, action, collection, record, attempts, error, body,
               created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                attempt.hook,
                attempt.position as i64,
                attempt.action,
                attempt.collection,
                attempt.record,
                attempt.attempt,
                attempt.error,
                body,
                attempt.created
            ],
        )?;
        prune(&conn, "dead", &attempt.hook, DEAD_KEEP)
    }

    /// The newest `limit` delivery attempts of `hook`, newest first.
    pub fn deliveries(&self, hook: &str, limit: usize) -> rusqlite::Result<Vec<Value>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, position, action, collection, record, attempt, status, error, duration_ms,
               created FROM deliveries WHERE hook = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![hook, limit as i64], |row| {
            Ok(json!({
                "id": row.get::<_, i64>(0)?,
                "position": row.get::<_, i64>(1)?,
                "action": row.get::<_, String>(2)?,
                "collection": row.get::<_, String>(3)?,
                "record": row.get::<_, String>(4)?,
                "attempt": row.get::<_, i64>(5)?,
                "status": row.get::<_, i64>(6)?,
                "error": row.get::<_, String>(7)?,
                "durationMs": row.get::<_, i64>(8)?,
                "created": row.get::<_, String>(9)?,
            }))
        })?;
        rows.collect()
    }

    /// The newest `limit` dead letters of `hook`, newest first (with the undelivered body).
    pub fn dead(&self, hook: &str, limit: usize) -> rusqlite::Result<Vec<Value>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, position, action, collection, record, attempts, error, body, created
               FROM dead WHERE hook = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![hook, limit as i64], |row| {
            let body: String = row.get(7)?;
            Ok(json!({
                "id": row.get::<_, i64>(0)?,
                "position": row.get::<_, i64>(1)?,
                "action": row.get::<_, String>(2)?,
                "collection": row.get::<_, String>(3)?,
                "record": row.get::<_, String>(4)?,
                "attempts": row.get::<_, i64>(5)?,
                "error": row.get::<_, String>(6)?,
                "body": serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body)),
                "created": row.get::<_, String>(8)?,
            }))
        })?;
        rows.collect()
    }

    /// Forgets everything about `hook` (it was deleted).
    pub fn forget(&self, hook: &str) -> rusqlite::Result<()> {
        let conn = self.conn();
        for table in ["cursors", "deliveries", "dead"] {
            conn.execute(
                &format!("DELETE FROM {table} WHERE hook = ?1"),
                params![hook],
            )?;
        }
        Ok(())
    }
}

/// Keeps the newest `keep` rows of `hook` in `table`.
fn prune(conn: &Connection, table: &str, hook: &str, keep: i64) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "DELETE FROM {table} WHERE hook = ?1 AND id <= (SELECT id FROM {table} WHERE hook = ?1
               ORDER BY id DESC LIMIT 1 OFFSET ?2)"
        ),
        params![hook, keep],
    )?;
    Ok(())
}
