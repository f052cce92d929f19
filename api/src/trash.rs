//! The trash: records deleted from a collection, read back from the log (the domain of
//! `GET /api/collections/{c}/trash`, whose handler is HTTP glue).
//!
//! 1. An item is the last delete of a record id whose record was not created again after it:
//!    `id`, `position` (the delete's seq), `deletedAt`, `actor` and the `record` as it was
//!    before the delete (hidden fields left out, as in history).
//! 2. Superusers only for now (PocketBase's `null` rule: the default of the planned
//!    `restoreRule`).
//! 3. A restore (`POST …/records/{id}/restore`) is one ordinary create commit of the values
//!    before the last delete (realtime, history and the change feed see a create), with the
//!    files whose bytes storage still holds; relations that point at missing records and
//!    files that are gone are reported in the answer, never silently dropped or broken.
//!    An auth record comes back with a new `tokenKey`: tokens issued before the delete stay
//!    revoked.
//! 4. The scan is linear over the retained log (batches of [`TRASH_BATCH_COMMITS`] off the
//!    async runtime); memory is one entry per deleted id, and the answer holds the
//!    [`TRASH_ITEMS_MAX`] most recent deletes, newest first. Deletes older than the first
//!    retained seq (compacted away) are not in the trash.

use crate::error::{ApiError, ApiResult};
use crate::history::{actor_json, record_json};
use crate::model::record::format_ms;
use crate::model::record::from_row;
use crate::model::{Collection, FieldType};
use crate::state::AppState;
use engine::Change;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Commits read per batch while scanning the log for the trash.
pub const TRASH_BATCH_COMMITS: usize = 4096;
/// Most items in one trash answer (the most recent deletes).
pub const TRASH_ITEMS_MAX: usize = 1000;

/// The last delete of each record id of `collection_id` that was not created again after
/// it (only `only` when given): id → (seq, timestamp, actor, values before the delete).
type Trash = HashMap<
    String,
    (
        engine::Seq,
        i64,
        engine::Actor,
        Vec<(String, engine::Value)>,
    ),
>;

fn scan(
    reader: &engine::LogReader,
    collection_id: &str,
    only: Option<&str>,
) -> engine::Result<Trash> {
    let last = reader.last_seq();
    let mut next = reader.first_seq();
    let mut trash = Trash::new();
    while next <= last {
        let commits = reader.read_from(next, TRASH_BATCH_COMMITS)?;
        let Some(end) = commits.last().map(|commit| commit.seq) else {
            break;
        };
        for commit in commits {
            for change in commit.changes {
                match change {
                    Change::RecordDeleted {
                        collection_id: changed,
                        id,
                        old,
                    } if changed == collection_id && only.is_none_or(|o| o == id) => {
                        trash.insert(
                            id,
                            (commit.seq, commit.timestamp_ms, commit.actor.clone(), old),
                        );
                    }
                    Change::RecordCreated {
                        collection_id: changed,
                        id,
                        ..
                    } if changed == collection_id => {
                        trash.remove(&id);
                    }
                    _ => {}
                }
            }
        }
        next = end + 1;
    }
    Ok(trash)
}

