//! `pocketlog import-pocketbase --from OLD_pb_data [--dir pb_data]`: brings a PocketBase data
//! dir (or a PocketBase backup zip, whose `data.db` is extracted to a temporary dir first) over
//! into a new pocketlog data dir, as ordinary log commits (history starts at the import), and
//! the hint `serve` gives when it meets a PocketBase data dir.
//!
//! What is brought over, in this order:
//! 1. collections (the `_collections` table turned into the API's collection JSON, imported in
//!    one commit through `api::collections::import::import`, so the collections service
//!    validates and builds them exactly as `PUT /api/collections/import` would). System
//!    collections keep pocketlog's definitions. Token secrets are NOT carried over: every
//!    auth collection gets fresh ones, and every auth record a fresh `tokenKey`, so every token
//!    PocketBase issued is invalid afterwards (the output says so).
//! 2. settings (`_params` row `settings`, merged over pocketlog's defaults, validated and saved
//!    by `api::settings::save`); settings PocketBase encrypted (`--encryptionEnv`) are opened
//!    with the key given to the import (the same construction, `api::settings::encrypt`) and
//!    stay encrypted in the new dir; without the key, or when invalid, they are skipped with a
//!    warning.
//! 3. records of every non-view collection pocketlog has (including `_superusers`,
//!    `_externalAuths`, `_mfas`, `_otps`, `_authOrigins`), ids, dates and password hashes
//!    (bcrypt) as they are, in commits of at most [`BATCH_RECORDS`] records and about
//!    [`BATCH_BYTES`] bytes (well under the engine's commit limit). Tables of collections
//!    pocketlog does not have are skipped and counted.
//! 4. files from `storage/` (PocketBase's layout is pocketlog's:
//!    `storage/<collectionId>/<recordId>/<name>`): every file a record's file fields name is
//!    copied (and fsynced) into the new dir before the commit that creates the record, which
//!    also carries the record's `FilesChanged`, so `pb-tools verify` accounts for them. Files
//!    no record names (thumbnails, leftovers) are not copied and are counted; a named file that
//!    is missing is reported. With PocketBase's S3 storage on (`s3.enabled`), the files are in
//!    the bucket, not in `storage/`: the report says they were not imported.
//!
//! Invariants:
//! - The source is never modified: `data.db` is opened read-only and `immutable` (no lock, no
//!   `-shm`); when a non-empty `-wal` exists (PocketBase was not stopped cleanly), `data.db` and
//!   its `-wal` are first copied to a temporary dir and the copy is read.
//! - The target must be new or empty; otherwise the import refuses and changes nothing (a
//!   second run into the same dir is refused, never a duplicate import).
//! - The target appears only when the import is complete: it is built in `.<name>.importing`
//!   beside it and renamed at the end (a failed import leaves no half-imported target; the
//!   next run refuses until that staging dir is removed, so it never deletes an import that is
//!   still running).
//! - Writes go through the engine's writer (`AppState::execute`/`write`), never into `data.db`.

use anyhow::{bail, Context, Result};
use api::files::names::is_safe_component;
use api::model::record::{from_row, to_storage};
use api::model::{Collection, FieldType};
use api::AppState;
use engine::{Actor, Change, Engine, EngineConfig};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Most records in one import commit.
pub const BATCH_RECORDS: usize = 1000;
/// Approximate most bytes of record values in one import commit (the engine's limit is
/// `engine::FRAME_PAYLOAD_MAX`, 64 MiB).
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What an import did (also printed).
#[derive(Debug, Default)]
pub struct Report {
    /// Collections in the source (non-system ones are imported).
    pub collections_imported: usize,
    /// Records imported, per collection name.
    pub records: BTreeMap<String, u64>,
    /// Records not imported, per source table (collections pocketlog does not have).
    pub skipped: BTreeMap<String, u64>,
    /// Files under `storage/` that were not copied (no record names them; thumbnails are not
    /// counted).
    pub files_skipped: u64,
    /// Files copied (and named in the records' `FilesChanged`).
    pub files_imported: u64,
    /// Bytes of the files copied.
    pub file_bytes: u64,
    /// Files a record names that the source's `storage/` does not have.
    pub files_missing: u64,
    /// The source stores its files in S3 (`s3.enabled`): none were imported.
    pub files_in_s3: bool,
    /// Whether the settings were imported.
    pub settings: bool,
    /// Bytes of record values read.
    pub bytes: u64,
}

