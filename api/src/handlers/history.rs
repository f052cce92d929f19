//! `GET /api/collections/{c}/records/{id}/history` (superusers only): every version of a
//! record, read from the log.
//!
//! 1. Each item is one commit that touched the record: `seq`, `time`, `action` (`create`,
//!    `update`, `delete`), `actor` and the full `record` after the change (before it, for a
//!    delete), with hidden fields left out.
//! 2. The scan is linear over the retained log (O(log size) per request, batches of
//!    4096 commits off the async runtime); an index by record is future work. `firstSeq` says
//!    where the retained history starts (older versions were compacted away).

use super::backups::{record_json, HISTORY_BATCH_COMMITS, HISTORY_VERSIONS_MAX};
use super::settings::require_superuser;
use crate::error::{ApiError, ApiResult};
use crate::model::record::format_ms;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use engine::{Actor, Change};
use serde_json::{json, Value};
use std::sync::Arc;

fn actor_json(actor: &Actor) -> Value {
    match actor {
        Actor::System => json!({"type": "system"}),
        Actor::Superuser(id) => json!({"type": "superuser", "id": id}),
        Actor::Record { collection_id, id } => {
            json!({"type": "record", "collectionId": collection_id, "id": id})
        }
        Actor::Guest => json!({"type": "guest"}),
    }
}

/// `GET /api/collections/{c}/records/{id}/history`
pub async fn records_history(
    State(state): State<Arc<AppState>>,
    Path((collection_ref, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_superuser(&state, &headers).await?;
    let schema = state.schema();
    let collection = schema
        .find(&collection_ref)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let reader = state.engine.log().clone();
    let items = tokio::task::spawn_blocking(move || -> engine::Result<(Vec<Value>, u64)> {
        let first = reader.first_seq();
        let last = reader.last_seq();
        let mut next = first;
        let mut items = Vec::new();
        while next <= last && items.len() < HISTORY_VERSIONS_MAX {
            let commits = reader.read_from(next, HISTORY_BATCH_COMMITS)?;
            let Some(end) = commits.last().map(|commit| commit.seq) else {
                break;
            };
            for commit in &commits {
                for change in &commit.changes {
                    let (action, values) = match change {
                        Change::RecordCreated {
                            collection_id,
                            id: changed,
                            values,
                        } if *collection_id == collection.id && *changed == id => {
                            ("create", values)
                        }
                        Change::RecordUpdated {
                            collection_id,
                            id: changed,
                            values,
                        } if *collection_id == collection.id && *changed == id => {
                            ("update", values)
                        }
                        Change::RecordDeleted {
                            collection_id,
                            id: changed,
                            old,
                        } if *collection_id == collection.id && *changed == id => ("delete", old),
                        _ => continue,
                    };
                    items.push(json!({
                        "seq": commit.seq,
                        "time": format_ms(commit.timestamp_ms),
                        "action": action,
                        "actor": actor_json(&commit.actor),
                        "record": record_json(&collection, values),
                    }));
                }
            }
            next = end + 1;
        }
        Ok((items, first))
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))?;
    let (items, first) = items.map_err(ApiError::from)?;
    Ok(axum::Json(json!({
        "items": items,
        "totalItems": items.len(),
        "firstSeq": first,
    }))
    .into_response())
}
