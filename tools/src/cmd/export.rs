//! `pb-tools export`: streams committed record changes from a log position, as NDJSON or CSV.
//!
//! 1. Read-only and lock-free (like `inspect`): safe while a server writes. `--follow` keeps
//!    tailing: when the log grows (its segment files change size) the log index is read again
//!    and the new commits are printed; it runs until stopped (Ctrl-C, a closed pipe).
//! 2. One item per record change, in log order: NDJSON lines
//!    `{"position","time","action","collection","record"}` (the format `pb-tools import` and the
//!    webhooks use), or CSV with a header: `position,time,action,collection,id,record` (the
//!    record as JSON), or with `--collection` one column per field.
//! 3. Records are decoded with the collection definitions of the commits seen so far (over those
//!    of `data.db`); `password` and `tokenKey` are never exported. A change of a collection
//!    that cannot be decoded is exported with its raw column values.
//! 4. `--from P` starts at position P (inclusive); a position older than the retained log is an
//!    error naming the first retained position.

use super::{log_dir, rfc3339};
use anyhow::{bail, Context, Result};
use api::model::{Collection, FieldType};
use engine::{Change, Commit};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Commits read from the log per batch.
const EXPORT_BATCH: usize = 1024;
/// How often `--follow` looks for new commits.
pub const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
}

/// Arguments of `export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir (holds log/).
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
    /// First log position to export (inclusive).
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Keep running and print new changes as they are committed.
    #[arg(long)]
    pub follow: bool,
    /// Only this collection (name or id).
    #[arg(long)]
    pub collection: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Collections by id, as known so far.
struct Schema {
    by_id: HashMap<String, Arc<Collection>>,
}

impl Schema {
    fn load(dir: &Path) -> Schema {
        let mut by_id = HashMap::new();
        let path = dir.join("data.db");
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if let Ok(conn) = rusqlite::Connection::open_with_flags(&path, flags) {
            if let Ok(mut statement) = conn.prepare("SELECT meta FROM _collections") {
                if let Ok(rows) = statement.query_map([], |row| row.get::<_, String>(0)) {
                    for meta in rows.flatten() {
                        if let Ok(collection) = Collection::from_meta(&meta) {
                            by_id.insert(collection.id.clone(), Arc::new(collection));
                        }
                    }
                }
            }
        }
        Schema { by_id }
    }

    fn follow(&mut self, commit: &Commit) {
        for change in &commit.changes {
            if let Change::CollectionCreated(def) | Change::CollectionUpdated(def) = change {
                if let Ok(collection) = Collection::from_meta(&def.meta) {
                    self.by_id.insert(def.id.clone(), Arc::new(collection));
                }
            }
        }
    }

    fn find(&self, name_or_id: &str) -> Option<&Arc<Collection>> {
        self.by_id
            .get(name_or_id)
            .or_else(|| self.by_id.values().find(|c| c.name == name_or_id))
    }
}

/// One exported record change.
pub struct Item {
    /// Log position.
    pub position: u64,
    /// Commit time (RFC 3339).
    pub time: String,
    /// `create`, `update`, `delete`.
    pub action: &'static str,
    /// Collection name (the id when unknown).
    pub collection: String,
    /// Collection id.
    pub collection_id: String,
    /// The record (new values; the old ones for a delete).
    pub record: Map<String, Value>,
}

fn items(schema: &Schema, commit: &Commit) -> Vec<Item> {
    let mut out = Vec::new();
    for change in &commit.changes {
        let (action, collection_id, values) = match change {
            Change::RecordCreated {
                collection_id,
                values,
                ..
            } => ("create", collection_id, values),
            Change::RecordUpdated {
                collection_id,
                values,
                ..
            } => ("update", collection_id, values),
            Change::RecordDeleted {
                collection_id, old, ..
            } => ("delete", collection_id, old),
            _ => continue,
        };
        let (name, record) = match schema.by_id.get(collection_id) {
            Some(collection) => {
                let columns: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
                let row: Vec<engine::Value> = values.iter().map(|(_, v)| v.clone()).collect();
                let mut record = api::model::record::from_row(collection, &columns, &row);
                for field in &collection.fields {
                    if field.kind() == FieldType::Password || field.name() == "tokenKey" {
                        record.remove(field.name());
                    }
                }
                (collection.name.clone(), record)
            }
            None => {
                let record = values
                    .iter()
                    .filter(|(name, _)| name != "password" && name != "tokenKey")
                    .map(|(name, value)| (name.clone(), raw(value)))
                    .collect();
                (collection_id.clone(), record)
            }
        };
        out.push(Item {
            position: commit.seq,
            time: rfc3339(commit.timestamp_ms),
            action,
            collection: name,
            collection_id: collection_id.clone(),
            record,
        });
    }
    out
}