/// True when `dir` looks like a PocketBase data dir: a `data.db` whose `_collections` table
/// has PocketBase's columns (pocketlog's own projection has a `def` column instead).
pub fn is_pocketbase_dir(dir: &Path) -> bool {
    let db = dir.join("data.db");
    if !db.is_file() {
        return false;
    }
    let Ok(conn) = open_immutable(&db) else {
        return false;
    };
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('_collections')")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))
                .and_then(|rows| rows.collect())
        })
        .unwrap_or_default();
    columns.iter().any(|c| c == "fields") && !columns.iter().any(|c| c == "def")
}

/// True when `path` is a zip archive holding a `data.db` at its root (a PocketBase backup);
/// pocketlog's own backup archives are not zips.
#[allow(dead_code)] // `pb-tools restore` uses it; `pocketlog` (which shares this file) does not
pub fn is_pocketbase_backup(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    zip::ZipArchive::new(file)
        .map(|archive| archive.file_names().any(|name| name == "data.db"))
        .unwrap_or(false)
}

/// The error `serve` gives for a PocketBase data dir, or `None` for anything else.
#[allow(dead_code)] // `pocketlog serve` uses it; `pb-tools` (which shares this file) does not
pub fn serve_hint(dir: &Path) -> Option<String> {
    is_pocketbase_dir(dir).then(|| {
        format!(
            "{} is a PocketBase data dir; pocketlog cannot serve it directly. Import it into a \
             new pocketlog data dir with: pocketlog import-pocketbase --from {} --dir <new dir>",
            dir.display(),
            dir.display()
        )
    })
}

fn open_immutable(db: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let uri = format!("file:{}?mode=ro&immutable=1", uri_path(db));
    rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// A path as a URI path (percent-encoding the characters URIs reserve).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for byte in path.to_string_lossy().bytes() {
        match byte {
            b'%' | b'?' | b'#' | b' ' => out.push_str(&format!("%{byte:02X}")),
            _ => out.push(byte as char),
        }
    }
    out
}

/// Opens the source `data.db` without modifying it (see the module docs). The temp dir, when
/// one was needed, must live as long as the connection.
fn open_source(from: &Path) -> Result<(rusqlite::Connection, Option<tempfile::TempDir>)> {
    let db = from.join("data.db");
    let wal = from.join("data.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if wal_len == 0 {
        let conn = open_immutable(&db).with_context(|| format!("opening {}", db.display()))?;
        return Ok((conn, None));
    }
    eprintln!(
        "note: {} has a write-ahead log (was PocketBase stopped?); reading a copy",
        db.display()
    );
    let tmp = tempfile::tempdir().context("creating a temporary dir")?;
    std::fs::copy(&db, tmp.path().join("data.db")).context("copying data.db")?;
    std::fs::copy(&wal, tmp.path().join("data.db-wal")).context("copying data.db-wal")?;
    let conn = rusqlite::Connection::open(tmp.path().join("data.db"))
        .context("opening the copy of data.db")?;
    Ok((conn, Some(tmp)))
}

/// One `_collections` row as the API's collection JSON.
fn collection_json(row: &rusqlite::Row<'_>) -> rusqlite::Result<Map<String, Value>> {
    let parse = |column: &str| -> rusqlite::Result<Value> {
        Ok(match engine_value(row.get_ref(column)?) {
            engine::Value::Text(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
            _ => Value::Null,
        })
    };
    let mut out = Map::new();
    out.insert("id".into(), json!(row.get::<_, String>("id")?));
    out.insert("name".into(), json!(row.get::<_, String>("name")?));
    out.insert("type".into(), json!(row.get::<_, String>("type")?));
    out.insert("system".into(), json!(row.get::<_, bool>("system")?));
    out.insert("fields".into(), parse("fields")?);
    let indexes = parse("indexes")?;
    out.insert(
        "indexes".into(),
        if indexes.is_null() {
            json!([])
        } else {
            indexes
        },
    );
    for rule in [
        "listRule",
        "viewRule",
        "createRule",
        "updateRule",
        "deleteRule",
    ] {
        out.insert(rule.into(), json!(row.get::<_, Option<String>>(rule)?));
    }
    if let Value::Object(options) = parse("options")? {
        for (key, mut value) in options {
            // Fresh token secrets: tokens issued by PocketBase must not work here.
            if let Value::Object(option) = &mut value {
                option.remove("secret");
            }
            out.insert(key, value);
        }
    }
    Ok(out)
}

fn engine_value(value: rusqlite::types::ValueRef<'_>) -> engine::Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => engine::Value::Null,
        ValueRef::Integer(i) => engine::Value::Int(i),
        ValueRef::Real(f) => engine::Value::Real(f),
        ValueRef::Text(t) => engine::Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => engine::Value::Text(String::from_utf8_lossy(b).into_owned()),
    }
}

