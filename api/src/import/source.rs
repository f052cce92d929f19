//! Reading a PocketBase data dir or backup zip for the import (see the module above): the
//! source `data.db` opened read-only and immutable, its `_collections` rows as the API's
//! collection JSON, a backup zip's `data.db` and record files extracted into a scratch dir.
//!
//! Invariants: the source is never written; a zip entry is extracted only under a safe
//! `storage/<collection>/<record>/<file>` name or as `data.db`/`data.db-wal`, and never past
//! its declared size (or [`BACKUP_DB_MAX_BYTES`] for the database).

use crate::files::names::is_safe_component;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// A temporary dir in `scratch` (or the system's temporary dir).
pub(super) fn temp_dir(scratch: Option<&Path>) -> Result<tempfile::TempDir> {
    match scratch {
        Some(dir) => tempfile::Builder::new()
            .prefix(".import-")
            .tempdir_in(dir)
            .with_context(|| format!("creating a temporary dir in {}", dir.display())),
        None => tempfile::tempdir().context("creating a temporary dir"),
    }
}

pub(super) fn open_immutable(db: &Path) -> rusqlite::Result<rusqlite::Connection> {
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
pub(super) fn open_source(
    from: &Path,
    scratch: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<(rusqlite::Connection, Option<tempfile::TempDir>)> {
    let db = from.join("data.db");
    let wal = from.join("data.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if wal_len == 0 {
        let conn = open_immutable(&db).with_context(|| format!("opening {}", db.display()))?;
        return Ok((conn, None));
    }
    warnings.push(format!(
        "{} has a write-ahead log (was PocketBase stopped?); a copy was read",
        db.display()
    ));
    let tmp = temp_dir(scratch)?;
    std::fs::copy(&db, tmp.path().join("data.db")).context("copying data.db")?;
    std::fs::copy(&wal, tmp.path().join("data.db-wal")).context("copying data.db-wal")?;
    let conn = rusqlite::Connection::open(tmp.path().join("data.db"))
        .context("opening the copy of data.db")?;
    Ok((conn, Some(tmp)))
}

/// One `_collections` row as the API's collection JSON.
pub(super) fn collection_json(row: &rusqlite::Row<'_>) -> rusqlite::Result<Map<String, Value>> {
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

pub(super) fn engine_value(value: rusqlite::types::ValueRef<'_>) -> engine::Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => engine::Value::Null,
        ValueRef::Integer(i) => engine::Value::Int(i),
        ValueRef::Real(f) => engine::Value::Real(f),
        ValueRef::Text(t) => engine::Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => engine::Value::Text(String::from_utf8_lossy(b).into_owned()),
    }
}

pub(super) fn value_len(value: &engine::Value) -> usize {
    match value {
        engine::Value::Text(t) => t.len(),
        _ => 8,
    }
}

/// PocketBase's local storage keeps each file's metadata in `<file>.attrs` beside it; those
/// are not counted as files.
pub(super) const ATTRS_SUFFIX: &str = ".attrs";

/// Largest `data.db` a backup zip may expand to (a guard against zip bombs).
pub const BACKUP_DB_MAX_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// Extracts `data.db` (and `data.db-wal`, if any) of a PocketBase backup zip into a temporary
/// dir; nothing else is written. Returns the dir and the number of files under `storage/`.
pub(super) fn extract_backup(
    zip_path: &Path,
    scratch: Option<&Path>,
) -> Result<(tempfile::TempDir, u64)> {
    let file =
        std::fs::File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| {
        format!(
            "{} is neither a PocketBase data dir nor a PocketBase backup zip",
            zip_path.display()
        )
    })?;
    let dir = temp_dir(scratch)?;
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

/// Files under `dir` (recursively), without PocketBase's `.attrs` metadata files.
pub(super) fn count_files(dir: &Path) -> u64 {
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
