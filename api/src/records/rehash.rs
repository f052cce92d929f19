//! Re-hashing a legacy password hash at login.
//!
//! Auth records imported from PocketBase (`pocketlog import-pocketbase`) keep their bcrypt
//! hashes, which [`crate::auth::verify_password`] accepts as they are. After a successful
//! password login with such a hash, [`upgrade_legacy_hash`] stores an argon2id hash of the same
//! password as an ordinary update commit.
//!
//! Invariants:
//! 1. Only the `password` column changes; `tokenKey` stays, so the token the login issues (and
//!    every other live session) stays valid: the password itself did not change.
//! 2. The command re-reads the row and writes only if it still holds the very bcrypt hash that
//!    was verified; a concurrent password change wins.
//! 3. Argon2 runs off the writer thread (before the command is queued).
//! 4. A failure to upgrade never fails the login: it is logged and retried at the next login.

use crate::auth::{is_legacy_hash, try_hash_password};
use crate::error::{ApiError, ApiResult};
use crate::model::record::to_storage;
use crate::model::Collection;
use crate::state::AppState;
use engine::{Actor, Change};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// If `record`'s stored hash is a legacy (bcrypt) hash, re-hashes `plain` (already verified
/// against it) to argon2id and commits it. Returns whether a new hash was committed.
pub async fn upgrade_legacy_hash(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
    plain: String,
) -> bool {
    let old = record
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !is_legacy_hash(&old) {
        return false;
    }
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match commit_new_hash(state, collection, id.clone(), old, plain).await {
        Ok(upgraded) => {
            if upgraded {
                tracing::info!(collection = %collection.name, %id, "re-hashed a bcrypt password to argon2id");
            }
            upgraded
        }
        Err(err) => {
            tracing::warn!(collection = %collection.name, %id, error = %err.message, "could not re-hash a bcrypt password");
            false
        }
    }
}

async fn commit_new_hash(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    id: String,
    old: String,
    plain: String,
) -> ApiResult<bool> {
    let hash = tokio::task::spawn_blocking(move || try_hash_password(&plain))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let collection = Arc::clone(collection);
    let outcome = state
        .write(
            Actor::Record {
                collection_id: collection.id.clone(),
                id: id.clone(),
            },
            move |tx| {
                let Some(mut row) = super::write::load_staged(tx, &collection, &id)? else {
                    return Ok(false);
                };
                if row.get("password").and_then(Value::as_str) != Some(old.as_str()) {
                    return Ok(false);
                }
                row.insert("password".into(), json!(hash));
                tx.stage(Change::RecordUpdated {
                    collection_id: collection.id.clone(),
                    id: id.clone(),
                    values: to_storage(&collection, &row),
                })
                .map_err(ApiError::from)?;
                Ok(true)
            },
        )
        .await?;
    Ok(outcome.value)
}