fn value_len(value: &engine::Value) -> usize {
    match value {
        engine::Value::Text(t) => t.len(),
        _ => 8,
    }
}

fn api_err(err: api::error::ApiError) -> anyhow::Error {
    if err.data.is_empty() {
        anyhow::anyhow!("{}", err.message)
    } else {
        anyhow::anyhow!("{} {}", err.message, Value::Object(err.data))
    }
}

/// Refuses a target that already holds anything (see the module docs).
fn check_target(from: &Path, to: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (from.canonicalize(), to.canonicalize()) {
        if a == b {
            bail!("--dir must be a new directory, not the PocketBase data dir itself");
        }
    }
    if to.exists() {
        let mut entries =
            std::fs::read_dir(to).with_context(|| format!("reading {}", to.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty (already imported?): import-pocketbase only writes into a new \
                 or empty data dir, and changed nothing",
                to.display()
            );
        }
    }
    Ok(())
}

/// PocketBase's local storage keeps each file's metadata in `<file>.attrs` beside it; those
/// are not counted as files.
const ATTRS_SUFFIX: &str = ".attrs";

/// Largest `data.db` a backup zip may expand to (a guard against zip bombs).
pub const BACKUP_DB_MAX_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// Extracts `data.db` (and `data.db-wal`, if any) of a PocketBase backup zip into a temporary
/// dir; nothing else is written. Returns the dir and the number of files under `storage/`.
fn extract_backup(zip_path: &Path) -> Result<(tempfile::TempDir, u64)> {
    let file =
        std::fs::File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| {
        format!(
            "{} is neither a PocketBase data dir nor a PocketBase backup zip",
            zip_path.display()
        )
    })?;
    let dir = tempfile::tempdir().context("creating a temporary dir")?;
    let mut storage_files = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .with_context(|| format!("reading {}", zip_path.display()))?;
        let name = entry.name().trim_start_matches("./").to_string();
        if name.starts_with("storage/") && entry.is_file() && !name.ends_with(ATTRS_SUFFIX) {
            // Only `storage/<collection>/<record>/<file>` can be named by a record
            // (thumbnails sit one level deeper); safe names only.
            let parts: Vec<&str> = name.split('/').collect();
            if parts.len() != 4 || !parts[1..].iter().all(|part| is_safe_component(part)) {
                continue;
            }
            storage_files += 1;
            let target = dir.path().join(&name);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("extracting {name}"))?;
            }
            let declared = entry.size();
            let mut out =
                std::fs::File::create(&target).with_context(|| format!("extracting {name}"))?;
            let copied = std::io::copy(
                &mut std::io::Read::take(&mut entry, declared.saturating_add(1)),
                &mut out,
            )
            .with_context(|| format!("extracting {name}"))?;
            if copied != declared {
                bail!(
                    "{name} in {} is damaged (size mismatch)",
                    zip_path.display()
                );
            }
            continue;
        }
        if name != "data.db" && name != "data.db-wal" {
            continue;
        }
        if entry.size() > BACKUP_DB_MAX_BYTES {
            bail!("{name} in {} is too large", zip_path.display());
        }
        let mut out = std::fs::File::create(dir.path().join(&name))
            .with_context(|| format!("extracting {name}"))?;
        let copied = std::io::copy(
            &mut std::io::Read::take(&mut entry, BACKUP_DB_MAX_BYTES + 1),
            &mut out,
        )
        .with_context(|| format!("extracting {name}"))?;
        if copied > BACKUP_DB_MAX_BYTES {
            bail!("{name} in {} is too large", zip_path.display());
        }
    }
    Ok((dir, storage_files))
}

/// Where the import is built before it is renamed to `to`: `.<name>.importing` beside it.
fn staging_dir(to: &Path) -> Result<std::path::PathBuf> {
    let name = to
        .file_name()
        .with_context(|| format!("{} has no directory name", to.display()))?;
    Ok(to.with_file_name(format!(".{}.importing", name.to_string_lossy())))
}

