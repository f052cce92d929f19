//! `pb-tools import FILE --collection C`: bulk-loads records from NDJSON or CSV through the
//! API's validation and the log, in batched commits.
//!
//! 1. Needs the data dir lock: when a server runs on the dir, import refuses with a clear
//!    message (stop the server, or send the records through the API's `/api/batch`).
//! 2. Every line is validated like a superuser's create request (field types, required
//!    fields, unique indexes, password hashing). A line that fails is reported on stderr as
//!    `line N: <message> (field: problem; …)` and skipped; the others go on.
//! 3. Each batch of up to `--batch` records is ONE writer command, so one commit: a batch is
//!    applied whole or not at all. When a record fails inside the command (a unique index),
//!    the batch is rolled back, the line is reported, and the batch runs again without it.
//! 4. Progress (records done, rate) goes to stderr after every batch; the exit status is
//!    non-zero when any line failed.
//! 5. Input: NDJSON (one object per line; an export line's `record` is used, so
//!    `pb-tools export` output imports as is) or CSV with a header of field names (a cell of
//!    a JSON, multi-select, multi-relation or multi-file field is parsed as JSON when it is
//!    one). The format comes from `--format`, else from the file extension.

use anyhow::{bail, Context, Result};
use api::access::{Auth, RequestData};
use api::model::{Collection, FieldType, SUPERUSERS_ID};
use api::records::{write, WriteInput};
use api::{AppState, ServerOptions};
use serde_json::{json, Map, Value};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Default records per commit.
pub const IMPORT_BATCH_DEFAULT: usize = 500;
/// Most records per commit.
pub const IMPORT_BATCH_MAX: usize = 10_000;
/// Longest accepted input line.
pub const LINE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Input formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header row of field names.
    Csv,
}

/// Arguments of `import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The NDJSON or CSV file.
    pub file: PathBuf,
    /// The data dir.
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
    /// The target collection (name or id).
    #[arg(long)]
    pub collection: String,
    /// Input format (default: from the extension, `.csv` or else NDJSON).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Records per commit.
    #[arg(long, default_value_t = IMPORT_BATCH_DEFAULT)]
    pub batch: usize,
    /// The environment variable holding the settings encryption key, as `serve --encryptionEnv`.
    #[arg(long = "encryptionEnv")]
    pub encryption_env: Option<String>,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records committed.
    pub imported: u64,
    /// Lines reported as failed.
    pub failed: u64,
    /// Commits made.
    pub commits: u64,
}

/// Splits one CSV record (RFC 4180; the caller joins lines while a quote is open).
pub fn csv_split(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => cells.push(std::mem::take(&mut cell)),
            (false, c) => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

fn quotes_open(text: &str) -> bool {
    text.chars().filter(|c| *c == '"').count() % 2 == 1
}

/// One input record: its (first) line number and its body or why it could not be read.
type Line = (usize, Result<Map<String, Value>, String>);

/// The records of the file as `(line number, body or parse error)`.
fn read_records(args: &Args, collection: &Collection) -> Result<Vec<Line>> {
    let format =
        args.format
            .unwrap_or_else(|| match args.file.extension().and_then(|e| e.to_str()) {
                Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
                _ => Format::Ndjson,
            });
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let reader = std::io::BufReader::new(file);
    let mut out = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut pending = String::new();
    let mut pending_line = 0;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line =
            line.with_context(|| format!("cannot read {} at line {number}", args.file.display()))?;
        if line.len() > LINE_MAX_BYTES {
            out.push((
                number,
                Err(format!("the line is longer than {LINE_MAX_BYTES} bytes")),
            ));
            continue;
        }
        match format {
            Format::Ndjson => {
                if line.trim().is_empty() {
                    continue;
                }
                let parsed = match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(mut map)) => {
                        match (map.remove("record"), map.contains_key("action")) {
                            (Some(Value::Object(record)), true) => Ok(record),
                            (record, _) => {
                                if let Some(record) = record {
                                    map.insert("record".into(), record);
                                }
                                Ok(map)
                            }
                        }
                    }
                    Ok(_) => Err("not a JSON object".to_string()),
                    Err(err) => Err(format!("invalid JSON: {err}")),
                };
                out.push((number, parsed));
            }
            Format::Csv => {
                if pending.is_empty() {
                    pending_line = number;
                } else {
                    pending.push('\n');
                }
                pending.push_str(&line);
                if quotes_open(&pending) {
                    continue;
                }
                let record = std::mem::take(&mut pending);
                if record.trim().is_empty() {
                    continue;
                }
                let cells = csv_split(&record);
                let Some(names) = &header else {
                    header = Some(cells);
                    continue;
                };
                if cells.len() != names.len() {
                    out.push((
                        pending_line,
                        Err(format!(
                            "{} cells, the header has {}",
                            cells.len(),
                            names.len()
                        )),
                    ));
                    continue;
                }
                let mut body = Map::new();
                for (name, cell) in names.iter().zip(cells) {
                    body.insert(name.clone(), csv_value(collection, name, cell));
                }
                out.push((pending_line, Ok(body)));
            }
        }
    }
    if !pending.is_empty() {
        out.push((pending_line, Err("unterminated quoted cell".to_string())));
    }
    Ok(out)
}