fn raw(value: &engine::Value) -> Value {
    match value {
        engine::Value::Null => Value::Null,
        engine::Value::Int(int) => json!(int),
        engine::Value::Real(real) => json!(real),
        engine::Value::Text(text) => json!(text),
    }
}

/// A CSV cell: strings as they are, other values as JSON; quoted when needed (RFC 4180).
pub fn csv_cell(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

struct Writer<'a> {
    out: Box<dyn Write + 'a>,
    format: Format,
    /// The per-field columns (with `--collection` and CSV).
    columns: Option<Vec<String>>,
    header_done: bool,
    written: u64,
}

impl Writer<'_> {
    fn write(&mut self, item: &Item) -> std::io::Result<()> {
        self.written += 1;
        match self.format {
            Format::Ndjson => {
                let line = json!({
                    "position": item.position,
                    "time": item.time,
                    "action": item.action,
                    "collection": item.collection,
                    "record": item.record,
                });
                writeln!(self.out, "{line}")
            }
            Format::Csv => {
                if !self.header_done {
                    self.header_done = true;
                    let header = match &self.columns {
                        Some(columns) => {
                            let mut all = vec!["position", "time", "action"];
                            all.extend(columns.iter().map(String::as_str));
                            all.iter()
                                .map(|c| csv_cell(&json!(c)))
                                .collect::<Vec<_>>()
                                .join(",")
                        }
                        None => "position,time,action,collection,id,record".to_string(),
                    };
                    writeln!(self.out, "{header}")?;
                }
                let mut cells = vec![
                    item.position.to_string(),
                    csv_cell(&json!(item.time)),
                    item.action.to_string(),
                ];
                match &self.columns {
                    Some(columns) => cells.extend(
                        columns
                            .iter()
                            .map(|c| csv_cell(item.record.get(c).unwrap_or(&Value::Null))),
                    ),
                    None => {
                        cells.push(csv_cell(&json!(item.collection)));
                        cells.push(csv_cell(item.record.get("id").unwrap_or(&Value::Null)));
                        cells.push(csv_cell(&Value::Object(item.record.clone())));
                    }
                }
                writeln!(self.out, "{}", cells.join(","))
            }
        }
    }
}

/// The total size of the log's segment files (a cheap "did it grow" check for `--follow`).
fn log_size(log: &Path) -> u64 {
    std::fs::read_dir(log)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0)
}

fn open(log: &Path) -> Result<engine::LogReader> {
    let (reader, _) = engine::LogReader::open_dir(Arc::new(engine::FsStorage), log)
        .context("cannot read the log (run pb-tools verify for details)")?;
    Ok(reader)
}

/// Runs `export`; returns the number of items written.
pub fn run(args: &Args) -> Result<u64> {
    let log = log_dir(&args.dir)?;
    let mut schema = Schema::load(&args.dir);
    let filter_id = match &args.collection {
        Some(name) => match schema.find(name) {
            Some(collection) => Some(collection.id.clone()),
            None => bail!("no collection {name:?} in {}", args.dir.display()),
        },
        None => None,
    };
    let columns = match (&filter_id, args.format) {
        (Some(id), Format::Csv) => schema.by_id.get(id).map(|collection| {
            collection
                .fields
                .iter()
                .filter(|f| f.kind() != FieldType::Password && f.name() != "tokenKey")
                .map(|f| f.name().to_string())
                .collect()
        }),
        _ => None,
    };
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut writer = Writer {
        out,
        format: args.format,
        columns,
        header_done: false,
        written: 0,
    };
    let mut reader = open(&log)?;
    if args.from.max(1) < reader.first_seq() {
        bail!(
            "position {} is older than the retained log (it starts at {}): the history before was compacted",
            args.from,
            reader.first_seq()
        );
    }
    let mut next = args.from.max(1);
    let mut size = log_size(&log);
    loop {
        while next <= reader.last_seq() {
            let batch = reader
                .read_from(next, EXPORT_BATCH)
                .with_context(|| format!("cannot read the log at position {next}"))?;
            let Some(last) = batch.last() else { break };
            next = last.seq + 1;
            for commit in &batch {
                schema.follow(commit);
                for item in items(&schema, commit) {
                    if filter_id
                        .as_ref()
                        .is_some_and(|id| *id != item.collection_id)
                    {
                        continue;
                    }
                    match writer.write(&item) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                            return Ok(writer.written)
                        }
                        Err(err) => return Err(err).context("cannot write the export"),
                    }
                }
            }
        }
        match writer.out.flush() {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(writer.written),
            other => other.context("cannot write the export")?,
        }
        if !args.follow {
            return Ok(writer.written);
        }
        // Tail: wait for the log to grow, then read its index again.
        loop {
            std::thread::sleep(FOLLOW_POLL);
            let now = log_size(&log);
            if now != size {
                size = now;
                break;
            }
        }
        reader = open(&log)?;
    }
}
