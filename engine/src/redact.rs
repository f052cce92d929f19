//! Redaction: the right to erasure on an immutable log (see `engine/FORMAT.md` "Redaction").
//!
//! A redaction of record `R` of collection `C` (some of its columns) is a commit holding a
//! [`Change::Redacted`], followed by a crash-safe rewrite of everything that holds the erased
//! values: every earlier frame of the log, every snapshot, the projection file and its WAL,
//! and the in-memory ring of recent commits.
//!
//! Steps (each leaves a state that the next open finishes; the journal makes it so):
//!
//! | step | what | a crash after it leaves |
//! |------|------|-------------------------|
//! | 1 | write `redact.journal` (target, `after_seq` = the last seq): tmp, fsync, rename, fsync dir | a journal whose commit is not in the log: removed at open ("not started") |
//! | 2 | commit the `Redacted` change through the writer (the projection row is erased in the same SQLite transaction) | a journal whose commit is in the log: the open finishes the rewrite |
//! | 3 | roll the active segment (every frame before the redaction is then in an immutable segment) | the same |
//! | 4 | per segment holding an affected frame: write `seg-X.log.redact` (frames re-encoded with the values erased, CRCs recomputed, same seqs), fsync, rename over `seg-X.log`, fsync `log/`, swap the readers' index | some segments rewritten: the open rewrites the rest (the rewrite is idempotent) |
//! | 5 | per snapshot before the redaction: erase the row in place (`secure_delete`, rollback journal), `VACUUM`, fsync | the same |
//! | 6 | the writer `VACUUM`s `data.db` and truncates its WAL (between two groups) | the same |
//! | 7 | remove the journal and stray `.redact` files | done |
//!
//! Invariants:
//! 1. Only commits with a seq below the redaction's are rewritten, and only the values of the
//!    record's erased columns (followed through renames by column id); seqs, segment names and
//!    segment boundaries never change, so resume positions and `verify` stay valid.
//! 2. An erased value is the column's declared default ([`erased_value`]), the same value
//!    the `Redacted` change writes into the projection, so a replay of the rewritten log
//!    equals the live projection.
//! 3. Readers never see a half-swapped segment: the swap holds the log's rewrite gate.

use crate::commit::{Change, CollectionDef, Commit, Seq};
use crate::error::{Error, Result};
use crate::frame::{decode_frame, encode_frame_with, FrameRead};
use crate::log::{LogReader, INDEX_EVERY, SEGMENT_HEADER_LEN};
use crate::projection::quote_ident;
use crate::storage::Storage;
use crate::value::Value;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The redaction journal, in the data dir.
pub const REDACT_JOURNAL: &str = "redact.journal";
/// Suffix of a segment being rewritten (`seg-X.log.redact`; ignored by the log).
const REWRITE_SUFFIX: &str = ".redact";
/// Most columns one redaction names.
pub const REDACT_FIELDS_MAX: usize = 256;
/// Attempts to truncate the projection's WAL after the `VACUUM` (readers may hold it).
const CHECKPOINT_ATTEMPTS: u32 = 200;
/// Wait between two of them.
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_millis(10);
/// Read chunk while loading a segment.
const READ_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// A point of a redaction, for crash-injection tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedactStep {
    /// The journal is durable; nothing else is written.
    JournalWritten,
    /// The `Redacted` commit is durable at this seq.
    Committed(Seq),
    /// The rewritten version of a segment is durable beside it (`seg-X.log.redact`).
    SegmentWritten(PathBuf),
    /// This segment was replaced by its rewritten version.
    SegmentRewritten(PathBuf),
    /// This snapshot had the values erased.
    SnapshotRewritten(PathBuf),
    /// The projection file was vacuumed and its WAL truncated.
    ProjectionPurged,
    /// The journal is removed.
    Done,
}

/// What a redaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactReport {
    /// Seq of the `Redacted` commit.
    pub seq: Seq,
    /// Earlier commits whose frames were rewritten.
    pub commits_rewritten: u64,
    /// Segment files replaced.
    pub segments_rewritten: usize,
    /// Snapshots that held the record and had it erased.
    pub snapshots_rewritten: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    collection_id: String,
    record_id: String,
    /// The last seq before the redaction's commit was submitted.
    after_seq: Seq,
}

/// What the running engine lends a redaction.
pub(crate) struct RedactContext<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) reader: &'a LogReader,
    pub(crate) storage: &'a dyn Storage,
    pub(crate) hub: &'a crate::subscribe::Hub,
    pub(crate) purge: &'a dyn Fn() -> Result<()>,
    pub(crate) read_def: &'a dyn Fn(&str) -> Result<Option<CollectionDef>>,
}