/// Runs the import; prints progress and the report.
pub fn run(from: &Path, to: &Path, options: api::ServerOptions) -> Result<Report> {
    let started = Instant::now();
    // A PocketBase backup (a zip of pb_data): its data.db is extracted to a temporary dir.
    let (extracted, zipped_files) = if from.is_file() {
        let (dir, files) = extract_backup(from)?;
        (Some(dir), Some(files))
    } else {
        (None, None)
    };
    let from_dir = extracted.as_ref().map(|dir| dir.path()).unwrap_or(from);
    if !is_pocketbase_dir(from_dir) {
        bail!(
            "{} is not a PocketBase data dir or backup (no data.db with PocketBase's \
             _collections table)",
            from.display()
        );
    }
    check_target(from, to)?;
    let from = from_dir;
    let (source, _tmp) = open_source(from)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let staging = staging_dir(to)?;
    if staging.exists() {
        // An import that failed or still runs: never removed behind its back.
        bail!(
            "{} holds an unfinished (or running) import into {}: remove it and run again",
            staging.display(),
            to.display()
        );
    }
    let (engine, _) =
        Engine::open(&staging, EngineConfig::default()).map_err(|err| anyhow::anyhow!("{err}"))?;
    let state = AppState::new(engine, options)?;
    let result = import_into(&runtime, &state, &source, &from.join("storage"));
    state.engine.shutdown();
    drop(state);
    let mut report = result.with_context(|| {
        format!(
            "the import failed; {} was not created (the unfinished import is in {})",
            to.display(),
            staging.display()
        )
    })?;
    std::fs::rename(&staging, to).with_context(|| {
        format!(
            "moving the finished import {} to {}",
            staging.display(),
            to.display()
        )
    })?;
    let in_storage = zipped_files.unwrap_or_else(|| count_files(&from.join("storage")));
    report.files_skipped = in_storage.saturating_sub(report.files_imported);
    print_report(&report, started.elapsed(), to);
    Ok(report)
}

fn import_into(
    runtime: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    source: &rusqlite::Connection,
    storage: &Path,
) -> Result<Report> {
    let mut report = Report::default();
    // 1. Collections: base and auth first, views last (a view's query needs its tables).
    let mut statement = source
        .prepare("SELECT * FROM _collections ORDER BY (type = 'view'), created, rowid")
        .context("reading _collections")?;
    let all: Vec<Map<String, Value>> = statement
        .query_map([], collection_json)?
        .collect::<rusqlite::Result<_>>()
        .context("reading _collections")?;
    let imported: Vec<Value> = all
        .iter()
        .filter(|c| c.get("system") != Some(&json!(true)))
        .cloned()
        .map(Value::Object)
        .collect();
    report.collections_imported = imported.len();
    if !imported.is_empty() {
        let mut body = Map::new();
        body.insert("collections".into(), Value::Array(imported));
        runtime
            .block_on(api::collections::import::import(
                state,
                Actor::System,
                &body,
            ))
            .map_err(api_err)
            .context("importing the collections")?;
    }
    // 2. Settings.
    report.settings = import_settings(runtime, state, source);
    // With S3 on, PocketBase's files are in the bucket: nothing to copy from storage/.
    report.files_in_s3 = state.settings()["s3"]["enabled"] == json!(true);
    let mut files = FileCopy {
        from: (!report.files_in_s3).then(|| storage.to_path_buf()),
        to: api::files::storage::LocalStorage::new(state.engine.dir()),
        imported: 0,
        bytes: 0,
        missing: 0,
    };
    // 3. Records.
    let schema = state.schema();
    let mut totals = Vec::new();
    let tables: Vec<String> = source
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT IN ('_collections', '_params', '_migrations') ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for table in tables {
        let count: u64 = source.query_row(
            &format!("SELECT COUNT(*) FROM {}", engine::quote_ident(&table)),
            [],
            |row| row.get(0),
        )?;
        match schema.collections.iter().find(|c| c.name == table) {
            Some(collection) if !collection.is_view() => {
                totals.push((Arc::clone(collection), count))
            }
            Some(_) => {}
            None => {
                report.skipped.insert(table, count);
            }
        }
    }
    let total: u64 = totals.iter().map(|(_, count)| count).sum();
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "importing records [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    for (collection, _) in totals {
        let copied = import_records(
            state,
            source,
            &collection,
            &bar,
            &mut report.bytes,
            &mut files,
        )
        .with_context(|| format!("importing the records of {}", collection.name))?;
        report.records.insert(collection.name.clone(), copied);
    }
    bar.finish_and_clear();
    report.files_imported = files.imported;
    report.file_bytes = files.bytes;
    report.files_missing = files.missing;
    Ok(report)
}