/// A CSV cell as the field wants it: JSON-shaped fields get parsed JSON when the cell is JSON.
fn csv_value(collection: &Collection, name: &str, cell: String) -> Value {
    let Some(field) = collection.fields.iter().find(|f| f.name() == name) else {
        return Value::String(cell);
    };
    let wants_json =
        matches!(field.kind(), FieldType::Json) || (cell.starts_with('[') && cell.ends_with(']'));
    if wants_json {
        if let Ok(value) = serde_json::from_str::<Value>(&cell) {
            return value;
        }
    }
    Value::String(cell)
}

/// `line N: message (field: problem; …)` for an API error.
fn describe(line: usize, err: &api::error::ApiError) -> String {
    let body = err.body();
    let mut text = format!(
        "line {line}: {}",
        body["message"].as_str().unwrap_or("failed")
    );
    if let Some(data) = body["data"].as_object().filter(|d| !d.is_empty()) {
        let details: Vec<String> = data
            .iter()
            .map(|(field, problem)| {
                format!(
                    "{field}: {}",
                    problem["message"].as_str().unwrap_or(&problem.to_string())
                )
            })
            .collect();
        text.push_str(&format!(" ({})", details.join("; ")));
    }
    text
}

/// Runs `import`, reporting failures and progress on stderr.
pub fn run(args: &Args) -> Result<Summary> {
    if args.batch == 0 || args.batch > IMPORT_BATCH_MAX {
        bail!("--batch must be between 1 and {IMPORT_BATCH_MAX}");
    }
    super::log_dir(&args.dir)?;
    let (engine, _) = match engine::Engine::open(&args.dir, engine::EngineConfig::default()) {
        Ok(opened) => opened,
        Err(engine::Error::Locked(_)) => bail!(
            "{} is in use by a running server: stop it first, or send the records through the \
             API (POST /api/batch); import needs the data dir to itself",
            args.dir.display()
        ),
        Err(err) => return Err(err).context("cannot open the data dir"),
    };
    let settings_key = match &args.encryption_env {
        Some(env) => api::settings::encrypt::SettingsKey::from_env(env)?,
        None => None,
    };
    let options = ServerOptions {
        settings_key,
        encryption_env: args.encryption_env.clone(),
        ..Default::default()
    };
    let state = AppState::new(engine, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(import(&state, args));
    state.engine.shutdown();
    result
}

async fn import(state: &Arc<AppState>, args: &Args) -> Result<Summary> {
    let schema = state.schema();
    let Some(collection) = schema.find(&args.collection).cloned() else {
        bail!(
            "no collection {:?} in {}",
            args.collection,
            args.dir.display()
        );
    };
    if collection.is_view() {
        bail!(
            "{} is a view collection: it cannot hold imported records",
            collection.name
        );
    }
    let records = read_records(args, &collection)?;
    let total = records.len();
    let auth = schema.find(SUPERUSERS_ID).map(|superusers| Auth {
        collection: Arc::clone(superusers),
        record: Map::from_iter([("id".to_string(), json!("import"))]),
    });
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut done = 0usize;
    for chunk in records.chunks(args.batch) {
        let mut inputs: Vec<(usize, Arc<WriteInput>)> = Vec::with_capacity(chunk.len());
        for (line, body) in chunk {
            done += 1;
            let body = match body {
                Ok(body) => body.clone(),
                Err(message) => {
                    eprintln!("line {line}: {message}");
                    summary.failed += 1;
                    continue;
                }
            };
            match write::prepare_create(
                &schema,
                &collection,
                auth.as_ref(),
                body,
                RequestData::default(),
            )
            .await
            {
                Ok(input) => inputs.push((*line, Arc::new(input))),
                Err(err) => {
                    eprintln!("{}", describe(*line, &err));
                    summary.failed += 1;
                }
            }
        }
        // One command per batch; a failing record is dropped and the batch retried.
        while !inputs.is_empty() {
            let batch: Vec<Arc<WriteInput>> =
                inputs.iter().map(|(_, input)| Arc::clone(input)).collect();
            let count = batch.len();
            let failed_at = Arc::new(AtomicUsize::new(usize::MAX));
            let marker = Arc::clone(&failed_at);
            // An error answer rolls the whole command back: nothing of the batch commits.
            let result = state
                .write(engine::Actor::System, move |tx| {
                    for (index, input) in batch.iter().enumerate() {
                        if let Err(err) = write::run_create(tx, input) {
                            marker.store(index, Ordering::SeqCst);
                            return Err(err);
                        }
                    }
                    Ok(())
                })
                .await;
            match result {
                Ok(_) => {
                    summary.imported += count as u64;
                    summary.commits += 1;
                    break;
                }
                Err(err) => {
                    let index = failed_at.load(Ordering::SeqCst);
                    if index >= inputs.len() {
                        bail!("the write failed: {}", err.body());
                    }
                    let (line, _) = inputs.remove(index);
                    eprintln!("{}", describe(line, &err));
                    summary.failed += 1;
                }
            }
        }
        let rate = summary.imported as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "progress: {done}/{total} lines, {} imported, {} failed ({rate:.0} records/s)",
            summary.imported, summary.failed
        );
    }
    Ok(summary)
}