/// The value an erased column takes: its declared default (`DEFAULT 0`, `DEFAULT FALSE`,
/// `DEFAULT NULL`, `DEFAULT '...'`), or `''` when it declares none.
pub fn erased_value(decl: &str) -> Value {
    let upper = decl.to_ascii_uppercase();
    let Some(at) = upper.find("DEFAULT ") else {
        return Value::Text(String::new());
    };
    let rest = decl[at + "DEFAULT ".len()..].trim_start();
    if let Some(quoted) = rest.strip_prefix('\'') {
        // A SQL string literal: '' is an escaped quote.
        let mut out = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(ch);
            }
        }
        return Value::Text(out);
    }
    let token: String = rest
        .chars()
        .take_while(|ch| !ch.is_whitespace() && *ch != ',')
        .collect();
    match token.to_ascii_uppercase().as_str() {
        "NULL" => Value::Null,
        "FALSE" => Value::Int(0),
        "TRUE" => Value::Int(1),
        _ => {
            if let Ok(int) = token.parse::<i64>() {
                Value::Int(int)
            } else if let Ok(real) = token.parse::<f64>() {
                Value::Real(real)
            } else {
                Value::Text(String::new())
            }
        }
    }
}

/// Columns never erased when a redaction names no field: the id, the timestamps and the
/// token key (unique per record; a redacted auth record is locked out by its password).
const KEPT_BY_DEFAULT: [&str; 4] = ["id", "created", "updated", "tokenKey"];

/// Whether `column` is under a unique index without a `WHERE` (erasing it in two records
/// would make both hold the default: a conflict, now or in a replay of the history).
pub(crate) fn under_full_unique_index(def: &CollectionDef, column: &str) -> bool {
    def.indexes
        .iter()
        .filter(|sql| {
            let upper = sql.to_ascii_uppercase();
            upper.contains("UNIQUE") && !upper.contains(" WHERE ")
        })
        .filter_map(|sql| {
            let open = sql.find('(')?;
            let close = sql.rfind(')')?;
            (open < close).then(|| sql[open + 1..close].to_string())
        })
        .any(|list| {
            list.split(',').any(|part| {
                let name = part.split_whitespace().next().unwrap_or("");
                name.trim_matches(|ch| ch == '"' || ch == '`' || ch == '[' || ch == ']') == column
            })
        })
}

/// The columns a redaction that names none erases: every column but [`KEPT_BY_DEFAULT`] and
/// those under a unique index without a `WHERE`.
pub fn default_fields(def: &CollectionDef) -> Vec<String> {
    def.columns
        .iter()
        .filter(|column| !KEPT_BY_DEFAULT.contains(&column.name.as_str()))
        .filter(|column| !under_full_unique_index(def, &column.name))
        .map(|column| column.name.clone())
        .collect()
}

/// The columns of `def` with these ids, with their erased values. Refuses a view, an unknown
/// id and the `id` column.
fn erased_columns(def: &CollectionDef, field_ids: &[String]) -> Result<Vec<(String, Value)>> {
    if def.is_view() {
        return Err(Error::InvalidChange(format!(
            "{} is a view collection: it holds no records to redact",
            def.name
        )));
    }
    field_ids
        .iter()
        .map(|field_id| {
            let column = def
                .columns
                .iter()
                .find(|column| column.id == *field_id)
                .ok_or_else(|| {
                    Error::InvalidChange(format!("collection {} has no field {field_id}", def.name))
                })?;
            if column.name == "id" {
                return Err(Error::InvalidChange(
                    "the id field cannot be redacted".into(),
                ));
            }
            Ok((column.name.clone(), erased_value(&column.decl)))
        })
        .collect()
}

/// `UPDATE <table> SET col = ?, ... WHERE id = ?` for the erased columns, and the values to
/// bind before the id.
pub(crate) fn erase_sql(def: &CollectionDef, field_ids: &[String]) -> Result<(String, Vec<Value>)> {
    let columns = erased_columns(def, field_ids)?;
    if columns.is_empty() {
        return Err(Error::InvalidChange("a redaction names no field".into()));
    }
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, (name, _))| format!("{} = ?{}", quote_ident(name), index + 1))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE id = ?{}",
        quote_ident(&def.name),
        sets.join(", "),
        columns.len() + 1
    );
    Ok((sql, columns.into_iter().map(|(_, value)| value).collect()))
}

