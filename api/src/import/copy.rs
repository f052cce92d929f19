//! Writing the import (see the module above): collections through the collections service,
//! settings through the settings service, records in batched commits with the files they name.
//!
//! Invariants: every write goes through the engine's writer (`AppState::execute` or the
//! services), never into `data.db`; a record's files are copied and fsynced before the commit
//! that creates it (which carries their `FilesChanged`); a commit holds at most
//! [`BATCH_RECORDS`] records and about [`BATCH_BYTES`] bytes.

use super::source::{collection_json, engine_value, value_len};
use super::Report;
use crate::files::names::is_safe_component;
use crate::model::record::{from_row, to_storage};
use crate::model::{Collection, FieldType};
use crate::AppState;
use anyhow::{Context, Result};
use engine::{Actor, Change};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;

/// Most records in one import commit.
pub const BATCH_RECORDS: usize = 1000;
/// Approximate most bytes of record values in one import commit (the engine's limit is
/// `engine::FRAME_PAYLOAD_MAX`, 64 MiB).
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn api_err(err: crate::error::ApiError) -> anyhow::Error {
    if err.data.is_empty() {
        anyhow::anyhow!("{}", err.message)
    } else {
        anyhow::anyhow!("{} {}", err.message, Value::Object(err.data))
    }
}

pub(super) fn import_into(
    runtime: &tokio::runtime::Handle,
    progress: &mut dyn FnMut(u64, u64),
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
            .block_on(crate::collections::import::import(
                state,
                Actor::System,
                &body,
            ))
            .map_err(api_err)
            .context("importing the collections")?;
    }
    // 2. Settings.
    report.settings = import_settings(runtime, state, source, &mut report.warnings);
    // With S3 on, PocketBase's files are in the bucket: nothing to copy from storage/.
    report.files_in_s3 = state.settings()["s3"]["enabled"] == json!(true);
    let mut files = FileCopy {
        from: (!report.files_in_s3).then(|| storage.to_path_buf()),
        to: crate::files::storage::LocalStorage::new(state.engine.dir()),
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
    let mut done = 0u64;
    progress(done, total);
    for (collection, _) in totals {
        let copied = import_records(
            state,
            source,
            &collection,
            &mut |committed| {
                done += committed;
                progress(done, total);
            },
            &mut report.bytes,
            &mut files,
        )
        .with_context(|| format!("importing the records of {}", collection.name))?;
        report.records.insert(collection.name.clone(), copied);
    }
    report.files_imported = files.imported;
    report.file_bytes = files.bytes;
    report.files_missing = files.missing;
    Ok(report)
}

/// Copies the files records name from the source's `storage/` into the new data dir.
struct FileCopy {
    /// The source's `storage/` (`None`: files are in S3, nothing is copied).
    from: Option<std::path::PathBuf>,
    to: crate::files::storage::LocalStorage,
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
    runtime: &tokio::runtime::Handle,
    state: &Arc<AppState>,
    source: &rusqlite::Connection,
    warnings: &mut Vec<String>,
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
    let patch = match crate::settings::encrypt::load(
        &text,
        state.options.settings_key.as_ref(),
        state.options.encryption_env.as_deref(),
    ) {
        Ok((patch, _)) => patch,
        Err(err) => {
            warnings.push(format!(
                "{err:#}; the settings are skipped, pocketlog's defaults apply"
            ));
            return false;
        }
    };
    let mut settings = (*state.settings()).clone();
    crate::settings::merge(&mut settings, &patch);
    match runtime.block_on(crate::settings::save(state, Actor::System, settings)) {
        Ok(()) => true,
        Err(err) => {
            warnings.push(format!(
                "the settings were refused ({:#}); skipped, pocketlog's defaults apply",
                api_err(err)
            ));
            false
        }
    }
}

/// Copies every row of `collection`'s table, in commits of [`BATCH_RECORDS`] / [`BATCH_BYTES`].
fn import_records(
    state: &Arc<AppState>,
    source: &rusqlite::Connection,
    collection: &Arc<Collection>,
    progress: &mut dyn FnMut(u64),
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
            record.insert("tokenKey".into(), json!(crate::auth::new_token_key()));
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
            progress(committed);
            *bytes += batch_bytes as u64;
            batch_bytes = 0;
        }
    }
    let committed = commit(state, &mut batch)?;
    copied += committed;
    progress(committed);
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
