//! Importing a PocketBase data dir (or a PocketBase backup zip) into a new pocketlog data dir,
//! as ordinary log commits (history starts at the import). Used by `pocketlog
//! import-pocketbase`, `pb-tools restore` and the backups API (`POST /api/backups/{key}/restore`
//! of a PocketBase zip imports into the restore stage).
//!
//! What is brought over, in this order:
//! 1. collections (the `_collections` table turned into the API's collection JSON, imported in
//!    one commit through `collections::import::import`, so the collections service validates
//!    and builds them exactly as `PUT /api/collections/import` would). System collections keep
//!    pocketlog's definitions. Token secrets are NOT carried over: every auth collection gets
//!    fresh ones, and every auth record a fresh `tokenKey`, so every token PocketBase issued is
//!    invalid afterwards.
//! 2. settings (`_params` row `settings`, merged over pocketlog's defaults, validated and saved
//!    by `settings::save`); settings PocketBase encrypted (`--encryptionEnv`) are opened with
//!    the key in the options (the same construction, `settings::encrypt`) and stay encrypted;
//!    without the key, or when invalid, they are skipped with a warning.
//! 3. records of every non-view collection pocketlog has (including `_superusers`,
//!    `_externalAuths`, `_mfas`, `_otps`, `_authOrigins`), ids, dates and password hashes
//!    (bcrypt) as they are, in commits of at most [`BATCH_RECORDS`] records and about
//!    [`BATCH_BYTES`] bytes. Tables of collections pocketlog does not have are skipped and
//!    counted.
//! 4. files from `storage/` (PocketBase's layout is pocketlog's:
//!    `storage/<collectionId>/<recordId>/<name>`): every file a record's file fields name is
//!    copied (and fsynced) into the new dir before the commit that creates the record, which
//!    also carries the record's `FilesChanged`. Files no record names are counted, not copied;
//!    a named file that is missing is counted. With PocketBase's S3 storage on, nothing is
//!    copied and the report says so.
//!
//! Invariants:
//! - The source is never modified: `data.db` is opened read-only and `immutable`; when a
//!   non-empty `-wal` exists, `data.db` and its `-wal` are copied to a scratch dir first.
//! - The target must be new or empty, else nothing is done. The callers build into a staging
//!   dir and rename it when [`import`] returns Ok (no half-imported data dir is ever served).
//! - Writes go through the engine's writer (`AppState::execute` and the services).

mod copy;
mod source;

pub use copy::{BATCH_BYTES, BATCH_RECORDS};
pub use source::BACKUP_DB_MAX_BYTES;

use crate::{AppState, ServerOptions};
use anyhow::{bail, Context, Result};
use engine::{Engine, EngineConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// What an import did.
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
    /// Things the user should know (settings skipped, a write-ahead log read from a copy).
    pub warnings: Vec<String>,
}

/// One import: where from, where to, and with which server options.
pub struct Import<'a> {
    /// A PocketBase data dir, or a PocketBase backup zip.
    pub from: &'a Path,
    /// The new data dir (must not exist, or be empty); the callers pass a staging dir.
    pub target: &'a Path,
    /// The options of the state the import runs through (the settings key matters).
    pub options: ServerOptions,
    /// Where temporary copies go (a zip's extracted files); default: the system's temp dir.
    pub scratch: Option<&'a Path>,
}

/// True when `dir` looks like a PocketBase data dir: a `data.db` whose `_collections` table
/// has PocketBase's columns (pocketlog's own projection has a `def` column instead).
pub fn is_pocketbase_dir(dir: &Path) -> bool {
    let db = dir.join("data.db");
    if !db.is_file() {
        return false;
    }
    let Ok(conn) = source::open_immutable(&db) else {
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

/// True when `path` is a PocketBase backup: a zip archive with a `data.db` at its root and no
/// pocketlog manifest (pocketlog's own archives start with `manifest.json`).
pub fn is_pocketbase_backup(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(archive) = zip::ZipArchive::new(file) else {
        return false;
    };
    let (mut db, mut manifest) = (false, false);
    for name in archive.file_names() {
        let name = name.trim_start_matches("./");
        db |= name == "data.db";
        manifest |= name == "manifest.json";
    }
    db && !manifest
}

/// Refuses a target that already holds anything.
pub fn check_target(from: &Path, to: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (from.canonicalize(), to.canonicalize()) {
        if a == b {
            bail!("the target must be a new directory, not the PocketBase data dir itself");
        }
    }
    if to.exists() {
        let mut entries =
            std::fs::read_dir(to).with_context(|| format!("reading {}", to.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty (already imported?): an import only writes into a new or \
                 empty data dir, and changed nothing",
                to.display()
            );
        }
    }
    Ok(())
}

/// Runs an import (see the module docs). `runtime` drives the services' async code (call
/// from outside the runtime's worker threads: the CLI's main thread or `spawn_blocking`);
/// `progress(done, total)` is told the records committed so far.
pub fn import(
    job: Import<'_>,
    runtime: &tokio::runtime::Handle,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report> {
    let from = job.from;
    // A PocketBase backup (a zip of pb_data): its data.db and files are extracted first.
    let (extracted, zipped_files) = if from.is_file() {
        let (dir, files) = source::extract_backup(from, job.scratch)?;
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
    check_target(from, job.target)?;
    let mut warnings = Vec::new();
    let (conn, _copy) = source::open_source(from_dir, job.scratch, &mut warnings)?;
    let (engine, _) = Engine::open(job.target, EngineConfig::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let state = AppState::new(engine, job.options)?;
    let result = copy::import_into(runtime, progress, &state, &conn, &from_dir.join("storage"));
    state.engine.shutdown();
    drop(state);
    let mut report = result?;
    report.warnings.splice(0..0, warnings);
    let in_storage = zipped_files.unwrap_or_else(|| source::count_files(&from_dir.join("storage")));
    report.files_skipped = in_storage.saturating_sub(report.files_imported);
    for warning in &report.warnings {
        tracing::warn!("import: {warning}");
    }
    Ok(report)
}