/// Copies the files records name from the source's `storage/` into the new data dir.
struct FileCopy {
    /// The source's `storage/` (`None`: files are in S3, nothing is copied).
    from: Option<std::path::PathBuf>,
    to: api::files::storage::LocalStorage,
    imported: u64,
    bytes: u64,
    missing: u64,
}

impl FileCopy {
    /// Copies the files `record` names in `collection`'s file fields and makes them durable;
    /// returns the names copied (for the record's `FilesChanged`).
    fn copy(
        &mut self,
        collection: &Collection,
        record: &Map<String, Value>,
    ) -> Result<Vec<String>> {
        let Some(from) = &self.from else {
            return Ok(Vec::new());
        };
        let id = record.get("id").and_then(Value::as_str).unwrap_or("");
        let mut names = Vec::new();
        for field in collection
            .fields
            .iter()
            .filter(|f| f.kind() == FieldType::File)
        {
            match record.get(field.name()) {
                Some(Value::String(name)) if !name.is_empty() => names.push(name.clone()),
                Some(Value::Array(list)) => names.extend(
                    list.iter()
                        .filter_map(Value::as_str)
                        .filter(|name| !name.is_empty())
                        .map(str::to_string),
                ),
                _ => {}
            }
        }
        let mut copied = Vec::with_capacity(names.len());
        let mut created_dirs = false;
        for name in names {
            let source = from.join(&collection.id).join(id).join(&name);
            let Some(target) = self.to.path_of(&collection.id, id, &name) else {
                self.missing += 1;
                continue;
            };
            if !is_safe_component(&name) || !source.is_file() {
                self.missing += 1;
                continue;
            }
            if let Some(parent) = target.parent() {
                created_dirs |= !parent.exists();
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let bytes = std::fs::copy(&source, &target)
                .with_context(|| format!("copying {}", source.display()))?;
            std::fs::File::open(&target)
                .and_then(|file| file.sync_all())
                .with_context(|| format!("syncing {}", target.display()))?;
            self.imported += 1;
            self.bytes += bytes;
            copied.push(name);
        }
        if let Some(record_dir) = self
            .to
            .path_of(&collection.id, id, "x")
            .and_then(|path| path.parent().map(Path::to_path_buf))
        {
            if !copied.is_empty() {
                sync_dir(&record_dir)?;
                if created_dirs {
                    for dir in record_dir.ancestors().skip(1).take(2) {
                        sync_dir(dir)?;
                    }
                }
            }
        }
        Ok(copied)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

fn import_settings(
    runtime: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    source: &rusqlite::Connection,
) -> bool {
    // PocketBase stores the value as a JSON blob (or text).
    let text: Option<String> = source
        .query_row(
            "SELECT value FROM _params WHERE id = 'settings'",
            [],
            |row| {
                Ok(match engine_value(row.get_ref(0)?) {
                    engine::Value::Text(text) => Some(text),
                    _ => None,
                })
            },
        )
        .ok()
        .flatten();
    let Some(text) = text else {
        return false;
    };
    let patch = match api::settings::encrypt::load(
        &text,
        state.options.settings_key.as_ref(),
        state.options.encryption_env.as_deref(),
    ) {
        Ok((patch, _)) => patch,
        Err(err) => {
            eprintln!("warning: {err:#}; the settings are skipped, pocketlog's defaults apply");
            return false;
        }
    };
    let mut settings = (*state.settings()).clone();
    api::settings::merge(&mut settings, &patch);
    match runtime.block_on(api::settings::save(state, Actor::System, settings)) {
        Ok(()) => true,
        Err(err) => {
            eprintln!(
                "warning: the settings were refused ({:#}); skipped, pocketlog's defaults apply",
                api_err(err)
            );
            false
        }
    }
}

/// Copies every row of `collection`'s table, in commits of [`BATCH_RECORDS`] / [`BATCH_BYTES`].
fn import_records(
    state: &Arc<AppState>,
    source: &rusqlite::Connection,
    collection: &Arc<Collection>,
    bar: &indicatif::ProgressBar,
    bytes: &mut u64,
    files: &mut FileCopy,
) -> Result<u64> {
    let mut statement = source.prepare(&format!(
        "SELECT * FROM {} ORDER BY rowid",
        engine::quote_ident(&collection.name)
    ))?;
    let columns: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut rows = statement.query([])?;
    let mut batch: Vec<Change> = Vec::with_capacity(BATCH_RECORDS);
    let mut batch_bytes = 0usize;
    let mut copied = 0u64;
    let auth = collection.is_auth();
    while let Some(row) = rows.next()? {
        let values: Vec<engine::Value> = (0..columns.len())
            .map(|index| row.get_ref(index).map(engine_value))
            .collect::<rusqlite::Result<_>>()?;
        let mut record = from_row(collection, &columns, &values);
        if auth {
            record.insert("tokenKey".into(), json!(api::auth::new_token_key()));
        }
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let stored = to_storage(collection, &record);
        batch_bytes += stored.iter().map(|(_, v)| value_len(v)).sum::<usize>();
        let added = files.copy(collection, &record)?;
        batch.push(Change::RecordCreated {
            collection_id: collection.id.clone(),
            id: id.clone(),
            values: stored,
        });
        if !added.is_empty() {
            batch.push(Change::FilesChanged {
                collection_id: collection.id.clone(),
                record_id: id,
                added,
                removed: Vec::new(),
            });
        }
        if batch.len() >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES {
            let committed = commit(state, &mut batch)?;
            copied += committed;
            bar.inc(committed);
            *bytes += batch_bytes as u64;
            batch_bytes = 0;
        }
    }
    let committed = commit(state, &mut batch)?;
    copied += committed;
    bar.inc(committed);
    *bytes += batch_bytes as u64;
    Ok(copied)
}

/// Commits the staged record creations as one commit; returns how many.
fn commit(state: &Arc<AppState>, batch: &mut Vec<Change>) -> Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let changes = std::mem::take(batch);
    let count = changes
        .iter()
        .filter(|change| matches!(change, Change::RecordCreated { .. }))
        .count() as u64;
    state
        .execute(Actor::System, move |tx| {
            for change in changes {
                tx.stage(change)?;
            }
            Ok::<(), engine::Error>(())
        })
        .map_err(|failure| match failure {
            engine::Failure::Command(err) | engine::Failure::Engine(err) => {
                anyhow::anyhow!("{err}")
            }
        })?;
    Ok(count)
}

/// Files under `dir` (recursively), without PocketBase's `.attrs` metadata files.
fn count_files(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                // Thumbnails are made again on demand; they are not the record's files.
                if entry.file_name().to_string_lossy().starts_with("thumbs_") {
                    return 0;
                }
                count_files(&path)
            } else {
                u64::from(!path.to_string_lossy().ends_with(ATTRS_SUFFIX))
            }
        })
        .sum()
}