/// Rewrites the projection file so no freed page or WAL frame keeps erased bytes: runs on
/// the writer's connection between two groups.
pub(crate) fn purge_projection(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.execute_batch("VACUUM")?;
    for _ in 0..CHECKPOINT_ATTEMPTS {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(CHECKPOINT_WAIT);
    }
    Err(Error::Sqlite(
        "readers kept the projection's WAL busy; the redaction is finished at the next start"
            .into(),
    ))
}

/// Erases the target's values from commits, following the collection's column renames.
struct Eraser {
    collection_id: String,
    record_id: String,
    field_ids: Vec<String>,
    /// Seq of the redaction: only commits before it are erased.
    before: Seq,
    /// Column name (at the point reached) → erased value.
    columns: HashMap<String, Value>,
}

impl Eraser {
    fn new(
        collection_id: &str,
        record_id: &str,
        field_ids: &[String],
        fields: &[String],
        before: Seq,
        def: Option<&CollectionDef>,
    ) -> Eraser {
        let mut eraser = Eraser {
            collection_id: collection_id.to_string(),
            record_id: record_id.to_string(),
            field_ids: field_ids.to_vec(),
            before,
            columns: fields
                .iter()
                .map(|name| (name.clone(), Value::Text(String::new())))
                .collect(),
        };
        if let Some(def) = def {
            eraser.follow(def);
        }
        eraser
    }

    fn follow(&mut self, def: &CollectionDef) {
        self.columns = def
            .columns
            .iter()
            .filter(|column| self.field_ids.contains(&column.id) && column.name != "id")
            .map(|column| (column.name.clone(), erased_value(&column.decl)))
            .collect();
    }

    fn erase_values(&self, values: &[(String, Value)]) -> Option<Vec<(String, Value)>> {
        let mut changed = false;
        let out = values
            .iter()
            .map(|(name, value)| match self.columns.get(name) {
                Some(erased) if erased != value => {
                    changed = true;
                    (name.clone(), erased.clone())
                }
                _ => (name.clone(), value.clone()),
            })
            .collect();
        changed.then_some(out)
    }

    /// Follows the commit's schema changes; returns its erased version when it changes.
    fn erase(&mut self, commit: &Commit) -> Option<Commit> {
        if commit.seq >= self.before {
            return None;
        }
        let mut changed = false;
        let mut changes = Vec::with_capacity(commit.changes.len());
        for change in &commit.changes {
            let new = match change {
                Change::CollectionCreated(def) | Change::CollectionUpdated(def)
                    if def.id == self.collection_id =>
                {
                    self.follow(def);
                    None
                }
                Change::RecordCreated {
                    collection_id,
                    id,
                    values,
                } if *collection_id == self.collection_id && *id == self.record_id => self
                    .erase_values(values)
                    .map(|values| Change::RecordCreated {
                        collection_id: collection_id.clone(),
                        id: id.clone(),
                        values,
                    }),
                Change::RecordUpdated {
                    collection_id,
                    id,
                    values,
                } if *collection_id == self.collection_id && *id == self.record_id => self
                    .erase_values(values)
                    .map(|values| Change::RecordUpdated {
                        collection_id: collection_id.clone(),
                        id: id.clone(),
                        values,
                    }),
                Change::RecordDeleted {
                    collection_id,
                    id,
                    old,
                } if *collection_id == self.collection_id && *id == self.record_id => {
                    self.erase_values(old).map(|old| Change::RecordDeleted {
                        collection_id: collection_id.clone(),
                        id: id.clone(),
                        old,
                    })
                }
                _ => None,
            };
            changed |= new.is_some();
            changes.push(new.unwrap_or_else(|| change.clone()));
        }
        changed.then(|| Commit {
            seq: commit.seq,
            timestamp_ms: commit.timestamp_ms,
            actor: commit.actor.clone(),
            changes,
        })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |err| Error::io(op, path, err)
}

fn read_whole(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    loop {
        let chunk = storage
            .read_at(path, bytes.len() as u64, READ_CHUNK_BYTES)
            .map_err(io_err("read", path))?;
        if chunk.is_empty() {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk);
    }
}

/// A segment's rewritten bytes and sparse index, when any of its frames changed.
struct Rewritten {
    bytes: Vec<u8>,
    sparse: Vec<(Seq, u64)>,
    commits: u64,
}

fn rewrite_segment(
    storage: &dyn Storage,
    path: &Path,
    eraser: &mut Eraser,
) -> Result<Option<Rewritten>> {
    let bytes = read_whole(storage, path)?;
    let corrupt = |offset: usize, reason: &str| Error::Corrupt {
        segment: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(corrupt(0, "segment shorter than its header"));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..SEGMENT_HEADER_LEN]);
    let mut sparse = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    let mut frames = 0u64;
    let mut commits = 0u64;
    while offset < bytes.len() {
        let FrameRead::Frame { payload, frame_len } = decode_frame(&bytes[offset..]) else {
            return Err(corrupt(
                offset,
                "a damaged frame where a redaction must rewrite the segment (run verify)",
            ));
        };
        let commit = crate::codec::decode_commit(payload)
            .map_err(|err| err.into_error(path, offset as u64))?;
        if frames.is_multiple_of(INDEX_EVERY) {
            sparse.push((commit.seq, out.len() as u64));
        }
        match eraser.erase(&commit) {
            Some(erased) => {
                encode_frame_with(&mut out, |out| {
                    crate::codec::encode_commit_into(&erased, out)
                })
                .map_err(|len| Error::CommitTooLarge {
                    bytes: len as u64,
                    max: crate::frame::FRAME_PAYLOAD_MAX as u64,
                })?;
                commits += 1;
            }
            None => out.extend_from_slice(&bytes[offset..offset + frame_len]),
        }
        offset += frame_len;
        frames += 1;
    }
    Ok((commits > 0).then_some(Rewritten {
        bytes: out,
        sparse,
        commits,
    }))
}

