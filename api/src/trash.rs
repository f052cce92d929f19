//! The trash: records deleted from a collection, read back from the log (the domain of
//! `GET /api/collections/{c}/trash`, whose handler is HTTP glue).
//!
//! 1. An item is the last delete of a record id whose record was not created again after it:
//!    `id`, `position` (the delete's seq), `deletedAt`, `actor` and the `record` as it was
//!    before the delete (hidden fields left out, as in history).
//! 2. Superusers only for now (PocketBase's `null` rule: the default of the planned
//!    `restoreRule`).
//! 3. The scan is linear over the retained log (batches of [`TRASH_BATCH_COMMITS`] off the
//!    async runtime); memory is one entry per deleted id, and the answer holds the
//!    [`TRASH_ITEMS_MAX`] most recent deletes, newest first. Deletes older than the first
//!    retained seq (compacted away) are not in the trash.

use crate::error::{ApiError, ApiResult};
use crate::history::{actor_json, record_json};
use crate::model::record::format_ms;
use crate::model::Collection;
use crate::state::AppState;
use engine::Change;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Commits read per batch while scanning the log for the trash.
pub const TRASH_BATCH_COMMITS: usize = 4096;
/// Most items in one trash answer (the most recent deletes).
pub const TRASH_ITEMS_MAX: usize = 1000;

/// The trash of `collection`, newest delete first, and the first retained seq.
pub async fn deleted(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
) -> ApiResult<(Vec<Value>, u64)> {
    let reader = state.engine.log().clone();
    let scanned = tokio::task::spawn_blocking(move || -> engine::Result<(Vec<Value>, u64)> {
        let first = reader.first_seq();
        let last = reader.last_seq();
        let mut next = first;
        // id → (seq, timestamp, actor, old values) of its last delete, while it stays deleted.
        let mut trash = HashMap::new();
        while next <= last {
            let commits = reader.read_from(next, TRASH_BATCH_COMMITS)?;
            let Some(end) = commits.last().map(|commit| commit.seq) else {
                break;
            };
            for commit in commits {
                for change in commit.changes {
                    match change {
                        Change::RecordDeleted {
                            collection_id,
                            id,
                            old,
                        } if collection_id == collection.id => {
                            trash.insert(
                                id,
                                (commit.seq, commit.timestamp_ms, commit.actor.clone(), old),
                            );
                        }
                        Change::RecordCreated {
                            collection_id, id, ..
                        } if collection_id == collection.id => {
                            trash.remove(&id);
                        }
                        _ => {}
                    }
                }
            }
            next = end + 1;
        }
        let mut items: Vec<_> = trash.into_iter().collect();
        items.sort_by(|a, b| b.1 .0.cmp(&a.1 .0));
        items.truncate(TRASH_ITEMS_MAX);
        let items = items
            .into_iter()
            .map(|(id, (seq, timestamp_ms, actor, old))| {
                json!({
                    "id": id,
                    "position": seq,
                    "deletedAt": format_ms(timestamp_ms),
                    "actor": actor_json(&actor),
                    "record": record_json(&collection, &old),
                })
            })
            .collect();
        Ok((items, first))
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))?;
    scanned.map_err(ApiError::from)
}