/// The trash of `collection`, newest delete first, and the first retained seq.
pub async fn deleted(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
) -> ApiResult<(Vec<Value>, u64)> {
    let reader = state.engine.log().clone();
    let scanned = tokio::task::spawn_blocking(move || -> engine::Result<(Vec<Value>, u64)> {
        let first = reader.first_seq();
        let trash = scan(&reader, &collection.id, None)?;
        let mut items: Vec<_> = trash.into_iter().collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.1 .0));
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

/// What a restore did: the record as restored, and what it could not bring back.
#[derive(Debug)]
pub struct Restored {
    /// The restored record (all columns the collection still has).
    pub record: Map<String, Value>,
    /// Relation field → ids it names that do not exist (the record keeps them; reported).
    pub missing_relations: Map<String, Value>,
    /// File field → names whose bytes are no longer in storage (left out of the record).
    pub missing_files: Map<String, Value>,
    /// The delete the record came back from.
    pub deleted_at_position: engine::Seq,
    /// The restore's own commit.
    pub position: engine::Seq,
}

/// The names (files) or ids (relations) of a stored multi-value field: a JSON array text, or
/// one plain value.
fn names_of(value: &engine::Value) -> (bool, Vec<String>) {
    match value {
        engine::Value::Text(text) if text.starts_with('[') => (
            true,
            serde_json::from_str::<Vec<String>>(text).unwrap_or_default(),
        ),
        engine::Value::Text(text) if !text.is_empty() => (false, vec![text.clone()]),
        _ => (false, Vec::new()),
    }
}

/// Brings record `id` of `collection` back from its last delete as one ordinary create
/// commit (superusers; `actor` is the caller): the values it had, for the fields the
/// collection still has (fields added since get their defaults), its files whose bytes
/// storage still holds. A record with that id existing now is a 400; no delete of it in
/// the retained log is a 404. Relations that point at missing records are kept and
/// reported ([`Restored::missing_relations`]), as are files that are gone.
pub async fn restore(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
    id: String,
    actor: engine::Actor,
) -> ApiResult<Restored> {
    let reader = state.engine.log().clone();
    let (collection_id, wanted) = (collection.id.clone(), id.clone());
    let found = tokio::task::spawn_blocking(move || scan(&reader, &collection_id, Some(&wanted)))
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
        .map_err(ApiError::from)?;
    let Some((deleted_seq, _, _, old)) = found.get(&id).cloned() else {
        return Err(ApiError::not_found());
    };
    let storage = crate::files::storage::LocalStorage::new(state.engine.dir());
    let mut values = Vec::new();
    let mut added = Vec::new();
    let mut missing_files = Map::new();
    for (column, value) in old {
        let Some(field) = collection.fields.iter().find(|f| f.name() == column) else {
            continue;
        };
        if column == "tokenKey" && collection.is_auth() {
            // Tokens issued before the delete stay revoked: a restored account signs in anew.
            values.push((
                column,
                engine::Value::Text(crate::auth::token::new_token_key()),
            ));
            continue;
        }
        if field.kind() != FieldType::File {
            values.push((column, value));
            continue;
        }
        let (multiple, names) = names_of(&value);
        let (kept, gone): (Vec<String>, Vec<String>) = names.into_iter().partition(|name| {
            storage
                .path_of(&collection.id, &id, name)
                .is_some_and(|path| path.is_file())
        });
        if !gone.is_empty() {
            missing_files.insert(column.clone(), json!(gone));
        }
        added.extend(kept.iter().cloned());
        let value = if multiple {
            engine::Value::Text(serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into()))
        } else {
            engine::Value::Text(kept.into_iter().next().unwrap_or_default())
        };
        values.push((column, value));
    }
    let schema = state.schema();
    let relations: Vec<(String, String, Vec<String>)> = collection
        .fields
        .iter()
        .filter(|f| f.kind() == FieldType::Relation)
        .filter_map(|field| {
            let target = schema.find(field.relation_target().unwrap_or_default())?;
            let ids = values
                .iter()
                .find(|(column, _)| column == field.name())
                .map(|(_, value)| names_of(value).1)
                .unwrap_or_default();
            Some((field.name().to_string(), target.name.clone(), ids))
        })
        .collect();
    let (table, collection_id, record_id) =
        (collection.name.clone(), collection.id.clone(), id.clone());
    let staged = values.clone();
    let outcome = state
        .write(actor, move |tx| {
            let exists = tx
                .query(
                    &format!(
                        "SELECT 1 FROM {} WHERE id = ?1",
                        engine::quote_ident(&table)
                    ),
                    &[engine::Value::Text(record_id.clone())],
                )
                .map_err(ApiError::from)?;
            if !exists.rows.is_empty() {
                return Err(ApiError::bad_request("A record with this id exists."));
            }
            let mut missing = Map::new();
            for (field, target, ids) in &relations {
                let mut absent = Vec::new();
                for wanted in ids {
                    let rows = tx
                        .query(
                            &format!(
                                "SELECT 1 FROM {} WHERE id = ?1",
                                engine::quote_ident(target)
                            ),
                            &[engine::Value::Text(wanted.clone())],
                        )
                        .map_err(ApiError::from)?;
                    if rows.rows.is_empty() {
                        absent.push(wanted.clone());
                    }
                }
                if !absent.is_empty() {
                    missing.insert(field.clone(), json!(absent));
                }
            }
            tx.stage(Change::RecordCreated {
                collection_id: collection_id.clone(),
                id: record_id.clone(),
                values: staged,
            })
            .map_err(ApiError::from)?;
            if !added.is_empty() {
                tx.stage(Change::FilesChanged {
                    collection_id,
                    record_id,
                    added,
                    removed: Vec::new(),
                })
                .map_err(ApiError::from)?;
            }
            Ok(missing)
        })
        .await?;
    let columns: Vec<String> = values.iter().map(|(column, _)| column.clone()).collect();
    let row: Vec<engine::Value> = values.into_iter().map(|(_, value)| value).collect();
    Ok(Restored {
        record: from_row(&collection, &columns, &row),
        missing_relations: outcome.value,
        missing_files,
        deleted_at_position: deleted_seq,
        position: outcome.commit.map_or(0, |commit| commit.seq),
    })
}