fn journal_path(dir: &Path) -> PathBuf {
    dir.join(REDACT_JOURNAL)
}

fn write_journal(storage: &dyn Storage, dir: &Path, journal: &Journal) -> Result<()> {
    let path = journal_path(dir);
    let tmp = dir.join(format!("{REDACT_JOURNAL}.tmp"));
    let text = serde_json::to_vec(journal).map_err(|err| Error::InvalidChange(err.to_string()))?;
    storage
        .write_new(&tmp, &text)
        .map_err(io_err("write journal", &tmp))?;
    storage
        .rename(&tmp, &path)
        .map_err(io_err("rename journal", &path))?;
    storage.sync_dir(dir).map_err(io_err("fsync dir", dir))
}

fn remove_journal(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = journal_path(dir);
    match storage.remove(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::io("remove journal", &path, err)),
    }
    storage.sync_dir(dir).map_err(io_err("fsync dir", dir))
}

fn read_journal(storage: &dyn Storage, dir: &Path) -> Result<Option<Journal>> {
    let path = journal_path(dir);
    if storage.len(&path).is_err() {
        return Ok(None);
    }
    let bytes = read_whole(storage, &path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| Error::InvalidChange(format!("{} does not parse: {err}", path.display())))
}

/// True when an unfinished redaction waits in `dir`.
pub(crate) fn journal_exists(storage: &dyn Storage, dir: &Path) -> bool {
    storage.len(&journal_path(dir)).is_ok()
}

/// Step 1: the journal. Returns it for [`finish`].
pub(crate) fn begin(
    ctx: &RedactContext<'_>,
    collection_id: &str,
    record_id: &str,
    on_step: &mut dyn FnMut(&RedactStep) -> Result<()>,
) -> Result<()> {
    let journal = Journal {
        collection_id: collection_id.to_string(),
        record_id: record_id.to_string(),
        after_seq: ctx.reader.last_seq(),
    };
    write_journal(ctx.storage, ctx.dir, &journal)?;
    on_step(&RedactStep::JournalWritten)
}

/// A redaction commit: its seq, the erased fields' names and ids.
type Found = (Seq, Vec<String>, Vec<String>);

/// The redaction commit the journal announces, when it reached the log.
fn find_commit(reader: &LogReader, journal: &Journal) -> Result<Option<Found>> {
    let mut next = journal.after_seq + 1;
    loop {
        let commits = reader.read_from(next, 1024)?;
        let Some(last) = commits.last().map(|commit| commit.seq) else {
            return Ok(None);
        };
        for commit in &commits {
            for change in &commit.changes {
                if let Change::Redacted {
                    collection_id,
                    id,
                    fields,
                    field_ids,
                } = change
                {
                    if *collection_id == journal.collection_id && *id == journal.record_id {
                        return Ok(Some((commit.seq, fields.clone(), field_ids.clone())));
                    }
                }
            }
        }
        next = last + 1;
    }
}

