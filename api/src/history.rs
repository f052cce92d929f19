//! Record history: every version of a record, read from the log (the domain of
//! `GET /api/collections/{c}/records/{id}/history`, whose handler is HTTP glue).
//!
//! 1. Each item is one commit that touched the record: `seq`, `time`, `action` (`create`,
//!    `update`, `delete`), `actor` and the full `record` after the change (before it, for a
//!    delete), with hidden fields left out; a redaction is an item with `action` `redact`
//!    and the erased `fields`, and those fields show `"redacted"` in every earlier version.
//! 2. The scan is linear over the retained log (O(log size) per request, batches of
//!    [`HISTORY_BATCH_COMMITS`] commits off the async runtime, at most
//!    [`HISTORY_VERSIONS_MAX`] versions); an index by record is future work. The first
//!    retained seq says where the history starts (older versions were compacted away).

use crate::error::{ApiError, ApiResult};
use crate::model::record::{format_ms, from_row};
use crate::model::{Collection, FieldType};
use crate::state::AppState;
use engine::{Actor, Change};
use serde_json::{json, Value};
use std::sync::Arc;

/// Commits read per batch while scanning the log for history.
pub const HISTORY_BATCH_COMMITS: usize = 4096;
/// Most versions returned by one history request.
pub const HISTORY_VERSIONS_MAX: usize = 10_000;

/// The JSON of a commit's actor (`{type, id?, collectionId?}`).
pub fn actor_json(actor: &Actor) -> Value {
    match actor {
        Actor::System => json!({"type": "system"}),
        Actor::Superuser(id) => json!({"type": "superuser", "id": id}),
        Actor::Record { collection_id, id } => {
            json!({"type": "record", "collectionId": collection_id, "id": id})
        }
        Actor::Guest => json!({"type": "guest"}),
    }
}

/// The versions of record `id` of `collection`, oldest first, and the first retained seq.
pub async fn versions(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
    id: String,
) -> ApiResult<(Vec<Value>, u64)> {
    let reader = state.engine.log().clone();
    let items = tokio::task::spawn_blocking(move || -> engine::Result<(Vec<Value>, u64)> {
        let first = reader.first_seq();
        let last = reader.last_seq();
        let mut next = first;
        let mut items = Vec::new();
        let mut redactions: Vec<(u64, Vec<String>)> = Vec::new();
        while next <= last && items.len() < HISTORY_VERSIONS_MAX {
            let commits = reader.read_from(next, HISTORY_BATCH_COMMITS)?;
            let Some(end) = commits.last().map(|commit| commit.seq) else {
                break;
            };
            for commit in &commits {
                for change in &commit.changes {
                    if let Change::Redacted {
                        collection_id,
                        id: changed,
                        fields,
                        ..
                    } = change
                    {
                        if *collection_id == collection.id && *changed == id {
                            redactions.push((commit.seq, fields.clone()));
                            items.push(json!({
                                "seq": commit.seq,
                                "time": format_ms(commit.timestamp_ms),
                                "action": "redact",
                                "actor": actor_json(&commit.actor),
                                "fields": fields,
                            }));
                        }
                        continue;
                    }
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
        mark_redacted(&mut items, &redactions);
        Ok((items, first))
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))?;
    items.map_err(ApiError::from)
}

/// The value history shows for an erased field.
pub const REDACTED: &str = "redacted";

/// Shows [`REDACTED`] for every field a later redaction erased (the log holds the erased
/// value, the field's default, for those versions).
fn mark_redacted(items: &mut [Value], redactions: &[(u64, Vec<String>)]) {
    for item in items.iter_mut() {
        let seq = item.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let Some(record) = item.get_mut("record").and_then(Value::as_object_mut) else {
            continue;
        };
        for (redacted_at, fields) in redactions {
            if seq < *redacted_at {
                for field in fields {
                    if record.contains_key(field) {
                        record.insert(field.clone(), Value::String(REDACTED.into()));
                    }
                }
            }
        }
    }
}

/// The record JSON of a change's values, shaped like the API's records (hidden fields out).
pub fn record_json(collection: &Collection, values: &[(String, engine::Value)]) -> Value {
    let columns: Vec<String> = values.iter().map(|(name, _)| name.clone()).collect();
    let row: Vec<engine::Value> = values.iter().map(|(_, value)| value.clone()).collect();
    let mut record = from_row(collection, &columns, &row);
    for field in &collection.fields {
        if field.hidden() || field.kind() == FieldType::Password || field.name() == "tokenKey" {
            record.remove(field.name());
        }
    }
    Value::Object(record)
}
