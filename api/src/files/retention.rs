//! Stored files released by schema changes, the failpoint of crash tests, and where a view
//! collection's files are stored (the orphan sweep is in `files::gc`).
//!
//! A record write names the files it adds and drops (`files::write`); deleting a collection or
//! one of its file fields drops every file those records hold, so the same command stages one
//! `FilesChanged { removed }` per record for them, before the schema change itself. The
//! engine's compaction then deletes their bytes once no retained restore point needs them
//! (`engine/src/files.rs`).
//!
//! Invariants:
//! 1. A file field is "dropped" when the new definition has no file field with the same id
//!    (a rename keeps the files; a type change or removal drops them).
//! 2. The releases are staged in the same command (same commit) as the schema change, so the
//!    log never holds one without the other.
//! 3. [`failpoint`] exists only in debug builds (tests); a release build ignores the variable.

use crate::error::{ApiError, ApiResult};
use crate::files::fields::names_of;
use crate::model::record::json_from_storage;
use crate::model::{Collection, Field, FieldType};
use engine::{Change, Tx};

/// The file fields of `old` that `new` drops (all of them when `new` is `None`).
fn dropped_file_fields<'a>(old: &'a Collection, new: Option<&Collection>) -> Vec<&'a Field> {
    old.fields
        .iter()
        .filter(|field| field.kind() == FieldType::File)
        .filter(|field| {
            !new.is_some_and(|new| {
                new.fields
                    .iter()
                    .any(|kept| kept.id() == field.id() && kept.kind() == FieldType::File)
            })
        })
        .collect()
}

/// Stages `FilesChanged { removed }` for every record of `old` holding files in a file field
/// that the schema change to `new` (`None`: the collection is deleted) drops. Call inside the
/// write command, before staging the change itself (the records are read from the tx).
pub fn stage_released_by_schema(
    tx: &mut Tx<'_>,
    old: &Collection,
    new: Option<&Collection>,
) -> ApiResult<()> {
    if old.is_view() {
        return Ok(());
    }
    let dropped = dropped_file_fields(old, new);
    if dropped.is_empty() {
        return Ok(());
    }
    let columns: Vec<String> = dropped
        .iter()
        .map(|field| engine::quote_ident(field.name()))
        .collect();
    let sql = format!(
        "SELECT id, {} FROM {}",
        columns.join(", "),
        engine::quote_ident(&old.name)
    );
    let rows = tx.query(&sql, &[]).map_err(ApiError::from)?;
    for row in rows.rows {
        let Some(engine::Value::Text(record_id)) = row.first() else {
            continue;
        };
        let removed: Vec<String> = dropped
            .iter()
            .zip(row.iter().skip(1))
            .flat_map(|(field, value)| names_of(Some(&json_from_storage(field, value))))
            .collect();
        if removed.is_empty() {
            continue;
        }
        tx.stage(Change::FilesChanged {
            collection_id: old.id.clone(),
            record_id: record_id.clone(),
            added: Vec::new(),
            removed,
        })
        .map_err(ApiError::from)?;
    }
    Ok(())
}

/// The environment variable naming a failpoint to hit (debug builds only).
pub const FAILPOINT_ENV: &str = "POCKETLOG_FAILPOINT";
/// The failpoint right after a write's uploads are renamed into storage (and fsynced), before
/// its commit is appended: the process aborts there.
pub const AFTER_FILE_PERSIST: &str = "after_file_persist";

/// Aborts the process when [`FAILPOINT_ENV`] names `name` (crash-injection tests; debug
/// builds only).
pub fn failpoint(name: &str) {
    if cfg!(debug_assertions) && std::env::var(FAILPOINT_ENV).is_ok_and(|value| value == name) {
        tracing::error!(failpoint = name, "failpoint hit: aborting the process");
        std::process::abort();
    }
}

/// Where the file `filename` of record `record_id` of a view collection is stored: a view's
/// file field shows a source record's file, stored under the source's collection and record
/// (`storage/<sourceCollectionId>/<sourceRecordId>/<name>`). The projection's stored-files
/// table finds it by name (names carry a random suffix), preferring a source record with the
/// view record's id. The caller has checked that the view record names the file.
pub async fn view_file_path(
    state: &std::sync::Arc<crate::state::AppState>,
    record_id: &str,
    filename: &str,
) -> ApiResult<std::path::PathBuf> {
    let (name, id) = (filename.to_string(), record_id.to_string());
    let rows = state
        .read(move |conn| {
            conn.query(
                "SELECT collection_id, record_id FROM _stored_files WHERE name = ?1 \
                 ORDER BY record_id = ?2 DESC LIMIT 1",
                &[engine::Value::Text(name), engine::Value::Text(id)],
            )
        })
        .await?;
    let Some([engine::Value::Text(collection_id), engine::Value::Text(source_id)]) =
        rows.rows.first().map(Vec::as_slice)
    else {
        return Err(ApiError::not_found());
    };
    crate::files::storage::LocalStorage::new(state.engine.dir())
        .path_of(collection_id, source_id, filename)
        .ok_or_else(ApiError::not_found)
}