/// Steps 3 to 7 for the journal in `ctx.dir` (after the commit, or at open). A journal
/// whose commit is not in the log is removed: that redaction never started.
pub(crate) fn finish(
    ctx: &RedactContext<'_>,
    on_step: &mut dyn FnMut(&RedactStep) -> Result<()>,
) -> Result<Option<RedactReport>> {
    let Some(journal) = read_journal(ctx.storage, ctx.dir)? else {
        return Ok(None);
    };
    let Some((seq, fields, field_ids)) = find_commit(ctx.reader, &journal)? else {
        tracing::warn!(
            collection = %journal.collection_id,
            record = %journal.record_id,
            "a redaction journal without its commit: the redaction never started; removed"
        );
        remove_journal(ctx.storage, ctx.dir)?;
        return Ok(None);
    };
    on_step(&RedactStep::Committed(seq))?;
    let mut report = RedactReport {
        seq,
        ..RedactReport::default()
    };
    // Step 3: every frame before the redaction is in an immutable segment.
    ctx.reader.roll_active()?;
    let def = (ctx.read_def)(&journal.collection_id)?;
    // Step 4: the log.
    let mut eraser = Eraser::new(
        &journal.collection_id,
        &journal.record_id,
        &field_ids,
        &fields,
        seq,
        None,
    );
    if let Some(def) = &def {
        // A log starting after the collection was created: start from today's columns.
        if ctx.reader.first_seq() > 1 {
            eraser.follow(def);
        }
    }
    let log_dir = ctx.dir.join(crate::engine::LOG_DIR);
    for (seq_first, path) in ctx.reader.segment_list() {
        if seq_first >= seq {
            break;
        }
        let Some(rewritten) = rewrite_segment(ctx.storage, &path, &mut eraser)? else {
            continue;
        };
        let tmp = PathBuf::from(format!("{}{REWRITE_SUFFIX}", path.display()));
        ctx.storage
            .write_new(&tmp, &rewritten.bytes)
            .map_err(io_err("write segment", &tmp))?;
        on_step(&RedactStep::SegmentWritten(tmp.clone()))?;
        ctx.reader.swap_segments(|| {
            ctx.storage
                .rename(&tmp, &path)
                .map_err(io_err("rename", &path))?;
            ctx.storage
                .sync_dir(&log_dir)
                .map_err(io_err("fsync dir", &log_dir))?;
            Ok(vec![(seq_first, rewritten.sparse)])
        })?;
        report.commits_rewritten += rewritten.commits;
        report.segments_rewritten += 1;
        tracing::info!(segment = %path.display(), commits = rewritten.commits, "redaction rewrote a segment");
        on_step(&RedactStep::SegmentRewritten(path))?;
    }
    // The recent commits kept in memory.
    let ring_eraser = Eraser::new(
        &journal.collection_id,
        &journal.record_id,
        &field_ids,
        &fields,
        seq,
        def.as_ref(),
    );
    ctx.hub.rewrite_ring(|commit| {
        let mut eraser = Eraser {
            collection_id: ring_eraser.collection_id.clone(),
            record_id: ring_eraser.record_id.clone(),
            field_ids: ring_eraser.field_ids.clone(),
            before: ring_eraser.before,
            columns: ring_eraser.columns.clone(),
        };
        eraser.erase(commit)
    });
    // Step 5: snapshots.
    let snapshots_dir = crate::snapshot::snapshots_dir(ctx.dir);
    for (snapshot_seq, path) in crate::snapshot::list_snapshots(&snapshots_dir)? {
        if snapshot_seq >= seq {
            continue;
        }
        if erase_in_snapshot(
            &path,
            &journal.collection_id,
            &journal.record_id,
            &field_ids,
        )? {
            report.snapshots_rewritten += 1;
            on_step(&RedactStep::SnapshotRewritten(path))?;
        }
    }
    // Step 6: the projection.
    (ctx.purge)()?;
    on_step(&RedactStep::ProjectionPurged)?;
    // Step 7.
    for name in ctx
        .storage
        .list(&log_dir)
        .map_err(io_err("list", &log_dir))?
    {
        if name.ends_with(REWRITE_SUFFIX) {
            let stray = log_dir.join(&name);
            let _ = ctx.storage.remove(&stray);
        }
    }
    remove_journal(ctx.storage, ctx.dir)?;
    on_step(&RedactStep::Done)?;
    tracing::info!(
        seq,
        collection = %journal.collection_id,
        record = %journal.record_id,
        commits = report.commits_rewritten,
        segments = report.segments_rewritten,
        snapshots = report.snapshots_rewritten,
        "redaction finished"
    );
    Ok(Some(report))
}