fn print_report(report: &Report, elapsed: std::time::Duration, to: &Path) {
    let records: u64 = report.records.values().sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "Imported {} collections and {records} records into {} in {:.1}s ({:.0} records/s, {:.2} MB/s)",
        report.collections_imported,
        to.display(),
        secs,
        records as f64 / secs,
        report.bytes as f64 / 1e6 / secs
    );
    for (name, count) in &report.records {
        println!("├─ {name}: {count} records");
    }
    println!(
        "├─ settings: {}",
        if report.settings {
            "imported"
        } else {
            "skipped (pocketlog's defaults)"
        }
    );
    for (table, count) in &report.skipped {
        println!("├─ skipped table {table}: {count} rows (no such collection in pocketlog)");
    }
    println!(
        "├─ files: {} copied ({:.2} MB)",
        report.files_imported,
        report.file_bytes as f64 / 1e6
    );
    if report.files_in_s3 {
        println!(
            "├─ warning: PocketBase stores the files in S3 (s3.enabled): they were NOT imported; \
             pocketlog serves files from its local storage only"
        );
    }
    if report.files_missing > 0 {
        println!(
            "├─ warning: {} files named by records are missing from storage/ (not imported)",
            report.files_missing
        );
    }
    if report.files_skipped > 0 {
        println!(
            "├─ {} files in storage/ that no record names were not copied",
            report.files_skipped
        );
    }
    println!(
        "└─ Every token PocketBase issued is now invalid (new token secrets and keys): users and \
         superusers sign in again with their old passwords."
    );
}
