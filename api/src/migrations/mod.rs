//! JS migrations (`pb_migrations/*.js`, `migrate(up, down)`): applied in file-name order at
//! start, recorded as applied in the log (the `_params` key [`APPLIED_KEY`], PocketBase's
//! `_migrations` list), reverted with `down`.
//!
//! - [`generate`]: the files `migrate create`/`collections` and automigrate write.
//! - [`auto`]: `--automigrate`, a file per collection change made through the API.
//! - [`types`]: `pb_data/types.d.ts`, the typings of the JSVM API.
//!
//! Invariants:
//! 1. One migration is one commit: its writes (collections, records) and the update of the
//!    applied list commit together, so a crash never leaves a migration half-applied or
//!    applied but unrecorded.
//! 2. A failing migration stops the run; the earlier ones stay applied (as the reference).
//! 3. Replay never runs migration code: the log holds what they did.
//! 4. Changes of the applied list are serialized ([`LOCK`]), so `up`, `down`, `history-sync`
//!    and automigrate never lose each other's entries.

pub mod auto;
pub mod generate;
pub mod types;

use crate::error::{ApiError, ApiResult};
use crate::hooks::{native::Native, parse_outcome, vm, writes};
use crate::state::AppState;
use engine::{Actor, Change};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// The `_params` key of the applied migrations (a JSON array of file names, in order).
pub const APPLIED_KEY: &str = "migrations";
/// The time limit of one migration.
pub const MIGRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The migration files of `dir` (`*.js`, not `*.pb.js`), in name order.
pub fn files(dir: &Path) -> std::io::Result<Vec<vm::Source>> {
    crate::hooks::read_sources(dir, |name| {
        name.ends_with(".js") && !name.ends_with(crate::hooks::HOOK_SUFFIX)
    })
}

/// Serializes the changes of the applied list (`up`, `down`, `history-sync`, automigrate),
/// so two of them never lose each other's entry.
pub(crate) static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Commits `list` as the applied migrations (one commit by the system).
async fn set_applied(state: &Arc<AppState>, list: Vec<String>) -> ApiResult<()> {
    let list = Value::from(list).to_string();
    state
        .write(Actor::System, move |tx| {
            tx.stage(Change::ParamSet {
                key: APPLIED_KEY.into(),
                value: Some(list),
            })
            .map_err(ApiError::from)
        })
        .await?;
    Ok(())
}

/// `migrate history-sync`: drops the applied entries whose files are gone from `dir`; the
/// names dropped.
pub async fn history_sync(state: &Arc<AppState>, dir: &Path) -> ApiResult<Vec<String>> {
    let _guard = LOCK.lock().await;
    let present: Vec<String> = files(dir)
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let (kept, dropped): (Vec<String>, Vec<String>) = applied(state)?
        .into_iter()
        .partition(|name| present.contains(name));
    if !dropped.is_empty() {
        set_applied(state, kept).await?;
        tracing::info!(?dropped, "dropped applied migrations without a file");
    }
    Ok(dropped)
}

/// The applied migrations, in order.
pub fn applied(state: &AppState) -> ApiResult<Vec<String>> {
    let rows = state
        .engine
        .read(|conn| {
            conn.query(
                "SELECT value FROM _params WHERE key = ?1",
                &[engine::Value::from(APPLIED_KEY)],
            )
        })
        .map_err(ApiError::from)?;
    Ok(rows
        .rows
        .first()
        .and_then(|row| row[0].as_str())
        .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
        .unwrap_or_default())
}

fn pool(state: &Arc<AppState>) -> ApiResult<vm::Pool> {
    let native = Native::new(
        Arc::downgrade(state),
        tokio::runtime::Handle::try_current().ok(),
    );
    let limits = vm::Limits {
        timeout: MIGRATION_TIMEOUT,
        memory_bytes: crate::hooks::DEFAULT_MEMORY_BYTES,
    };
    vm::Pool::start(1, Arc::new(Vec::new()), limits, native)
        .map(|(pool, _)| pool)
        .map_err(ApiError::internal)
}

async fn run_one(
    state: &Arc<AppState>,
    pool: &vm::Pool,
    file: &vm::Source,
    direction: &str,
    applied_after: Vec<String>,
) -> ApiResult<()> {
    let out = pool
        .call(
            "__pl_migration",
            vec![file.text.clone(), direction.to_string()],
        )
        .await
        .map_err(|err| ApiError::bad_request(&format!("{}: {err}", file.name)))?;
    let outcome = parse_outcome(&out).map_err(|err| {
        ApiError::bad_request(&format!("{} ({direction}): {}", file.name, err.message))
    })?;
    let joined = writes::prepare(state, outcome.writes).await?;
    let list = Value::from(applied_after).to_string();
    state
        .write(Actor::System, move |tx| {
            joined.apply(tx)?;
            tx.stage(Change::ParamSet {
                key: APPLIED_KEY.into(),
                value: Some(list),
            })
            .map_err(ApiError::from)
        })
        .await?;
    tracing::info!(file = file.name, direction, "applied a migration");
    Ok(())
}

/// Applies every migration of `dir` not applied yet, in order; the names applied now.
pub async fn up(state: &Arc<AppState>, dir: &Path) -> ApiResult<Vec<String>> {
    let _guard = LOCK.lock().await;
    let files = files(dir).map_err(ApiError::internal)?;
    let mut done = applied(state)?;
    let pending: Vec<&vm::Source> = files.iter().filter(|f| !done.contains(&f.name)).collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let pool = pool(state)?;
    let mut now = Vec::new();
    for file in pending {
        let mut after = done.clone();
        after.push(file.name.clone());
        run_one(state, &pool, file, "up", after.clone()).await?;
        done = after;
        now.push(file.name.clone());
    }
    Ok(now)
}

/// Reverts the last `count` applied migrations (newest first); the names reverted.
pub async fn down(state: &Arc<AppState>, dir: &Path, count: usize) -> ApiResult<Vec<String>> {
    let _guard = LOCK.lock().await;
    let files = files(dir).map_err(ApiError::internal)?;
    let mut done = applied(state)?;
    let pool = pool(state)?;
    let mut reverted = Vec::new();
    for _ in 0..count {
        let Some(name) = done.last().cloned() else {
            break;
        };
        let file = files.iter().find(|f| f.name == name).ok_or_else(|| {
            ApiError::bad_request(&format!("the applied migration {name} has no file"))
        })?;
        let after = done[..done.len() - 1].to_vec();
        run_one(state, &pool, file, "down", after.clone()).await?;
        done = after;
        reverted.push(name);
    }
    Ok(reverted)
}