/// Erases the record's columns in one snapshot file (in place, rollback journal, then
/// `VACUUM` with `secure_delete`). Returns whether the snapshot held the record.
fn erase_in_snapshot(
    path: &Path,
    collection_id: &str,
    record_id: &str,
    field_ids: &[String],
) -> Result<bool> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    let def: Option<String> = conn
        .query_row(
            "SELECT def FROM _collections WHERE id = ?1",
            [collection_id],
            |row| row.get(0),
        )
        .optional()?;
    let Some(def) = def else {
        return Ok(false);
    };
    let def: CollectionDef = serde_json::from_str(&def)
        .map_err(|err| Error::ProjectionDamaged(format!("_collections row: {err}")))?;
    if def.is_view() {
        return Ok(false);
    }
    // Columns that did not exist yet at the snapshot are skipped.
    let present: Vec<String> = field_ids
        .iter()
        .filter(|id| def.columns.iter().any(|column| column.id == **id))
        .cloned()
        .collect();
    if present.is_empty() {
        return Ok(false);
    }
    let (sql, mut values) = erase_sql(&def, &present)?;
    values.push(Value::Text(record_id.to_string()));
    let changed = conn.execute(&sql, rusqlite::params_from_iter(values.iter()))?;
    if changed == 0 {
        return Ok(false);
    }
    conn.execute_batch("VACUUM")?;
    drop(conn);
    crate::snapshot::sync_file(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fields_skip_ids_timestamps_and_full_unique_indexes() {
        let column = |name: &str| crate::commit::ColumnDef {
            id: format!("f_{name}"),
            name: name.into(),
            decl: "TEXT DEFAULT '' NOT NULL".into(),
        };
        let def = CollectionDef {
            id: "c".into(),
            name: "users".into(),
            kind: "auth".into(),
            columns: [
                "id", "email", "tokenKey", "name", "code", "created", "updated",
            ]
            .iter()
            .map(|name| column(name))
            .collect(),
            indexes: vec![
                "CREATE UNIQUE INDEX a ON users (email) WHERE email != ''".into(),
                "CREATE UNIQUE INDEX b ON users (`code`)".into(),
                "CREATE INDEX c ON users (name)".into(),
            ],
            view_query: None,
            meta: "{}".into(),
        };
        assert_eq!(default_fields(&def), vec!["email", "name"]);
    }

    #[test]
    fn a_redaction_commit_is_payload_version_3_variant_8_and_round_trips() {
        let commit = Commit {
            seq: 9,
            timestamp_ms: 1,
            actor: crate::commit::Actor::System,
            changes: vec![Change::Redacted {
                collection_id: "c".into(),
                id: "r".into(),
                fields: vec!["email".into()],
                field_ids: vec!["f_email".into()],
            }],
        };
        let bytes = crate::codec::encode_commit(&commit);
        assert_eq!(bytes[0], 3, "payload version");
        // version, seq, timestamp, actor (u32 variant 0 = System), changes length (u64),
        // then the change's variant index.
        let at = 1 + 8 + 8 + 4 + 8;
        assert_eq!(&bytes[at..at + 4], &8u32.to_le_bytes(), "variant index");
        let decoded = crate::codec::decode_commit(&bytes).expect("decodes");
        assert_eq!(decoded, commit);
    }

    #[test]
    fn erased_values_are_the_declared_defaults() {
        assert_eq!(
            erased_value("TEXT DEFAULT '' NOT NULL"),
            Value::Text(String::new())
        );
        assert_eq!(erased_value("NUMERIC DEFAULT 0 NOT NULL"), Value::Int(0));
        assert_eq!(
            erased_value("BOOLEAN DEFAULT FALSE NOT NULL"),
            Value::Int(0)
        );
        assert_eq!(erased_value("JSON DEFAULT NULL"), Value::Null);
        assert_eq!(
            erased_value("JSON DEFAULT '[]' NOT NULL"),
            Value::Text("[]".into())
        );
        assert_eq!(
            erased_value("JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL"),
            Value::Text("{\"lon\":0,\"lat\":0}".into())
        );
        assert_eq!(
            erased_value("TEXT DEFAULT 'it''s' NOT NULL"),
            Value::Text("it's".into())
        );
        assert_eq!(erased_value("TEXT NOT NULL"), Value::Text(String::new()));
        assert_eq!(erased_value("REAL DEFAULT 1.5"), Value::Real(1.5));
    }
}
