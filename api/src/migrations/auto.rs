//! `--automigrate`: every collection create, update and delete made through the API (and so
//! the dashboard) writes a migration file `<unix ts>_<created|updated|deleted>_<name>.js` into
//! the migrations directory, and records it as applied (the change is already in the log), so
//! the next start does not run it again. A fresh data dir started with those files gets the
//! same schema.
//!
//! Invariants:
//! 1. Called after the collection change committed; a failure here is logged, never turned
//!    into an error answer (the change stays committed, as the answer says).
//! 2. File names sort in the order of the changes: a file's timestamp is never below that of
//!    a migration already in the directory (two changes in one second get increasing ones).
//! 3. The name joins the applied list before the file is written (under the migrations
//!    [`LOCK`](super::LOCK)): a crash in between leaves an entry without a file, which is
//!    harmless (`history-sync` drops it), never a file that the next start would run again
//!    over the change it describes.

use super::generate;
use crate::error::{ApiError, ApiResult};
use crate::model::Collection;
use crate::state::AppState;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A committed collection change.
pub enum CollectionChange<'a> {
    /// A new collection.
    Created(&'a Collection),
    /// A collection before and after an update.
    Updated(&'a Collection, &'a Collection),
    /// A deleted collection (as it was).
    Deleted(&'a Collection),
}

/// Writes the migration of `change` when automigrate is on (`ServerOptions::automigrate_dir`);
/// errors are logged.
pub async fn after_change(state: &Arc<AppState>, change: CollectionChange<'_>) {
    let Some(dir) = state.options.automigrate_dir.clone() else {
        return;
    };
    let (action, name, text) = match change {
        CollectionChange::Created(c) => ("created", &c.name, Some(generate::created(c))),
        CollectionChange::Updated(before, after) => {
            ("updated", &after.name, generate::updated(before, after))
        }
        CollectionChange::Deleted(c) => ("deleted", &c.name, Some(generate::deleted(c))),
    };
    let Some(text) = text else {
        return;
    };
    match record(state, &dir, &format!("{action}_{name}"), &text).await {
        Ok(path) => tracing::info!(path = %path.display(), "automigrate: wrote a migration"),
        Err(err) => tracing::error!(
            dir = %dir.display(),
            error = %err.message,
            "automigrate: could not write the migration of a collection change"
        ),
    }
}

/// The largest leading timestamp of the migration files in `dir` (0: none).
fn last_timestamp(dir: &Path) -> u64 {
    super::files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            let digits: String = f.name.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// A new file name `<ts>_<suffix>.js` for `dir` whose timestamp is now, or just after the
/// newest migration there.
pub fn next_name(dir: &Path, suffix: &str) -> String {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let last = last_timestamp(dir);
    let ts = if last >= now { last + 1 } else { now };
    format!("{ts}_{suffix}.js")
}

/// Writes `text` as a new migration and appends it to the applied list; its path.
async fn record(state: &Arc<AppState>, dir: &Path, suffix: &str, text: &str) -> ApiResult<PathBuf> {
    let _guard = super::LOCK.lock().await;
    let name = next_name(dir, suffix);
    let path = dir.join(&name);
    let mut applied = super::applied(state)?;
    applied.push(name);
    super::set_applied(state, applied).await?;
    write_synced(dir, &path, text).map_err(ApiError::internal)?;
    Ok(path)
}

/// Creates `dir` if needed and writes `path` (a new file) durably.
pub fn write_synced(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
